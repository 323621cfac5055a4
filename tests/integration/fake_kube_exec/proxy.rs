//! `pods/proxy`: calls reach the pod's admin endpoint and are recorded as it received them —
//! without the `Authorization` header, which the API server consumes — and every way a call
//! fails answers as the API server answers it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{exchange, get, send};
use crate::fake_kube::{Answer, FakeKube, PodPhase};
use crate::k8s::{cluster, NS};

const POD: &str = "api-gateway-7d4b9c-abcde";

fn proxy(id: &str, rest: &str) -> String {
    format!("/api/v1/namespaces/{NS}/pods/{id}/proxy{rest}")
}

/// A call with the token in `Authorization` (for the API server) and another for the pod.
fn call(kube: &FakeKube, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let headers = [
        ("Authorization", "Bearer fake-token"),
        ("X-Gateway-Admin-Token", "admin-secret-1"),
        ("Content-Type", "application/json"),
    ];
    exchange(
        kube,
        (method, path),
        &headers,
        body,
        Duration::from_secs(10),
    )
}

fn status_of(answer: Option<(u16, Vec<u8>)>) -> (u16, Value) {
    let (code, body) = answer.expect("an answer");
    (code, serde_json::from_slice(&body).unwrap())
}

#[test]
fn calls_reach_the_pod_as_sent_but_for_the_authorization_header() {
    let kube = cluster();
    let body = br#"{"addresses": ["203.0.113.7"]}"#;
    let answer = call(
        &kube,
        "POST",
        &proxy(
            &format!("{POD}:8443"),
            "/admin/sessions/revoke?all=true&why=case%201",
        ),
        body,
    );
    assert_eq!(status_of(answer), (200, json!({"ok": true, "pod": POD})));
    let calls = kube.proxied();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(
        (
            c.namespace.as_str(),
            c.pod.as_str(),
            c.scheme.as_str(),
            c.port
        ),
        (NS, POD, "http", 8443)
    );
    assert_eq!(
        (c.method.as_str(), c.path.as_str(), c.query.as_str()),
        ("POST", "/admin/sessions/revoke", "all=true&why=case%201")
    );
    assert_eq!(c.body, body);
    assert_eq!(c.header("x-gateway-admin-token"), Some("admin-secret-1"));
    assert_eq!(c.header("content-type"), Some("application/json"));
    assert_eq!(c.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        c.header("authorization"),
        None,
        "the API server consumes it"
    );
    assert!(
        c.headers
            .iter()
            .all(|(n, v)| n != "connection" && !v.contains("fake-token")),
        "{:?}",
        c.headers
    );

    // Every form of the pod's id; the methods a proxy takes; no path is `/`.
    for (method, id, rest, scheme, port, path) in [
        ("GET", format!("https:{POD}:8443"), "/", "https", 8443, "/"),
        (
            "PUT",
            format!("http:{POD}:9000"),
            "/a/b",
            "http",
            9000,
            "/a/b",
        ),
        ("DELETE", POD.to_owned(), "", "http", 80, "/"),
    ] {
        assert_eq!(call(&kube, method, &proxy(&id, rest), b"").unwrap().0, 200);
        let c = kube.proxied().pop().unwrap();
        assert_eq!(
            (
                c.method.as_str(),
                c.scheme.as_str(),
                c.port,
                c.path.as_str()
            ),
            (method, scheme, port, path)
        );
    }
    // Where the endpoint has a port, the pod declares it and a call without one goes there.
    kube.endpoint(POD, |e| e.port = Some(8443));
    let (_, pod) = get(&kube, &format!("/api/v1/namespaces/{NS}/pods/{POD}"));
    assert_eq!(
        pod["spec"]["containers"][0]["ports"],
        json!([{"name": "admin", "containerPort": 8443, "protocol": "TCP"}])
    );
    assert_eq!(
        call(&kube, "GET", &proxy(POD, "/healthz"), b"").unwrap().0,
        200
    );
    assert_eq!(kube.proxied().pop().unwrap().port, 8443);
    // A pod running but not Ready still holds sessions and is reached.
    kube.pod_phase(POD, PodPhase::NotReady);
    let (_, pod) = get(&kube, &format!("/api/v1/namespaces/{NS}/pods/{POD}"));
    assert_eq!(pod["status"]["containerStatuses"][0]["ready"], false);
    assert_eq!(
        pod["status"]["conditions"][3],
        json!({"type": "Ready", "status": "False", "reason": "ContainersNotReady",
               "message": "containers with unready status: [gateway istio-proxy]",
               "lastTransitionTime": "2026-11-26T10:00:00Z"})
    );
    assert_eq!(
        call(&kube, "POST", &proxy(&format!("{POD}:8443"), "/x"), b"")
            .unwrap()
            .0,
        200
    );
    assert_eq!(kube.proxied().len(), 6);
}

#[test]
fn failed_calls_answer_as_the_api_server_does() {
    let kube = cluster();
    let post = |id: &str| status_of(call(&kube, "POST", &proxy(id, "/admin/revoke"), b"{}"));
    let message = |answer: (u16, Value), code: u16, reason: &str| -> String {
        assert_eq!(
            (answer.0, answer.1["reason"].as_str()),
            (code, Some(reason)),
            "{}",
            answer.1
        );
        answer.1["message"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        message(post("api-gateway-0000"), 404, "NotFound"),
        "pods \"api-gateway-0000\" not found"
    );
    assert_eq!(
        message(post(&format!("ftp:{POD}:21")), 400, "BadRequest"),
        format!("invalid pod request \"ftp:{POD}:21\"")
    );
    assert_eq!(
        message(post(&format!("http:{POD}:1:2")), 400, "BadRequest"),
        format!("invalid pod request \"http:{POD}:1:2\"")
    );
    // Nothing listens on another port than the endpoint's.
    kube.endpoint(POD, |e| e.port = Some(8443));
    assert_eq!(
        message(post(&format!("{POD}:9090")), 503, "ServiceUnavailable"),
        "error trying to reach service: dial tcp 10.244.0.7:9090: connect: connection refused"
    );
    // A pending pod has no IP yet; a terminated one has, and nothing listens on it.
    kube.pod_phase(POD, PodPhase::Pending);
    let (_, pod) = get(&kube, &format!("/api/v1/namespaces/{NS}/pods/{POD}"));
    assert_eq!(
        (pod["status"]["phase"].as_str(), pod["status"].get("podIP")),
        (Some("Pending"), None)
    );
    assert_eq!(
        message(post(&format!("{POD}:8443")), 400, "BadRequest"),
        "address not allowed"
    );
    for phase in [PodPhase::Succeeded, PodPhase::Failed] {
        kube.pod_phase(POD, phase);
        assert!(
            message(post(&format!("{POD}:8443")), 503, "ServiceUnavailable")
                .ends_with("connect: connection refused")
        );
    }
    assert!(kube.proxied().is_empty(), "no call reached a pod");

    kube.pod_phase(POD, PodPhase::Running);
    let id = format!("{POD}:8443");
    // The pod's own error is passed through as it sent it, and it was received.
    kube.endpoint(POD, |e| {
        e.answer = Answer::Status(500, json!({"error": "session store down"}))
    });
    assert_eq!(post(&id), (500, json!({"error": "session store down"})));
    // The pod closes the connection: the API server says so, and the call was received.
    kube.endpoint(POD, |e| e.answer = Answer::Eof);
    assert_eq!(
        message(post(&id), 503, "ServiceUnavailable"),
        "error trying to reach service: EOF"
    );
    // The answer is lost: the client sees the connection close with nothing, though the pod acted.
    kube.endpoint(POD, |e| e.answer = Answer::Cut);
    assert_eq!(
        call(&kube, "POST", &proxy(&id, "/admin/revoke"), b"{}"),
        None
    );
    // A slow pod: the client's timeout fires before any answer.
    kube.endpoint(POD, |e| e.answer = Answer::Delay(Duration::from_secs(3)));
    let started = Instant::now();
    let headers = [("Authorization", "Bearer fake-token")];
    let answer = exchange(
        &kube,
        ("POST", &proxy(&id, "/admin/revoke")),
        &headers,
        b"{}",
        Duration::from_millis(300),
    );
    assert_eq!(answer, None);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(kube.proxied().len(), 4, "each of these reached the pod");
    // Nothing listening at all.
    kube.endpoint(POD, |e| e.answer = Answer::Refused);
    assert_eq!(
        message(post(&id), 503, "ServiceUnavailable"),
        "error trying to reach service: dial tcp 10.244.0.7:8443: connect: connection refused"
    );
    assert_eq!(kube.proxied().len(), 4);
    // RBAC without `pods/proxy`: the existing 403 switch refuses it before any pod is reached.
    kube.endpoint(POD, |e| e.answer = Answer::Ok);
    kube.faults(|f| {
        f.forbidden
            .push(format!("/api/v1/namespaces/{NS}/pods/{id}/proxy"))
    });
    assert!(!message(post(&id), 403, "Forbidden").is_empty());
    assert_eq!(kube.proxied().len(), 4);
    // An API request of another kind is untouched by the proxy.
    assert_eq!(
        send(
            &kube,
            "GET",
            &format!("/api/v1/namespaces/{NS}/pods/{POD}"),
            "application/json",
            &Value::Null
        )
        .0,
        200
    );
}
