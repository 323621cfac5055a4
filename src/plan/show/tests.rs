//! `plan show`'s text: order (warnings first), escaping of everything from outside, the diff,
//! each step kind's detail, the quorum and the commands, and determinism.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::containment::netpol::Owner;
use crate::id::{BundleId, CaseId, KeyId, PlanId};
use crate::plan::document::*;

/// What an attacker puts in a log line: ESC, CR, BEL, a right-to-left override and NUL.
const HOSTILE: &str = "\u{1b}]0;pwned\u{7}\r\u{202e}\u{0}";

fn fingerprint(c: char) -> KeyFingerprint {
    format!("SHA256:{}A", c.to_string().repeat(42))
        .parse()
        .unwrap()
}

fn digest(b: u8) -> Sha256Digest {
    Sha256Digest::from_bytes([b; 32])
}

fn block_step() -> Step {
    let before = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-web", "namespace": "shop", "resourceVersion": "41",
            "uid": "0b5e", "generation": 3, "managedFields": [{"manager": "helm"}],
            "annotations": {"note": format!("x{HOSTILE}")}},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 8080}]}]},
        "status": {}
    });
    let mut after = before.clone();
    after["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"] = json!(["203.0.113.9/32"]);
    let owner = Owner {
        case: CaseId::new("case-1").unwrap(),
        plan: PlanId::new("plan-1").unwrap(),
        expires_at: time::macros::datetime!(2026-12-02 06:00 UTC),
    };
    Step {
        number: 1,
        kind: StepKind::BlockIps,
        target: "web".into(),
        namespace: "shop".into(),
        status: StepStatus::Planned,
        refusals: vec![],
        warnings: vec![format!(
            "Service web has externalTrafficPolicy: Cluster{HOSTILE}"
        )],
        read: vec![ObjectRef {
            api_version: "networking.k8s.io/v1".into(),
            kind: "NetworkPolicy".into(),
            namespace: Some("shop".into()),
            name: "allow-web".into(),
            resource_version: Some("41".into()),
        }],
        changes: vec![ObjectChange {
            op: ChangeOp::Replace,
            object: ObjectRef {
                api_version: "networking.k8s.io/v1".into(),
                kind: "NetworkPolicy".into(),
                namespace: Some("shop".into()),
                name: "allow-web".into(),
                resource_version: Some("41".into()),
            },
            before: Some(before),
            after: Some(after),
            patch: None,
            dry_run: DryRun::Accepted { warnings: vec![] },
        }],
        preconditions: Preconditions {
            network_policies: BTreeMap::from([("allow-web".into(), "41".into())]),
            selecting: vec!["allow-web".into()],
            deployment_refs: BTreeMap::new(),
            other_engine_policies: BTreeMap::new(),
        },
        detail: StepDetail::BlockIps {
            method: "networkpolicy".into(),
            addresses: vec!["203.0.113.9".into()],
            owners: BTreeMap::from([("203.0.113.9".into(), vec![owner])]),
        },
    }
}

fn rotate_step() -> Step {
    let path = "/spec/template/spec/containers/0/env/2/valueFrom/secretKeyRef/name";
    Step {
        number: 2,
        kind: StepKind::RotateSecrets,
        target: "web".into(),
        namespace: "shop".into(),
        status: StepStatus::Refused,
        refusals: vec![format!(
            "StatefulSet cache{HOSTILE} also references Secret api-keys"
        )],
        warnings: vec![],
        read: vec![],
        changes: vec![ObjectChange {
            op: ChangeOp::Patch,
            object: ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("shop".into()),
                name: "web".into(),
                resource_version: Some("9".into()),
            },
            before: None,
            after: None,
            patch: Some(json!([
                {"op": "test", "path": path, "value": "api-keys"},
                {"op": "replace", "path": path, "value": "api-keys-plan-1-<random>"},
            ])),
            dry_run: DryRun::NotRun {
                why: "the step is refused".into(),
            },
        }],
        preconditions: Preconditions::default(),
        detail: StepDetail::RotateSecrets {
            secret: "api-keys".into(),
            new_name_prefix: "api-keys-plan-1".into(),
            keys: BTreeMap::from([
                (
                    "API_KEY".into(),
                    KeyPlan::Generate {
                        bytes: 32,
                        encoding: "base64".into(),
                    },
                ),
                ("PARTNER".into(), KeyPlan::Provided),
            ]),
            deployments: vec![Repoint {
                deployment: "web".into(),
                references: vec![Reference {
                    path: path.into(),
                    value: "api-keys".into(),
                    key: Some("API_KEY".into()),
                }],
            }],
        },
    }
}

fn invalidate_step() -> Step {
    Step {
        number: 3,
        kind: StepKind::InvalidateSessions,
        target: "web".into(),
        namespace: "shop".into(),
        status: StepStatus::Planned,
        refusals: vec![],
        warnings: vec!["pod web-2 is not Ready".into()],
        read: vec![],
        changes: vec![],
        preconditions: Preconditions::default(),
        detail: StepDetail::InvalidateSessions {
            call: AdminCall {
                method: "POST".into(),
                port: 9000,
                path: format!("/admin/sessions{HOSTILE}"),
                body: Some("{\"ips\":[\"203.0.113.9\"]}".into()),
                header: "X-Admin-Token".into(),
                token_secret: "gateway-admin".into(),
                token_key: "token".into(),
            },
            scope: "per_pod".into(),
            idempotent: false,
            timeout_seconds: 10,
            pods: vec![
                PodState {
                    name: "web-1".into(),
                    ready: true,
                    resource_version: None,
                },
                PodState {
                    name: "web-2".into(),
                    ready: false,
                    resource_version: None,
                },
            ],
        },
    }
}

fn doc() -> PlanDoc {
    PlanDoc {
        format: PLAN_FORMAT.into(),
        case: CaseId::new("case-1").unwrap(),
        plan: PlanId::new("plan-1").unwrap(),
        kind: PlanKind::Containment,
        evidence: PinnedEvidence {
            bundles: vec![PinnedBundle {
                bundle: BundleId::new("logs-1").unwrap(),
                archive_sha256: digest(1),
            }],
            journal_head: JournalHead {
                seq: 7,
                sha256: digest(2),
            },
        },
        cluster: ClusterIdentity {
            kube_system_uid: "5f1c".into(),
            server: "https://10.0.0.1:6443".into(),
        },
        proposer: ProposerClaim::Collector {
            key_id: KeyId::new("abcd1234").unwrap(),
        },
        created_at: "2026-12-02T04:00:00Z".into(),
        not_after: "2026-12-02T06:00:00Z".into(),
        quorum: QuorumNeed {
            required: 2,
            by_kind: BTreeMap::from([(StepKind::BlockIps, 2), (StepKind::RotateSecrets, 2)]),
            veto: "any_reject".into(),
        },
        policy_sha256: digest(3),
        roster_sha256: digest(4),
        addresses: Addresses {
            block: vec![BlockedAddress {
                address: "203.0.113.9".into(),
                rules: vec![format!("brute-force{HOSTILE}")],
                requests: 120,
                auth_failures: 80,
                first_seen: Some("2026-12-02T03:00:00Z".into()),
                last_seen: None,
                sources: vec![format!("pod shop/web-1{HOSTILE}")],
                forwarded: true,
                expires_at: "2026-12-02T06:00:00Z".into(),
            }],
            left_out: vec![LeftOut {
                address: format!("10.0.0.5{HOSTILE}"),
                reason: LeftOutReason::NotAnAddress,
                message: format!("not an IP address{HOSTILE}"),
            }],
        },
        steps: vec![block_step(), rotate_step(), invalidate_step()],
        rolls_back: None,
    }
}

fn status() -> ShowStatus {
    ShowStatus {
        required: 2,
        counted: 1,
        approvals: vec![
            ShownApproval {
                approval: 1,
                principal: Principal::new("alice@example.org").unwrap(),
                key_fingerprint: fingerprint('A'),
                decision: Decision::Approve,
                reason: format!("looks right{HOSTILE}"),
                signed_at: "2026-12-02T04:10:00Z".into(),
                not_counted: None,
            },
            ShownApproval {
                approval: 2,
                principal: Principal::new("bob@example.org").unwrap(),
                key_fingerprint: fingerprint('B'),
                decision: Decision::Approve,
                reason: String::new(),
                signed_at: "2026-12-02T04:11:00Z".into(),
                not_counted: Some(format!("key not in the roster in force{HOSTILE}")),
            },
        ],
        reached: false,
        rejected: false,
        expired: false,
        unreadable: Vec::new(),
        reasons: Vec::new(),
    }
}

fn hint() -> ApproveHint {
    ApproveHint {
        store_args: vec!["--store".into(), "s3://evidence bucket/it's".into()],
        ..ApproveHint::default()
    }
}

fn text() -> String {
    render_text(&doc(), &digest(9), &status(), &hint())
}

#[test]
fn nothing_from_outside_reaches_the_terminal_raw() {
    let text = text();
    for c in text.chars() {
        assert!(
            c == '\n' || !(c.is_control() || matches!(c, '\u{202a}'..='\u{202e}')),
            "raw {c:?} in:\n{text}"
        );
    }
    // Every hostile field is there, escaped: addresses, rules, sources, reasons, messages,
    // paths, warnings, refusals, object fields, approvals.
    let escaped = "\\x1b]0;pwned\\x07\\x0d\\u{202e}\\x00";
    assert!(text.matches(escaped).count() >= 10, "{text}");
}

#[test]
fn warnings_and_refusals_come_right_after_the_header() {
    let text = text();
    let at = |s: &str| {
        text.find(s)
            .unwrap_or_else(|| panic!("{s} missing in:\n{text}"))
    };
    assert!(at("not after:") < at("WARNINGS (2)"));
    assert!(at("WARNINGS (2)") < at("REFUSED STEPS (1)"));
    assert!(at("REFUSED STEPS (1)") < at("ADDRESSES TO BLOCK (1)"));
    assert!(at("ADDRESSES LEFT OUT (1)") < at("STEP 1 of 3: block_ips"));
    assert!(at("STEP 3 of 3") < at("QUORUM: 2 approvals required"));
    assert!(text.contains("  1. [step 1 block_ips] Service web has externalTrafficPolicy"));
    assert!(text.contains("  2. [step 3 invalidate_sessions] pod web-2 is not Ready"));
    assert!(text
        .contains("STEP 2 of 3: rotate_secrets  target \"web\" in namespace \"shop\"  [REFUSED]"));
    assert!(text.contains("  !! REFUSED: StatefulSet cache\\x1b"));
}

#[test]
fn the_header_pins_what_the_plan_was_built_from() {
    let text = text();
    for line in [
        "PLAN plan-1 of case case-1 (containment)",
        &format!("  sha256:     {}", digest(9)),
        "  proposer:   the daemon, signed by collector key abcd1234",
        "  not after:  2026-12-02T06:00:00Z\n",
        &format!("  policy:     containment.yaml sha256 {}", digest(3)),
        &format!(
            "  roster:     approvers.allowed_signers sha256 {}",
            digest(4)
        ),
        &format!("    bundle logs-1  archive sha256 {}", digest(1)),
        &format!("    journal head: entry 7 sha256 {}", digest(2)),
        "FROM X-Forwarded-For",
    ] {
        assert!(text.contains(line), "{line:?} missing in:\n{text}");
    }
}

#[test]
fn a_replace_is_a_diff_without_server_fields() {
    let text = text();
    assert!(text.contains("  Change 1: replace networking.k8s.io/v1 NetworkPolicy shop/allow-web (resourceVersion \"41\")"));
    assert!(text.contains("    Dry-run (dryRun=All): accepted"));
    assert!(
        text.contains("    --- before\n    +++ after\n    @@ "),
        "{text}"
    );
    assert!(
        text.contains("\n    +            except:\n    +              - \"203.0.113.9/32\"\n"),
        "{text}"
    );
    for stripped in [
        "managedFields",
        "uid:",
        "generation:",
        "resourceVersion: ",
        "status:",
    ] {
        assert!(!text.contains(stripped), "{stripped} shown in:\n{text}");
    }
    assert!(text.contains("NetworkPolicy \"allow-web\" still at resourceVersion \"41\""));
}

#[test]
fn a_rotation_shows_keys_and_references_never_values() {
    let text = text();
    assert!(text.contains("    \"API_KEY\"  generated: 32 random bytes, base64"));
    assert!(text.contains("    \"PARTNER\"  provided at execution (--secret-values)"));
    assert!(text.contains("    /spec/template/spec/containers/0/env/2/valueFrom/secretKeyRef/name: \"api-keys\" -> api-keys-plan-1-<random>  (key \"API_KEY\")"));
    assert!(text.contains("      test \"/spec/template/spec/containers/0/env/2/valueFrom/secretKeyRef/name\" = \"api-keys\""));
    assert!(text.contains("revoke the key at its issuer"));
}

#[test]
fn a_session_call_names_the_token_source_never_the_token() {
    let text = text();
    assert!(text.contains("  Call: POST port 9000 path \"/admin/sessions\\x1b"));
    assert!(text.contains("  Token: from Secret \"gateway-admin\" key \"token\", sent in header \"X-Admin-Token\" (never shown)"));
    assert!(
        text.contains("  Body: \"{\\\"ips\\\":[\\\"203.0.113.9\\\"]}\""),
        "{text}"
    );
    assert!(text.contains("idempotent: NO"));
    assert!(text.contains("    web-2  NOT ready"));
    assert!(text.contains("No server-side dry-run: pods/proxy does not support it."));
}

#[test]
fn the_quorum_and_the_exact_commands_are_shown() {
    let text = text();
    assert!(text
        .contains("QUORUM: 2 approvals required (block_ips 2, rotate_secrets 2; veto any_reject)"));
    assert!(text.contains("  collected 1 of 2: not reached"));
    assert!(text.contains(&format!(
        "  #1 \"alice@example.org\" {} approve",
        fingerprint('A')
    )));
    assert!(text.contains("  NOT counted: key not in the roster in force\\x1b"));
    let sha = canonical_digest(&doc());
    assert!(text.contains(&format!(
        "  custody approve case-1 plan-1 --key ~/.ssh/id_ed25519 --sha256 {sha} --store 's3://evidence bucket/it'\\''s'\n"
    )), "{text}");
    assert!(text.contains(&format!(
        "  custody approve case-1 plan-1 --key ~/.ssh/id_ed25519 --sha256 {sha} --reject --reason WHY --store"
    )));
}

#[test]
fn an_expired_or_rejected_plan_offers_no_approval() {
    let mut s = status();
    s.expired = true;
    let text = render_text(&doc(), &digest(9), &s, &hint());
    assert!(text.contains("  not after:  2026-12-02T06:00:00Z  EXPIRED\n"));
    assert!(text.contains("The plan has expired"));
    assert!(!text.contains("custody approve"));
    s.expired = false;
    s.rejected = true;
    let text = render_text(&doc(), &digest(9), &s, &hint());
    assert!(text.contains(": REJECTED\n"));
    assert!(!text.contains("custody approve"));
}

#[test]
fn the_same_plan_gives_the_same_bytes() {
    assert_eq!(text(), text());
    // An object whose fields arrive in another order shows the same.
    let mut other = doc();
    let ObjectChange { after, .. } = &mut other.steps[0].changes[0];
    let reordered: serde_json::Map<String, serde_json::Value> = after
        .as_ref()
        .and_then(|a| a.as_object())
        .unwrap()
        .iter()
        .rev()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    *after = Some(serde_json::Value::Object(reordered));
    assert_eq!(render_text(&other, &digest(9), &status(), &hint()), text());
}

#[test]
fn json_is_the_plan_its_digest_and_the_status() {
    let v = render_json(&doc(), &digest(9), &status());
    assert_eq!(v["sha256"], json!(digest(9).to_hex()));
    assert_eq!(v["plan"], serde_json::to_value(doc()).unwrap());
    assert_eq!(v["status"]["counted"], json!(1));
    assert_eq!(
        v["status"]["approvals"][1]["principal"],
        json!("bob@example.org")
    );
    let back: PlanDoc = serde_json::from_value(v["plan"].clone()).unwrap();
    assert_eq!(back, doc());
}

#[test]
fn a_person_proposer_and_a_create_are_shown() {
    let mut d = doc();
    d.proposer = ProposerClaim::Person {
        principal: Principal::new("carol@example.org").unwrap(),
        key_fingerprint: fingerprint('C'),
    };
    let change = &mut d.steps[0].changes[0];
    change.op = ChangeOp::Create;
    change.before = None;
    let text = render_text(&d, &digest(9), &status(), &ApproveHint::default());
    assert!(text.contains(&format!(
        "  proposer:   \"carol@example.org\" with key {}",
        fingerprint('C')
    )));
    assert!(
        text.contains("    --- (none)\n    +++ after\n    @@ -0,0 +1,"),
        "{text}"
    );
    let sha = canonical_digest(&d);
    assert!(text.contains(&format!(
        "  custody approve case-1 plan-1 --key ~/.ssh/id_ed25519 --sha256 {sha}\n"
    )));
}

/// The SHA-256 of the plan's canonical bytes, which the approve command names.
fn canonical_digest(d: &PlanDoc) -> Sha256Digest {
    Sha256Digest::of(&crate::canonical::to_vec(d).unwrap())
}

#[test]
fn the_api_servers_dry_run_warnings_and_refusals_are_among_the_warnings() {
    let mut d = doc();
    d.steps[0].changes[0].dry_run = DryRun::Accepted {
        warnings: vec!["spec.ingress[0]: deprecated\u{1b}".into()],
    };
    let mut refused = d.steps[0].changes[0].clone();
    refused.dry_run = DryRun::Refused {
        code: 422,
        reason: "Invalid".into(),
        message: "except must be a strict subset of cidr".into(),
    };
    d.steps[0].changes.push(refused);
    let text = render_text(&d, &digest(9), &status(), &hint());
    assert!(text.contains("WARNINGS (4): read these first"), "{text}");
    assert!(text.contains("  3. [step 1 block_ips] change 1: the API server warns: spec.ingress[0]: deprecated\\x1b\n"));
    assert!(text.contains(
        "  4. [step 1 block_ips] change 2: the API server's dry-run REFUSED it (422 Invalid)\n"
    ));
    assert!(text.contains("    !! Dry-run (dryRun=All): REFUSED 422 Invalid: except must be a strict subset of cidr\n"));
}

/// The plan with `s` in every field that comes from outside.
fn doc_holding(s: &str) -> PlanDoc {
    let mut d = doc();
    d.addresses.block[0].address = s.to_owned();
    d.addresses.left_out[0].address = s.to_owned();
    d.steps[0].warnings = vec![s.to_owned()];
    d.steps[1].refusals = vec![s.to_owned()];
    if let StepDetail::InvalidateSessions { call, .. } = &mut d.steps[2].detail {
        call.path = s.to_owned();
    }
    if let Some(after) = &mut d.steps[0].changes[0].after {
        // `k…` sorts before the existing `note`, so the diff's shape does not depend on `s`.
        after["metadata"]["annotations"][format!("k{s}")] = serde_json::Value::String(s.to_owned());
    }
    d
}

proptest::proptest! {
    // Whatever the logs and the cluster hold, nothing a terminal acts on is printed, and no
    // field makes a line of its own.
    #[test]
    fn any_outside_text_is_printed_escaped(s in proptest::prelude::any::<String>()) {
        let text = render_text(&doc_holding(&s), &digest(9), &status(), &hint());
        let raw = text.chars().any(|c| {
            c != '\n'
                && (c.is_control()
                    || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'))
        });
        proptest::prop_assert!(!raw, "raw control character");
        let plain = render_text(&doc_holding("x"), &digest(9), &status(), &hint());
        proptest::prop_assert_eq!(text.lines().count(), plain.lines().count());
    }
}

#[test]
fn every_left_out_reason_is_shown_by_its_name() {
    let mut d = doc();
    d.addresses.left_out = vec![
        LeftOut {
            address: "10.32.7.7".into(),
            reason: LeftOutReason::ClusterNetwork,
            message: "never blocked: inside block_ips.cluster_networks (10.0.0.0/8)".into(),
        },
        LeftOut {
            address: "192.168.77.5".into(),
            reason: LeftOutReason::PodNetworkUnknown,
            message: "never blocked: a private address while the pod network is not known".into(),
        },
        LeftOut {
            address: "192.168.1.9".into(),
            reason: LeftOutReason::PodCidr,
            message: "never blocked: inside pod CIDR 192.168.0.0/16 of Calico IPPool default"
                .into(),
        },
        LeftOut {
            address: "198.51.100.250".into(),
            reason: LeftOutReason::TrustedProxy,
            message: "never blocked: a trusted proxy in formats.yaml's trusted_proxies (198.51.100.250/32)".into(),
        },
    ];
    let text = render_text(&d, &digest(9), &status(), &hint());
    for line in [
        "ADDRESSES LEFT OUT (4)\n",
        "  \"10.32.7.7\"  cluster_network: never blocked: inside block_ips.cluster_networks (10.0.0.0/8)\n",
        "  \"192.168.77.5\"  pod_network_unknown: never blocked: a private address while the pod network is not known\n",
        "  \"192.168.1.9\"  pod_cidr: never blocked: inside pod CIDR 192.168.0.0/16 of Calico IPPool default\n",
        "  \"198.51.100.250\"  trusted_proxy: never blocked: a trusted proxy in formats.yaml's trusted_proxies (198.51.100.250/32)\n",
    ] {
        assert!(text.contains(line), "{line:?} missing in:\n{text}");
    }
    let v = render_json(&d, &digest(9), &status());
    let reasons: Vec<&str> = v["plan"]["addresses"]["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "cluster_network",
            "pod_network_unknown",
            "pod_cidr",
            "trusted_proxy"
        ]
    );
    let back: PlanDoc = serde_json::from_value(v["plan"].clone()).unwrap();
    assert_eq!(back.addresses.left_out, d.addresses.left_out);
}

#[test]
fn another_engines_pinned_policies_are_shown_with_their_versions() {
    let mut d = doc();
    d.steps[0].preconditions.other_engine_policies = BTreeMap::from([(
        format!("BaselineAdminNetworkPolicy default{HOSTILE}"),
        "77".into(),
    )]);
    let text = render_text(&d, &digest(9), &status(), &hint());
    let line = text
        .lines()
        .find(|l| l.contains("another engine's policy"))
        .unwrap_or_else(|| panic!("no line for it:\n{text}"));
    assert!(
        line.contains("BaselineAdminNetworkPolicy default\\x1b"),
        "{line}"
    );
    assert!(line.contains("still at resourceVersion \"77\""), "{line}");
}
