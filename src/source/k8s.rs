//! Kubernetes: every log of a Deployment's pods (or of a label selector), previous containers
//! included, exactly as the API server serves them, plus snapshots of the namespace's objects.
//!
//! Logs are read as raw bytes (they are not always UTF-8) with `timestamps=true`, a few streams
//! at a time, each capped at the policy's `limitBytes`, into files in the store's staging
//! directory with their SHA-256 computed on the way; the collection then seals those files.
//! Failures (a pod gone, a 403, a stream dropped mid-body) are evidence too: each is recorded,
//! and the rest is collected. Secrets are never requested, not even listed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::AsyncReadExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::{Source, SourceError, Stream};
use crate::digest::HashingWriter;
use crate::filename::safe_file_name;
use crate::kube::{self, encode, selector_string, Cluster, KubeError};
use crate::policy::collection::KubernetesPolicy;

/// What to collect.
#[derive(Clone, Debug)]
pub struct K8sRequest {
    pub namespace: String,
    pub target: Target,
    pub since: Since,
    /// Only this container of each pod.
    pub container: Option<String>,
    /// The kubeconfig context [default: the current one, or in-cluster].
    pub context: Option<String>,
    /// A kubeconfig file [default: KUBECONFIG, ~/.kube/config, or in-cluster].
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub enum Target {
    Deployment(String),
    Selector(String),
}

#[derive(Clone, Debug)]
pub enum Since {
    All,
    Seconds(u64),
    /// RFC 3339.
    Time(String),
}

/// One log stream to read: whose, and what is known of it before reading.
struct LogJob {
    pod: String,
    container: String,
    previous: bool,
    provenance: serde_json::Value,
    /// Its name under `data/logs/`.
    bag_name: String,
}

/// One log stream read, or tried.
#[derive(Clone, Debug)]
struct LogCapture {
    pod: String,
    container: String,
    previous: bool,
    provenance: serde_json::Value,
    /// The file the bytes are in, when any arrived.
    file: Option<PathBuf>,
    error: Option<String>,
    /// Its name under `data/logs/`.
    bag_name: String,
}

pub struct K8sSource {
    request: K8sRequest,
    policy: KubernetesPolicy,
    work: PathBuf,
    server: String,
    snapshots: Vec<(String, Vec<u8>)>,
    failures: Vec<serde_json::Value>,
    /// Makes the client, for callers that bring their own (a mock service in tests); called
    /// inside the source's runtime, which the client's background task needs.
    make_client: Option<Box<dyn FnOnce() -> ::kube::Client + Send>>,
}

impl K8sSource {
    /// A source that reads into `work` (a fresh directory in the store's staging area).
    pub fn new(request: K8sRequest, policy: KubernetesPolicy, work: PathBuf) -> Self {
        Self {
            request,
            policy,
            work,
            server: String::new(),
            snapshots: Vec::new(),
            failures: Vec::new(),
            make_client: None,
        }
    }

    /// Uses the client `make` makes instead of the kubeconfig or in-cluster configuration.
    pub fn with_client(
        mut self,
        make: impl FnOnce() -> ::kube::Client + Send + 'static,
        server: &str,
    ) -> Self {
        self.make_client = Some(Box::new(make));
        self.server = server.to_owned();
        self
    }
}

fn k8s_error(message: impl Into<String>) -> SourceError {
    SourceError::Kubernetes(message.into())
}

fn describe(e: &KubeError) -> String {
    e.message.clone()
}

fn status_code(e: &KubeError) -> Option<u16> {
    e.status
}

/// The path and query of a container's log.
pub fn log_path(
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
    since: &Since,
    limit_bytes: u64,
) -> String {
    let mut path = format!(
        "/api/v1/namespaces/{}/pods/{}/log?container={}&timestamps=true",
        encode(namespace),
        encode(pod),
        encode(container)
    );
    if previous {
        path.push_str("&previous=true");
    }
    match since {
        Since::All => {}
        Since::Seconds(s) => path.push_str(&format!("&sinceSeconds={s}")),
        Since::Time(t) => path.push_str(&format!("&sinceTime={}", encode(t))),
    }
    path.push_str(&format!("&limitBytes={limit_bytes}"));
    path
}

/// The namespace's objects kept as snapshots: (bag file name, API path). Secrets are not among
/// them, by design.
fn snapshot_paths(namespace: &str, selector: &str) -> Vec<(&'static str, String)> {
    let ns = encode(namespace);
    let sel = encode(selector);
    vec![
        (
            "replicasets.json",
            format!("/apis/apps/v1/namespaces/{ns}/replicasets?labelSelector={sel}"),
        ),
        ("services.json", format!("/api/v1/namespaces/{ns}/services")),
        (
            "endpoints.json",
            format!("/api/v1/namespaces/{ns}/endpoints"),
        ),
        (
            "endpointslices.json",
            format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"),
        ),
        (
            "ingresses.json",
            format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses"),
        ),
        (
            "networkpolicies.json",
            format!("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"),
        ),
        ("events.json", format!("/api/v1/namespaces/{ns}/events")),
    ]
}

/// How long a log stream may stay silent before it is given up (what arrived is kept).
const STALL: std::time::Duration = std::time::Duration::from_secs(60);
/// How often a silent stream looks for a signal asking the collection to stop.
const TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// What one log stream produced.
struct Streamed {
    bytes: u64,
    sha256: crate::digest::Sha256Digest,
    /// More than the cap was on offer: the log is cut at the cap.
    truncated: bool,
    /// Why the stream ended early, if it did; the bytes before are kept.
    ended: Option<String>,
}

/// Streams one log into `file`, hashing on the way, keeping at most `limit` bytes. The request
/// asks for one byte more than `limit`, so a log of exactly `limit` bytes is not mistaken for a
/// truncated one. A broken or stalled stream, or a local write error, ends the capture with what
/// arrived kept and the reason recorded; `Err` means nothing was captured (the API refused).
async fn stream_log(
    cluster: &Cluster,
    path: &str,
    file: &Path,
    limit: u64,
) -> Result<Streamed, KubeError> {
    let mut body = cluster.stream(path).await?;
    let out = match std::fs::File::create(file) {
        Ok(f) => f,
        Err(e) => {
            return Ok(Streamed {
                bytes: 0,
                sha256: crate::digest::Sha256Digest::of(b""),
                truncated: false,
                ended: Some(format!(
                    "cannot create the staging file {}: {e}",
                    file.display()
                )),
            })
        }
    };
    let mut writer = HashingWriter::new(std::io::BufWriter::new(out));
    let mut buf = vec![0u8; 64 * 1024];
    let (mut kept, mut truncated, mut ended) = (0u64, false, None);
    loop {
        // Waits in short steps, so a signal stops the capture at once.
        let mut silent = std::time::Duration::ZERO;
        let read = loop {
            if let Some(signal) = crate::interrupt::requested() {
                break Err(format!("interrupted by {}", signal.name()));
            }
            match tokio::time::timeout(TICK, body.read(&mut buf)).await {
                Ok(Ok(n)) => break Ok(n),
                Ok(Err(e)) => break Err(format!("the stream broke after the bytes kept: {e}")),
                Err(_) => silent += TICK,
            }
            if silent >= STALL {
                break Err(format!(
                    "the stream stalled: nothing for {} s after the bytes kept",
                    STALL.as_secs()
                ));
            }
        };
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                ended = Some(e);
                break;
            }
        };
        let room = (limit - kept).min(n as u64) as usize;
        if let Err(e) = writer.write_all(&buf[..room]) {
            ended = Some(format!("cannot write the staging file: {e}"));
            break;
        }
        kept += room as u64;
        if room < n {
            truncated = true;
            break;
        }
    }
    let (inner, sha256, bytes) = writer.finish();
    let synced = inner
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all());
    if let (Err(e), None) = (synced, &ended) {
        ended = Some(format!("cannot write the staging file: {e}"));
    }
    Ok(Streamed {
        bytes,
        sha256,
        truncated,
        ended,
    })
}

/// One container to collect, with what the pod's status says of it now and of its previous
/// instance.
struct ContainerInfo {
    name: String,
    current: serde_json::Value,
    previous: serde_json::Value,
    restarts: u32,
}

fn time_of(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<String> {
    t.map(|t| t.0.to_string())
}

/// Every container (and init and ephemeral container) of `pod` to collect.
fn containers(pod: &Pod, only: Option<&str>, init: bool) -> Vec<ContainerInfo> {
    use k8s_openapi::api::core::v1::ContainerStatus;
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut add = |name: &str,
                   image: &Option<String>,
                   statuses: &Option<Vec<ContainerStatus>>,
                   kind: &str| {
        if only.is_some_and(|o| o != name) {
            return;
        }
        let s = statuses.iter().flatten().find(|s| s.name == name).cloned();
        let restarts = s.as_ref().map_or(0, |s| s.restart_count.max(0) as u32);
        let state = s.as_ref().and_then(|s| s.state.clone()).unwrap_or_default();
        let started =
            time_of(state.running.as_ref().and_then(|r| r.started_at.as_ref())).or_else(|| {
                time_of(
                    state
                        .terminated
                        .as_ref()
                        .and_then(|t| t.started_at.as_ref()),
                )
            });
        let base = json!({
            "container": name,
            "container_kind": kind,
            "image": image,
            "image_id": s.as_ref().map(|s| s.image_id.clone()),
            "restart_count": restarts,
        });
        let mut current = base.clone();
        current["container_id"] = json!(s.as_ref().and_then(|s| s.container_id.clone()));
        current["started_at"] = json!(started);
        current["state"] = json!(if state.running.is_some() {
            "running"
        } else if state.terminated.is_some() {
            "terminated"
        } else {
            "waiting"
        });
        // The previous instance: what `lastState.terminated` says of it.
        let last = s
            .as_ref()
            .and_then(|s| s.last_state.as_ref())
            .and_then(|l| l.terminated.clone());
        let mut previous = base;
        previous["container_id"] = json!(last.as_ref().and_then(|t| t.container_id.clone()));
        previous["started_at"] = json!(time_of(last.as_ref().and_then(|t| t.started_at.as_ref())));
        previous["finished_at"] =
            json!(time_of(last.as_ref().and_then(|t| t.finished_at.as_ref())));
        previous["exit_code"] = json!(last.as_ref().map(|t| t.exit_code));
        previous["reason"] = json!(last.as_ref().and_then(|t| t.reason.clone()));
        out.push(ContainerInfo {
            name: name.to_owned(),
            current,
            previous,
            restarts,
        });
    };
    for c in &spec.containers {
        add(&c.name, &c.image, &status.container_statuses, "container");
    }
    if init {
        for c in spec.init_containers.iter().flatten() {
            add(&c.name, &c.image, &status.init_container_statuses, "init");
        }
    }
    for c in spec.ephemeral_containers.iter().flatten() {
        add(
            &c.name,
            &c.image,
            &status.ephemeral_container_statuses,
            "ephemeral",
        );
    }
    out
}

impl K8sSource {
    async fn cluster(&mut self) -> Result<Cluster, SourceError> {
        if let Some(make) = self.make_client.take() {
            return Ok(Cluster::new(make(), &self.server));
        }
        let cluster = kube::connect(
            self.request.kubeconfig.as_deref(),
            self.request.context.as_deref(),
        )
        .await
        .map_err(k8s_error)?;
        self.server = cluster.server.clone();
        Ok(cluster)
    }

    async fn collect(&mut self) -> Result<Vec<LogCapture>, SourceError> {
        let cluster = self.cluster().await?;
        let selector = self.selector(&cluster).await?;
        let pods = self.pods_and_snapshots(&cluster, &selector).await?;
        let jobs = self.plan(&pods);
        self.stream_all(&cluster, jobs).await
    }

    /// The label selector of the pods to collect; for a Deployment, its own selector (the
    /// Deployment is kept as a snapshot).
    async fn selector(&mut self, cluster: &Cluster) -> Result<String, SourceError> {
        let ns = self.request.namespace.clone();
        let selector = match &self.request.target {
            // An empty selector would take every pod of the namespace.
            Target::Selector(s) if s.trim().is_empty() => {
                return Err(k8s_error("the label selector is empty".to_owned()))
            }
            Target::Selector(s) => s.clone(),
            Target::Deployment(name) => {
                let path = format!(
                    "/apis/apps/v1/namespaces/{}/deployments/{}",
                    encode(&ns),
                    encode(name)
                );
                let bytes = cluster.get(&path).await.map_err(|e| {
                    k8s_error(format!(
                        "cannot read Deployment {ns}/{name}: {}",
                        describe(&e)
                    ))
                })?;
                let deployment: Deployment = serde_json::from_slice(&bytes).map_err(|e| {
                    k8s_error(format!("Deployment {ns}/{name} is not a Deployment: {e}"))
                })?;
                self.snapshots.push(("deployment.json".to_owned(), bytes));
                let selector = deployment
                    .spec
                    .map(|s| s.selector)
                    .ok_or_else(|| k8s_error(format!("Deployment {ns}/{name} has no spec")))?;
                selector_string(&selector)
                    .map_err(|e| k8s_error(format!("Deployment {ns}/{name}: {e}")))?
            }
        };
        Ok(selector)
    }

    /// The pods the selector matches, and the namespace's snapshots; a snapshot that cannot be
    /// read is a failure recorded, not the end of the collection.
    async fn pods_and_snapshots(
        &mut self,
        cluster: &Cluster,
        selector: &str,
    ) -> Result<k8s_openapi::List<Pod>, SourceError> {
        let ns = self.request.namespace.clone();
        let pods_path = format!(
            "/api/v1/namespaces/{}/pods?labelSelector={}",
            encode(&ns),
            encode(selector)
        );
        let pods_bytes = cluster
            .list(&pods_path)
            .await
            .map_err(|e| k8s_error(format!("cannot list pods ({selector}): {}", describe(&e))))?;
        let pods: k8s_openapi::List<Pod> = serde_json::from_slice(&pods_bytes)
            .map_err(|e| k8s_error(format!("the pod list is not a PodList: {e}")))?;
        self.snapshots.push(("pods.json".into(), pods_bytes));
        for (name, path) in snapshot_paths(&ns, selector) {
            match cluster.list(&path).await {
                Ok(bytes) => self.snapshots.push((name.to_owned(), bytes)),
                Err(e) => self.failures.push(json!({
                    "kind": "snapshot", "file": name, "path": path, "error": describe(&e),
                    "status": status_code(&e),
                })),
            }
        }

        Ok(pods)
    }

    /// Every container's log to read, and the previous container's when it restarted.
    fn plan(&mut self, pods: &k8s_openapi::List<Pod>) -> Vec<LogJob> {
        let ns = self.request.namespace.clone();
        let mut jobs = Vec::new();
        for pod in &pods.items {
            let meta = &pod.metadata;
            let pod_name = meta.name.clone().unwrap_or_default();
            let pod_info = json!({
                "kind": "kubernetes-log",
                "namespace": ns,
                "pod": pod_name,
                "pod_uid": meta.uid,
                "node": pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                "pod_started_at": pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0.to_string()),
            });
            let found = containers(
                pod,
                self.request.container.as_deref(),
                self.policy.init_containers,
            );
            if found.is_empty() {
                let mut failure = pod_info.clone();
                failure["error"] = json!(match &self.request.container {
                    Some(c) => format!("the pod has no container {c}"),
                    None => "the pod has no containers".to_owned(),
                });
                self.failures.push(failure);
            }
            for (index, info) in found.into_iter().enumerate() {
                for previous in [false, true] {
                    if previous && info.restarts == 0 {
                        continue;
                    }
                    let mut provenance = pod_info.clone();
                    let details = if previous {
                        &info.previous
                    } else {
                        &info.current
                    };
                    if let (Some(p), Some(d)) = (provenance.as_object_mut(), details.as_object()) {
                        p.extend(d.clone());
                        p.insert("previous".into(), previous.into());
                        p.insert("since".into(), since_json(&self.request.since));
                        p.insert("limit_bytes".into(), self.policy.limit_bytes.into());
                    }
                    let bag_name = bag_name(jobs.len(), &pod_name, index, &info.name, previous);
                    jobs.push(LogJob {
                        pod: pod_name.clone(),
                        container: info.name.clone(),
                        previous,
                        provenance,
                        bag_name,
                    });
                }
            }
        }
        jobs
    }

    /// Streams every planned log into the work directory, a few at a time.
    async fn stream_all(
        &mut self,
        cluster: &Cluster,
        jobs: Vec<LogJob>,
    ) -> Result<Vec<LogCapture>, SourceError> {
        let ns = self.request.namespace.clone();
        std::fs::create_dir_all(&self.work)
            .map_err(|e| k8s_error(format!("cannot create {}: {e}", self.work.display())))?;
        let permits = Arc::new(tokio::sync::Semaphore::new(self.policy.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, job) in jobs.into_iter().enumerate() {
            let LogJob {
                pod,
                container,
                previous,
                provenance,
                bag_name,
            } = job;
            let cluster = cluster.clone();
            let permits = permits.clone();
            // One byte over the cap, to tell a cut log from one of exactly the cap's size.
            let path = log_path(
                &ns,
                &pod,
                &container,
                previous,
                &self.request.since,
                self.policy.limit_bytes.saturating_add(1),
            );
            let file = self.work.join(format!("{i:05}.log"));
            let limit = self.policy.limit_bytes;
            tasks.spawn(async move {
                let _permit = permits.acquire().await;
                let mut capture = LogCapture {
                    pod,
                    container,
                    previous,
                    provenance,
                    file: None,
                    error: None,
                    bag_name,
                };
                match stream_log(&cluster, &path, &file, limit).await {
                    Ok(got) => {
                        if let Some(p) = capture.provenance.as_object_mut() {
                            p.insert("bytes_received".into(), got.bytes.into());
                            p.insert("sha256_received".into(), got.sha256.to_hex().into());
                            p.insert("truncated".into(), got.truncated.into());
                            p.insert("complete".into(), got.ended.is_none().into());
                            if let Some(e) = &got.ended {
                                p.insert("error".into(), e.clone().into());
                            }
                        }
                        capture.file = Some(file);
                        capture.error = got.ended;
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&file);
                        if let Some(p) = capture.provenance.as_object_mut() {
                            p.insert("status".into(), status_code(&e).into());
                        }
                        capture.error = Some(describe(&e));
                    }
                }
                (i, capture)
            });
        }
        let mut captures = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(c) => captures.push(c),
                // A reader that panicked took only its own stream with it.
                Err(e) => self.failures.push(
                    json!({"kind": "kubernetes-log", "error": format!("a log reader failed: {e}")}),
                ),
            }
        }
        captures.sort_by_key(|(i, _)| *i);
        Ok(captures.into_iter().map(|(_, c)| c).collect())
    }
}

fn since_json(since: &Since) -> serde_json::Value {
    match since {
        Since::All => serde_json::Value::Null,
        Since::Seconds(s) => json!({ "seconds": s }),
        Since::Time(t) => json!({ "time": t }),
    }
}

impl Source for K8sSource {
    fn request(&self) -> serde_json::Value {
        json!({
            "kind": "kubernetes",
            "server": self.server,
            "namespace": self.request.namespace,
            "deployment": match &self.request.target { Target::Deployment(d) => Some(d), _ => None },
            "selector": match &self.request.target { Target::Selector(s) => Some(s), _ => None },
            "since": since_json(&self.request.since),
            "container": self.request.container,
            "context": self.request.context,
            "limit_bytes": self.policy.limit_bytes,
        })
    }

    fn open(&mut self) -> Result<Vec<Stream>, SourceError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| k8s_error(format!("cannot start the client runtime: {e}")))?;
        let captures = runtime.block_on(self.collect())?;
        let mut streams = Vec::new();
        for c in captures {
            if let Some(error) = &c.error {
                let mut failure = c.provenance.clone();
                if let Some(f) = failure.as_object_mut() {
                    f.insert("error".into(), error.clone().into());
                    f.insert("kept_bytes".into(), c.file.is_some().into());
                }
                self.failures.push(failure);
            }
            let Some(path) = c.file else { continue };
            let opened = std::fs::File::open(&path).and_then(|mut file| {
                let first = super::files::peek(&mut file, &path.display().to_string())
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                Ok((file, first))
            });
            let (file, first) = match opened {
                Ok(x) => x,
                Err(e) => {
                    self.failures.push(
                        json!({"pod": c.pod, "container": c.container, "previous": c.previous,
                        "error": format!("cannot reopen the staged log {}: {e}", path.display())}),
                    );
                    continue;
                }
            };
            let name = format!(
                "{}/{}/{}{}",
                self.request.namespace,
                c.pod,
                c.container,
                if c.previous { " (previous)" } else { "" }
            );
            let provenance = super::Provenance::from_json(c.provenance);
            streams.push(Stream {
                check: Some(staged_check(
                    name.clone(),
                    &provenance,
                    self.policy.limit_bytes,
                )),
                name,
                bag_name: c.bag_name,
                provenance,
                first,
                reader: Box::new(file),
            });
        }
        if streams.is_empty() {
            return Err(k8s_error(format!(
                "nothing could be collected: {}",
                if self.failures.is_empty() {
                    "no pod matched".to_owned()
                } else {
                    self.failures
                        .iter()
                        .filter_map(|f| f.get("error").and_then(|e| e.as_str()))
                        .take(3)
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            )));
        }
        Ok(streams)
    }

    fn snapshots(&self) -> Vec<(String, Vec<u8>)> {
        self.snapshots.clone()
    }

    fn failures(&self) -> Vec<super::Failure> {
        self.failures
            .iter()
            .cloned()
            .map(super::Failure::from_json)
            .collect()
    }

    fn finished(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// The check once a staged log has been read into the bag: what was sealed must be what arrived
/// (the staged copy could have been changed in between), and a log cut at the cap is recorded.
fn staged_check(name: String, provenance: &super::Provenance, limit: u64) -> super::Check {
    let received = provenance.sha256_received.clone();
    let bytes_received = provenance.bytes_received;
    let truncated = provenance.truncated == Some(true);
    Box::new(move |bytes: u64, sha256: &crate::digest::Sha256Digest| {
        let mut failures = Vec::new();
        if received.as_deref() != Some(sha256.to_hex().as_str()) || bytes_received != Some(bytes) {
            let mut f = super::failure(
                "staged_changed",
                &name,
                format!(
                    "the staged log changed between download and sealing: {} bytes with SHA-256 {} arrived, {bytes} bytes with SHA-256 {sha256} were sealed",
                    bytes_received.map_or("?".into(), |b| b.to_string()),
                    received.as_deref().unwrap_or("unknown"),
                ),
            );
            f.set("sha256_received", received.clone());
            f.set("sha256_sealed", sha256.to_hex());
            failures.push(f);
        }
        if truncated {
            let mut f = super::failure(
                "truncated",
                &name,
                format!("the log has more than the cap of {limit} bytes (kubernetes.limit_bytes); the first {limit} bytes are sealed, the rest is not"),
            );
            f.set("limit_bytes", limit);
            failures.push(f);
        }
        failures
    })
}

/// A log's name under `data/logs/`: `<NNNN>-<pod>/<container>[.previous].log`, numbered so that
/// names cut to fit the bag's path limit stay distinct (the full names are in
/// `collection.json`).
fn bag_name(n: usize, pod: &str, index: usize, container: &str, previous: bool) -> String {
    let pod = safe_file_name(pod, 30);
    let container = if container.len() > 30 {
        format!("{}-{index}", safe_file_name(container, 25))
    } else {
        safe_file_name(container, 30)
    };
    let suffix = if previous { ".previous" } else { "" };
    format!("{n:04}-{pod}/{container}{suffix}.log")
}

#[cfg(test)]
mod tests;
