//! The `pods/proxy` subresource, as the API server serves it (`pkg/registry/core/pod`'s
//! `ResourceLocation` and apimachinery's proxy transport):
//! `/api/v1/namespaces/{ns}/pods/{id}/proxy[/{path}]`, `{id}` being `name`, `name:port` or
//! `scheme:name:port` (`http`, `https`); any other form is 400 `invalid pod request`. A pod that
//! does not exist is 404; one without an IP yet (Pending) is 400 `address not allowed` (the API
//! server checks no phase: it dials the pod IP); where nothing listens (the containers
//! terminated, or another port than the endpoint's) the dial fails and the answer is 503
//! `ServiceUnavailable`, `error trying to reach service: dial tcp …: connect: connection refused`.
//! A pod that is running but not Ready is still reached. Without a port the first container
//! port is dialled, else 80 (443 for `https`).
//!
//! Each pod has a stub admin endpoint that records every call it receives (method, path, query,
//! headers, body) and answers 200 with a small JSON, or as the test told it to (`Answer`). The
//! API server authenticates the request with its `Authorization` header and removes it, so that
//! header never reaches the pod; hop-by-hop headers are not forwarded either, and
//! `X-Forwarded-For` is added. Other headers reach the pod as sent.

use std::time::Duration;

use serde_json::{json, Value};

use super::{FakeKube, Reply, Request, State};

/// How a pod's admin endpoint answers.
#[derive(Clone, Debug, Default)]
pub enum Answer {
    /// 200 with `{"ok": true, "pod": NAME}`.
    #[default]
    Ok,
    /// The pod's own answer with this status and JSON body, passed through as the pod sent it.
    Status(u16, Value),
    /// Nothing listens: the call never reaches the pod (503, `connection refused`).
    Refused,
    /// The pod reads the call and closes the connection without answering: 503
    /// `error trying to reach service: EOF`. The call was received (recorded).
    Eof,
    /// The pod answers as `Ok`, but only after this long: a client's timeout fires first
    /// (`pods/proxy` is a long-running request: the API server sets no timeout of its own).
    Delay(Duration),
    /// The pod acts on the call and answers, but the answer never reaches the client: the
    /// connection is closed with nothing sent, as when the API server or the path to it is
    /// lost mid-call. The call was received (recorded): its outcome is unknown to the client.
    Cut,
}

/// A pod's admin endpoint.
#[derive(Clone, Debug, Default)]
pub struct Endpoint {
    /// The port it listens on (also declared as the first container's port); `None`: it
    /// answers on any port.
    pub port: Option<u16>,
    /// How it answers.
    pub answer: Answer,
}

/// One call as the pod's admin endpoint received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyCall {
    pub namespace: String,
    pub pod: String,
    /// `http` or `https`.
    pub scheme: String,
    pub port: u16,
    pub method: String,
    /// The path on the pod (`/` when none was given), decoded.
    pub path: String,
    /// The query string as sent, undecoded (empty when none).
    pub query: String,
    /// The headers as they reached the pod, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ProxyCall {
    /// The value of header `name` (lower case), if it reached the pod.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl FakeKube {
    /// Changes how `pod`'s admin endpoint listens and answers.
    pub fn endpoint(&self, pod: &str, f: impl FnOnce(&mut Endpoint)) {
        let mut st = self.state.lock().unwrap();
        f(st.endpoints.entry(pod.to_owned()).or_default());
    }

    /// Every call the pods' admin endpoints received, in order.
    pub fn proxied(&self) -> Vec<ProxyCall> {
        self.state.lock().unwrap().proxied.clone()
    }
}

/// Headers the API server consumes (authentication, impersonation) or that are hop-by-hop
/// (RFC 9110 §7.6.1, as Go's reverse proxy drops them): never forwarded to the pod.
fn forwarded(name: &str) -> bool {
    !matches!(
        name,
        "authorization"
            | "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    ) && !name.starts_with("impersonate-")
}

/// `name`, `name:port` or `scheme:name:port`, as apimachinery's `SplitSchemeNamePort` reads it.
fn split_id(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && ["", "http", "https"].contains(&scheme)).then_some((scheme, name, port))
}

fn unavailable(message: String) -> Reply {
    super::store::status_with(503, "ServiceUnavailable", &message, Value::Null)
}

/// Serves `req` if it is a `pods/proxy` request; `None` leaves it to the caller.
pub fn route(st: &mut State, req: &Request) -> Option<Reply> {
    let rest = req.path.strip_prefix("/api/v1/namespaces/")?;
    let (ns, rest) = rest.split_once("/pods/")?;
    let (id, rest) = rest.split_once('/')?;
    let path = match rest.strip_prefix("proxy")? {
        "" => "/",
        p if p.starts_with('/') => p,
        _ => return None,
    };
    if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(&req.method.as_str())
    {
        return None;
    }
    let Some((scheme, name, port)) = split_id(id) else {
        return Some(super::store::status_with(
            400,
            "BadRequest",
            &format!("invalid pod request {:?}", id),
            Value::Null,
        ));
    };
    let pod = super::store::get(st, "v1", "pods", ns, name)
        .filter(|_| !st.faults.gone.iter().any(|g| g == name));
    let Some(pod) = pod else {
        return Some(super::store::not_found("v1", "pods", name));
    };
    let ip = pod
        .pointer("/status/podIPs/0/ip")
        .or_else(|| pod.pointer("/status/podIP"))
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
        .map(str::to_owned);
    let Some(ip) = ip else {
        return Some(super::store::status_with(
            400,
            "BadRequest",
            "address not allowed",
            Value::Null,
        ));
    };
    let declared = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|c| c.pointer("/ports/0/containerPort").and_then(Value::as_u64));
    let default_port = if scheme == "https" { 443 } else { 80 };
    // The port is not checked before the dial (`net.JoinHostPort`): a bad one fails there.
    let port = match port {
        "" => declared.map_or(default_port, |p| p as u16),
        p => match p.parse::<u16>() {
            Ok(n) => n,
            Err(_) if p.bytes().all(|b| b.is_ascii_digit()) => {
                return Some(unavailable(format!(
                    "error trying to reach service: dial tcp: address {p}: invalid port"
                )))
            }
            Err(_) => {
                return Some(unavailable(format!(
                    "error trying to reach service: dial tcp: lookup tcp/{p}: unknown port"
                )))
            }
        },
    };
    let endpoint = st.endpoints.get(name).cloned().unwrap_or_default();
    let phase = st.phases.get(name).copied().unwrap_or_default();
    let refused = || {
        unavailable(format!(
            "error trying to reach service: dial tcp {ip}:{port}: connect: connection refused"
        ))
    };
    if !phase.serving()
        || endpoint.port.is_some_and(|p| p != port)
        || matches!(endpoint.answer, Answer::Refused)
    {
        return Some(refused());
    }
    let mut headers = vec![];
    for (n, v) in &req.headers {
        let n = n.to_ascii_lowercase();
        if forwarded(&n) {
            headers.push((n, v.clone()));
        }
    }
    headers.push(("x-forwarded-for".to_owned(), "127.0.0.1".to_owned()));
    st.proxied.push(ProxyCall {
        namespace: ns.to_owned(),
        pod: name.to_owned(),
        scheme: if scheme.is_empty() { "http" } else { scheme }.to_owned(),
        port,
        method: req.method.clone(),
        path: path.to_owned(),
        query: req
            .target
            .split_once('?')
            .map(|q| q.1.to_owned())
            .unwrap_or_default(),
        headers,
        body: req.body.clone(),
    });
    let ok = || {
        Reply::Whole(
            200,
            serde_json::to_vec(&json!({"ok": true, "pod": name})).unwrap(),
        )
    };
    Some(match endpoint.answer {
        Answer::Ok => ok(),
        Answer::Status(code, body) => Reply::Whole(code, serde_json::to_vec(&body).unwrap()),
        Answer::Eof => unavailable("error trying to reach service: EOF".to_owned()),
        Answer::Delay(d) => Reply::Delayed(d, Box::new(ok())),
        Answer::Cut => Reply::Cut,
        Answer::Refused => refused(),
    })
}
