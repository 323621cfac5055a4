//! What a fake pod looks like through the API (shaped like `tests/data/k8s-podlist-kind-v1.36.json`)
//! and the phases a test can put it in: Running and Ready (the default), running but not Ready
//! (its containers started, a readiness probe failing), Pending (not started: no pod IP yet),
//! Succeeded and Failed (its containers terminated; the pod IP stays, nothing listens on it).

use serde_json::{json, Value};

use super::{uid, FakeKube, FakePod, State};

/// A pod's phase as the kubelet reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodPhase {
    /// Running, every container started and Ready.
    #[default]
    Running,
    /// Running, its containers started but not Ready (a readiness probe failing).
    NotReady,
    /// Scheduled, its containers not started yet: no pod IP.
    Pending,
    /// Every container exited 0.
    Succeeded,
    /// A container exited non-zero and will not restart.
    Failed,
}

impl PodPhase {
    fn phase(self) -> &'static str {
        match self {
            Self::Running | Self::NotReady => "Running",
            Self::Pending => "Pending",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }

    /// Whether the pod has an IP (the kubelet keeps a terminated pod's IP in its status).
    pub fn has_ip(self) -> bool {
        self != Self::Pending
    }

    /// Whether its containers run, so something can listen on the pod IP.
    pub fn serving(self) -> bool {
        matches!(self, Self::Running | Self::NotReady)
    }
}

impl FakeKube {
    /// Puts a pod (added with `pod`) in `phase`.
    pub fn pod_phase(&self, pod: &str, phase: PodPhase) {
        self.state
            .lock()
            .unwrap()
            .phases
            .insert(pod.to_owned(), phase);
    }
}

/// The (current) container's state, readiness and whether it started, in `phase`.
fn container_state(phase: PodPhase) -> (Value, bool, bool) {
    match phase {
        PodPhase::Running => (
            json!({"running": {"startedAt": "2026-11-26T10:00:00Z"}}),
            true,
            true,
        ),
        PodPhase::NotReady => (
            json!({"running": {"startedAt": "2026-11-26T10:00:00Z"}}),
            false,
            true,
        ),
        PodPhase::Pending => (
            json!({"waiting": {"reason": "ContainerCreating"}}),
            false,
            false,
        ),
        PodPhase::Succeeded | PodPhase::Failed => {
            let (code, reason) = if phase == PodPhase::Succeeded {
                (0, "Completed")
            } else {
                (1, "Error")
            };
            (
                json!({"terminated": {"exitCode": code, "reason": reason,
                    "startedAt": "2026-11-26T10:00:00Z", "finishedAt": "2026-11-26T14:00:00Z"}}),
                false,
                false,
            )
        }
    }
}

/// The pod's conditions, as the kubelet sets them (`containers`: the pod's container names).
fn conditions(phase: PodPhase, containers: &[&str]) -> Value {
    let at = "2026-11-26T10:00:00Z";
    let (ready, why) = match phase {
        PodPhase::Running => (json!({"status": "True"}), Value::Null),
        PodPhase::Succeeded | PodPhase::Failed => (
            json!({"status": "False", "reason": "PodCompleted"}),
            Value::Null,
        ),
        PodPhase::NotReady | PodPhase::Pending => (
            json!({"status": "False", "reason": "ContainersNotReady"}),
            json!(format!(
                "containers with unready status: [{}]",
                containers.join(" ")
            )),
        ),
    };
    let initialized = if phase == PodPhase::Pending {
        "False"
    } else {
        "True"
    };
    let mut out = vec![
        json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": at}),
        json!({"type": "Initialized", "status": initialized, "lastTransitionTime": at}),
    ];
    for kind in ["ContainersReady", "Ready"] {
        let mut c = ready.clone();
        c["type"] = json!(kind);
        c["lastTransitionTime"] = json!(at);
        if !why.is_null() {
            c["message"] = why.clone();
        }
        out.push(c);
    }
    Value::Array(out)
}

/// The pod as the API serves it, in the phase the test put it in; the first container declares
/// the admin endpoint's port when one was set (`endpoint`).
pub fn pod_json(st: &State, ns: &str, p: &FakePod) -> Value {
    let phase = st.phases.get(&p.name).copied().unwrap_or_default();
    let (state, ready, started) = container_state(phase);
    let admin_port = st.endpoints.get(&p.name).and_then(|e| e.port);
    let digest = |s: &str| custody::digest::Sha256Digest::of(s.as_bytes());
    let statuses: Vec<Value> = p
        .containers
        .iter()
        .map(|c| {
            json!({
                "name": c.name, "ready": ready, "started": started,
                "restartCount": if c.previous.is_some() { 1 } else { 0 },
                "image": format!("registry.example/{}:2.4.1", c.name),
                "imageID": format!("registry.example/{}@sha256:{}", c.name, digest(&c.name)),
                "containerID": format!("containerd://{}", digest(&format!("{}/{}", p.name, c.name))),
                "state": state,
                "lastState": if c.previous.is_some() { json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": "2026-11-26T09:00:00Z", "finishedAt": "2026-11-26T10:00:00Z",
                    "containerID": format!("containerd://{}", digest(&format!("{}/{}/previous", p.name, c.name)))}}) } else { json!({}) },
            })
        })
        .collect();
    let containers: Vec<Value> = p
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut v =
                json!({"name": c.name, "image": format!("registry.example/{}:2.4.1", c.name)});
            if let (0, Some(port)) = (i, admin_port) {
                v["ports"] = json!([{"name": "admin", "containerPort": port, "protocol": "TCP"}]);
            }
            v
        })
        .collect();
    let names: Vec<&str> = p.containers.iter().map(|c| c.name.as_str()).collect();
    let mut status = json!({"phase": phase.phase(), "conditions": conditions(phase, &names),
        "startTime": "2026-11-26T09:00:00Z", "containerStatuses": statuses,
        "initContainerStatuses": p.init_containers.iter().map(|c| json!({"name": c.name, "ready": true, "restartCount": 0,
            "image": format!("registry.example/{}:2.4.1", c.name), "imageID": format!("registry.example/{}@sha256:0", c.name),
            "containerID": format!("containerd://init-{}", c.name),
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2026-11-26T08:59:00Z", "finishedAt": "2026-11-26T08:59:30Z"}}})).collect::<Vec<_>>()});
    if phase.has_ip() {
        status["podIP"] = json!(POD_IP);
        status["podIPs"] = json!([{"ip": POD_IP}]);
    }
    json!({
        "metadata": {"name": p.name, "generateName": format!("{}-", p.name.rsplit_once('-').map_or(p.name.as_str(), |x| x.0)),
                     "namespace": ns, "uid": uid(&p.name), "resourceVersion": "1200",
                     "creationTimestamp": "2026-11-26T09:00:00Z", "labels": p.labels},
        "spec": {"containers": containers,
                 "initContainers": p.init_containers.iter().map(|c| json!({"name": c.name, "image": format!("registry.example/{}:2.4.1", c.name)})).collect::<Vec<_>>(),
                 "nodeName": p.node, "restartPolicy": "Always"},
        "status": status,
    })
}

/// Every fake pod's IP.
pub const POD_IP: &str = "10.244.0.7";
