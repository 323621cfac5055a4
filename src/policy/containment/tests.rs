//! `containment.yaml` as a whole: the shipped file, the full test policy, defaults, the checks
//! made with the whole file, quorum, and every refusal naming its field and line.

use std::net::IpAddr;

use super::*;

/// The complete policy other tests use.
const FULL: &str = include_str!("../../../tests/data/policies/containment.yaml");

fn parse(text: &str) -> Result<ContainmentPolicy, String> {
    ContainmentPolicy::parse("containment.yaml", text).map_err(|e| e.to_string())
}

fn name(s: &str) -> DnsLabel {
    DnsLabel::new(s).unwrap()
}

#[test]
fn the_shipped_policy_contains_nothing() {
    let p = ContainmentPolicy::default();
    assert!(p.targets.is_empty() && p.rotate_secrets.is_empty());
    assert!(p.invalidate_sessions.is_empty());
    assert_eq!(p.step_kinds(), []);
    assert_eq!(
        p.sha256(),
        Sha256Digest::of(super::super::DEFAULT_CONTAINMENT.as_bytes())
    );
    let block = p.block_ips.as_ref().unwrap();
    assert_eq!(block.method, BlockMethod::Networkpolicy);
    assert_eq!((block.max_addresses, block.ttl.as_secs()), (100, 86_400));
    assert!(block.cluster_networks.is_empty());
    assert!(block.load_balancer_addresses.is_empty());
    assert_eq!(p.quorum, Quorum::default());
    assert_eq!(p.plan, PlanPolicy::default());
    assert!(!p.plan.propose_on_alert);
}

#[test]
fn the_commented_example_in_the_shipped_policy_parses() {
    // Uncommenting the runbook's example must give a valid policy, so operators can start there.
    // The examples are the commented lines after each "for example:", up to the next blank line;
    // they replace the empty lists they illustrate.
    let (mut text, mut in_example) = (String::new(), false);
    for line in super::super::DEFAULT_CONTAINMENT.lines() {
        if in_example {
            match line.strip_prefix("# ") {
                Some(l) => {
                    text.push_str(l);
                    text.push('\n');
                    continue;
                }
                None => in_example = false,
            }
        }
        if line.starts_with('#') {
            in_example = line.ends_with("for example:");
        } else if !line.ends_with(": []") || line.starts_with(' ') {
            text.push_str(line);
            text.push('\n');
        }
    }
    let p = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(p.targets[0].namespace.as_str(), "waqiti");
    assert_eq!(p.rotate_secrets[0].secret.as_str(), "waqiti-api-keys");
    assert_eq!(
        p.invalidate_sessions[0].path.as_str(),
        "/admin/invalidate-sessions"
    );
    assert_eq!(
        p.step_kinds(),
        [
            StepKind::BlockIps,
            StepKind::RotateSecrets,
            StepKind::InvalidateSessions
        ]
    );
}

#[test]
fn the_full_test_policy_reads_every_field() {
    let p = parse(FULL).unwrap();
    assert_eq!(p.digest, Sha256Digest::of(FULL.as_bytes()));
    let t = p.target(&name("api-gateway")).unwrap();
    assert_eq!(t.namespace.as_str(), "waqiti");
    assert_eq!(t.pod_selector.to_query(), "app=api-gateway");
    assert_eq!(t.block_policy_name(), "custody-block-api-gateway");
    assert!(p.target(&name("web")).is_none());

    let r = &p.rotate_secrets[0];
    assert_eq!(
        (r.target.as_str(), r.secret.as_str()),
        ("api-gateway", "gateway-api-keys")
    );
    assert_eq!(r.keys.len(), 2);
    assert_eq!(r.deployments[0].as_str(), "api-gateway");

    let s = &p.invalidate_sessions[0];
    assert_eq!(
        (s.port, s.method, s.scope),
        (9000, HttpMethod::Post, Scope::PerPod)
    );
    assert_eq!(s.path.as_str(), "/admin/sessions/revoke");
    assert_eq!(s.header.as_str(), "X-Custody-Admin-Token");
    assert_eq!(
        (s.token.secret.as_str(), s.token.key.as_str()),
        ("gateway-admin", "token")
    );
    assert!(s.idempotent);
    let ips: Vec<IpAddr> = vec!["198.51.100.9".parse().unwrap()];
    assert_eq!(
        s.render_body(&ips).unwrap(),
        r#"{"clients": ["198.51.100.9"]}"#
    );
    assert_eq!(p.quorum.required_for(&p.step_kinds()), 2);
}

#[test]
fn sections_left_out_take_their_defaults() {
    let p = parse("targets: []\n").unwrap();
    assert_eq!(p.block_ips, None);
    assert_eq!(p.quorum, Quorum::default());
    assert_eq!(p.plan.not_after.as_secs(), 2 * 3600);
    assert_eq!(p.plan.veto, Veto::AnyReject);
    let p =
        parse("targets: []\nblock_ips: {method: cilium}\nquorum: {rotate_secrets: 3}\n").unwrap();
    let block = p.block_ips.unwrap();
    assert_eq!(block.method, BlockMethod::Cilium);
    assert_eq!(
        (block.max_addresses, block.ttl.to_string()),
        (100, "24h".into())
    );
    assert_eq!((p.quorum.block_ips, p.quorum.rotate_secrets), (2, 3));
    let e = parse("block_ips: {method: cilium}\n").unwrap_err();
    assert!(e.contains("missing field `targets`"), "{e}");
}

#[test]
fn quorum_is_the_largest_among_the_steps() {
    let q = Quorum {
        block_ips: 2,
        rotate_secrets: 3,
        invalidate_sessions: 1,
        rollback: 1,
    };
    assert_eq!(q.required_for(&[StepKind::BlockIps]), 2);
    assert_eq!(q.required_for(&[StepKind::ReleaseIps]), 1);
    assert_eq!(q.required_for(&[StepKind::InvalidateSessions]), 1);
    assert_eq!(
        q.required_for(&[StepKind::InvalidateSessions, StepKind::RotateSecrets]),
        3
    );
    // A plan with no steps is never approved with less than any kind needs.
    assert_eq!(q.required_for(&[]), 3);
}

#[test]
fn never_block_always_includes_the_detection_allowlist() {
    let p = parse(FULL).unwrap();
    let block = p.block_ips.unwrap();
    let allow = [
        Cidr::parse("10.0.0.0/8").unwrap(),
        Cidr::parse("203.0.113.0/24").unwrap(),
    ];
    let all: Vec<String> = block
        .never_block_with(&allow)
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(all, ["203.0.113.0/24", "10.0.0.0/8"]);
    assert_eq!(block.never_block_with(&[]).len(), 1);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(block.is_never_blocked(&ip("10.1.2.3"), &allow));
    assert!(block.is_never_blocked(&ip("::ffff:203.0.113.5"), &[]));
    assert!(!block.is_never_blocked(&ip("198.51.100.1"), &allow));
}

#[test]
fn the_digest_is_of_the_exact_bytes() {
    let a = parse(FULL).unwrap();
    let b = parse(&format!("{FULL}\n# a comment\n")).unwrap();
    assert_eq!(a.targets, b.targets);
    assert_ne!(a.sha256(), b.sha256());
}

/// Each refusal: the text replaced in `FULL`, its replacement, the field and line the error
/// names, and what it says.
#[test]
fn every_refusal_names_its_field_and_line() {
    let second_target = "  - name: api-gateway\n    namespace: waqiti\n    pod_selector:\n      matchLabels:\n        app: api-gateway\nblock_ips:";
    let cases: &[(&str, &str, &str, u32, &str)] = &[
        ("plan:", "plans: {}\nplan:", "", 36, "unknown field `plans`"),
        (
            "name: api-gateway\n    namespace",
            "name: API\n    namespace",
            "targets[0].name",
            3,
            "DNS-1123 label",
        ),
        (
            "namespace: waqiti",
            "namespace: waqiti.prod",
            "targets[0].namespace",
            4,
            "DNS-1123 label",
        ),
        (
            "    pod_selector:\n      matchLabels:\n        app: api-gateway\n",
            "    pod_selector: {}\n",
            "targets[0].pod_selector",
            5,
            "an empty selector selects every pod",
        ),
        (
            "      matchLabels:\n        app: api-gateway\n",
            "      matchLabels:\n        app: api-gateway\n      namespaceSelector: {}\n",
            "targets[0].pod_selector",
            8,
            "unknown field `namespaceSelector`",
        ),
        (
            "    namespace: waqiti\n",
            "    namespace: waqiti\n    labels_from_alert: true\n",
            "targets[0]",
            5,
            "unknown field `labels_from_alert`",
        ),
        (
            "block_ips:",
            second_target,
            "targets[1].name",
            8,
            "\"api-gateway\" is used twice (first at line 3)",
        ),
        (
            "method: networkpolicy",
            "method: iptables",
            "block_ips.method",
            9,
            "unknown variant `iptables`",
        ),
        (
            "never_block: [203.0.113.0/24]",
            "never_block: [203.0.113.0/24, 10.0.0.0/33]",
            "block_ips.never_block[1]",
            10,
            "not an address or CIDR range",
        ),
        (
            "never_block: [203.0.113.0/24]",
            "never_block: [203.0.113.0/24]\n  cluster_networks: [10.0.0.0/8, pods]",
            "block_ips.cluster_networks[1]",
            11,
            "\"pods\" is not an address or CIDR range",
        ),
        (
            "never_block: [203.0.113.0/24]",
            "never_block: [203.0.113.0/24]\n  cluster_networks: 10.0.0.0/8",
            "block_ips.cluster_networks",
            11,
            "line",
        ),
        (
            "never_block: [203.0.113.0/24]",
            "never_block: [203.0.113.0/24]\n  load_balancer_addresses: [10.0.0.0/16, alb.example]",
            "block_ips.load_balancer_addresses[1]",
            11,
            "\"alb.example\" is not an address or CIDR range",
        ),
        (
            "never_block: [203.0.113.0/24]",
            "never_block: [203.0.113.0/24]\n  cluster_network: [10.0.0.0/8]",
            "block_ips",
            11,
            "unknown field `cluster_network`",
        ),
        (
            "max_addresses: 100",
            "max_addresses: 0",
            "block_ips.max_addresses",
            11,
            "0 is out of range: give 1 to 10000",
        ),
        (
            "max_addresses: 100",
            "max_addresses: 10001",
            "block_ips.max_addresses",
            11,
            "out of range",
        ),
        (
            "ttl: 24h",
            "ttl: 30s",
            "block_ips.ttl",
            12,
            "30s is out of range: give 1m to 90d",
        ),
        ("ttl: 24h", "ttl: 91d", "block_ips.ttl", 12, "out of range"),
        (
            "ttl: 24h",
            "ttl: forever",
            "block_ips.ttl",
            12,
            "not a duration",
        ),
        (
            "  - target: api-gateway\n    secret",
            "  - target: web\n    secret",
            "rotate_secrets[0].target",
            14,
            "\"web\" names no target (targets: api-gateway)",
        ),
        (
            "keys_complete: true",
            "keys_complete: false",
            "rotate_secrets[0]",
            14,
            "custody must know the Secret's whole key set",
        ),
        (
            "    keys_complete: true\n",
            "",
            "rotate_secrets[0]",
            14,
            "keys_complete is missing",
        ),
        (
            "generate: 32",
            "generate: 15",
            "rotate_secrets[0].keys.API_KEY",
            17,
            "give 16 to 1024",
        ),
        (
            "deployments: [api-gateway]",
            "deployments: []",
            "rotate_secrets[0]",
            14,
            "at least one Deployment",
        ),
        (
            "  - target: api-gateway\n    port",
            "  - target: web\n    port",
            "invalidate_sessions[0].target",
            22,
            "\"web\" names no target",
        ),
        (
            "port: 9000",
            "port: 0",
            "invalidate_sessions[0].port",
            23,
            "give 1 to 65535",
        ),
        (
            "path: /admin/sessions/revoke",
            "path: /admin/../../api",
            "invalidate_sessions[0].path",
            25,
            "'..'",
        ),
        (
            "{{addresses}}",
            "{{secret}}",
            "invalidate_sessions[0].body",
            26,
            "the only one is {{addresses}}",
        ),
        (
            "header: X-Custody-Admin-Token",
            "header: Authorization",
            "invalidate_sessions[0].header",
            28,
            "the API server consumes it on pods/proxy",
        ),
        // A missing field is found at the entry's end.
        (
            "    idempotent: true\n",
            "",
            "invalidate_sessions[0]",
            30,
            "missing field `idempotent`",
        ),
        (
            "timeout: 10s",
            "timeout: 10m",
            "invalidate_sessions[0].timeout",
            31,
            "give 1s to 5m",
        ),
        (
            "  block_ips: 2",
            "  block_ips: 0",
            "quorum.block_ips",
            33,
            "0 approvals is out of range: give 1 to 20",
        ),
        (
            "  rotate_secrets: 2",
            "  rotate_secrets: 21",
            "quorum.rotate_secrets",
            34,
            "out of range",
        ),
        (
            "  invalidate_sessions: 2\n",
            "  invalidate_sessions: 2\n  rollback: 21\n",
            "quorum.rollback",
            36,
            "out of range",
        ),
        (
            "not_after: 2h",
            "not_after: 4m",
            "plan.not_after",
            37,
            "4m is out of range: give 5m to 7d",
        ),
        (
            "not_after: 2h",
            "not_after: 8d",
            "plan.not_after",
            37,
            "out of range",
        ),
        (
            "veto: any_reject",
            "veto: majority",
            "plan.veto",
            38,
            "unknown variant `majority`",
        ),
        (
            "propose_on_alert: false",
            "propose_on_alert: maybe",
            "plan.propose_on_alert",
            39,
            "line",
        ),
    ];
    for (from, to, field, line, want) in cases {
        assert!(FULL.contains(from), "{from}");
        let text = FULL.replacen(from, to, 1);
        let e = parse(&text).unwrap_err();
        let prefix = if field.is_empty() {
            "containment.yaml: ".to_owned()
        } else {
            format!("containment.yaml: {field}")
        };
        assert!(e.starts_with(&prefix), "{to}: {e}");
        assert!(e.contains(want), "{to}: {e}");
        assert!(e.contains(&format!("line {line}")), "{to}: {e}");
    }
}

#[test]
fn a_secret_is_rotated_once() {
    let twice = FULL.replacen(
        "invalidate_sessions:",
        "  - target: api-gateway\n    secret: gateway-api-keys\n    keys: {A: provided}\n    keys_complete: true\n    deployments: [other]\ninvalidate_sessions:",
        1,
    );
    let e = parse(&twice).unwrap_err();
    assert!(
        e.contains("rotate_secrets[1].secret: Secret waqiti/gateway-api-keys is rotated twice (first at line 14) at line 21"),
        "{e}"
    );
}

#[test]
fn steps_without_targets_are_refused() {
    let text = "targets: []\ninvalidate_sessions:\n  - target: api-gateway\n    port: 80\n    method: POST\n    path: /x\n    token: {secret: s, key: k}\n    header: X-T\n    scope: once\n    idempotent: false\n";
    let e = parse(text).unwrap_err();
    assert!(
        e.contains("invalidate_sessions[0].target: \"api-gateway\" names no target (`targets` is empty) at line 3"),
        "{e}"
    );
}
