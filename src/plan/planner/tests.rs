use std::collections::BTreeMap;

use serde_json::{json, Value};
use time::macros::datetime;

use super::*;
use crate::analysis::summary::{Evidence, Suspicious};
use crate::containment::cluster::NodeInfo;
use crate::plan::document::{ChangeOp, JournalHead, LeftOutReason, StepDetail};

const POLICY: &str = include_str!("../../../tests/data/policies/containment.yaml");

fn policy() -> ContainmentPolicy {
    ContainmentPolicy::parse("containment.yaml", POLICY).expect("fixture parses")
}

fn suspicious(ip: &str, failures: u64) -> Suspicious {
    Suspicious {
        ip: ip.to_owned(),
        reason: "many 401".to_owned(),
        rule: "brute-force".to_owned(),
        requests: failures + 1,
        auth_failures: failures,
        first_seen: Some("2026-11-26T14:00:00Z".to_owned()),
        last_seen: Some("2026-11-26T14:10:00Z".to_owned()),
        evidence: Evidence {
            count: failures,
            window: None,
            window_start: None,
            window_end: None,
            ratio: None,
            lines: Vec::new(),
        },
        failed_in: Vec::new(),
        pods: vec!["api-gateway-1".to_owned()],
    }
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("fixture object")
}

fn pod(name: &str, app: &str, ip: &str, ready: bool) -> Pod {
    from(json!({
        "metadata": {"name": name, "namespace": "waqiti", "labels": {"app": app}, "resourceVersion": "5",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-rs"), "uid": format!("{app}-rs-uid"), "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "x",
            "env": [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "gateway-api-keys", "key": "API_KEY"}}}],
            "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    }))
}

fn deployment(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "waqiti", "uid": format!("{name}-uid"), "resourceVersion": "7"},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "x",
                "env": [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "gateway-api-keys", "key": "API_KEY"}}}],
                "envFrom": [{"secretRef": {"name": "gateway-api-keys"}}]}],
                "volumes": [{"name": "k", "secret": {"secretName": "gateway-api-keys", "items": [{"key": "PARTNER_TOKEN", "path": "t"}]}}]}}},
    })
}

fn view() -> ClusterView {
    let mut ns = NamespaceView {
        pods: vec![
            pod("api-gateway-1", "api-gateway", "10.244.1.5", true),
            pod("api-gateway-2", "api-gateway", "10.244.1.6", false),
            pod("db-0", "db", "10.244.2.9", true),
        ],
        deployments: vec![from(deployment("api-gateway"))],
        replica_sets: vec![from(
            json!({"metadata": {"name": "api-gateway-rs", "uid": "api-gateway-rs-uid",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api-gateway", "uid": "api-gateway-uid", "controller": true}]}}),
        )],
        services: vec![from(json!({"metadata": {"name": "api-gateway"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "api-gateway"}, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.200"}]}}}))],
        ..Default::default()
    };
    ns.pods[2].metadata.owner_references = None;
    ns.pods[2].spec.as_mut().expect("spec").containers[0].env = None;
    ClusterView {
        server: "https://k8s.example:6443".to_owned(),
        kube_system_uid: "uid-kube-system".to_owned(),
        server_date: datetime!(2026-12-02 04:00 UTC),
        nodes: vec![
            NodeInfo {
                name: "node-1".to_owned(),
                addresses: vec!["192.0.2.10".parse().expect("ip")],
                pod_cidrs: vec![Cidr::parse("10.244.1.0/24").expect("cidr")],
            },
            // db-0's node.
            NodeInfo {
                name: "node-2".to_owned(),
                addresses: vec!["192.0.2.11".parse().expect("ip")],
                pod_cidrs: vec![Cidr::parse("10.244.2.0/24").expect("cidr")],
            },
        ],
        pod_networks: Vec::new(),
        cilium: Default::default(),
        other_policies: Vec::new(),
        namespaces: [("waqiti".to_owned(), ns)].into(),
    }
}

fn run(view: &ClusterView, suspicious: Vec<Suspicious>) -> PlanDoc {
    let policy = policy();
    let case = CaseId::new("c1").expect("id");
    let plan = PlanId::new("20261202-040000-00000001").expect("id");
    let owners = BTreeMap::new();
    let summaries = vec![("b1".to_owned(), suspicious)];
    plan_doc(&PlannerInput {
        case: &case,
        plan: &plan,
        policy: &policy,
        detection_allowlist: &[Cidr::parse("100.64.0.0/10").expect("cidr")],
        trusted_proxies: &[],
        suspicious: &summaries,
        evidence: PinnedEvidence {
            bundles: Vec::new(),
            journal_head: JournalHead {
                seq: 5,
                sha256: Sha256Digest::of(b"x"),
            },
        },
        view,
        block_owners: &owners,
        proposer: ProposerClaim::Collector {
            key_id: crate::id::KeyId::new("0123456789abcdef").expect("id"),
        },
        roster_sha256: Sha256Digest::of(b"roster"),
        now: datetime!(2026-12-02 04:00 UTC),
    })
}

use super::plan as plan_doc;

/// The plan of `suspicious` on `view` under `policy`.
fn run_policy(
    policy: &ContainmentPolicy,
    view: &ClusterView,
    suspicious: Vec<Suspicious>,
) -> PlanDoc {
    let case = CaseId::new("c1").expect("id");
    let plan = PlanId::new("p1").expect("id");
    let owners = BTreeMap::new();
    let s = vec![("b".to_owned(), suspicious)];
    plan_doc(&PlannerInput {
        case: &case,
        plan: &plan,
        policy,
        detection_allowlist: &[],
        trusted_proxies: &[],
        suspicious: &s,
        evidence: PinnedEvidence {
            bundles: Vec::new(),
            journal_head: JournalHead {
                seq: 1,
                sha256: Sha256Digest::of(b""),
            },
        },
        view,
        block_owners: &owners,
        proposer: ProposerClaim::Collector {
            key_id: crate::id::KeyId::new("0123456789abcdef").expect("id"),
        },
        roster_sha256: Sha256Digest::of(b""),
        now: datetime!(2026-12-02 04:00 UTC),
    })
}

#[test]
fn protected_addresses_are_left_out_with_their_reason() {
    let doc = run(
        &view(),
        vec![
            suspicious("198.51.100.7", 50),
            suspicious("::ffff:198.51.100.8", 40),
            suspicious("203.0.113.9", 30),
            suspicious("100.64.1.1", 30),
            suspicious("192.0.2.10", 30),
            suspicious("10.244.1.77", 30),
            suspicious("10.96.0.10", 30),
            suspicious("198.51.100.200", 30),
            suspicious("not-an-ip\u{1b}[2J", 30),
        ],
    );
    let blocked: Vec<&str> = doc
        .addresses
        .block
        .iter()
        .map(|a| a.address.as_str())
        .collect();
    assert_eq!(blocked, ["198.51.100.7", "198.51.100.8"]);
    let reasons: BTreeMap<&str, LeftOutReason> = doc
        .addresses
        .left_out
        .iter()
        .map(|l| (l.address.as_str(), l.reason))
        .collect();
    assert_eq!(reasons["203.0.113.9"], LeftOutReason::NeverBlock);
    assert_eq!(reasons["100.64.1.1"], LeftOutReason::Allowlist);
    assert_eq!(reasons["192.0.2.10"], LeftOutReason::Node);
    assert_eq!(reasons["10.244.1.77"], LeftOutReason::PodCidr);
    assert_eq!(reasons["10.96.0.10"], LeftOutReason::Service);
    assert_eq!(reasons["198.51.100.200"], LeftOutReason::LoadBalancer);
    assert_eq!(reasons["not-an-ip\u{1b}[2J"], LeftOutReason::NotAnAddress);
    assert_eq!(doc.addresses.block[0].expires_at, "2026-12-03T04:00:00Z");
    assert_eq!(doc.not_after, "2026-12-02T06:00:00Z");
}

#[test]
fn max_addresses_keeps_the_most_failing() {
    let mut policy_text = POLICY.replace("max_addresses: 100", "max_addresses: 2");
    policy_text.push('\n');
    let policy = ContainmentPolicy::parse("containment.yaml", &policy_text).expect("parses");
    let v = view();
    let clients = merge(&[(
        "b".to_owned(),
        vec![
            suspicious("198.51.100.1", 5),
            suspicious("198.51.100.2", 9),
            suspicious("198.51.100.3", 7),
        ],
    )]);
    let block = policy.block_ips.as_ref().expect("block");
    let pod_network = super::pod_network::PodNetworkState::of(block, &v);
    let protected = addresses::Protected::new(block, &[], &[], &v, &pod_network);
    let (kept, left) = addresses::select(
        &clients,
        block,
        &protected,
        false,
        datetime!(2026-12-02 04:00 UTC),
    );
    let kept: Vec<String> = kept.iter().map(|(ip, _)| ip.to_string()).collect();
    assert_eq!(kept, ["198.51.100.2", "198.51.100.3"]);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].reason, LeftOutReason::OverMax);
}

#[test]
fn no_policy_isolates_the_target_so_one_block_policy_is_created() {
    let doc = run(&view(), vec![suspicious("198.51.100.7", 50)]);
    let step = &doc.steps[0];
    assert_eq!(step.kind, StepKind::BlockIps);
    assert_eq!(step.status, StepStatus::Planned, "{:?}", step.refusals);
    assert_eq!(step.changes.len(), 1);
    assert_eq!(step.changes[0].op, ChangeOp::Create);
    assert_eq!(step.changes[0].object.name, "custody-block-api-gateway");
    let after = serde_json::to_string(&step.changes[0].after).expect("json");
    assert!(after.contains("198.51.100.7/32"), "{after}");
    assert!(
        step.warnings
            .iter()
            .any(|w| w.contains("externalTrafficPolicy: Cluster")),
        "{:?}",
        step.warnings
    );
    assert_eq!(doc.quorum.required, 2);
}

/// The view with one of the two target pods isolated (by `only-b`) and the other not.
fn mixed_view() -> ClusterView {
    let mut v = view();
    let ns = v.namespaces.get_mut("waqiti").expect("ns");
    ns.pods[1].metadata.labels = Some(
        [
            ("app".to_owned(), "api-gateway".to_owned()),
            ("tier".to_owned(), "b".to_owned()),
        ]
        .into(),
    );
    ns.network_policies.push(from(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "only-b", "namespace": "waqiti", "resourceVersion": "3"},
        "spec": {"podSelector": {"matchLabels": {"tier": "b"}}, "policyTypes": ["Ingress"], "ingress": [{}]},
    })));
    v
}

#[test]
fn mixed_isolation_is_refused() {
    let v = mixed_view();
    let doc = run(&v, vec![suspicious("198.51.100.7", 50)]);
    let step = &doc.steps[0];
    assert_eq!(step.status, StepStatus::Refused);
    assert!(step.changes.is_empty());
    assert!(step.refusals[0].contains("isolated"), "{:?}", step.refusals);
    assert_eq!(step.preconditions.selecting, ["only-b"]);
}

#[test]
fn an_existing_policy_is_rewritten_and_guarded_by_its_resource_version() {
    let mut v = view();
    let ns = v.namespaces.get_mut("waqiti").expect("ns");
    ns.network_policies.push(from(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "gateway-in", "namespace": "waqiti", "resourceVersion": "41",
            "managedFields": [{"manager": "argocd-controller", "operation": "Apply"}]},
        "spec": {"podSelector": {"matchLabels": {"app": "api-gateway"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": "198.51.100.0/24"}}], "ports": [{"port": 8080}]}]},
    })));
    let doc = run(&v, vec![suspicious("198.51.100.7", 50)]);
    let step = &doc.steps[0];
    assert_eq!(step.status, StepStatus::Planned, "{:?}", step.refusals);
    assert_eq!(step.changes[0].op, ChangeOp::Replace);
    assert_eq!(
        step.changes[0].object.resource_version.as_deref(),
        Some("41")
    );
    let after = step.changes[0].after.as_ref().expect("after");
    assert_eq!(
        after["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"],
        json!(["198.51.100.7/32"])
    );
    assert!(step.changes[0].before.as_ref().expect("before")["metadata"]
        .get("managedFields")
        .is_none());
    assert!(
        step.warnings
            .iter()
            .any(|w| w.contains("argocd-controller")),
        "{:?}",
        step.warnings
    );
    assert_eq!(step.preconditions.network_policies["gateway-in"], "41");
}

#[test]
fn host_network_targets_are_refused() {
    let mut v = view();
    let ns = v.namespaces.get_mut("waqiti").expect("ns");
    ns.pods[0].spec.as_mut().expect("spec").host_network = Some(true);
    let doc = run(&v, vec![suspicious("198.51.100.7", 50)]);
    assert_eq!(doc.steps[0].status, StepStatus::Refused);
    assert!(
        doc.steps[0]
            .refusals
            .iter()
            .any(|r| r.contains("host network")),
        "{:?}",
        doc.steps[0].refusals
    );
}

#[test]
fn cilium_endpoints_refuse_the_networkpolicy_method() {
    let mut v = view();
    v.cilium.endpoints_served = true;
    v.namespaces.get_mut("waqiti").expect("ns").cilium_endpoints =
        Some(vec!["api-gateway-1".to_owned()]);
    let doc = run(&v, vec![suspicious("198.51.100.7", 50)]);
    assert_eq!(doc.steps[0].status, StepStatus::Refused);
    assert!(doc.steps[0].refusals[0].contains("method: cilium"));
}

#[test]
fn the_cilium_method_needs_enable_default_deny_and_endpoints() {
    let text = POLICY.replace("method: networkpolicy", "method: cilium");
    let policy = ContainmentPolicy::parse("containment.yaml", &text).expect("parses");
    let mut v = view();
    v.cilium = crate::containment::cluster::CiliumSupport {
        served: true,
        endpoints_served: true,
        nodes_served: true,
        enable_default_deny: Some(false),
    };
    v.namespaces.get_mut("waqiti").expect("ns").cilium_endpoints =
        Some(vec!["api-gateway-1".to_owned()]);
    let run_with = |v: &ClusterView| run_policy(&policy, v, vec![suspicious("198.51.100.7", 9)]);
    let doc = run_with(&v);
    let r = &doc.steps[0].refusals;
    assert!(r.iter().any(|x| x.contains("enableDefaultDeny")), "{r:?}");
    assert!(r.iter().any(|x| x.contains("api-gateway-2")), "{r:?}");
    v.cilium.enable_default_deny = Some(true);
    v.namespaces.get_mut("waqiti").expect("ns").cilium_endpoints =
        Some(vec!["api-gateway-1".to_owned(), "api-gateway-2".to_owned()]);
    let doc = run_with(&v);
    let step = &doc.steps[0];
    assert_eq!(step.status, StepStatus::Planned, "{:?}", step.refusals);
    let after = step.changes[0].after.as_ref().expect("after");
    assert_eq!(
        after["spec"]["enableDefaultDeny"],
        json!({"ingress": false, "egress": false})
    );
    assert_eq!(
        after["spec"]["ingressDeny"][0]["fromCIDRSet"],
        json!([{"cidr": "198.51.100.7/32"}])
    );
}

#[test]
fn rotation_repoints_every_reference_of_the_listed_deployment() {
    let doc = run(&view(), vec![suspicious("198.51.100.7", 50)]);
    let step = doc
        .steps
        .iter()
        .find(|s| s.kind == StepKind::RotateSecrets)
        .expect("rotate");
    assert_eq!(step.status, StepStatus::Planned, "{:?}", step.refusals);
    let StepDetail::RotateSecrets {
        deployments,
        new_name_prefix,
        ..
    } = &step.detail
    else {
        panic!("detail");
    };
    assert_eq!(new_name_prefix, "gateway-api-keys-20261202-040000-00000001");
    let paths: Vec<&str> = deployments[0]
        .references
        .iter()
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "/spec/template/spec/containers/0/env/0/valueFrom/secretKeyRef/name",
            "/spec/template/spec/containers/0/envFrom/0/secretRef/name",
            "/spec/template/spec/volumes/0/secret/secretName",
        ]
    );
    let patch = step.changes[1].patch.as_ref().expect("patch");
    assert_eq!(patch[0]["op"], "test");
    assert_eq!(patch[3]["op"], "replace");
    assert_eq!(step.changes[0].object.kind, "Secret");
    assert_eq!(
        step.changes[0].after.as_ref().expect("after")["immutable"],
        true
    );
    assert_eq!(step.preconditions.deployment_refs["api-gateway"].len(), 3);
}

#[test]
fn rotation_refuses_other_referrers_and_missing_keys() {
    let mut v = view();
    let ns = v.namespaces.get_mut("waqiti").expect("ns");
    ns.stateful_sets.push(from(json!({"metadata": {"name": "worker"}, "spec": {"selector": {}, "serviceName": "w",
        "template": {"spec": {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "gateway-api-keys"}}]}]}}}})));
    ns.pods[2].spec.as_mut().expect("spec").containers[0].env =
        ns.pods[0].spec.as_ref().expect("spec").containers[0]
            .env
            .clone();
    let mut d: Value = deployment("api-gateway");
    d["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["key"] =
        json!("OLD_KEY");
    ns.deployments = vec![from(d)];
    let doc = run(&v, vec![suspicious("198.51.100.7", 50)]);
    let step = doc
        .steps
        .iter()
        .find(|s| s.kind == StepKind::RotateSecrets)
        .expect("rotate");
    assert_eq!(step.status, StepStatus::Refused);
    let all = step.refusals.join("\n");
    assert!(all.contains("StatefulSet worker"), "{all}");
    assert!(all.contains("Pod db-0"), "{all}");
    assert!(all.contains("\"OLD_KEY\""), "{all}");
    assert!(step.changes.is_empty());
}

#[test]
fn sessions_are_called_on_every_running_pod_with_the_blocked_addresses() {
    let doc = run(&view(), vec![suspicious("198.51.100.7", 50)]);
    let step = doc
        .steps
        .iter()
        .find(|s| s.kind == StepKind::InvalidateSessions)
        .expect("sessions");
    assert_eq!(step.status, StepStatus::Planned);
    assert_eq!(step.changes.len(), 2);
    assert!(step
        .warnings
        .iter()
        .any(|w| w.contains("api-gateway-2") && w.contains("not Ready")));
    let StepDetail::InvalidateSessions { call, .. } = &step.detail else {
        panic!("detail")
    };
    assert_eq!(
        call.body.as_deref(),
        Some(r#"{"clients": ["198.51.100.7"]}"#)
    );
    assert!(matches!(
        step.changes[0].dry_run,
        DryRun::NotSupported { .. }
    ));
}

#[test]
fn the_plan_is_canonical_json_and_reads_back_strictly() {
    let doc = run(&view(), vec![suspicious("198.51.100.7", 50)]);
    let bytes = crate::canonical::to_vec(&doc).expect("canonical");
    let back: PlanDoc = crate::canonical::from_slice(&bytes).expect("reads back");
    assert_eq!(back, doc);
    let mut v: Value = serde_json::from_slice(&bytes).expect("json");
    v["extra"] = json!(1);
    let extra = crate::canonical::to_vec(&v).expect("canonical");
    assert!(crate::canonical::from_slice::<PlanDoc>(&extra).is_err());
}

#[test]
fn a_reference_custody_cannot_repoint_refuses_the_rotation() {
    let mut v = view();
    let ns = v.namespaces.get_mut("waqiti").expect("ns");
    let mut d: Value = deployment("api-gateway");
    d["spec"]["template"]["spec"]["imagePullSecrets"] = json!([{"name": "gateway-api-keys"}]);
    d["spec"]["template"]["spec"]["volumes"][0]["name"] = json!("gateway-api-keys");
    ns.deployments = vec![from(d)];
    let doc = run(&v, vec![suspicious("198.51.100.7", 50)]);
    let step = doc
        .steps
        .iter()
        .find(|s| s.kind == StepKind::RotateSecrets)
        .expect("rotate");
    assert_eq!(step.status, StepStatus::Refused);
    let all = step.refusals.join("\n");
    assert!(
        all.contains("/spec/template/spec/imagePullSecrets/0/name"),
        "{all}"
    );
    // A volume named like the Secret is not a reference to it.
    assert!(!all.contains("/volumes/0/name"), "{all}");
}

#[test]
fn two_targets_writing_one_policy_refuse_the_second_step() {
    let text = POLICY.replace(
        "targets:\n",
        "targets:\n  - name: api-gateway-b\n    namespace: waqiti\n    pod_selector:\n      matchLabels:\n        app: api-gateway\n",
    );
    let policy = ContainmentPolicy::parse("containment.yaml", &text).expect("parses");
    let mut v = view();
    v.namespaces
        .get_mut("waqiti")
        .expect("ns")
        .network_policies
        .push(from(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "all-in", "namespace": "waqiti", "resourceVersion": "9"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]},
        })));
    let doc = run_policy(&policy, &v, vec![suspicious("198.51.100.7", 9)]);
    let blocks: Vec<&Step> = doc
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::BlockIps)
        .collect();
    assert_eq!(blocks.len(), 2);
    assert_eq!(
        blocks[0].status,
        StepStatus::Planned,
        "{:?}",
        blocks[0].refusals
    );
    assert_eq!(blocks[1].status, StepStatus::Refused);
    assert!(
        blocks[1].refusals[0].contains("also written by step 1"),
        "{:?}",
        blocks[1].refusals
    );
}

#[test]
fn an_existing_cilium_policy_keeps_its_addresses_or_is_refused_when_changed() {
    let text = POLICY.replace("method: networkpolicy", "method: cilium");
    let policy = ContainmentPolicy::parse("containment.yaml", &text).expect("parses");
    let mut v = view();
    v.cilium = crate::containment::cluster::CiliumSupport {
        served: true,
        endpoints_served: true,
        nodes_served: true,
        enable_default_deny: Some(true),
    };
    let selector = serde_json::to_value(policy.targets[0].pod_selector.to_k8s()).expect("json");
    let existing = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "custody-block-api-gateway", "namespace": "waqiti", "resourceVersion": "77"},
        "spec": {"endpointSelector": selector, "enableDefaultDeny": {"ingress": false, "egress": false},
                 "ingressDeny": [{"fromCIDRSet": [{"cidr": "192.0.2.99/32"}]}]}});
    let ns = v.namespaces.get_mut("waqiti").expect("ns");
    ns.cilium_endpoints = Some(vec!["api-gateway-1".to_owned(), "api-gateway-2".to_owned()]);
    ns.cilium_policies = Some(vec![existing.clone()]);
    let run_with = |v: &ClusterView| run_policy(&policy, v, vec![suspicious("198.51.100.7", 9)]);
    let doc = run_with(&v);
    let step = &doc.steps[0];
    assert_eq!(step.status, StepStatus::Planned, "{:?}", step.refusals);
    assert_eq!(step.changes[0].op, ChangeOp::Replace);
    let after = step.changes[0].after.as_ref().expect("after");
    assert_eq!(
        after["spec"]["ingressDeny"][0]["fromCIDRSet"],
        json!([{"cidr": "192.0.2.99/32"}, {"cidr": "198.51.100.7/32"}])
    );
    assert!(
        step.warnings.iter().any(|w| w.contains("192.0.2.99")),
        "{:?}",
        step.warnings
    );
    let mut changed = existing;
    changed["spec"]["ingress"] = json!([{"fromEntities": ["world"]}]);
    v.namespaces.get_mut("waqiti").expect("ns").cilium_policies = Some(vec![changed]);
    let doc = run_with(&v);
    assert_eq!(doc.steps[0].status, StepStatus::Refused);
    assert!(
        doc.steps[0].refusals[0].contains("changed outside custody"),
        "{:?}",
        doc.steps[0].refusals
    );
}

mod other_engines;
mod pod_network;
mod trusted_proxies;
