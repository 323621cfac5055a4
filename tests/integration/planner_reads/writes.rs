//! Execution's object writes (`execute::write`) against the fake API server over real HTTP:
//! sent once, for real, as custody's field manager; a guarded replace that lost its race and a
//! create whose name is taken are conflicts, and so is a JSON patch that does not apply, a 500 leaves
//! the outcome unknown (and is not sent again), and a Secret is never written this way.

use serde_json::json;

use custody::containment::cluster::{DryRunRequest, Target};
use custody::execute::write::{write, Written};

use super::{connect, planned_cluster, runtime};
use crate::k8s::NS;

fn netpol(name: &str) -> Target {
    Target {
        api_version: "networking.k8s.io/v1".into(),
        resource: "networkpolicies".into(),
        namespace: NS.into(),
        name: name.into(),
    }
}

#[test]
fn writes_are_sent_once_for_real_and_judged_as_the_api_server_answers() {
    let kube = planned_cluster();
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    let mut np = kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .unwrap();
    np["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"] = json!(["198.51.100.7/32"]);
    let replace = DryRunRequest::Replace {
        target: netpol("gateway-ingress"),
        object: np,
    };
    let written = rt.block_on(write(&c, &replace));
    let Written::Applied {
        code,
        resource_version,
        object,
        ..
    } = &written
    else {
        panic!("{written:?}")
    };
    assert_eq!(*code, 200);
    let stored = kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .unwrap();
    assert_eq!(
        resource_version.as_deref(),
        stored["metadata"]["resourceVersion"].as_str()
    );
    assert_eq!(
        stored["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"][0],
        "198.51.100.7/32"
    );
    assert_eq!(
        object.as_ref().unwrap()["metadata"]["name"],
        "gateway-ingress"
    );
    let sent = kube.calls();
    let last = sent.last().unwrap();
    assert_eq!(last.method, "PUT");
    assert!(
        last.target.ends_with("?fieldManager=custody"),
        "{}",
        last.target
    );
    assert!(!last.target.contains("dryRun"));

    // The same replace again: the object moved on since that resourceVersion.
    assert!(matches!(
        rt.block_on(write(&c, &replace)),
        Written::Conflict { .. }
    ));

    // A create, then the same name again.
    let create = DryRunRequest::Create {
        target: netpol("custody-block-api-gateway"),
        object: json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "custody-block-api-gateway", "namespace": NS},
            "spec": {"podSelector": {"matchLabels": {"app": "api-gateway"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["198.51.100.7/32"]}}]}]}}),
    };
    assert!(rt.block_on(write(&c, &create)).applied());
    assert!(kube
        .stored(
            "networking.k8s.io/v1",
            "networkpolicies",
            "custody-block-api-gateway"
        )
        .is_some());
    assert!(matches!(
        rt.block_on(write(&c, &create)),
        Written::Conflict { .. }
    ));

    // A JSON patch whose test fails changes nothing and is refused with its cause.
    let patch = DryRunRequest::Patch {
        target: Target {
            api_version: "apps/v1".into(),
            resource: "deployments".into(),
            namespace: NS.into(),
            name: "api-gateway".into(),
        },
        patch: json!([{"op": "test", "path": "/spec/replicas", "value": 99},
                      {"op": "replace", "path": "/spec/replicas", "value": 0}]),
    };
    let before = kube
        .stored("apps/v1", "deployments", "api-gateway")
        .unwrap();
    let got = rt.block_on(write(&c, &patch));
    let Written::Conflict { message, .. } = got else {
        panic!("a failed test means the object changed: a conflict: {got:?}")
    };
    assert!(message.contains("a test failed"), "{message}");
    // A path that is gone, likewise.
    let gone = DryRunRequest::Patch {
        target: Target {
            api_version: "apps/v1".into(),
            resource: "deployments".into(),
            namespace: NS.into(),
            name: "api-gateway".into(),
        },
        patch: json!([{"op": "remove", "path": "/spec/no-such-field"}]),
    };
    assert!(matches!(
        rt.block_on(write(&c, &gone)),
        Written::Conflict { .. }
    ));
    assert_eq!(
        kube.stored("apps/v1", "deployments", "api-gateway")
            .unwrap()["spec"],
        before["spec"]
    );

    // A patch that applies but leaves an invalid object is refused, its fields named.
    let invalid = DryRunRequest::Patch {
        target: netpol("gateway-ingress"),
        patch: json!([{"op": "replace", "path": "/spec/ingress/0/from/0/ipBlock/cidr", "value": "not-a-cidr"}]),
    };
    let got = rt.block_on(write(&c, &invalid));
    let Written::Refused {
        code: 422, message, ..
    } = &got
    else {
        panic!("an invalid object is a refusal: {got:?}")
    };
    assert!(message.contains("cidr"), "{message}");

    // A guarded delete, for real; an unguarded one is never sent.
    let block = kube
        .stored(
            "networking.k8s.io/v1",
            "networkpolicies",
            "custody-block-api-gateway",
        )
        .unwrap();
    let unguarded = DryRunRequest::Delete {
        target: netpol("custody-block-api-gateway"),
        resource_version: None,
    };
    let calls = kube.calls().len();
    assert!(matches!(
        rt.block_on(write(&c, &unguarded)),
        Written::NotSent { .. }
    ));
    assert_eq!(kube.calls().len(), calls);
    let delete = DryRunRequest::Delete {
        target: netpol("custody-block-api-gateway"),
        resource_version: block["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_owned),
    };
    assert!(rt.block_on(write(&c, &delete)).applied());
    assert!(!kube.calls().last().unwrap().target.contains("dryRun"));
    assert!(kube
        .stored(
            "networking.k8s.io/v1",
            "networkpolicies",
            "custody-block-api-gateway"
        )
        .is_none());

    // A 500: unknown, and sent once, not retried.
    kube.faults(|f| {
        f.broken.push(format!(
            "/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/allow-gateway"
        ))
    });
    let calls = kube.calls().len();
    let broken = DryRunRequest::Delete {
        target: netpol("allow-gateway"),
        resource_version: Some("1".into()),
    };
    assert!(matches!(
        rt.block_on(write(&c, &broken)),
        Written::Unknown { .. }
    ));
    assert_eq!(kube.calls().len(), calls + 1);

    // A Secret is never sent this way.
    let secret = DryRunRequest::Create {
        target: Target {
            api_version: "v1".into(),
            resource: "secrets".into(),
            namespace: NS.into(),
            name: "gateway-api-keys-2".into(),
        },
        object: json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gateway-api-keys-2"},
                       "data": {"API_KEY": "c2VjcmV0"}}),
    };
    assert!(matches!(
        rt.block_on(write(&c, &secret)),
        Written::NotSent { .. }
    ));
    assert_eq!(kube.calls().len(), calls + 1);
}
