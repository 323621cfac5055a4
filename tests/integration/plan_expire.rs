//! `custody plan expire` over the fake API server: two cases block overlapping addresses, the
//! first for one minute (`block_ips.ttl: 1m`), the second for a day. Before the first block's
//! expiry nothing is lifted; after it, an expiry plan of the first case (custody's own, with no
//! approvals) releases the addresses only the first case blocked and keeps the shared ones,
//! which the second case's block still holds. Its execution is journaled and sealed and the
//! store verifies; a second run has nothing to do.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::plan_execute::{admin_secret, execute};
use crate::plan_propose::{World, CONTAINMENT};
use crate::util::{assert_success, stdout};

const NETPOL: &str = "networking.k8s.io/v1";

fn newest(w: &World, case: &str) -> (Value, String) {
    let out = w.run(&["--json", "plan", "show", case]);
    assert_success(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = v["sha256"].as_str().unwrap().to_owned();
    (v["plan"].clone(), digest)
}

fn set_ttl(w: &World, ttl: &str) {
    let text = CONTAINMENT.replace("ttl: 24h", &format!("ttl: {ttl}"));
    assert!(text.contains(&format!("ttl: {ttl}")));
    std::fs::write(w.sb.path("policies").join("containment.yaml"), text).unwrap();
}

/// Proposes a plan for `case`, has two approvers approve it and executes it.
fn blocked_by(w: &World, case: &str) -> Value {
    assert_success(&w.propose(case));
    let (doc, digest) = newest(w, case);
    let plan = doc["plan"].as_str().unwrap().to_owned();
    for k in w.keys.iter().take(2) {
        let key = k.private.to_str().unwrap();
        let out = w.run(&[
            "approve", case, &plan, "--key", key, "--sha256", &digest, "--reason", "contain",
        ]);
        assert_success(&out);
    }
    let out = w.run(&[
        "--json",
        "plan",
        "execute",
        case,
        &plan,
        "--rollout-timeout",
        "30",
    ]);
    assert_success(&out);
    doc
}

fn addresses(doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = doc["addresses"]["block"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn expire(w: &World) -> Value {
    let out = w.run(&["--json", "plan", "expire"]);
    assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn an_expired_block_is_lifted_where_no_other_case_holds_it_and_kept_where_one_does() {
    let w = World::new();
    for name in ["gateway-ingress", "allow-gateway"] {
        w.kube.remove(NETPOL, "networkpolicies", name);
    }
    admin_secret(&w);
    // The first case blocks for one minute.
    set_ttl(&w, "1m");
    assert_success(&w.propose(&w.case));
    let (first, digest) = newest(&w, &w.case);
    let first_id = first["plan"].as_str().unwrap().to_owned();
    for k in w.keys.iter().take(2) {
        let key = k.private.to_str().unwrap();
        let out = w.run(&[
            "approve", &w.case, &first_id, "--key", key, "--sha256", &digest, "--reason", "x",
        ]);
        assert_success(&out);
    }
    assert_success(&execute(&w, &first_id));
    let mine = addresses(&first);
    assert!(mine.len() >= 2, "{mine:?}");
    let expires_at = first["addresses"]["block"][0]["expires_at"]
        .as_str()
        .unwrap()
        .to_owned();
    // Before its expiry nothing is due: nothing is read or written.
    let remaining =
        time::OffsetDateTime::parse(&expires_at, &time::format_description::well_known::Rfc3339)
            .unwrap()
            - time::OffsetDateTime::now_utc();
    assert!(remaining > time::Duration::seconds(5), "{remaining}");
    let calls = w.kube.calls().len();
    let v = expire(&w);
    assert_eq!(v["expiries"], serde_json::json!([]), "{v}");
    assert_eq!(
        w.kube.calls().len(),
        calls,
        "nothing is read from the cluster"
    );

    // The second case, for a day, from the same log without the first address's lines: it
    // blocks the other addresses only.
    set_ttl(&w, "24h");
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/api-gateway-incident.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let only_first = &mine[0];
    let fewer: String = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{only_first} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    let log2 = w.sb.path("fewer.log");
    std::fs::write(&log2, fewer).unwrap();
    let case2 = w.sb.collect(&[&log2])["case_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = blocked_by(&w, &case2);
    let theirs = addresses(&second);
    assert!(!theirs.contains(only_first), "{theirs:?}");
    let shared: Vec<String> = mine
        .iter()
        .filter(|a| theirs.contains(a))
        .cloned()
        .collect();
    let released: Vec<String> = mine
        .iter()
        .filter(|a| !theirs.contains(a))
        .cloned()
        .collect();
    assert!(!shared.is_empty(), "{mine:?} {theirs:?}");
    let name = second["steps"][0]["changes"][0]["object"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("custody-block-"), "{name}");

    // After it: the first case's claims are lifted by an expiry plan of its own.
    let due =
        time::OffsetDateTime::parse(&expires_at, &time::format_description::well_known::Rfc3339)
            .unwrap();
    let wait = due - time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    if wait.is_positive() {
        std::thread::sleep(Duration::from_millis(wait.whole_milliseconds() as u64));
    }
    let v = expire(&w);
    let expiries = v["expiries"].as_array().unwrap();
    assert_eq!(expiries.len(), 1, "{v}");
    let e = &expiries[0];
    assert_eq!(e["status"], "expired", "{e}");
    assert_eq!(e["case"], w.case.as_str());
    assert_eq!(e["plan"], first_id.as_str());
    let mut got: Vec<String> = serde_json::from_value(e["released"].clone()).unwrap();
    got.sort();
    assert_eq!(got, released, "{e}");
    let mut kept: Vec<String> = serde_json::from_value(e["kept"].clone()).unwrap();
    kept.sort();
    assert_eq!(kept, shared, "{e}");
    assert!(e["execution"]["actions_bundle"].is_string(), "{e}");
    assert_eq!(e["execution"]["status"], "executed", "{e}");
    assert!(e["execution"]["actions_error"].is_null(), "{e}");

    // The expiry plan: custody's own, no approvals, lifting the first plan.
    let (doc, _) = newest(&w, &w.case);
    assert_eq!(doc["kind"], "expiry", "{doc}");
    assert_eq!(doc["rolls_back"]["plan"], first_id.as_str());
    assert_eq!(doc["quorum"]["required"], 0);
    assert!(doc["proposer"].to_string().contains("key_id"), "{doc}");

    let expiry_id = doc["plan"].as_str().unwrap().to_owned();
    let out = w.run(&["plan", "show", &w.case, &expiry_id]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("pre-approved by that plan"),
        "{}",
        stdout(&out)
    );
    let out = w.run(&["plan", "status", &w.case, &expiry_id]);
    assert_success(&out);

    // The custody block policy refuses exactly the second case's addresses, owned by it alone.
    let policy = w.kube.stored(NETPOL, "networkpolicies", &name).unwrap();
    let mut excepts: Vec<String> = policy["spec"]["ingress"][0]["from"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["ipBlock"]["except"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|e| {
            e.as_str()
                .unwrap()
                .trim_end_matches("/32")
                .trim_end_matches("/128")
                .to_owned()
        })
        .collect();
    excepts.sort();
    assert_eq!(excepts, theirs);
    let owners = policy["metadata"]["annotations"]["custody.io/owners"]
        .as_str()
        .unwrap();
    assert!(
        owners.contains(&case2) && !owners.contains(&w.case),
        "{owners}"
    );

    // Again: nothing is due any more, nothing is written.
    let writes = w.kube.calls().len();
    let v = expire(&w);
    assert_eq!(v["expiries"], serde_json::json!([]), "{v}");
    assert!(w.kube.calls()[writes..].iter().all(|c| c.method == "GET"));

    // The timeline says what happened; the store verifies, the expiry included.
    let out = w.run(&["cases", "timeline", &w.case]);
    assert_success(&out);
    let timeline = stdout(&out);
    assert!(timeline.contains("expiry plan"), "{timeline}");
    assert!(timeline.contains("needing no approvals"), "{timeline}");
    assert!(timeline.contains("block lifted; released ["), "{timeline}");
    let store = w.sb.store();
    let out = w.run(&["--json", "verify", store.to_str().unwrap()]);
    assert_success(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let judged = report["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plan"] == expiry_id)
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(judged["quorum_reached"], true, "{judged}");
}
