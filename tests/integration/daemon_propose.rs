//! A person's proposal through the daemon, over real HTTP with the fake API server as the
//! cluster: `custody plan propose --server` asks for a draft naming carol's key, signs its
//! exact bytes with real `ssh-keygen` and sends it back; the plan is carol's (journaled as hers,
//! her approval not counted). What the two requests refuse: a draft changed after it was built,
//! a draft signed by another key, a key the roster does not let propose, an unsigned request, the
//! same proposal twice. And `approve --server` checks the proposer's signature on the bytes it
//! signs: a daemon's plan against the collector key given (`--public-key`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::approval::{ssh_key, SshKey};
use crate::daemon::{
    daemon_config, fire_breach, gateway_cluster, http, journal_kinds, start, wait_sealed,
    ANALYST_TOKEN,
};
use crate::daemon_plans::{json_of, wait_plan, CONTAINMENT};
use crate::util::Sandbox;

/// A POST to the daemon with the analyst token: its status and body.
type Post<'a> = dyn Fn(&str, &[u8]) -> (u16, String) + 'a;

struct Team {
    alice: SshKey,
    bob: SshKey,
    carol: SshKey,
    mallory: SshKey,
}

/// alice and bob approve; carol may also propose; mallory is not in the roster.
fn policies(sb: &Sandbox) -> Team {
    let dir = sb.path("daemon/policies");
    std::fs::create_dir_all(&dir).unwrap();
    let keys = sb.path("ssh");
    std::fs::create_dir_all(&keys).unwrap();
    let team = Team {
        alice: ssh_key(&keys, "alice"),
        bob: ssh_key(&keys, "bob"),
        carol: ssh_key(&keys, "carol"),
        mallory: ssh_key(&keys, "mallory"),
    };
    let roster = format!(
        "alice@example.org namespaces=\"custody-approval\" {}\n\
         bob@example.org namespaces=\"custody-approval\" {}\n\
         carol@example.org namespaces=\"custody-approval,custody-proposal\" {}\n",
        team.alice.openssh, team.bob.openssh, team.carol.openssh
    );
    std::fs::write(dir.join("approvers.allowed_signers"), roster).unwrap();
    std::fs::write(dir.join("containment.yaml"), CONTAINMENT).unwrap();
    team
}

fn signed(plan_json: &str, draft_signature: &str, by: &SshKey) -> Vec<u8> {
    let sig =
        custody::approval::statement::sign_proposal(&by.private, plan_json.as_bytes()).unwrap();
    serde_json::to_vec(&json!({
        "plan_json": plan_json,
        "draft_signature": draft_signature,
        "signature": String::from_utf8(sig).unwrap(),
    }))
    .unwrap()
}

#[test]
fn a_person_proposes_through_the_daemon_and_the_proposer_is_checked_everywhere() {
    let sb = Sandbox::new();
    let kube = gateway_cluster();
    kube.object(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}),
    );
    let team = policies(&sb);
    let store = sb.path("evidence");
    let config = daemon_config(
        &sb,
        store.to_str().unwrap(),
        Some(&kube),
        "policies: policies\n",
    );
    let d = start(&sb, &config, "daemon");
    let server = format!("http://127.0.0.1:{}", d.port);
    let token = sb.path("daemon/analyst.token");
    let case = fire_breach(d.port)["case_id"].as_str().unwrap().to_owned();
    assert_eq!(
        wait_sealed(d.port, &case, Duration::from_secs(60))["state"],
        "sealed"
    );
    // The daemon's own proposal, after the alert's case was sealed.
    let daemons = wait_plan(d.port, &case, Duration::from_secs(60));
    let plans = format!("/api/v1/cases/{case}/plans");
    let post = |path: &str, body: &[u8]| http(d.port, "POST", path, Some(ANALYST_TOKEN), body);

    // carol proposes with her key through the daemon.
    let out = sb.run(&[
        "plan",
        "propose",
        &case,
        "--key",
        team.carol.private.to_str().unwrap(),
        "--server",
        &server,
        "--token-file",
        token.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let proposed = json_of(&String::from_utf8_lossy(&out.stdout));
    let carols = proposed["plan"].as_str().unwrap().to_owned();
    assert_ne!(carols, daemons);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a draft: proposed once you sign it"),
        "{out:?}"
    );
    let (code, body) = http(
        d.port,
        "GET",
        &format!("{plans}/{carols}"),
        Some(ANALYST_TOKEN),
        b"",
    );
    assert_eq!(code, 200, "{body}");
    let view = json_of(&body);
    assert_eq!(view["plan"]["proposer"]["principal"], "carol@example.org");
    assert_eq!(view["proposal_signature"]["kind"], "person");
    assert_eq!(view["sha256"], proposed["plan_sha256"]);
    assert!(
        store
            .join(format!("cases/{case}/plans/{carols}/plan.json.sshsig"))
            .is_file(),
        "the person's signature is stored beside the plan"
    );
    assert!(!store
        .join(format!("cases/{case}/plans/{carols}/plan.json.sig"))
        .exists());
    let kinds = journal_kinds(&store, &case);
    assert_eq!(
        kinds.iter().filter(|k| *k == "plan_proposed").count(),
        2,
        "{kinds:?}"
    );
    let journal = crate::util::journal_entry_paths(&store.join(format!("cases/{case}/journal")))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<String>();
    assert!(journal.contains("carol@example.org"), "{journal}");

    // carol's approval of her own plan is recorded but never counts; alice and bob reach it.
    let digest = view["sha256"].as_str().unwrap().to_owned();
    let approve = |key: &SshKey, plan: &str, digest: &str, extra: &[&str]| {
        let mut args = vec![
            "approve",
            &case,
            plan,
            "--sha256",
            digest,
            "--key",
            key.private.to_str().unwrap(),
            "--server",
            &server,
            "--token-file",
            token.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        sb.run(&args)
    };
    let out = approve(&team.carol, &carols, &digest, &[]);
    assert!(out.status.success(), "{out:?}");
    let counted = |plan: &str| -> Value {
        let (_, body) = http(
            d.port,
            "GET",
            &format!("{plans}/{plan}"),
            Some(ANALYST_TOKEN),
            b"",
        );
        json_of(&body)["status"].clone()
    };
    assert_eq!(counted(&carols)["counted"], 0, "the proposer never counts");
    for key in [&team.alice, &team.bob] {
        let out = approve(key, &carols, &digest, &[]);
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(counted(&carols)["reached"], true);

    refused_proposals(&sb, &team, &post, &plans);

    // The daemon's plan: checked with the collector key the daemon serves (and said so), or
    // refused against another collector key given as the trusted one.
    let (_, body) = http(
        d.port,
        "GET",
        &format!("{plans}/{daemons}"),
        Some(ANALYST_TOKEN),
        b"",
    );
    let daemon_digest = json_of(&body)["sha256"].as_str().unwrap().to_owned();
    let other = sb.path("other-collector.pub");
    std::fs::write(
        &other,
        custody::keys::SigningKey::generate()
            .public()
            .to_pem()
            .unwrap(),
    )
    .unwrap();
    let out = approve(
        &team.alice,
        &daemons,
        &daemon_digest,
        &["--public-key", other.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("nothing signed"), "{said}");
    assert_eq!(counted(&daemons)["counted"], 0, "nothing was recorded");
    let out = approve(&team.alice, &daemons, &daemon_digest, &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the collector key the daemon serves"),
        "{out:?}"
    );
    assert_eq!(counted(&daemons)["counted"], 1);
}

/// What `POST …/plans/drafts` and `POST …/plans` refuse.
fn refused_proposals(sb: &Sandbox, team: &Team, post: &Post<'_>, plans: &str) {
    let drafts = format!("{plans}/drafts");
    let draft_for = |key: &SshKey| {
        post(
            &drafts,
            &serde_json::to_vec(&json!({"public_key": key.openssh})).unwrap(),
        )
    };
    // A key the roster does not name, and one it names only to approve.
    let (code, body) = draft_for(&team.mallory);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("names no principal"), "{body}");
    let (code, body) = draft_for(&team.alice);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("may not propose"), "{body}");
    // Not a key at all; an unknown field.
    let (code, _) = post(&drafts, br#"{"public_key": "ssh-ed25519 nope"}"#);
    assert_eq!(code, 400);
    let (code, _) = post(&drafts, br#"{"public_key": "x", "requested_by": "me"}"#);
    assert_eq!(code, 400);
    // An unsigned request: a proposal through the API is a person's.
    let (code, body) = post(plans, b"{}");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("drafts"), "{body}");

    let (code, body) = draft_for(&team.carol);
    assert_eq!(code, 201, "{body}");
    let draft = json_of(&body);
    let plan_json = draft["plan_json"].as_str().unwrap();
    let draft_sig = draft["draft_signature"].as_str().unwrap();
    // Changed after the daemon built it (still canonical, re-signed by carol).
    let changed = plan_json.replacen("\"veto\":\"any_reject\"", "\"veto\":\"any_rejekt\"", 1);
    assert_ne!(changed, plan_json);
    let (code, body) = post(plans, &signed(&changed, draft_sig, &team.carol));
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("not a draft this daemon built"), "{body}");
    // Signed by a key other than the one the draft names.
    let (code, body) = post(plans, &signed(plan_json, draft_sig, &team.bob));
    assert_eq!(code, 422, "{body}");
    // The draft as built, signed by carol: stored once; the same proposal again is refused.
    let proposal = signed(plan_json, draft_sig, &team.carol);
    let (code, body) = post(plans, &proposal);
    assert_eq!(code, 201, "{body}");
    assert_eq!(json_of(&body)["plan"], draft["plan"]);
    let (code, body) = post(plans, &proposal);
    assert_eq!(code, 409, "{body}");
    let _ = sb;
}
