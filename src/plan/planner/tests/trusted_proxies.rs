//! The trusted proxies of `formats.yaml` are never blocked: the analysis attributes a request to
//! the proxy itself when it carries no `X-Forwarded-For` (or only trusted hops), and blocking the
//! proxy would refuse every legitimate client behind it.

use super::*;

/// The plan of `suspicious` on `view` with these trusted proxies.
fn run_behind(proxies: &[&str], view: &ClusterView, suspicious: Vec<Suspicious>) -> PlanDoc {
    let policy = policy();
    let case = CaseId::new("c1").expect("id");
    let plan = PlanId::new("p1").expect("id");
    let owners = BTreeMap::new();
    let s = vec![("b".to_owned(), suspicious)];
    let proxies: Vec<Cidr> = proxies
        .iter()
        .map(|p| Cidr::parse(p).expect("cidr"))
        .collect();
    plan_doc(&PlannerInput {
        case: &case,
        plan: &plan,
        policy: &policy,
        detection_allowlist: &[],
        trusted_proxies: &proxies,
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

fn left_out(doc: &PlanDoc) -> BTreeMap<&str, (LeftOutReason, &str)> {
    doc.addresses
        .left_out
        .iter()
        .map(|l| (l.address.as_str(), (l.reason, l.message.as_str())))
        .collect()
}

fn blocked(doc: &PlanDoc) -> Vec<&str> {
    doc.addresses
        .block
        .iter()
        .map(|a| a.address.as_str())
        .collect()
}

#[test]
fn a_trusted_proxy_is_left_out_naming_formats_yaml() {
    // 198.51.100.250 is an L7 proxy / CDN edge in front of the gateway; 10.8.0.0/16 the load
    // balancers' range (outside the pod network the Nodes publish). Failing requests that reached
    // the gateway from them without X-Forwarded-For are attributed to the proxies themselves.
    let doc = run_behind(
        &["198.51.100.250", "10.8.0.0/16"],
        &view(),
        vec![
            suspicious("198.51.100.250", 500),
            suspicious("10.8.3.4", 400),
            suspicious("::ffff:10.8.3.5", 300),
            // never_block comes first in the table: still told as such.
            suspicious("203.0.113.9", 30),
            // Around the proxies: clients like any other.
            suspicious("198.51.100.249", 20),
            suspicious("10.9.0.1", 10),
        ],
    );
    assert_eq!(blocked(&doc), ["10.9.0.1", "198.51.100.249"]);
    let r = left_out(&doc);
    assert_eq!(r["198.51.100.250"].0, LeftOutReason::TrustedProxy);
    assert_eq!(
        r["198.51.100.250"].1,
        "never blocked: a trusted proxy in formats.yaml's trusted_proxies (198.51.100.250/32): blocking it would refuse every client behind it"
    );
    for a in ["10.8.3.4", "::ffff:10.8.3.5"] {
        assert_eq!(r[a].0, LeftOutReason::TrustedProxy, "{a}");
        assert!(
            r[a].1.contains("trusted_proxies (10.8.0.0/16)"),
            "{}",
            r[a].1
        );
    }
    assert_eq!(r["203.0.113.9"].0, LeftOutReason::NeverBlock);
    // The step still says clients taken from X-Forwarded-For are not stopped by an IP block.
    assert!(
        doc.steps[0]
            .warnings
            .iter()
            .any(|w| w.contains("X-Forwarded-For behind the trusted proxies")),
        "{:?}",
        doc.steps[0].warnings
    );
    // The reason reads back by its name.
    let proxy = doc
        .addresses
        .left_out
        .iter()
        .find(|l| l.address == "198.51.100.250");
    let text = serde_json::to_string(&proxy).expect("json");
    assert!(text.contains(r#""reason":"trusted_proxy""#), "{text}");
}

#[test]
fn without_trusted_proxies_the_same_address_is_blocked() {
    let doc = run_behind(&[], &view(), vec![suspicious("198.51.100.250", 500)]);
    assert_eq!(blocked(&doc), ["198.51.100.250"]);
    assert!(doc.addresses.left_out.is_empty());
}

#[test]
fn addresses_no_remote_client_has_are_left_out_not_blocked() {
    let doc = run(
        &view(),
        vec![
            suspicious("127.0.0.6", 90),
            suspicious("169.254.20.10", 80),
            suspicious("::1", 70),
            suspicious("fe80::1", 60),
            suspicious("224.0.0.5", 50),
            suspicious("0.12.0.1", 45),
            suspicious("240.1.2.3", 44),
            suspicious("255.255.255.255", 43),
            suspicious("::ffff:0.0.0.7", 42),
            suspicious("198.51.100.7", 40),
            // Just outside each range: remote.
            suspicious("1.0.0.1", 30),
            suspicious("223.255.255.254", 20),
        ],
    );
    let left: BTreeMap<&str, LeftOutReason> = doc
        .addresses
        .left_out
        .iter()
        .map(|l| (l.address.as_str(), l.reason))
        .collect();
    for a in [
        "127.0.0.6",
        "169.254.20.10",
        "::1",
        "fe80::1",
        "224.0.0.5",
        "0.12.0.1",
        "240.1.2.3",
        "255.255.255.255",
        "::ffff:0.0.0.7",
    ] {
        assert_eq!(
            left.get(a),
            Some(&LeftOutReason::NotRemote),
            "{a}: {left:?}"
        );
    }
    let blocked: Vec<&str> = doc
        .addresses
        .block
        .iter()
        .map(|b| b.address.as_str())
        .collect();
    assert_eq!(blocked, ["1.0.0.1", "198.51.100.7", "223.255.255.254"]);
    assert_eq!(
        serde_json::to_value(LeftOutReason::NotRemote).unwrap(),
        "not_remote"
    );
}

/// The view with a LoadBalancer Service known only by its hostname (an AWS ALB, say).
fn behind_hostname_balancer() -> ClusterView {
    let mut v = view();
    let ns = v.namespaces.get_mut("waqiti").expect("ns");
    ns.services
        .push(from(json!({"metadata": {"name": "gateway-alb"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]},
        "status": {"loadBalancer": {"ingress": [{"hostname": "k8s-waqiti-abc.elb.example"}]}}})));
    v
}

#[test]
fn a_load_balancer_known_only_by_hostname_keeps_private_addresses_out() {
    let v = behind_hostname_balancer();
    let doc = run(
        &v,
        vec![
            suspicious("10.0.5.20", 90),
            suspicious("198.51.100.7", 40),
            // A cloud network's IPv6 addresses are global: the balancer's may be this one.
            suspicious("2600:1f14:aa:5::20", 30),
        ],
    );
    let (reason, why) = left_out(&doc)["2600:1f14:aa:5::20"];
    assert_eq!(reason, LeftOutReason::LoadBalancer);
    assert!(why.contains("load_balancer_addresses"), "{why}");
    let left: BTreeMap<&str, (LeftOutReason, &str)> = doc
        .addresses
        .left_out
        .iter()
        .map(|l| (l.address.as_str(), (l.reason, l.message.as_str())))
        .collect();
    let (reason, why) = left["10.0.5.20"];
    assert_eq!(reason, LeftOutReason::LoadBalancer);
    assert!(
        why.contains("gateway-alb") && why.contains("only by hostname"),
        "{why}"
    );
    let blocked: Vec<&str> = doc
        .addresses
        .block
        .iter()
        .map(|b| b.address.as_str())
        .collect();
    assert_eq!(blocked, ["198.51.100.7"]);
    // Without it, the same private address is blocked (the pod network is known here).
    let doc = run(&view(), vec![suspicious("10.0.5.20", 90)]);
    assert!(doc
        .addresses
        .left_out
        .iter()
        .all(|l| l.address != "10.0.5.20"));
}

/// The policy with `block_ips.load_balancer_addresses: [<ranges>]`.
fn balancers_at(ranges: &str) -> ContainmentPolicy {
    let text = POLICY.replace(
        "never_block: [203.0.113.0/24]",
        &format!("never_block: [203.0.113.0/24]\n  load_balancer_addresses: [{ranges}]"),
    );
    ContainmentPolicy::parse("containment.yaml", &text).expect("parses")
}

#[test]
fn load_balancer_addresses_name_the_balancer_and_lift_the_blanket() {
    let doc = run_policy(
        &balancers_at("10.0.0.0/20, 2600:1f14:aa:5::/64"),
        &behind_hostname_balancer(),
        vec![
            suspicious("10.0.5.20", 90),
            suspicious("10.0.200.9", 80),
            suspicious("2600:1f14:aa:5::20", 30),
            suspicious("2001:db8:77::1", 20),
            suspicious("198.51.100.7", 40),
        ],
    );
    let left = left_out(&doc);
    for a in ["10.0.5.20", "2600:1f14:aa:5::20"] {
        let (reason, why) = left[a];
        assert_eq!(reason, LeftOutReason::LoadBalancer, "{a}");
        assert!(
            why.contains("inside block_ips.load_balancer_addresses"),
            "{a}: {why}"
        );
    }
    // Outside the balancer's named addresses, private and IPv6 clients are blocked again.
    assert_eq!(
        blocked(&doc),
        ["10.0.200.9", "198.51.100.7", "2001:db8:77::1"]
    );
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn load_balancer_addresses_lift_the_blanket_only_for_the_families_they_name() {
    let doc = run_policy(
        &balancers_at("10.0.0.0/20"),
        &behind_hostname_balancer(),
        vec![
            suspicious("10.0.200.9", 80),
            suspicious("2001:db8:77::1", 20),
        ],
    );
    // The IPv6 addresses of the balancer are still unknown.
    let (reason, why) = left_out(&doc)["2001:db8:77::1"];
    assert_eq!(reason, LeftOutReason::LoadBalancer);
    assert!(why.contains("only by hostname"), "{why}");
    assert_eq!(blocked(&doc), ["10.0.200.9"]);
}

#[test]
fn a_balancer_inside_the_cluster_networks_is_named_as_the_balancer() {
    let text = POLICY.replace(
        "never_block: [203.0.113.0/24]",
        "never_block: [203.0.113.0/24]\n  load_balancer_addresses: [10.0.0.0/20]\n  cluster_networks: [10.0.0.0/8]",
    );
    let policy = ContainmentPolicy::parse("containment.yaml", &text).expect("parses");
    let doc = run_policy(
        &policy,
        &behind_hostname_balancer(),
        vec![suspicious("10.0.5.20", 90), suspicious("10.9.0.1", 80)],
    );
    let left = left_out(&doc);
    // The more specific reason wins: an approver reads that the balancer is behind it.
    assert_eq!(left["10.0.5.20"].0, LeftOutReason::LoadBalancer);
    assert!(left["10.0.5.20"].1.contains("load_balancer_addresses"));
    assert_eq!(left["10.9.0.1"].0, LeftOutReason::ClusterNetwork);
    assert!(blocked(&doc).is_empty());
}
