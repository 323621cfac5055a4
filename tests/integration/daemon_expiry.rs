//! Plans that pass their `not_after` unexecuted, with two replicas of the daemon on one store,
//! over real HTTP with the fake API server as the cluster and a local notification sink.
//!
//! The policy's shortest plan lifetime is 5 minutes (`plan.not_after`, 5m to 7d), too long to
//! wait for in a test, and the daemon's clock is not mockable. So the daemon proposes its plan
//! as in production (2 hours), and the test then stores two more plans of the same case with a
//! lifetime of seconds through the library (`plan::propose`, signed with the daemon's collector
//! key and journaled `plan_proposed`), as another writer of the store would: one approved once,
//! one rejected. Replica A learns of them by its rescan (`limits.plan_rescan_seconds: 10`),
//! replica B by its start-up scan. The approved one is journaled `plan_expired` once, with the
//! quorum it had, and notified once by the replica that wrote the entry; the rejected one is
//! neither; a restarted replica does not record it again. `verify`, `cases show` and `plan
//! status` read the new entry, and `verify` reports a forged one.

use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;

use custody::case::entry::PlanExpired;
use custody::case::{check_chain, Details, Journal};
use custody::id::{CaseId, PlanId};
use custody::keys::SigningKey;
use custody::plan::{PlanDoc, ProposalSigner};
use custody::store::LocalStore;

use crate::daemon::{daemon_config, fire_breach, free_port, http, start, wait_sealed, Daemon};
use crate::daemon_plans::{
    approve_through, plan_digest, planned_cluster, policies, wait_plan, Sink,
};
use crate::util::Sandbox;

/// Stores a copy of `base` (a plan of the case) as a new plan expiring `lifetime` from now,
/// signed with the daemon's collector key; its id and digest.
fn short_plan(sb: &Sandbox, store: &LocalStore, base: &PlanDoc, lifetime: i64) -> (PlanId, String) {
    let key = SigningKey::load(&sb.path("daemon/collector.key")).unwrap();
    let now = OffsetDateTime::now_utc();
    let mut doc = base.clone();
    doc.plan = PlanId::generate(now);
    doc.created_at = custody::timefmt::rfc3339(now);
    doc.not_after = custody::timefmt::rfc3339(now + time::Duration::seconds(lifetime));
    let dir = sb
        .path("evidence/cases")
        .join(doc.case.as_str())
        .join("plans");
    let roster = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("approvers.allowed_signers"))
        .find(|p| p.exists())
        .unwrap();
    let roster = std::fs::read_to_string(roster).unwrap();
    let stored =
        custody::plan::propose(store, &key, &doc, &roster, ProposalSigner::Collector(&key))
            .unwrap();
    (stored.plan, stored.plan_sha256.to_hex())
}

/// The value of an unlabelled metric.
fn metric(d: &Daemon, name: &str) -> u64 {
    let (code, text) = http(d.port, "GET", "/metrics", None, b"");
    assert_eq!(code, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until every one of `daemons` watches exactly `n` open plans.
fn wait_open_plans(daemons: &[&Daemon], n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while daemons.iter().any(|d| metric(d, "custody_open_plans") != n) {
        assert!(
            Instant::now() < deadline,
            "open plans: {:?}",
            daemons
                .iter()
                .map(|d| metric(d, "custody_open_plans"))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The details of every `plan_expired` entry of the case, from the store's journal files.
fn expired_entries(sb: &Sandbox, case: &str) -> Vec<Value> {
    let dir = sb.path("evidence/cases").join(case).join("journal");
    crate::util::journal_entry_paths(&dir)
        .iter()
        .map(|p| serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap())
        .filter(|v| v["kind"] == "plan_expired")
        .map(|v| v["details"].clone())
        .collect()
}

#[test]
fn a_plan_past_not_after_is_journaled_and_notified_once_by_one_of_two_replicas() {
    let sb = Sandbox::new();
    let kube = planned_cluster();
    let sink = Sink::start();
    let (alice, bob) = policies(&sb);
    let store_path = sb.path("evidence");
    let extra = format!(
        "policies: policies\nnotify:\n  url: http://127.0.0.1:{}/hook\nlimits:\n  plan_rescan_seconds: 10\n",
        sink.port
    );
    let config = daemon_config(&sb, store_path.to_str().unwrap(), Some(&kube), &extra);
    let text = std::fs::read_to_string(&config).unwrap();
    let config_b = sb.path("daemon/custody-b.yaml");
    let listen_a = text.lines().next().unwrap().to_owned();
    std::fs::write(
        &config_b,
        text.replace(&listen_a, &format!("listen: 127.0.0.1:{}", free_port())),
    )
    .unwrap();
    let a = start(&sb, &config, "replica-a");
    let server = format!("http://127.0.0.1:{}", a.port);

    // The daemon's own plan, proposed on the alert: it expires in 2 hours.
    let case = fire_breach(a.port)["case_id"].as_str().unwrap().to_owned();
    let sealed = wait_sealed(a.port, &case, Duration::from_secs(60));
    assert_eq!(sealed["state"], "sealed", "{sealed}");
    let own = wait_plan(a.port, &case, Duration::from_secs(60));
    sink.wait_for("plan_awaiting_approval", Duration::from_secs(30));
    wait_open_plans(&[&a], 1, Duration::from_secs(10));

    // Two plans of seconds, written beside the daemon.
    let store = LocalStore::open(&store_path, false).unwrap();
    let base: PlanDoc = custody::canonical::from_slice(
        &std::fs::read(store_path.join(format!("cases/{case}/plans/{own}/plan.json"))).unwrap(),
    )
    .unwrap();
    let (approved, approved_digest) = short_plan(&sb, &store, &base, 30);
    let (rejected, rejected_digest) = short_plan(&sb, &store, &base, 30);
    approve_through(
        &sb,
        &server,
        (&case, approved.as_str(), &approved_digest),
        &alice,
        false,
    );
    approve_through(
        &sb,
        &server,
        (&case, rejected.as_str(), &rejected_digest),
        &bob,
        true,
    );
    assert_eq!(
        plan_digest(a.port, &case, approved.as_str()),
        approved_digest
    );
    let b = start(&sb, &config_b, "replica-b");

    let expired = sink.wait_for("plan_expired", Duration::from_secs(90));
    assert_eq!(expired["custody"]["plan"], approved.as_str(), "{expired}");
    assert_eq!(expired["custody"]["case"], case.as_str());
    assert_eq!(expired["custody"]["plan_sha256"], approved_digest.as_str());
    assert_eq!(expired["custody"]["counted"], 1);
    assert_eq!(expired["custody"]["required"], 2);
    assert_eq!(expired["custody"]["quorum_reached"], false);
    assert!(
        expired["text"]
            .as_str()
            .unwrap()
            .contains("1 of 2 approvals counted"),
        "{expired}"
    );
    // Both replicas settle every short plan (the loser of the race finds the entry), leaving
    // the daemon's own plan watched.
    wait_open_plans(&[&a, &b], 1, Duration::from_secs(60));
    let events = sink.events("plan_expired");
    assert_eq!(events.len(), 1, "{events:?}");
    let entries = expired_entries(&sb, &case);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["plan"], approved.as_str());
    assert_eq!(entries[0]["plan_sha256"], approved_digest.as_str());
    assert_eq!(entries[0]["counted"], 1);
    assert_eq!(entries[0]["quorum_reached"], false);
    let written =
        metric(&a, "custody_plans_expired_total") + metric(&b, "custody_plans_expired_total");
    assert_eq!(written, 1);

    // A restarted replica finds the expiry journaled and records nothing again.
    b.kill9();
    let b = start(&sb, &config_b, "replica-b-again");
    wait_open_plans(&[&b], 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.events("plan_expired").len(), 1);
    assert_eq!(expired_entries(&sb, &case).len(), 1);
    drop(a);
    drop(b);

    let store_arg = store_path.to_str().unwrap();
    let out = sb.run(&["--json", "verify", store_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = sb.run(&["--store", store_arg, "cases", "show", &case]);
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!("plan {approved} expired at")),
        "{shown}"
    );
    let roster = sb.path("daemon/policies/approvers.allowed_signers");
    let out = sb.run(&[
        "--store",
        store_arg,
        "plan",
        "status",
        &case,
        approved.as_str(),
        "--approvers",
        roster.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("(EXPIRED)"));

    // Entries no daemon would write: an expiry of no plan, and one of the daemon's plan with
    // another digest.
    let key = SigningKey::load(&sb.path("daemon/collector.key")).unwrap();
    let case_id = CaseId::new(case.as_str()).unwrap();
    for (plan, digest) in [
        (
            PlanId::generate(OffsetDateTime::now_utc()),
            approved_digest.as_str(),
        ),
        (PlanId::new(own.as_str()).unwrap(), rejected_digest.as_str()),
    ] {
        let head = check_chain(&store, &case_id).unwrap().head().unwrap();
        let mut journal = Journal::resume(&store, case_id.clone(), head, &key);
        journal
            .append(
                "custody",
                Details::PlanExpired(PlanExpired {
                    counted: 0,
                    not_after: base.not_after.clone(),
                    plan,
                    plan_sha256: digest.parse::<custody::digest::Sha256Digest>().unwrap(),
                    quorum_reached: false,
                    required: 2,
                }),
            )
            .unwrap();
    }
    let out = sb.run(&["--json", "verify", store_arg]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"plan_expired_unknown_plan"), "{codes:?}");
    assert!(codes.contains(&"plan_expired_digest_mismatch"), "{codes:?}");
}
