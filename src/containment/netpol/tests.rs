//! The NetworkPolicy block as a table of cases, each judged by evaluating the union of the
//! policies before and after (offenders refused to the target; every other source admitted
//! before still admitted; nothing refused before admitted), and a property test over random
//! policy sets.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::eval::{admits, check_no_widening, EvalPod, NamedPort, Samples, Source, Traffic};
use super::*;
use crate::id::{CaseId, PlanId};
use crate::net::Cidr;

pub(super) const NS: &str = "shop";

pub(super) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn owner(case: &str, plan: &str) -> Owner {
    Owner {
        case: CaseId::new(case).unwrap(),
        plan: PlanId::new(plan).unwrap(),
        expires_at: time::macros::datetime!(2030-01-01 00:00 UTC),
    }
}

pub(super) fn offenders(case: &str, addrs: &[&str]) -> Offenders {
    Offenders::new(addrs.iter().map(|a| (ip(a), owner(case, "p1"))))
}

/// A policy of the namespace from YAML, read as the API server returned it.
pub(super) fn pol(yaml: &str) -> NetworkPolicy {
    let mut p: NetworkPolicy = crate::yaml::from_str(yaml).unwrap();
    p.metadata.namespace.get_or_insert_with(|| NS.to_owned());
    p.metadata
        .resource_version
        .get_or_insert_with(|| "100".to_owned());
    p
}

pub(super) fn target(selector: &[(&str, &str)]) -> Target {
    Target {
        namespace: NS.into(),
        name: "gw".into(),
        pod_selector: LabelSelector {
            match_labels: Some(labels(selector)),
            ..Default::default()
        },
    }
}

pub(super) fn pod(name: &str, l: &[(&str, &str)]) -> PodInfo {
    PodInfo {
        name: name.into(),
        labels: labels(l),
        host_network: false,
    }
}

/// The world one case runs in: the target's pods (app=gw) and other pods of the namespace.
pub(super) struct World {
    pub target: Target,
    pub target_pods: Vec<PodInfo>,
    pub other_pods: Vec<PodInfo>,
}

impl World {
    pub fn gateway() -> Self {
        World {
            target: target(&[("app", "gw")]),
            target_pods: vec![pod("gw-1", &[("app", "gw")]), pod("gw-2", &[("app", "gw")])],
            other_pods: vec![
                pod("db-1", &[("app", "db")]),
                pod("web-1", &[("role", "frontend")]),
            ],
        }
    }

    pub fn plan(&self, policies: &[NetworkPolicy], off: &Offenders, owners: &Owners) -> BlockPlan {
        plan_block(&BlockInput {
            target: &self.target,
            target_pods: &self.target_pods,
            other_pods: &self.other_pods,
            policies,
            offenders: off,
            block_owners: owners,
        })
    }

    fn eval_pods(&self) -> Vec<EvalPod> {
        let mk = |p: &PodInfo, target: bool| EvalPod {
            namespace: NS.into(),
            name: p.name.clone(),
            labels: p.labels.clone(),
            ports: vec![NamedPort {
                name: "http".into(),
                port: 8080,
                protocol: "TCP".into(),
            }],
            target,
        };
        let mut pods: Vec<EvalPod> = self.target_pods.iter().map(|p| mk(p, true)).collect();
        pods.extend(self.other_pods.iter().map(|p| mk(p, false)));
        pods
    }

    fn pod_sources(&self) -> Vec<Source> {
        let mut sources: Vec<Source> = self
            .target_pods
            .iter()
            .chain(&self.other_pods)
            .map(|p| Source::Pod {
                namespace: NS.into(),
                namespace_labels: labels(&[("kubernetes.io/metadata.name", NS)]),
                labels: p.labels.clone(),
            })
            .collect();
        sources.push(Source::Pod {
            namespace: "other".into(),
            namespace_labels: labels(&[("project", "myproject")]),
            labels: labels(&[("role", "frontend")]),
        });
        sources
    }

    /// Checks the plan proposes changes that refuse the offenders and nothing else.
    pub fn judge(
        &self,
        before: &[NetworkPolicy],
        plan: &BlockPlan,
        off: &Offenders,
    ) -> Vec<NetworkPolicy> {
        assert!(plan.refusals.is_empty(), "refused: {:?}", plan.refusals);
        let after = apply(before, &plan.changes);
        let all: Vec<NetworkPolicy> = before.iter().chain(&after).cloned().collect();
        let mut samples = Samples::around(&all, off, &self.pod_sources());
        samples
            .traffic
            .extend([8080, 9000, 9005, 9010, 9011].map(|port| Traffic {
                protocol: "TCP".into(),
                port,
            }));
        samples.traffic.push(Traffic {
            protocol: "UDP".into(),
            port: 53,
        });
        check_no_widening(before, &after, &self.eval_pods(), &samples, off)
            .unwrap_or_else(|v| panic!("{v:#?}"));
        after
    }
}

/// The policies once `changes` apply (as the API server would: a replace keeps the name).
pub(super) fn apply(before: &[NetworkPolicy], changes: &[Change]) -> Vec<NetworkPolicy> {
    let mut after = before.to_vec();
    for change in changes {
        match change {
            Change::Create { policy } => {
                assert!(after
                    .iter()
                    .all(|p| p.metadata.name != policy.metadata.name));
                let mut p = policy.clone();
                p.metadata.resource_version = Some("1".into());
                after.push(p);
            }
            Change::Replace {
                policy,
                resource_version,
            } => {
                assert_eq!(
                    policy.metadata.resource_version.as_ref(),
                    Some(resource_version)
                );
                let slot = after
                    .iter_mut()
                    .find(|p| p.metadata.name == policy.metadata.name)
                    .unwrap();
                assert_eq!(
                    slot.metadata.resource_version.as_ref(),
                    Some(resource_version)
                );
                *slot = policy.clone();
                let next = resource_version.parse::<u64>().unwrap() + 1;
                slot.metadata.resource_version = Some(next.to_string());
            }
            Change::Delete { name, .. } => {
                after.retain(|p| p.metadata.name.as_deref() != Some(name))
            }
        }
    }
    after
}

fn ingress_json(p: &NetworkPolicy) -> serde_json::Value {
    serde_json::to_value(&p.spec.as_ref().unwrap().ingress).unwrap()
}

fn replaced<'a>(plan: &'a BlockPlan, name: &str) -> &'a NetworkPolicy {
    plan.changes
        .iter()
        .find_map(|c| match c {
            Change::Replace { policy, .. } if policy.metadata.name.as_deref() == Some(name) => {
                Some(policy)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no replace of {name}: {:?}", plan.changes))
}

fn open_rule(x4: &[&str], x6: &[&str]) -> serde_json::Value {
    let block = |cidr: &str, x: &[&str]| {
        if x.is_empty() {
            serde_json::json!({"ipBlock": {"cidr": cidr}})
        } else {
            serde_json::json!({"ipBlock": {"cidr": cidr, "except": x}})
        }
    };
    serde_json::json!([block("0.0.0.0/0", x4), block("::/0", x6), {"namespaceSelector": {}, "podSelector": {}}])
}

#[test]
fn no_policy_creates_one_custody_block_policy() {
    let w = World::gateway();
    let off = offenders("c1", &["203.0.113.9", "2001:db8::9"]);
    let plan = w.plan(&[], &off, &Owners::new());
    let [Change::Create { policy }] = &plan.changes[..] else {
        panic!("{:?}", plan.changes)
    };
    assert_eq!(policy.metadata.name.as_deref(), Some("custody-block-gw"));
    let spec = policy.spec.as_ref().unwrap();
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_owned()]));
    assert_eq!(spec.pod_selector, Some(w.target.pod_selector.clone()));
    assert_eq!(
        ingress_json(policy),
        serde_json::json!([{"from": open_rule(&["203.0.113.9/32"], &["2001:db8::9/128"])}])
    );
    assert_eq!(plan.owners.len(), 2);
    assert!(plan.owners[&ip("203.0.113.9")].contains(&owner("c1", "p1")));
    let annotations = policy.metadata.annotations.as_ref().unwrap();
    assert!(annotations[OWNERS_ANNOTATION].contains("203.0.113.9"));
    w.judge(&[], &plan, &off);
}

#[test]
fn a_rule_without_from_or_with_empty_from_names_its_peers() {
    let w = World::gateway();
    let off = offenders("c1", &["203.0.113.9"]);
    for from in ["", "    from: []\n"] {
        let before = [pol(&format!(
            "metadata: {{name: allow-http}}\nspec:\n  podSelector: {{matchLabels: {{app: gw}}}}\n  ingress:\n  - ports: [{{port: 8080}}]\n{from}"
        ))];
        let plan = w.plan(&before, &off, &Owners::new());
        assert_eq!(plan.changes.len(), 1, "{from:?}");
        let new = replaced(&plan, "allow-http");
        // Both families stay open: the IPv6 block has no except, as no IPv6 address offends.
        assert_eq!(
            ingress_json(new),
            serde_json::json!([{"from": open_rule(&["203.0.113.9/32"], &[]), "ports": [{"port": 8080}]}])
        );
        assert_eq!(new.metadata.resource_version.as_deref(), Some("100"));
        assert_eq!(
            plan.read.selecting,
            BTreeSet::from(["allow-http".to_owned()])
        );
        w.judge(&before, &plan, &off);
    }
}

#[test]
fn an_ip_block_containing_the_address_gains_an_except() {
    let w = World::gateway();
    let before = [pol("metadata: {name: partners}\nspec:\n  podSelector: {matchLabels: {app: gw}}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 203.0.113.0/24, except: [203.0.113.128/25, 203.0.113.128/25]}\n    - podSelector: {matchLabels: {role: frontend}}\n")];
    // .200 is already excepted and needs nothing; .9 gains an entry.
    let off = offenders("c1", &["203.0.113.9", "203.0.113.200"]);
    let plan = w.plan(&before, &off, &Owners::new());
    let new = replaced(&plan, "partners");
    let rules = ingress_json(new);
    assert_eq!(
        rules[0]["from"][0]["ipBlock"]["except"],
        serde_json::json!(["203.0.113.128/25", "203.0.113.9/32"])
    );
    assert_eq!(
        rules[0]["from"][1],
        serde_json::json!({"podSelector": {"matchLabels": {"role": "frontend"}}})
    );
    w.judge(&before, &plan, &off);
    // Only already-excepted offenders: nothing to change.
    let plan = w.plan(
        &before,
        &offenders("c1", &["203.0.113.200"]),
        &Owners::new(),
    );
    assert!(
        plan.changes.is_empty() && plan.refusals.is_empty(),
        "{plan:?}"
    );
}

#[test]
fn a_peer_wholly_covered_by_offenders_is_removed_and_then_its_rule() {
    let w = World::gateway();
    let before = [pol("metadata: {name: pinned}\nspec:\n  podSelector: {matchLabels: {app: gw}}\n  ingress:\n  - from: [{ipBlock: {cidr: 203.0.113.8/31}}]\n    ports: [{port: 8080}]\n  - from:\n    - ipBlock: {cidr: 203.0.113.9/32}\n    - podSelector: {matchLabels: {role: frontend}}\n  - from: [{ipBlock: {cidr: 198.51.100.0/24}}]\n")];
    let off = offenders("c1", &["203.0.113.8", "203.0.113.9"]);
    let plan = w.plan(&before, &off, &Owners::new());
    let rules = ingress_json(replaced(&plan, "pinned"));
    assert_eq!(
        rules,
        serde_json::json!([
            {"from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}]},
            {"from": [{"ipBlock": {"cidr": "198.51.100.0/24"}}]}
        ])
    );
    w.judge(&before, &plan, &off);
    // The only rule's only peer: the rule goes, the policy stays and still isolates.
    let only = [pol("metadata: {name: only}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n  ingress:\n  - from: [{ipBlock: {cidr: 203.0.113.9/32}}]\n")];
    let off = offenders("c1", &["203.0.113.9"]);
    let plan = w.plan(&only, &off, &Owners::new());
    assert_eq!(ingress_json(replaced(&plan, "only")), serde_json::json!([]));
    w.judge(&only, &plan, &off);
}

#[test]
fn several_policies_are_each_rewritten() {
    let w = World::gateway();
    let before = [
        pol("metadata: {name: a-http}\nspec:\n  podSelector: {matchLabels: {app: gw}}\n  ingress: [{ports: [{port: 8080}]}]\n"),
        pol("metadata: {name: b-world}\nspec:\n  podSelector: {matchExpressions: [{key: app, operator: In, values: [gw]}]}\n  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}, {ipBlock: {cidr: '::/0'}}]}]\n"),
        pol("metadata: {name: c-egress}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{}]\n"),
        pol("metadata: {name: d-db}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress: [{}]\n"),
    ];
    let off = offenders("c1", &["203.0.113.9", "::ffff:198.51.100.7", "2001:db8::9"]);
    let plan = w.plan(&before, &off, &Owners::new());
    let names: Vec<&str> = plan.changes.iter().map(Change::name).collect();
    assert_eq!(names, ["a-http", "b-world"]);
    assert_eq!(
        ingress_json(replaced(&plan, "b-world"))[0]["from"][0]["ipBlock"]["except"],
        serde_json::json!(["198.51.100.7/32", "203.0.113.9/32"])
    );
    assert_eq!(
        plan.read.selecting,
        BTreeSet::from([
            "a-http".to_owned(),
            "b-world".to_owned(),
            "c-egress".to_owned()
        ])
    );
    assert_eq!(plan.read.resource_versions.len(), 4);
    w.judge(&before, &plan, &off);
}

#[test]
fn a_policy_that_selects_more_than_the_target_is_named_in_a_warning() {
    let w = World::gateway();
    let before = [pol(
        "metadata: {name: everyone}\nspec:\n  podSelector: {}\n  ingress: [{}]\n",
    )];
    let off = offenders("c1", &["203.0.113.9"]);
    let plan = w.plan(&before, &off, &Owners::new());
    assert_eq!(
        plan.warnings,
        vec![Warning::AlsoBlocks {
            policy: "everyone".into(),
            pods: vec!["db-1".into(), "web-1".into()]
        }]
    );
    let after = w.judge(&before, &plan, &off);
    let db = &w.eval_pods()[2];
    let tcp = Traffic {
        protocol: "TCP".into(),
        port: 5432,
    };
    assert!(!admits(
        &after,
        db,
        &Source::Ip {
            addr: ip("203.0.113.9")
        },
        &tcp
    ));
}

#[test]
fn mixed_isolation_is_refused() {
    let mut w = World::gateway();
    w.target_pods[1]
        .labels
        .insert("canary".into(), "yes".into());
    let before = [pol("metadata: {name: canary}\nspec:\n  podSelector: {matchLabels: {canary: 'yes'}}\n  ingress: [{}]\n")];
    let plan = w.plan(&before, &offenders("c1", &["203.0.113.9"]), &Owners::new());
    assert_eq!(
        plan.refusals,
        vec![Refusal::MixedIsolation {
            isolated: vec!["gw-2".into()],
            not_isolated: vec!["gw-1".into()]
        }]
    );
    assert!(plan.changes.is_empty());
}

#[test]
fn host_network_targets_and_missing_pods_are_refused() {
    let mut w = World::gateway();
    w.target_pods[0].host_network = true;
    let plan = w.plan(&[], &offenders("c1", &["203.0.113.9"]), &Owners::new());
    assert_eq!(
        plan.refusals,
        vec![Refusal::HostNetwork {
            pods: vec!["gw-1".into()]
        }]
    );
    w.target_pods.clear();
    let plan = w.plan(&[], &offenders("c1", &["203.0.113.9"]), &Owners::new());
    assert_eq!(plan.refusals, vec![Refusal::NoTargetPods]);
}

#[test]
fn a_second_case_extends_the_one_custody_policy_with_owners_per_address() {
    let w = World::gateway();
    let first = offenders("c1", &["203.0.113.9", "203.0.113.10"]);
    let plan1 = w.plan(&[], &first, &Owners::new());
    let after1 = w.judge(&[], &plan1, &first);
    let second = Offenders::new([
        (ip("203.0.113.10"), owner("c2", "p2")),
        (ip("2001:db8::10"), owner("c2", "p2")),
    ]);
    let plan2 = w.plan(&after1, &second, &plan1.owners);
    let [Change::Replace {
        policy,
        resource_version,
    }] = &plan2.changes[..]
    else {
        panic!("{:?}", plan2.changes)
    };
    assert_eq!(resource_version, "1");
    assert_eq!(
        ingress_json(policy),
        serde_json::json!([{"from": open_rule(&["203.0.113.9/32", "203.0.113.10/32"], &["2001:db8::10/128"])}])
    );
    let shared = &plan2.owners[&ip("203.0.113.10")];
    assert_eq!(shared.len(), 2);
    let after2 = w.judge(&after1, &plan2, &second);
    // The same plan again changes nothing.
    let again = w.plan(&after2, &second, &plan2.owners);
    assert!(
        again.changes.is_empty() && again.refusals.is_empty(),
        "{again:?}"
    );

    // Rolling back the first case keeps the shared address and releases its own.
    let block = after2
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("custody-block-gw"))
        .unwrap();
    let c1 = CaseId::new("c1").unwrap();
    let removal = remove_owners(block, &plan2.owners, |o| o.case == c1).unwrap();
    assert_eq!(removal.released, vec![ip("203.0.113.9")]);
    let Some(Change::Replace { policy, .. }) = &removal.change else {
        panic!("{removal:?}")
    };
    assert_eq!(
        ingress_json(policy),
        serde_json::json!([{"from": open_rule(&["203.0.113.10/32"], &["2001:db8::10/128"])}])
    );
    let after3 = apply(&after2, removal.change.as_slice());
    // And once no owner is left the policy is deleted.
    let block = after3
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("custody-block-gw"))
        .unwrap();
    let removal = remove_owners(block, &removal.owners, |_| true).unwrap();
    assert!(
        matches!(removal.change, Some(Change::Delete { ref name, .. }) if name == "custody-block-gw")
    );
    assert!(removal.owners.is_empty());
}

#[test]
fn a_block_policy_the_journal_names_but_the_cluster_lacks_is_refused() {
    let w = World::gateway();
    let owners = Owners::from([(ip("203.0.113.9"), BTreeSet::from([owner("c1", "p1")]))]);
    let plan = w.plan(&[], &offenders("c2", &["203.0.113.7"]), &owners);
    assert_eq!(
        plan.refusals,
        vec![Refusal::BlockPolicyMissing {
            policy: "custody-block-gw".into()
        }]
    );
}

#[test]
fn ipv4_ipv6_and_mapped_sources_are_all_refused() {
    let w = World::gateway();
    let before = [pol("metadata: {name: open}\nspec:\n  podSelector: {matchLabels: {app: gw}}\n  ingress: [{from: []}]\n")];
    let off = offenders("c1", &["::ffff:203.0.113.9", "2001:db8::9"]);
    let plan = w.plan(&before, &off, &Owners::new());
    let after = w.judge(&before, &plan, &off);
    let gw = &w.eval_pods()[0];
    let tcp = Traffic {
        protocol: "TCP".into(),
        port: 8080,
    };
    for refused in ["203.0.113.9", "::ffff:203.0.113.9", "2001:db8::9"] {
        assert!(
            !admits(&after, gw, &Source::Ip { addr: ip(refused) }, &tcp),
            "{refused}"
        );
    }
    for admitted in ["203.0.113.8", "::ffff:203.0.113.10", "2001:db8::8"] {
        assert!(
            admits(&after, gw, &Source::Ip { addr: ip(admitted) }, &tcp),
            "{admitted}"
        );
    }
}

#[test]
fn named_ports_and_port_ranges_are_kept() {
    let w = World::gateway();
    let before = [pol("metadata: {name: ports}\nspec:\n  podSelector: {matchLabels: {app: gw}}\n  ingress:\n  - ports: [{port: http}, {port: 9000, endPort: 9010}, {protocol: UDP}]\n")];
    let off = offenders("c1", &["203.0.113.9"]);
    let plan = w.plan(&before, &off, &Owners::new());
    let new = replaced(&plan, "ports");
    assert_eq!(
        ingress_json(new)[0]["ports"],
        serde_json::json!([{"port": "http"}, {"port": 9000, "endPort": 9010}, {"protocol": "UDP"}])
    );
    let after = w.judge(&before, &plan, &off);
    let gw = &w.eval_pods()[0];
    let from = |a: &str| Source::Ip { addr: ip(a) };
    let tcp = |port| Traffic {
        protocol: "TCP".into(),
        port,
    };
    assert!(
        admits(&after, gw, &from("198.51.100.1"), &tcp(8080)),
        "named port http"
    );
    assert!(admits(&after, gw, &from("198.51.100.1"), &tcp(9005)));
    assert!(!admits(&after, gw, &from("198.51.100.1"), &tcp(9011)));
    assert!(!admits(&after, gw, &from("203.0.113.9"), &tcp(9005)));
}

#[test]
fn never_block_and_node_addresses_are_filtered_before_the_block() {
    // The planner leaves out never_block ranges and node addresses; the algorithm blocks exactly
    // what it is given.
    let w = World::gateway();
    let all = offenders("c1", &["10.0.0.5", "192.168.1.20", "203.0.113.9"]);
    let never_block = Cidr::parse("10.0.0.0/8").unwrap();
    let node = Cidr::parse("192.168.1.20").unwrap();
    let (off, left_out) = all.exclude(&[never_block, node]);
    assert_eq!(
        left_out,
        vec![(ip("10.0.0.5"), never_block), (ip("192.168.1.20"), node)]
    );
    let plan = w.plan(&[], &off, &Owners::new());
    let after = w.judge(&[], &plan, &off);
    let gw = &w.eval_pods()[0];
    let tcp = Traffic {
        protocol: "TCP".into(),
        port: 8080,
    };
    assert!(admits(
        &after,
        gw,
        &Source::Ip {
            addr: ip("10.0.0.5")
        },
        &tcp
    ));
    assert!(admits(
        &after,
        gw,
        &Source::Ip {
            addr: ip("192.168.1.20")
        },
        &tcp
    ));
    assert!(!admits(
        &after,
        gw,
        &Source::Ip {
            addr: ip("203.0.113.9")
        },
        &tcp
    ));
}

#[test]
fn the_documentation_example_gains_an_except() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/k8s/networkpolicy-docs-example.yaml"
    ))
    .unwrap();
    let mut policy: NetworkPolicy = crate::yaml::from_str(&text).unwrap();
    policy.metadata.resource_version = Some("7".into());
    let w = World {
        target: Target {
            namespace: "default".into(),
            ..target(&[("role", "db")])
        },
        target_pods: vec![pod("db-0", &[("role", "db")])],
        other_pods: vec![pod("web-0", &[("role", "frontend")])],
    };
    let off = offenders("c1", &["172.17.0.9", "172.17.1.5"]);
    let before = [policy];
    let plan = w.plan(&before, &off, &Owners::new());
    let new = replaced(&plan, "test-network-policy");
    let rules = ingress_json(new);
    assert_eq!(
        rules[0]["from"][0]["ipBlock"]["except"],
        serde_json::json!(["172.17.1.0/24", "172.17.0.9/32"])
    );
    assert_eq!(
        rules[0]["ports"],
        serde_json::json!([{"port": 6379, "protocol": "TCP"}])
    );
    assert_eq!(
        new.spec.as_ref().unwrap().egress,
        before[0].spec.as_ref().unwrap().egress
    );
    assert!(plan.warnings.is_empty());
    let db = EvalPod {
        namespace: "default".into(),
        name: "db-0".into(),
        labels: labels(&[("role", "db")]),
        ports: vec![],
        target: true,
    };
    let samples = Samples::around(&before, &off, &[]);
    let after = apply(&before, &plan.changes);
    check_no_widening(&before, &after, &[db], &samples, &off).unwrap();
}

#[test]
fn the_check_catches_a_widening_change() {
    let before = [pol("metadata: {name: p}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 203.0.113.0/24}}]}]\n")];
    let widened = [pol(
        "metadata: {name: p}\nspec:\n  podSelector: {}\n  ingress: [{}]\n",
    )];
    let off = offenders("c1", &["203.0.113.9"]);
    let gw = EvalPod {
        namespace: NS.into(),
        name: "gw-1".into(),
        labels: Labels::new(),
        ports: vec![],
        target: true,
    };
    let samples = Samples::around(&before, &off, &[]);
    let errors = check_no_widening(&before, &widened, &[gw], &samples, &off).unwrap_err();
    assert!(errors
        .iter()
        .any(|v| matches!(v, eval::Violation::OffenderAdmitted { .. })));
    assert!(errors
        .iter()
        .any(|v| matches!(v, eval::Violation::Widened { .. })));
}

mod prop;
