//! Deployments: `generation` moves with the spec and annotations only, `status` written to the
//! object is ignored, and after a spec change the status follows a rollout a few GETs later —
//! done, paused, or stalled until its progress deadline.

use serde_json::{json, Value};

use super::{get, send, JSON, JSON_PATCH, MERGE};
use crate::fake_kube::FakeKube;
use crate::k8s::{cluster, NS};

fn path() -> String {
    format!("/apis/apps/v1/namespaces/{NS}/deployments/api-gateway")
}

fn deployment(kube: &FakeKube) -> Value {
    let (code, d) = get(kube, &path());
    assert_eq!(code, 200, "{d}");
    d
}

fn condition<'a>(d: &'a Value, kind: &str) -> &'a Value {
    d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} condition: {d}"))
}

/// A new image for the gateway, guarded by a `test` of the current one.
fn new_image(kube: &FakeKube, from: &str, to: &str) -> Value {
    let image = "/spec/template/spec/containers/0/image";
    let patch = json!([{"op": "test", "path": image, "value": from},
                       {"op": "replace", "path": image, "value": to}]);
    let (code, d) = send(kube, "PATCH", &path(), JSON_PATCH, &patch);
    assert_eq!(code, 200, "{d}");
    d
}

#[test]
fn generation_moves_with_spec_and_annotations_and_status_writes_are_ignored() {
    let kube = cluster();
    let before = deployment(&kube);
    assert_eq!(before["metadata"]["generation"], 3);
    // Labels are metadata: no new generation, no rollout.
    let (code, d) = send(
        &kube,
        "PATCH",
        &path(),
        MERGE,
        &json!({"metadata": {"labels": {"custody.dev/touched": "yes"}}}),
    );
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["metadata"]["generation"], 3);
    // A status written through the object is dropped, whether patched or replaced.
    let (code, d) = send(
        &kube,
        "PATCH",
        &path(),
        MERGE,
        &json!({"status": {"observedGeneration": 9, "readyReplicas": 0}}),
    );
    assert_eq!(code, 200, "{d}");
    assert_eq!(
        (d["metadata"]["generation"].clone(), d["status"].clone()),
        (json!(3), before["status"].clone())
    );
    let mut replaced = d.clone();
    replaced["status"] = json!({"observedGeneration": 9});
    let (code, d) = send(&kube, "PUT", &path(), JSON, &replaced);
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["status"], before["status"]);
    for _ in 0..3 {
        assert_eq!(deployment(&kube)["status"], before["status"]);
    }
    // Annotations bump a Deployment's generation: they are copied to its ReplicaSets.
    let (code, d) = send(
        &kube,
        "PATCH",
        &path(),
        MERGE,
        &json!({"metadata": {"annotations": {"kubernetes.io/change-cause": "rotate"}}}),
    );
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["metadata"]["generation"], 4);
}

#[test]
fn the_status_follows_a_rollout_a_configurable_number_of_gets_later() {
    let kube = cluster();
    let before = deployment(&kube);
    let patched = new_image(
        &kube,
        "registry.example/gateway:2.4.1",
        "registry.example/gateway:2.4.2",
    );
    assert_eq!(patched["metadata"]["generation"], 4);
    // The answer to the write, and the next two GETs, show the controller has not seen it.
    assert_eq!(patched["status"], before["status"]);
    let rv = patched["metadata"]["resourceVersion"].clone();
    for _ in 0..2 {
        let d = deployment(&kube);
        assert_eq!(d["status"]["observedGeneration"], 3);
        assert_eq!(d["metadata"]["resourceVersion"], rv);
    }
    let d = deployment(&kube);
    assert_ne!(
        d["metadata"]["resourceVersion"], rv,
        "a status write is a write"
    );
    let status = &d["status"];
    assert_eq!(status["observedGeneration"], 4);
    for field in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert_eq!(status[field], 3, "{field}: {status}");
    }
    assert_eq!(status.get("unavailableReplicas"), None);
    let progressing = condition(&d, "Progressing");
    assert_eq!(
        (
            progressing["status"].as_str(),
            progressing["reason"].as_str()
        ),
        (Some("True"), Some("NewReplicaSetAvailable"))
    );
    let message = progressing["message"].as_str().unwrap();
    assert!(
        message.starts_with("ReplicaSet \"api-gateway-")
            && message.ends_with("\" has successfully progressed."),
        "{message}"
    );
    assert_eq!(
        condition(&d, "Available")["reason"],
        "MinimumReplicasAvailable"
    );
    // It stays done.
    assert_eq!(deployment(&kube), d);

    // With no lag the first GET sees it; a list counts as a GET; a scale is a spec change.
    kube.rollout_lag(0);
    let (code, scaled) = send(
        &kube,
        "PATCH",
        &path(),
        MERGE,
        &json!({"spec": {"replicas": 5}}),
    );
    assert_eq!(
        (code, scaled["metadata"]["generation"].clone()),
        (200, json!(5))
    );
    let (code, list) = get(&kube, &format!("/apis/apps/v1/namespaces/{NS}/deployments"));
    assert_eq!(code, 200);
    let listed = &list["items"][0]["status"];
    assert_eq!(
        (
            listed["observedGeneration"].clone(),
            listed["availableReplicas"].clone()
        ),
        (json!(5), json!(5))
    );
}

#[test]
fn a_paused_deployment_observes_its_generation_but_rolls_nothing_out() {
    let kube = cluster();
    kube.rollout_lag(1);
    let (code, d) = send(
        &kube,
        "PATCH",
        &path(),
        MERGE,
        &json!({"spec": {"paused": true}}),
    );
    assert_eq!((code, d["metadata"]["generation"].clone()), (200, json!(4)));
    deployment(&kube);
    let d = deployment(&kube);
    assert_eq!(d["status"]["observedGeneration"], 4);
    assert_eq!(
        d["status"]["updatedReplicas"], 3,
        "nothing changed in the template"
    );
    let progressing = condition(&d, "Progressing");
    assert_eq!(
        (
            progressing["status"].as_str(),
            progressing["reason"].as_str(),
            progressing["message"].as_str()
        ),
        (
            Some("Unknown"),
            Some("DeploymentPaused"),
            Some("Deployment is paused")
        )
    );
    // A new template while paused: observed, and no pod runs it — ever, while paused.
    new_image(
        &kube,
        "registry.example/gateway:2.4.1",
        "registry.example/gateway:2.4.2",
    );
    for _ in 0..6 {
        deployment(&kube);
    }
    let d = deployment(&kube);
    let status = &d["status"];
    assert_eq!(status["observedGeneration"], 5);
    assert_eq!(
        status.get("updatedReplicas"),
        None,
        "zero counts are left out: {status}"
    );
    assert_eq!(
        (
            status["readyReplicas"].clone(),
            status["availableReplicas"].clone()
        ),
        (json!(3), json!(3))
    );
    assert_eq!(condition(&d, "Progressing")["reason"], "DeploymentPaused");
    // Resumed, it rolls out.
    send(
        &kube,
        "PATCH",
        &path(),
        MERGE,
        &json!({"spec": {"paused": false}}),
    );
    deployment(&kube);
    let d = deployment(&kube);
    assert_eq!(
        (
            d["status"]["observedGeneration"].clone(),
            d["status"]["updatedReplicas"].clone()
        ),
        (json!(6), json!(3))
    );
    assert_eq!(
        condition(&d, "Progressing")["reason"],
        "NewReplicaSetAvailable"
    );
}

#[test]
fn a_stalled_rollout_never_becomes_available_and_passes_its_deadline() {
    let kube = cluster();
    kube.stall_rollout("api-gateway");
    new_image(
        &kube,
        "registry.example/gateway:2.4.1",
        "registry.example/gateway:2.4.2",
    );
    deployment(&kube);
    deployment(&kube);
    let d = deployment(&kube);
    let status = &d["status"];
    assert_eq!(status["observedGeneration"], 4);
    assert_eq!(
        (
            status["replicas"].clone(),
            status["updatedReplicas"].clone()
        ),
        (json!(4), json!(1))
    );
    assert_eq!(
        (
            status["availableReplicas"].clone(),
            status["unavailableReplicas"].clone()
        ),
        (json!(3), json!(1))
    );
    let progressing = condition(&d, "Progressing");
    assert_eq!(
        (
            progressing["status"].as_str(),
            progressing["reason"].as_str()
        ),
        (Some("True"), Some("ReplicaSetUpdated"))
    );
    assert!(progressing["message"]
        .as_str()
        .unwrap()
        .ends_with("\" is progressing."));
    deployment(&kube);
    deployment(&kube);
    let d = deployment(&kube);
    let progressing = condition(&d, "Progressing");
    assert_eq!(
        (
            progressing["status"].as_str(),
            progressing["reason"].as_str()
        ),
        (Some("False"), Some("ProgressDeadlineExceeded"))
    );
    assert!(progressing["message"]
        .as_str()
        .unwrap()
        .ends_with("\" has timed out progressing."));
    for _ in 0..10 {
        assert_eq!(deployment(&kube)["status"]["updatedReplicas"], 1);
    }
}
