//! The Deployment controller, as far as a rollout shows in a Deployment's `status`
//! (`pkg/controller/deployment`: `syncRolloutStatus`, `calculateStatus`, the condition reasons
//! of `deployment/util`). A stored write that bumps `metadata.generation` (the API server does
//! so when `spec` or the annotations change; never for `status`, which writes to the object
//! itself leave alone) starts a rollout: the next `lag` GETs that return the Deployment (get or
//! list; 2 unless set with `rollout_lag`) still show the status from before, then the
//! controller's write is seen (with a new `resourceVersion`, as any status write has):
//!
//! - done: `observedGeneration` = `generation`; `replicas`, `updatedReplicas`, `readyReplicas`,
//!   `availableReplicas` = `spec.replicas` (1 when unset); `Available` (`MinimumReplicasAvailable`)
//!   and `Progressing` (`NewReplicaSetAvailable`, `ReplicaSet "NAME-HASH" has successfully
//!   progressed.`).
//! - paused (`spec.paused: true`): `observedGeneration` follows, nothing rolls out: after a
//!   template change no pod runs the new template (`updatedReplicas` 0, left out as the API
//!   leaves out zero counts); `Progressing` is `Unknown`, `DeploymentPaused`, `Deployment is
//!   paused`. Resuming is a spec change, and the rollout then completes.
//! - stalled (`stall_rollout`): the new ReplicaSet's first pod never becomes ready:
//!   `observedGeneration` follows, `replicas` = `spec.replicas` + 1 (the surge pod),
//!   `updatedReplicas` 1, `unavailableReplicas` 1, `Progressing` `ReplicaSetUpdated`
//!   (`… is progressing.`); after `lag` more GETs its progress deadline passes: `Progressing`
//!   `False`, `ProgressDeadlineExceeded` (`… has timed out progressing.`). It never completes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{FakeKube, State};

/// A Deployment's namespace and name.
type Name = (String, String);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The controller has not seen the new generation yet.
    Observe,
    /// A stalled rollout, waiting for its progress deadline.
    Deadline,
}

struct Pending {
    gets_left: u32,
    stage: Stage,
}

/// What the controller knows.
pub struct Controller {
    /// GETs that still see the status from before a spec change.
    lag: u32,
    stalled: BTreeSet<Name>,
    pending: BTreeMap<Name, Pending>,
    /// The pod template each Deployment last rolled out (absent: the one it had when first
    /// written, which its pods run).
    rolled: BTreeMap<Name, Value>,
}

impl Default for Controller {
    fn default() -> Self {
        Self {
            lag: 2,
            stalled: BTreeSet::new(),
            pending: BTreeMap::new(),
            rolled: BTreeMap::new(),
        }
    }
}

impl FakeKube {
    /// How many GETs of a Deployment still show its status from before a spec change.
    pub fn rollout_lag(&self, gets: u32) {
        self.state.lock().unwrap().rollout.lag = gets;
    }

    /// The controller catches up: every rollout under way is seen at the next GET.
    pub fn catch_up_rollouts(&self) {
        let mut st = self.state.lock().unwrap();
        for p in st.rollout.pending.values_mut() {
            p.gets_left = 0;
        }
    }

    /// The Deployment's rollouts stall from now on: its new pods never become ready.
    pub fn stall_rollout(&self, name: &str) {
        let mut st = self.state.lock().unwrap();
        let ns = st.namespace.clone();
        st.rollout.stalled.insert((ns, name.to_owned()));
    }
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// After a stored write to a Deployment: a rollout starts when its generation is ahead of what
/// the controller observed.
pub fn written(st: &mut State, ns: &str, name: &str, before: Option<&Value>, after: &Value) {
    let key = (ns.to_owned(), name.to_owned());
    if let Some(before) = before {
        let template = before.pointer("/spec/template").cloned();
        st.rollout
            .rolled
            .entry(key.clone())
            .or_insert_with(|| template.unwrap_or(Value::Null));
    }
    if int(after, "/metadata/generation") > int(after, "/status/observedGeneration") {
        let gets_left = st.rollout.lag;
        st.rollout.pending.insert(
            key,
            Pending {
                gets_left,
                stage: Stage::Observe,
            },
        );
    }
}

/// Before a GET returns the Deployments of `ns` (every namespace when empty), or only `name`.
pub fn observe(st: &mut State, ns: &str, name: Option<&str>) {
    let due: Vec<Name> = st
        .rollout
        .pending
        .keys()
        .filter(|(n, m)| (ns.is_empty() || n == ns) && name.is_none_or(|x| x == m))
        .cloned()
        .collect();
    for key in due {
        tick(st, &key);
    }
}

fn tick(st: &mut State, key: &Name) {
    let Some(p) = st.rollout.pending.get_mut(key) else {
        return;
    };
    if p.gets_left > 0 {
        p.gets_left -= 1;
        return;
    }
    let stage = p.stage;
    st.rollout.pending.remove(key);
    let at = (
        "apps/v1".to_owned(),
        "deployments".to_owned(),
        key.0.clone(),
        key.1.clone(),
    );
    let Some(mut d) = st.objects.get(&at).cloned() else {
        return;
    };
    d["status"] = match stage {
        Stage::Observe => sync(&mut st.rollout, key, &d),
        Stage::Deadline => timed_out(&d),
    };
    st.resource_version += 1;
    d["metadata"]["resourceVersion"] = json!(st.resource_version.to_string());
    st.objects.insert(at, d);
}

/// `ReplicaSet`'s name for a template: the Deployment's name and a hash of the template.
fn replica_set(name: &str, template: &Value) -> String {
    const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let digest = custody::digest::Sha256Digest::of(&serde_json::to_vec(template).unwrap());
    let hash: String = digest.to_hex()[..10]
        .bytes()
        .map(|b| char::from(SAFE[usize::from(b) % SAFE.len()]))
        .collect();
    format!("{name}-{hash}")
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    let at = "2026-11-26T15:00:00Z";
    json!({"type": kind, "status": status, "reason": reason, "message": message,
           "lastUpdateTime": at, "lastTransitionTime": at})
}

fn available() -> Value {
    condition(
        "Available",
        "True",
        "MinimumReplicasAvailable",
        "Deployment has minimum availability.",
    )
}

/// A status with these counts; zero counts are left out, as the API leaves them out.
fn counts(generation: i64, counts: [(&str, i64); 5], conditions: Vec<Value>) -> Value {
    let mut status = json!({"observedGeneration": generation, "conditions": conditions});
    for (field, n) in counts {
        if n != 0 {
            status[field] = json!(n);
        }
    }
    status
}

/// The controller's sync of a Deployment whose generation it has not observed.
fn sync(c: &mut Controller, key: &Name, d: &Value) -> Value {
    let replicas = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let generation = int(d, "/metadata/generation");
    let template = d.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    let rs = replica_set(&key.1, &template);
    let changed = c.rolled.get(key).is_some_and(|t| *t != template);
    if d.pointer("/spec/paused") == Some(&Value::Bool(true)) {
        let updated = if changed { 0 } else { replicas };
        let paused = condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
        );
        return counts(
            generation,
            [
                ("replicas", replicas),
                ("updatedReplicas", updated),
                ("readyReplicas", replicas),
                ("availableReplicas", replicas),
                ("unavailableReplicas", 0),
            ],
            vec![available(), paused],
        );
    }
    if c.stalled.contains(key) {
        let progressing = condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet {rs:?} is progressing."),
        );
        c.pending.insert(
            key.clone(),
            Pending {
                gets_left: c.lag,
                stage: Stage::Deadline,
            },
        );
        return counts(
            generation,
            [
                ("replicas", replicas + 1),
                ("updatedReplicas", 1),
                ("readyReplicas", replicas),
                ("availableReplicas", replicas),
                ("unavailableReplicas", 1),
            ],
            vec![available(), progressing],
        );
    }
    c.rolled.insert(key.clone(), template);
    let done = condition(
        "Progressing",
        "True",
        "NewReplicaSetAvailable",
        &format!("ReplicaSet {rs:?} has successfully progressed."),
    );
    counts(
        generation,
        [
            ("replicas", replicas),
            ("updatedReplicas", replicas),
            ("readyReplicas", replicas),
            ("availableReplicas", replicas),
            ("unavailableReplicas", 0),
        ],
        vec![available(), done],
    )
}

/// A stalled rollout past its progress deadline.
fn timed_out(d: &Value) -> Value {
    let mut status = d.get("status").cloned().unwrap_or_else(|| json!({}));
    let template = d.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    let name = d
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let rs = replica_set(name, &template);
    status["conditions"] = json!([
        available(),
        condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            &format!("ReplicaSet {rs:?} has timed out progressing."),
        )
    ]);
    status
}
