//! A stored plan against the cluster as it is now (`execute::preflight`): the same plan made
//! again on a fresh read is compared step by step. An edited policy, a policy that starts
//! selecting the target, a Deployment's Secret reference changed, or a policy of another engine
//! that can admit make it stale, each named; a pod added, a scale and a status write do not.

use serde_json::json;

use custody::containment::cluster::read_view;
use custody::execute::preflight::stale_steps;
use custody::policy::containment::StepKind;

use super::pod_network::plan_with;
use super::{connect, planned_cluster, runtime};
use crate::fake_kube::FakePod;
use crate::k8s::NS;

const POLICY: &str = "targets:
  - name: api-gateway
    namespace: waqiti
    pod_selector:
      matchLabels: {app: api-gateway}
block_ips:
  method: networkpolicy
rotate_secrets:
  - target: api-gateway
    secret: gateway-api-keys
    keys:
      API_KEY: {generate: 32, encoding: base64}
    keys_complete: true
    deployments: [api-gateway]
";

/// Writes `object` again as a client would: the server gives it a new resourceVersion.
fn rewrite(kube: &crate::fake_kube::FakeKube, mut object: serde_json::Value) {
    object["metadata"]["resourceVersion"] = serde_json::Value::Null;
    kube.object(object);
}

#[test]
fn only_what_the_plan_rests_on_makes_it_stale() {
    let kube = planned_cluster();
    kube.admin_network_policies();
    let mut deployment = kube
        .stored("apps/v1", "deployments", "api-gateway")
        .expect("the target's Deployment");
    deployment["spec"]["template"]["spec"]["containers"][0]["env"] = json!([
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "gateway-api-keys", "key": "API_KEY"}}}
    ]);
    rewrite(&kube, deployment);
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    let read = || rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
    let clients = ["198.51.100.7"];
    let planned = plan_with(POLICY, &read(), &clients);
    let kinds: Vec<(StepKind, _)> = planned.steps.iter().map(|s| (s.kind, s.status)).collect();
    use custody::plan::document::StepStatus::Planned;
    assert_eq!(
        kinds,
        [
            (StepKind::BlockIps, Planned),
            (StepKind::RotateSecrets, Planned)
        ],
        "{:?}",
        planned
            .steps
            .iter()
            .map(|s| &s.refusals)
            .collect::<Vec<_>>()
    );
    let stale_now = || stale_steps(&planned, &plan_with(POLICY, &read(), &clients));
    assert_eq!(stale_now(), []);

    // Not stale: another pod of the target, a scale, a status write.
    kube.pod(FakePod {
        name: "api-gateway-7d4b9c-fghij".into(),
        labels: [
            ("app".to_owned(), "api-gateway".to_owned()),
            ("pod-template-hash".to_owned(), "7d4b9c".to_owned()),
        ]
        .into(),
        containers: Vec::new(),
        init_containers: Vec::new(),
        node: "node-b".into(),
    });
    let mut d = kube
        .stored("apps/v1", "deployments", "api-gateway")
        .unwrap();
    d["spec"]["replicas"] = json!(5);
    rewrite(&kube, d.clone());
    d["status"] = json!({"observedGeneration": 9, "replicas": 5, "readyReplicas": 4});
    rewrite(&kube, d);
    assert_eq!(stale_now(), []);

    // Stale: the target's policy edited.
    let mut np = kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .unwrap();
    np["spec"]["ingress"][0]["ports"] = json!([{"port": 9443}]);
    rewrite(&kube, np);
    let stale = stale_now();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0].kind, StepKind::BlockIps);
    assert!(
        stale[0].changes[0].contains("NetworkPolicy gateway-ingress")
            && stale[0].changes[0].contains("changed"),
        "{stale:?}"
    );

    // A policy added that selects the target.
    kube.object(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-monitoring"},
        "spec": {"podSelector": {"matchLabels": {"app": "api-gateway"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}}),
    );
    let all: Vec<String> = stale_now().into_iter().flat_map(|s| s.changes).collect();
    assert!(
        all.iter()
            .any(|l| l.contains("allow-monitoring") && l.contains("now selects a target pod")),
        "{all:?}"
    );

    // The Deployment's Secret reference changed (now naming another Secret): the rotation
    // step is stale, naming the Deployment.
    let mut d = kube
        .stored("apps/v1", "deployments", "api-gateway")
        .unwrap();
    d["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"] =
        json!("gateway-api-keys-old");
    rewrite(&kube, d);
    let stale = stale_now();
    let rotate = stale
        .iter()
        .find(|s| s.kind == StepKind::RotateSecrets)
        .unwrap_or_else(|| panic!("{stale:?}"));
    assert!(
        rotate
            .changes
            .iter()
            .any(|l| l == "Deployment api-gateway no longer references the Secret (or was deleted)"),
        "{rotate:?}"
    );

    // A policy of another engine that can admit: the block would be refused now.
    kube.object(json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
        "metadata": {"name": "allow-all"},
        "spec": {"priority": 1, "subject": {"namespaces": {}}, "ingress": [{"action": "Allow", "from": [{"namespaces": {}}]}]}}));
    let stale = stale_now();
    let block = stale.iter().find(|s| s.kind == StepKind::BlockIps).unwrap();
    assert!(
        block
            .changes
            .iter()
            .any(|l| l.contains("AdminNetworkPolicy allow-all")),
        "{block:?}"
    );
    assert!(
        block
            .changes
            .iter()
            .any(|l| l.starts_with("the step would be refused now")),
        "{block:?}"
    );
}

/// The check as execution runs it: planned again through the proposer's own reading, with the
/// plan's evidence; another policy or another cluster is refused before anything is compared.
#[test]
fn the_check_plans_again_and_refuses_another_policy_or_cluster() {
    use custody::digest::Sha256Digest;
    use custody::execute::preflight::{check, PreflightError};
    use custody::id::{BundleId, CaseId, KeyId};
    use custody::plan::document::{JournalHead, PinnedBundle, PinnedEvidence, ProposerClaim};
    use custody::policy::containment::ContainmentPolicy;
    use custody::policy::Policies;
    use custody::propose::{build, BuildInput, Evidence};

    let kube = planned_cluster();
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    let policies = |text: &str| Policies {
        containment: ContainmentPolicy::parse("containment.yaml", text).unwrap(),
        ..Default::default()
    };
    let pinned = PinnedEvidence {
        bundles: vec![PinnedBundle {
            bundle: BundleId::new("20261202-040001-00000001").unwrap(),
            archive_sha256: Sha256Digest::from_bytes([1; 32]),
        }],
        journal_head: JournalHead {
            seq: 4,
            sha256: Sha256Digest::from_bytes([2; 32]),
        },
    };
    let suspicious = serde_json::from_value(json!([{"ip": "198.51.100.7", "reason": "many 401",
        "rule": "brute-force", "requests": 90, "auth_failures": 80, "first_seen": null, "last_seen": null,
        "evidence": {"count": 80, "window": null, "window_start": null, "window_end": null, "ratio": null, "lines": []},
        "failed_in": []}]))
    .unwrap();
    let evidence = Evidence {
        pinned,
        suspicious: vec![("20261202-040001-00000001".to_owned(), suspicious)],
    };
    let case = CaseId::new("20261202-040000-0000000a").unwrap();
    let approved_policy = policies(POLICY);
    fn input<'a>(
        case: &'a CaseId,
        policies: &'a Policies,
        evidence: &'a Evidence,
    ) -> BuildInput<'a> {
        BuildInput {
            case,
            policies,
            evidence,
            proposer: ProposerClaim::Collector {
                key_id: KeyId::new("0123456789abcdef").unwrap(),
            },
            roster_sha256: Sha256Digest::of(b"roster"),
            now: time::OffsetDateTime::now_utc(),
            block_owners: Default::default(),
            rollback: None,
        }
    }
    let plan = rt
        .block_on(build(&c, &input(&case, &approved_policy, &evidence)))
        .unwrap();
    assert!(!plan.steps.is_empty());
    let stale = rt
        .block_on(check(&c, &plan, &input(&case, &approved_policy, &evidence)))
        .unwrap();
    assert_eq!(stale, []);

    // A policy other than the one the approvers saw.
    let wider = policies(&POLICY.replace("block_ips:\n", "block_ips:\n  max_addresses: 9\n"));
    let err = rt
        .block_on(check(&c, &plan, &input(&case, &wider, &evidence)))
        .unwrap_err();
    assert!(matches!(err, PreflightError::PolicyChanged { .. }), "{err}");

    // Evidence that is not the plan's own.
    let mut others = evidence.clone();
    others.pinned.journal_head.seq += 1;
    let err = rt
        .block_on(check(&c, &plan, &input(&case, &approved_policy, &others)))
        .unwrap_err();
    assert!(matches!(err, PreflightError::Evidence(_)), "{err}");

    // Another cluster behind the same address.
    kube.object(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "kube-system", "uid": "7c4e0f5e-0000-4000-8000-000000000001"}}));
    let err = rt
        .block_on(check(&c, &plan, &input(&case, &approved_policy, &evidence)))
        .unwrap_err();
    assert!(matches!(err, PreflightError::OtherCluster { .. }), "{err}");
    assert!(
        err.to_string().contains("never executed elsewhere"),
        "{err}"
    );
}
