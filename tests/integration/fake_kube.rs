//! A fake Kubernetes API server over real HTTP on loopback. It serves the real REST paths and
//! JSON shapes (objects shaped like `tests/data/k8s-podlist-kind-v1.36.json`, the API server's
//! `Status` bodies for errors) for what custody reads: a Deployment, pods by `labelSelector`
//! (equality, `!=`, `in`, `notin`, existence), pod logs with `container`, `previous`,
//! `timestamps`, `sinceSeconds`, `sinceTime` and `limitBytes` (sent chunked), and the lists kept
//! as snapshots. Faults are switched on per test: a pod gone (404), 403s, 500s, a log stream
//! dropped mid-body. Every request is recorded, so tests can prove what was (never) asked.
//!
//! For the planner it also serves, as the API reference describes them (`store`): list (paged)
//! and get of every kind the planner reads, Nodes and Namespaces cluster-wide, discovery (`/api`,
//! `/apis`, `/apis/cilium.io/v2` only when Cilium is installed, `/apis/crd.projectcalico.org/v1`
//! only when Calico is), the CiliumNetworkPolicy CRD, the `cilium.io/v2` kinds (CiliumNodes
//! cluster-wide) and Calico's cluster-wide IPPools; POST/PUT/PATCH/DELETE judged like the real
//! server (`validate`), with `dryRun=All` not stored and otherwise stored with a new
//! `resourceVersion`. Every answer carries a `Date` header (the fake's clock, skewed on demand),
//! unless a test leaves it out or sends one that is not a date.
//! Objects are added from JSON.
//!
//! For containment's execution it serves, as the API server does: Secrets (`secrets`: base64
//! `data`, `stringData` merged, `immutable` enforced; reads refused by default, as custody's
//! Roles grant none — `Faults::forbidden_reads`), Deployments whose status follows a rollout
//! after a spec change (`rollout`: lagging, paused, stalled), and `pods/proxy` to a stub admin
//! endpoint per pod that records each call (`proxy`), pods in any phase (`pods`).

// Paths relative to this file's directory, so `examples/fake_apiserver.rs` can include it too.
#[path = "fake_kube/cluster.rs"]
mod cluster;
#[path = "fake_kube/pods.rs"]
mod pods;
#[path = "fake_kube/proxy.rs"]
mod proxy;
#[path = "fake_kube/rollout.rs"]
mod rollout;
#[path = "fake_kube/secrets.rs"]
mod secrets;
#[path = "fake_kube/store.rs"]
mod store;
#[path = "fake_kube/validate.rs"]
mod validate;

use cluster::{discovery, seed};
pub use pods::PodPhase;
pub use proxy::{Answer, Endpoint, ProxyCall};

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// "Now" for the fake cluster: log line times and `sinceSeconds` are relative to it.
pub const NOW: i64 = 1_795_704_888; // 2026-11-26T14:54:48Z

#[derive(Clone, Debug)]
pub struct FakeContainer {
    pub name: String,
    /// (Unix seconds, line without its line feed) of the current container.
    pub lines: Vec<(i64, Vec<u8>)>,
    /// The previous (restarted) container's lines; `None` when it never restarted.
    pub previous: Option<Vec<(i64, Vec<u8>)>>,
}

#[derive(Clone, Debug)]
pub struct FakePod {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub containers: Vec<FakeContainer>,
    pub init_containers: Vec<FakeContainer>,
    pub node: String,
}

#[derive(Default)]
pub struct Faults {
    /// The fake's clock (its `Date` header) runs this many seconds ahead of the real one.
    pub clock_skew: i64,
    /// Answers carry no `Date` header (a proxy in front of the API server that drops it).
    pub no_date: bool,
    /// Answers carry this `Date` header instead of the fake's clock.
    pub date_text: Option<String>,
    /// Pods whose logs answer 404, as if deleted after they were listed.
    pub gone: Vec<String>,
    /// Path prefixes answering 403.
    pub forbidden: Vec<String>,
    /// Path prefixes whose reads (GET) answer 403 as RBAC would, writes going through; Secrets
    /// (in the fake's namespace and cluster-wide) unless a test clears it.
    pub forbidden_reads: Vec<String>,
    /// Path prefixes whose real writes (not `dryRun`) are stored and then the answer is lost:
    /// the connection is closed with nothing sent, as when the API server dies mid-answer.
    pub lost_write_answers: Vec<String>,
    /// Exact paths whose reads go through despite `forbidden_reads`: a Role granting `get` on
    /// one Secret by `resourceNames`.
    pub readable: Vec<String>,
    /// Path prefixes answering 500.
    pub broken: Vec<String>,
    /// (pod, container): the stream is cut after this many bytes.
    pub drop_after: HashMap<(String, String), usize>,
    /// Logs are held back this long before their first byte (a slow kubelet).
    pub log_delay: Option<std::time::Duration>,
    /// Every request answers 503 until this moment (the API server restarting).
    pub unavailable_until: Option<std::time::Instant>,
    /// An admission webhook refuses every Secret create, its message quoting the Secret's
    /// `data` as sent and decoded, cut off part-way (as careless webhooks do).
    pub echoing_webhook: bool,
}

/// One request as it was received.
#[derive(Clone, Debug, Default)]
pub struct Call {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// A request as the router sees it: the path decoded, the query split.
struct Request {
    method: String,
    /// Path and query, as sent.
    target: String,
    path: String,
    query: HashMap<String, String>,
    content_type: String,
    /// Every header as sent, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Default)]
struct State {
    namespace: String,
    /// Every stored object (`store`), by group/version, resource, namespace and name.
    objects: BTreeMap<store::Key, Value>,
    /// The store's resourceVersion: bumped on every real write.
    resource_version: u64,
    /// Whether `cilium.io/v2` is served.
    cilium: bool,
    /// The group versions of add-ons (Calico, Antrea, the network-policy API) served.
    add_ons: std::collections::BTreeSet<&'static str>,
    pods: Vec<FakePod>,
    faults: Faults,
    /// Events beyond the one every namespace here has, to make lists longer than a page.
    extra_events: usize,
    /// Every request's path and query, in order.
    requests: Vec<String>,
    /// Every request whole, in order.
    calls: Vec<Call>,
    /// The exact body of every successful response, by path and query.
    served: HashMap<String, Vec<u8>>,
    /// Pods not Running and Ready, by name.
    phases: HashMap<String, PodPhase>,
    /// Pods' admin endpoints told to listen or answer otherwise than by default, by name.
    endpoints: HashMap<String, Endpoint>,
    /// Every call the pods' admin endpoints received.
    proxied: Vec<ProxyCall>,
    /// The Deployment controller's rollouts.
    rollout: rollout::Controller,
}

pub struct FakeKube {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeKube {
    pub fn start(namespace: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            namespace: namespace.to_owned(),
            resource_version: 1300,
            ..State::default()
        }));
        {
            let mut st = state.lock().unwrap();
            seed(&mut st);
            st.faults.forbidden_reads = vec![
                "/api/v1/secrets".to_owned(),
                format!("/api/v1/namespaces/{namespace}/secrets"),
            ];
        }
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &s);
                });
            }
        });
        Self { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A Deployment selecting `match_labels` and the `tier in (…)` expression.
    pub fn deployment(&self, name: &str, match_labels: &[(&str, &str)], tier_in: &[&str]) {
        let mut st = self.state.lock().unwrap();
        let labels: BTreeMap<&str, &str> = match_labels.iter().copied().collect();
        let d = json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": name, "namespace": st.namespace, "uid": uid(name), "resourceVersion": "1000", "generation": 3,
                          "creationTimestamp": "2026-11-01T00:00:00Z", "labels": labels},
            "spec": {"replicas": 3,
                     "selector": {"matchLabels": labels,
                                  "matchExpressions": [{"key": "tier", "operator": "In", "values": tier_in}]},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "gateway", "image": "registry.example/gateway:2.4.1"}]}},
                     "strategy": {"type": "RollingUpdate"}},
            "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
                       "conditions": [
                           {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.",
                            "lastUpdateTime": "2026-11-01T00:00:00Z", "lastTransitionTime": "2026-11-01T00:00:00Z"},
                           {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"{name}-7d4b9c\" has successfully progressed."),
                            "lastUpdateTime": "2026-11-01T00:00:00Z", "lastTransitionTime": "2026-11-01T00:00:00Z"}]}
        });
        let ns = st.namespace.clone();
        st.objects
            .insert(("apps/v1".into(), "deployments".into(), ns, name.into()), d);
    }

    pub fn pod(&self, pod: FakePod) {
        self.state.lock().unwrap().pods.push(pod);
    }

    /// Adds `n` Events to the namespace.
    pub fn events(&self, n: usize) {
        self.state.lock().unwrap().extra_events += n;
    }

    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.state.lock().unwrap().faults);
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Every request with its method, content type and body, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The exact bytes served for the request whose path and query start with `prefix`.
    pub fn served(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let st = self.state.lock().unwrap();
        let mut out: Vec<(String, Vec<u8>)> = st
            .served
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.sort();
        out
    }

    /// A kubeconfig for this server (token auth over plain HTTP on loopback).
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: analyst\n  user:\n    token: fake-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: analyst\ncurrent-context: fake\n",
                self.url()
            ),
        )
        .unwrap();
        path
    }
}

pub fn uid(name: &str) -> String {
    let h = custody::digest::Sha256Digest::of(name.as_bytes()).to_hex();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn rfc3339_nano(t: i64, i: usize) -> String {
    let dt = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        (i % 1000) * 1000
    )
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Vec<u8>) {
    (
        code,
        serde_json::to_vec(
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code}),
        )
        .unwrap(),
    )
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Label selector semantics: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
pub fn selects(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|t| {
            let set = |rest: &str| -> Vec<String> {
                rest.trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .split(',')
                    .map(|v| v.trim().to_owned())
                    .collect()
            };
            if let Some((k, rest)) = t.split_once(" notin ") {
                return labels.get(k.trim()).is_none_or(|v| !set(rest).contains(v));
            }
            if let Some((k, rest)) = t.split_once(" in ") {
                return labels.get(k.trim()).is_some_and(|v| set(rest).contains(v));
            }
            if let Some((k, v)) = t.split_once("!=") {
                return labels.get(k.trim()) != Some(&v.trim().to_owned());
            }
            if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                return labels.get(k.trim()) == Some(&v.trim().to_owned());
            }
            if let Some(k) = t.strip_prefix('!') {
                return !labels.contains_key(k.trim());
            }
            labels.contains_key(t)
        })
}

enum Reply {
    Whole(u16, Vec<u8>),
    /// An answer with `Warning` headers.
    Warned(u16, Vec<u8>, Vec<String>),
    /// A log, sent chunked; cut after `Some(n)` bytes.
    Log(Vec<u8>, Option<usize>),
    /// An answer sent only after this long.
    Delayed(std::time::Duration, Box<Reply>),
    /// No answer: the connection is closed.
    Cut,
}

fn route(st: &mut State, req: &Request) -> Reply {
    let (path, query) = (req.path.as_str(), &req.query);
    let ns = st.namespace.clone();
    let full = path.to_owned();
    if req.method == "GET"
        && st
            .faults
            .forbidden_reads
            .iter()
            .any(|p| full.starts_with(p))
        && !st.faults.readable.contains(&full)
    {
        return store::forbidden(st, req);
    }
    if st.faults.forbidden.iter().any(|p| full.starts_with(p)) {
        let (c, b) = status(403, "Forbidden", &format!("{path} is forbidden: User \"system:serviceaccount:waqiti:custody\" cannot get this resource"));
        return Reply::Whole(c, b);
    }
    if st.faults.broken.iter().any(|p| full.starts_with(p)) {
        let (c, b) = status(500, "InternalError", "etcdserver: request timed out");
        return Reply::Whole(c, b);
    }
    if st
        .faults
        .unavailable_until
        .is_some_and(|t| std::time::Instant::now() < t)
    {
        let (c, b) = status(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        );
        return Reply::Whole(c, b);
    }
    // Lists as the API serves them: `limit` items at most, and while more remain a `continue`
    // token (opaque to clients; here the offset) and `remainingItemCount`; every page of one
    // list is served from the same resourceVersion.
    let list = |kind: &str, api: &str, items: Vec<Value>| -> Reply {
        let start = match query.get("continue") {
            None => 0,
            Some(token) => match token
                .strip_prefix("offset-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) if n <= items.len() => n,
                _ => {
                    let (c, b) = status(
                        400,
                        "BadRequest",
                        "continue key is not valid: illegal base64 data",
                    );
                    return Reply::Whole(c, b);
                }
            },
        };
        let limit = query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let end = limit.map_or(items.len(), |l| (start + l).min(items.len()));
        let mut metadata = json!({"resourceVersion": "1300"});
        if end < items.len() {
            metadata["continue"] = json!(format!("offset-{end}"));
            metadata["remainingItemCount"] = json!(items.len() - end);
        }
        Reply::Whole(
            200,
            serde_json::to_vec(&json!({"kind": kind, "apiVersion": api, "metadata": metadata, "items": items[start..end]})).unwrap(),
        )
    };
    if let Some(reply) = store::route(st, req, &list) {
        return reply;
    }
    if let Some(reply) = proxy::route(st, req) {
        return reply;
    }
    if req.method != "GET" {
        return store::status_with(
            405,
            "MethodNotAllowed",
            &format!(
                "the server does not allow this method on the requested resource ({} {path})",
                req.method
            ),
            Value::Null,
        );
    }
    if let Some(reply) = discovery(st, path) {
        return reply;
    }
    let core = format!("/api/v1/namespaces/{ns}/");
    if let Some(rest) = path.strip_prefix(&format!("{core}pods/")) {
        let Some(pod_name) = rest.strip_suffix("/log") else {
            let (c, b) = status(404, "NotFound", "not found");
            return Reply::Whole(c, b);
        };
        if st.faults.gone.iter().any(|g| g == pod_name) {
            let (c, b) = status(404, "NotFound", &format!("pods \"{pod_name}\" not found"));
            return Reply::Whole(c, b);
        }
        let Some(pod) = st.pods.iter().find(|p| p.name == pod_name) else {
            let (c, b) = status(404, "NotFound", &format!("pods \"{pod_name}\" not found"));
            return Reply::Whole(c, b);
        };
        let container = match query.get("container") {
            Some(c) => c.clone(),
            None if pod.containers.len() == 1 && pod.init_containers.is_empty() => {
                pod.containers[0].name.clone()
            }
            None => {
                let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
                let (c, b) = status(400, "BadRequest", &format!("a container name must be specified for pod {pod_name}, choose one of: [{}]", names.join(" ")));
                return Reply::Whole(c, b);
            }
        };
        let Some(c) = pod
            .containers
            .iter()
            .chain(&pod.init_containers)
            .find(|c| c.name == container)
        else {
            let (c, b) = status(
                400,
                "BadRequest",
                &format!("container {container} is not valid for pod {pod_name}"),
            );
            return Reply::Whole(c, b);
        };
        let previous = query.get("previous").is_some_and(|v| v == "true");
        let lines = if previous {
            match &c.previous {
                Some(l) => l.clone(),
                None => {
                    let (c, b) = status(400, "BadRequest", &format!("previous terminated container \"{container}\" in pod \"{pod_name}\" not found"));
                    return Reply::Whole(c, b);
                }
            }
        } else {
            c.lines.clone()
        };
        let since = match (query.get("sinceSeconds"), query.get("sinceTime")) {
            (Some(s), _) => NOW - s.parse::<i64>().unwrap_or(0),
            (None, Some(t)) => {
                custody::analysis::parse::parse_rfc3339(t.as_bytes()).unwrap_or(i64::MIN)
            }
            _ => i64::MIN,
        };
        let timestamps = query.get("timestamps").is_some_and(|v| v == "true");
        let mut body = Vec::new();
        for (i, (t, line)) in lines.iter().enumerate() {
            if *t < since {
                continue;
            }
            if timestamps {
                body.extend_from_slice(rfc3339_nano(*t, i).as_bytes());
                body.push(b' ');
            }
            body.extend_from_slice(line);
            body.push(b'\n');
        }
        if let Some(limit) = query
            .get("limitBytes")
            .and_then(|l| l.parse::<usize>().ok())
        {
            body.truncate(limit);
        }
        let cut = st
            .faults
            .drop_after
            .get(&(pod_name.to_owned(), container.clone()))
            .copied();
        return Reply::Log(body, cut);
    }
    match path
        .strip_prefix(&core)
        .or_else(|| path.strip_prefix(&format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/")))
        .or_else(|| path.strip_prefix(&format!("/apis/networking.k8s.io/v1/namespaces/{ns}/")))
    {
        Some("endpoints") => list("EndpointsList", "v1", vec![]),
        Some("events") => {
            let mut events = vec![
                json!({"metadata": {"name": "api-gateway.1", "namespace": ns}, "reason": "BackOff", "message": "Back-off restarting failed container"}),
            ];
            events.extend((0..st.extra_events).map(|i| {
                json!({"metadata": {"name": format!("api-gateway.e{i:05}"), "namespace": ns}, "reason": "Unhealthy", "message": "Readiness probe failed"})
            }));
            list("EventList", "v1", events)
        }
        Some("endpointslices") => list("EndpointSliceList", "discovery.k8s.io/v1", vec![]),
        _ => {
            let (c, b) = status(
                404,
                "NotFound",
                &format!("the server could not find the requested resource ({path})"),
            );
            Reply::Whole(c, b)
        }
    }
}

/// The request line, headers and body (by `Content-Length`, or chunked).
fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<(Request, Call)> {
    use std::io::Read;
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let (mut length, mut chunked, mut content_type) = (0usize, false, String::new());
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((&header, ""));
        let value = value.trim();
        headers.push((name.trim().to_owned(), value.to_owned()));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "content-type" => {
                content_type = value.split(';').next().unwrap_or("").trim().to_owned()
            }
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    while chunked {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let mut chunk = vec![0; n + 2];
        reader.read_exact(&mut chunk)?;
        body.extend_from_slice(&chunk[..n]);
        chunked = n > 0;
    }
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_owned();
    let target = parts.next().unwrap_or("/").to_owned();
    let (path, query_text) = target.split_once('?').unwrap_or((&target, ""));
    let query: HashMap<String, String> = query_text
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let request = Request {
        method: method.clone(),
        target: target.clone(),
        path: decode(path),
        query,
        content_type: content_type.clone(),
        headers,
        body: body.clone(),
    };
    let call = Call {
        method,
        target,
        content_type,
        body,
    };
    Ok((request, call))
}

/// The fake's clock as an HTTP `Date` header.
fn http_date(skew: i64) -> String {
    let now = time::OffsetDateTime::now_utc() + time::Duration::seconds(skew);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    now.format(&format).unwrap()
}

fn serve(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let (request, call) = read_request(&mut reader)?;
    let target = request.target.clone();
    let (reply, date) = {
        let mut st = state.lock().unwrap();
        st.requests.push(target.clone());
        st.calls.push(call);
        let mut reply = route(&mut st, &request);
        let real_write = request.method != "GET" && !request.query.contains_key("dryRun");
        if real_write
            && st
                .faults
                .lost_write_answers
                .iter()
                .any(|p| request.path.starts_with(p))
        {
            reply = Reply::Cut;
        }
        let whole = match &reply {
            Reply::Delayed(_, r) => r,
            r => r,
        };
        match whole {
            Reply::Whole(200, body) | Reply::Log(body, None) => {
                st.served.insert(target.clone(), body.clone());
            }
            // What was sent before the stream was cut.
            Reply::Log(body, Some(cut)) => {
                st.served
                    .insert(target.clone(), body[..(*cut).min(body.len())].to_vec());
            }
            _ => {}
        }
        let date = if st.faults.no_date {
            String::new()
        } else {
            let text = st.faults.date_text.clone();
            format!(
                "Date: {}\r\n",
                text.unwrap_or_else(|| http_date(st.faults.clock_skew))
            )
        };
        (reply, date)
    };
    let mut out = conn;
    if matches!(reply, Reply::Log(..)) {
        let delay = state.lock().unwrap().faults.log_delay;
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
    }
    let reply = match reply {
        Reply::Delayed(d, reply) => {
            std::thread::sleep(d);
            *reply
        }
        other => other,
    };
    let reply = match reply {
        Reply::Whole(code, body) => Reply::Warned(code, body, Vec::new()),
        other => other,
    };
    match reply {
        Reply::Warned(code, body, warnings) => {
            let reason = match code {
                200 => "OK",
                201 => "Created",
                400 => "Bad Request",
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "Not Found",
                405 => "Method Not Allowed",
                409 => "Conflict",
                415 => "Unsupported Media Type",
                422 => "Unprocessable Entity",
                429 => "Too Many Requests",
                502 => "Bad Gateway",
                503 => "Service Unavailable",
                504 => "Gateway Timeout",
                c if c < 300 => "OK",
                c if c < 500 => "Bad Request",
                _ => "Internal Server Error",
            };
            write!(
                out,
                "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n{date}"
            )?;
            for w in warnings {
                // As the API server writes them: code 299, no agent, the text quoted.
                write!(
                    out,
                    "Warning: 299 - {}\r\n",
                    serde_json::to_string(&w).unwrap()
                )?;
            }
            write!(
                out,
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(&body)?;
        }
        Reply::Log(body, cut) => {
            write!(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{date}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")?;
            let end = cut.unwrap_or(body.len()).min(body.len());
            for chunk in body[..end].chunks(16 * 1024) {
                write!(out, "{:x}\r\n", chunk.len())?;
                out.write_all(chunk)?;
                out.write_all(b"\r\n")?;
            }
            if cut.is_some() {
                // Dropped mid-body: no terminating chunk, the connection just ends.
                out.flush()?;
                return out.shutdown(std::net::Shutdown::Both);
            }
            out.write_all(b"0\r\n\r\n")?;
        }
        Reply::Cut => {
            // The request was read; nothing is answered.
            return out.shutdown(std::net::Shutdown::Both);
        }
        Reply::Whole(..) | Reply::Delayed(..) => unreachable!("made a Warned reply above"),
    }
    out.flush()
}
