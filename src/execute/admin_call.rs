//! The session-invalidation call of step 3, as execution sends it through the API server's
//! `pods/proxy` (`/api/v1/namespaces/{ns}/pods/{pod}:{port}/proxy{path}`): the method, port and
//! path the plan names, the body it rendered, and the admin token in the header the policy names —
//! never `Authorization`, which the API server consumes for its own authentication. What is
//! recorded of an answer is its status and the SHA-256 of its body, never the body (it may echo
//! the token). A call whose answer never came has an unknown outcome: a non-idempotent one is
//! never sent again, nor is one refused with an error (`may_retry`).

use http::{HeaderName, HeaderValue, Method};

use crate::digest::Sha256Digest;
use crate::plan::document::AdminCall;

/// The most of an admin endpoint's answer read.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the plan's admin call method {0:?} is not an HTTP method custody sends (GET, POST, PUT, PATCH, DELETE)")]
    Method(String),
    #[error(
        "the plan's admin call path {0:?} must start with / and hold only URL path characters"
    )]
    Path(String),
    #[error("the plan's admin call header {0:?} is not a header custody may send the token in")]
    Header(String),
    #[error("the admin token read from the Secret is not a value a header can carry")]
    Token,
    #[error("pod name {0:?} is not a Kubernetes name")]
    Pod(String),
}

/// One request, ready to send: what execution journals before sending it (never the token).
#[derive(Debug)]
pub struct ProxyRequest {
    pub method: Method,
    /// The API path (`/api/v1/namespaces/…/proxy/…`).
    pub path: String,
    pub header: HeaderName,
    pub token: HeaderValue,
    pub body: Option<Vec<u8>>,
}

/// What is recorded of an answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Answered {
    pub status: u16,
    pub body_sha256: Sha256Digest,
    pub body_bytes: usize,
}

/// How one call ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A 2xx answer.
    Done(Answered),
    /// An answer other than 2xx: the pod (or the API server) refused.
    Refused(Answered),
    /// No answer (a timeout, a connection lost after sending): the pod may have acted.
    Unknown { error: String },
}

impl Outcome {
    /// The outcome of an answer with `status` and `body`.
    pub fn of(status: u16, body: &[u8]) -> Self {
        let answered = Answered {
            status,
            body_sha256: Sha256Digest::of(body),
            body_bytes: body.len(),
        };
        if (200..300).contains(&status) {
            Outcome::Done(answered)
        } else {
            Outcome::Refused(answered)
        }
    }
}

/// Whether a call that ended with `outcome` may be sent again: never after it was done; after
/// a refusal or an unknown outcome only when the policy says the call is idempotent (an error
/// answer does not prove the endpoint did nothing).
pub fn may_retry(outcome: &Outcome, idempotent: bool) -> bool {
    match outcome {
        Outcome::Done(_) => false,
        Outcome::Refused(_) | Outcome::Unknown { .. } => idempotent,
    }
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.'])
}

/// The request for `pod` in `namespace`, with `token` in the plan's header.
pub fn request(
    namespace: &str,
    pod: &str,
    call: &AdminCall,
    token: &[u8],
) -> Result<ProxyRequest, CallError> {
    let method = match call.method.to_ascii_uppercase().as_str() {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        other => return Err(CallError::Method(other.to_owned())),
    };
    let path_ok = call.path.starts_with('/')
        && !call.path.contains("..")
        && call
            .path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@%?".contains(&b));
    if !path_ok {
        return Err(CallError::Path(call.path.clone()));
    }
    for name in [namespace, pod] {
        if !is_dns_label(name) {
            return Err(CallError::Pod(name.to_owned()));
        }
    }
    let header = HeaderName::from_bytes(call.header.as_bytes())
        .map_err(|_| CallError::Header(call.header.clone()))?;
    let reserved = [
        http::header::AUTHORIZATION,
        http::header::HOST,
        http::header::CONTENT_LENGTH,
        http::header::CONTENT_TYPE,
        http::header::TRANSFER_ENCODING,
        http::header::CONNECTION,
    ];
    if reserved.contains(&header) {
        return Err(CallError::Header(call.header.clone()));
    }
    let mut token = HeaderValue::from_bytes(token.trim_ascii()).map_err(|_| CallError::Token)?;
    token.set_sensitive(true);
    Ok(ProxyRequest {
        method,
        path: format!(
            "/api/v1/namespaces/{namespace}/pods/{pod}:{}/proxy{}",
            call.port, call.path
        ),
        header,
        token,
        body: call.body.as_ref().map(|b| b.as_bytes().to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> AdminCall {
        AdminCall {
            method: "post".into(),
            port: 9000,
            path: "/admin/sessions/revoke".into(),
            body: Some(r#"{"clients":["203.0.113.10"]}"#.into()),
            header: "X-Custody-Admin-Token".into(),
            token_secret: "gateway-admin".into(),
            token_key: "token".into(),
        }
    }

    #[test]
    fn the_request_goes_through_pods_proxy_with_the_token_in_the_plans_header() {
        let r = request("waqiti", "api-gateway-7d4b9c-abcde", &call(), b"t0ken\n").unwrap();
        assert_eq!(r.method, Method::POST);
        assert_eq!(
            r.path,
            "/api/v1/namespaces/waqiti/pods/api-gateway-7d4b9c-abcde:9000/proxy/admin/sessions/revoke"
        );
        assert_eq!(r.header.as_str(), "x-custody-admin-token");
        assert_eq!(r.token.as_bytes(), b"t0ken");
        assert!(r.token.is_sensitive());
        assert!(
            !format!("{r:?}").contains("t0ken"),
            "the token is never shown"
        );
    }

    #[test]
    fn what_the_api_server_or_http_would_misread_is_refused() {
        let mut c = call();
        c.header = "Authorization".into();
        assert!(matches!(
            request("ns", "p", &c, b"t"),
            Err(CallError::Header(_))
        ));
        let mut c = call();
        c.path = "/../../api/v1/secrets".into();
        assert!(matches!(
            request("ns", "p", &c, b"t"),
            Err(CallError::Path(_))
        ));
        let mut c = call();
        c.path = "admin".into();
        assert!(matches!(
            request("ns", "p", &c, b"t"),
            Err(CallError::Path(_))
        ));
        let mut c = call();
        c.method = "CONNECT".into();
        assert!(matches!(
            request("ns", "p", &c, b"t"),
            Err(CallError::Method(_))
        ));
        assert!(matches!(
            request("ns", "P/x", &call(), b"t"),
            Err(CallError::Pod(_))
        ));
        assert!(matches!(
            request("ns", "p", &call(), b"a\nb"),
            Err(CallError::Token)
        ));
    }

    #[test]
    fn an_unknown_outcome_is_sent_again_only_when_the_call_is_idempotent() {
        let unknown = Outcome::Unknown {
            error: "timed out".into(),
        };
        assert!(may_retry(&unknown, true));
        assert!(!may_retry(&unknown, false));
        let done = Outcome::of(204, b"");
        assert!(matches!(done, Outcome::Done(_)));
        assert!(!may_retry(&done, true));
        let refused = Outcome::of(503, b"busy");
        assert!(matches!(&refused, Outcome::Refused(a) if a.status == 503 && a.body_bytes == 4));
        assert!(may_retry(&refused, true));
        assert!(!may_retry(&refused, false));
    }
}
