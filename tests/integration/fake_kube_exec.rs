//! The fake API server against what containment's execution will send, over real HTTP with a
//! plain client: Secrets (created, dry-run, refused, immutable, never readable by custody's
//! Roles), JSON patches whose `test` fails (as the API server answers them), and — in
//! `rollout` — Deployments' generation and rollout status, paused and stalled rollouts; in
//! `proxy` — `pods/proxy` calls recorded by the pods' admin endpoints, and its failures.

mod proxy;
mod rollout;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

use crate::fake_kube::FakeKube;
use crate::k8s::{cluster, NS};

/// One exchange with the fake over a fresh connection: the status and body, or `None` when the
/// connection closed (or the read timed out) before any byte of an answer.
pub fn exchange(
    kube: &FakeKube,
    (method, path): (&str, &str),
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", kube.port)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    if out.is_empty() {
        return None;
    }
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status_line = String::from_utf8_lossy(&out[..at]).into_owned();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    Some((code, out[at + 4..].to_vec()))
}

/// A request with a JSON (or patch) body, answered: the status and the body as JSON.
pub fn send(
    kube: &FakeKube,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
) -> (u16, Value) {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body).unwrap()
    };
    let headers = [
        ("Content-Type", content_type),
        ("Authorization", "Bearer fake-token"),
    ];
    let (code, body) = exchange(
        kube,
        (method, path),
        &headers,
        &bytes,
        Duration::from_secs(30),
    )
    .expect("an answer");
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

pub fn get(kube: &FakeKube, path: &str) -> (u16, Value) {
    send(kube, "GET", path, "application/json", &Value::Null)
}

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";

fn secrets() -> String {
    format!("/api/v1/namespaces/{NS}/secrets")
}

fn secret(name: &str, body: Value) -> Value {
    let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}});
    for (k, v) in body.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

/// The Status's message, after checking it is a Status of `code` and `reason`.
fn refused(answer: &(u16, Value), code: u16, reason: &str) -> String {
    let (got, status) = answer;
    assert_eq!(*got, code, "{status}");
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["code"], code, "{status}");
    assert_eq!(status["reason"], reason, "{status}");
    status["message"].as_str().unwrap().to_owned()
}

#[test]
fn a_secret_is_created_decoded_and_not_readable_by_custody() {
    let kube = cluster();
    let body = secret(
        "gateway-api-keys-p1-x7k2",
        json!({"immutable": true, "data": {"API_KEY": "b2xk", "OLD": "c3RhbGU="},
               "stringData": {"API_KEY": "new-key", "EXTRA": "e"}}),
    );
    // A dry-run is judged and answered as the object would be stored, and stores nothing.
    let (code, dry) = send(
        &kube,
        "POST",
        &format!("{}?dryRun=All", secrets()),
        JSON,
        &body,
    );
    assert_eq!(code, 201, "{dry}");
    assert!(kube.secret("gateway-api-keys-p1-x7k2").is_none());
    let (code, made) = send(&kube, "POST", &secrets(), JSON, &body);
    assert_eq!(code, 201, "{made}");
    assert_eq!(dry["data"], made["data"]);
    // `stringData` merged into `data` (its value wins), never stored; `type` defaulted; no
    // generation on a Secret.
    let stored = kube.secret("gateway-api-keys-p1-x7k2").unwrap();
    assert_eq!(stored, made);
    assert_eq!(stored.get("stringData"), None);
    assert_eq!(stored["type"], "Opaque");
    assert_eq!(stored["immutable"], true);
    assert_eq!(stored["metadata"].get("generation"), None);
    assert_eq!(
        stored["data"],
        json!({"API_KEY": "bmV3LWtleQ==", "EXTRA": "ZQ==", "OLD": "c3RhbGU="})
    );
    let data = kube.secret_data("gateway-api-keys-p1-x7k2").unwrap();
    assert_eq!(data["API_KEY"], b"new-key");
    assert_eq!(data["OLD"], b"stale");

    // custody's Roles have no read on Secrets: get and list are refused as RBAC refuses them.
    let path = format!("{}/gateway-api-keys-p1-x7k2", secrets());
    let message = refused(&get(&kube, &path), 403, "Forbidden");
    assert_eq!(
        message,
        format!("secrets \"gateway-api-keys-p1-x7k2\" is forbidden: User \"system:serviceaccount:{NS}:custody\" cannot get resource \"secrets\" in API group \"\" in the namespace \"{NS}\"")
    );
    let message = refused(&get(&kube, &secrets()), 403, "Forbidden");
    assert!(
        message.starts_with("secrets is forbidden: ")
            && message.contains("cannot list resource \"secrets\""),
        "{message}"
    );
    assert!(
        refused(&get(&kube, "/api/v1/secrets"), 403, "Forbidden").contains("at the cluster scope")
    );
    // A name taken is 409 AlreadyExists, whatever the values.
    let message = refused(
        &send(&kube, "POST", &secrets(), JSON, &body),
        409,
        "AlreadyExists",
    );
    assert_eq!(
        message,
        "secrets \"gateway-api-keys-p1-x7k2\" already exists"
    );

    // A test that allows reads gets the stored object.
    kube.faults(|f| f.forbidden_reads.clear());
    assert_eq!(get(&kube, &path), (200, stored));
    let (code, list) = get(&kube, &secrets());
    assert_eq!((code, list["kind"].as_str()), (200, Some("SecretList")));
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_secrets_are_refused_as_the_api_server_refuses_them() {
    let kube = cluster();
    let post = |name: &str, body: Value| send(&kube, "POST", &secrets(), JSON, &secret(name, body));
    // Not base64: the body cannot be decoded (400), with Go's offset of the bad byte.
    let message = refused(
        &post("k", json!({"data": {"user": "admin"}})),
        400,
        "BadRequest",
    );
    assert_eq!(
        message,
        "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 4"
    );
    let message = refused(
        &post("k", json!({"data": {"a": "YW*x"}})),
        400,
        "BadRequest",
    );
    assert!(
        message.ends_with("illegal base64 data at input byte 2"),
        "{message}"
    );
    let message = refused(&post("k", json!({"data": {"a": 7}})), 400, "BadRequest");
    assert!(message.contains("cannot unmarshal number"), "{message}");

    // Keys that are not config keys, the name, the size: 422 Invalid, each field named.
    let (code, status) = post(
        "k",
        json!({"stringData": {"bad key": "v", "..": "v", "ok": "v"}}),
    );
    assert_eq!(code, 422, "{status}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("Secret \"k\" is invalid: ["),
        "{message}"
    );
    assert!(message.contains("data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"), "{message}");
    assert!(
        message.contains("data[..]: Invalid value: \"..\": must not be '..'"),
        "{message}"
    );
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["data[..]", "data[bad key]"]);
    assert_eq!(status["details"]["kind"], "Secret");
    let message = refused(&post("Keys_1", json!({})), 422, "Invalid");
    assert!(message.starts_with("Secret \"Keys_1\" is invalid: metadata.name: Invalid value: \"Keys_1\": a lowercase RFC 1123 subdomain"), "{message}");
    let big = "x".repeat(1024 * 1024 + 1);
    let message = refused(
        &post("k", json!({"stringData": {"big": big}})),
        422,
        "Invalid",
    );
    assert_eq!(
        message,
        "Secret \"k\" is invalid: data: Too long: must have at most 1048576 bytes"
    );
    let message = refused(
        &post(
            "k",
            json!({"type": "kubernetes.io/tls", "stringData": {"tls.crt": "c"}}),
        ),
        422,
        "Invalid",
    );
    assert_eq!(
        message,
        "Secret \"k\" is invalid: data[tls.key]: Required value"
    );
    // Nothing of it was stored.
    kube.faults(|f| f.forbidden_reads.clear());
    let (_, list) = get(&kube, &secrets());
    assert_eq!(list["items"], json!([]));
}

#[test]
fn an_immutable_secret_refuses_a_data_change_but_takes_a_label() {
    let kube = cluster();
    let (code, made) = send(
        &kube,
        "POST",
        &secrets(),
        JSON,
        &secret(
            "k",
            json!({"immutable": true, "stringData": {"API_KEY": "one"}}),
        ),
    );
    assert_eq!(code, 201, "{made}");
    let path = format!("{}/k", secrets());
    const WHY: &str = "Forbidden: field is immutable when `immutable` is set";

    // A replace that changes `data`, a patch that changes it through `stringData`.
    let mut changed = made.clone();
    changed["data"]["API_KEY"] = json!("dHdv");
    let message = refused(&send(&kube, "PUT", &path, JSON, &changed), 422, "Invalid");
    assert_eq!(message, format!("Secret \"k\" is invalid: data: {WHY}"));
    let patch = json!({"stringData": {"API_KEY": "two"}});
    let message = refused(&send(&kube, "PATCH", &path, MERGE, &patch), 422, "Invalid");
    assert_eq!(message, format!("Secret \"k\" is invalid: data: {WHY}"));
    let patch = json!([{"op": "add", "path": "/data/NEW", "value": "eA=="}]);
    let (code, status) = send(&kube, "PATCH", &path, JSON_PATCH, &patch);
    assert_eq!(
        (code, status["details"]["causes"][0]["field"].as_str()),
        (422, Some("data"))
    );
    // `immutable` cannot be unset, nor set false; both errors are given together.
    let patch = json!({"immutable": false, "stringData": {"API_KEY": "two"}});
    let message = refused(&send(&kube, "PATCH", &path, MERGE, &patch), 422, "Invalid");
    assert_eq!(
        message,
        format!("Secret \"k\" is invalid: [immutable: {WHY}, data: {WHY}]")
    );
    let message = refused(
        &send(&kube, "PATCH", &path, MERGE, &json!({"immutable": null})),
        422,
        "Invalid",
    );
    assert_eq!(
        message,
        format!("Secret \"k\" is invalid: immutable: {WHY}")
    );
    // The type cannot change, immutable or not.
    let message = refused(
        &send(
            &kube,
            "PATCH",
            &path,
            MERGE,
            &json!({"type": "custody/rotated"}),
        ),
        422,
        "Invalid",
    );
    assert_eq!(
        message,
        "Secret \"k\" is invalid: type: Invalid value: \"custody/rotated\": field is immutable"
    );
    // A patch whose result does not decode is an invalid patch (the server quotes it whole).
    let message = refused(
        &send(&kube, "PATCH", &path, MERGE, &json!({"data": {"X": "%%"}})),
        422,
        "Invalid",
    );
    assert!(
        message.starts_with(" \"\" is invalid: patch: Invalid value: ")
            && message.ends_with("illegal base64 data at input byte 0"),
        "{message}"
    );
    assert_eq!(kube.secret("k").unwrap(), made);

    // Metadata may change: a label, by patch and by replace with the same data.
    let (code, labelled) = send(
        &kube,
        "PATCH",
        &path,
        MERGE,
        &json!({"metadata": {"labels": {"custody.dev/plan": "p1"}}}),
    );
    assert_eq!(code, 200, "{labelled}");
    assert_eq!(labelled["data"], made["data"]);
    assert_ne!(
        labelled["metadata"]["resourceVersion"],
        made["metadata"]["resourceVersion"]
    );
    let mut relabelled = labelled.clone();
    relabelled["metadata"]["labels"]["custody.dev/case"] = json!("c1");
    let (code, replaced) = send(&kube, "PUT", &path, JSON, &relabelled);
    assert_eq!(code, 200, "{replaced}");
    assert_eq!(
        kube.secret("k").unwrap()["metadata"]["labels"]["custody.dev/case"],
        "c1"
    );
    assert_eq!(kube.secret_data("k").unwrap()["API_KEY"], b"one");

    // A Secret that is not immutable takes the change (and can be made immutable).
    let (code, _) = send(
        &kube,
        "POST",
        &secrets(),
        JSON,
        &secret("m", json!({"stringData": {"A": "1"}})),
    );
    assert_eq!(code, 201);
    let m = format!("{}/m", secrets());
    let (code, _) = send(
        &kube,
        "PATCH",
        &m,
        MERGE,
        &json!({"immutable": true, "stringData": {"A": "2"}}),
    );
    assert_eq!(code, 200);
    assert_eq!(kube.secret_data("m").unwrap()["A"], b"2");
    let (code, _) = send(
        &kube,
        "PATCH",
        &m,
        MERGE,
        &json!({"stringData": {"A": "3"}}),
    );
    assert_eq!(code, 422);
}

#[test]
fn a_json_patch_whose_test_fails_is_refused_as_the_api_server_does_and_changes_nothing() {
    let kube = cluster();
    let path = format!("/apis/apps/v1/namespaces/{NS}/deployments/api-gateway");
    let before = kube
        .stored("apps/v1", "deployments", "api-gateway")
        .unwrap();
    let image = "/spec/template/spec/containers/0/image";
    let patch = |expected: &str| {
        json!([{"op": "test", "path": image, "value": expected},
               {"op": "replace", "path": image, "value": "registry.example/gateway:2.4.2"}])
    };
    // The API server answers `NewGenericServerResponse(422, …)`: the generic message, no
    // causes — which value failed is not said.
    let (code, status) = send(
        &kube,
        "PATCH",
        &path,
        JSON_PATCH,
        &patch("registry.example/gateway:9.9.9"),
    );
    assert_eq!(code, 422);
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "the server rejected our request due to an error in our request",
               "reason": "Invalid", "details": {}, "code": 422})
    );
    // A path that is missing is refused the same way.
    let missing =
        json!([{"op": "replace", "path": "/spec/template/spec/containers/5/image", "value": "x"}]);
    assert_eq!(send(&kube, "PATCH", &path, JSON_PATCH, &missing).1, status);
    // A body that is not a JSON patch is a bad request.
    let (code, _) = send(&kube, "PATCH", &path, JSON_PATCH, &json!({"op": "test"}));
    assert_eq!(code, 400);
    // A dry-run that passes stores nothing and starts no rollout.
    let (code, dry) = send(
        &kube,
        "PATCH",
        &format!("{path}?dryRun=All"),
        JSON_PATCH,
        &patch("registry.example/gateway:2.4.1"),
    );
    assert_eq!(code, 200, "{dry}");
    assert_eq!(
        dry.pointer(image).unwrap(),
        "registry.example/gateway:2.4.2"
    );
    assert_eq!(dry["metadata"]["generation"], 4);
    for _ in 0..4 {
        assert_eq!(get(&kube, &path), (200, before.clone()));
    }
}
