//! `custody plan rollback` over the fake API server: the rollback plan of an executed block,
//! approved by two of three real `ssh-keygen` keys and executed like any plan, lifts exactly what
//! its plan owns. Two cases blocking the same addresses: rolling back the first keeps every
//! shared address refused; a hand-added entry of the custody block policy survives the last
//! rollback, which otherwise deletes the policy; an operator policy the block rewrote gets its
//! rules back.

use std::path::Path;

use serde_json::{json, Value};

use crate::plan_execute::{admin_secret, execute, proposed};
use crate::plan_propose::World;
use crate::util::{assert_code, assert_success, stderr};

const NETPOL: &str = "networking.k8s.io/v1";

/// The newest plan of `case`, as `plan show --json` gives it, and its digest.
fn newest(w: &World, case: &str) -> (Value, String) {
    let out = w.run(&["--json", "plan", "show", case]);
    assert_success(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = v["sha256"].as_str().unwrap().to_owned();
    (v["plan"].clone(), digest)
}

/// A new case collected from the sample logs.
fn another_case(w: &World) -> String {
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/api-gateway-incident.log");
    w.sb.collect(&[&log])["case_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Proposes a containment plan for `case` and has two approvers approve it.
fn approved_in(w: &World, case: &str) -> String {
    assert_success(&w.propose(case));
    let (doc, digest) = newest(w, case);
    let plan = doc["plan"].as_str().unwrap().to_owned();
    approve(w, case, &plan, &digest);
    plan
}

fn approve(w: &World, case: &str, plan: &str, digest: &str) {
    for k in w.keys.iter().take(2) {
        let key = k.private.to_str().unwrap();
        let out = w.run(&[
            "approve", case, plan, "--key", key, "--sha256", digest, "--reason", "approved",
        ]);
        assert_success(&out);
    }
}

/// Proposes the rollback of `plan` of `case`, has two approvers approve it, and returns it.
fn rollback(w: &World, case: &str, plan: &str) -> Value {
    let key = w.keys[2].private.to_str().unwrap().to_owned();
    let out = w.run(&["plan", "rollback", case, plan, "--key", &key]);
    assert_success(&out);
    let (doc, digest) = newest(w, case);
    assert_eq!(doc["kind"], "rollback", "{doc}");
    assert_eq!(doc["rolls_back"]["plan"], plan, "{doc}");
    let id = doc["plan"].as_str().unwrap().to_owned();
    approve(w, case, &id, &digest);
    doc
}

fn execute_in(w: &World, case: &str, plan: &str) -> Value {
    let out = w.run(&[
        "--json",
        "plan",
        "execute",
        case,
        plan,
        "--rollout-timeout",
        "30",
    ]);
    assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn excepts(policy: &Value) -> Vec<String> {
    let mut out: Vec<String> = policy["spec"]["ingress"][0]["from"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["ipBlock"]["except"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn a_rollback_lifts_only_its_plans_block_and_the_custody_block_policy_goes_with_its_last_owner() {
    let w = World::new();
    // No policy isolates the gateway: the block is the custody block policy.
    for name in ["gateway-ingress", "allow-gateway"] {
        w.kube.remove(NETPOL, "networkpolicies", name);
    }
    let first = proposed(&w, 2);
    admin_secret(&w);
    assert_success(&execute(&w, &first));
    let (doc, _) = newest(&w, &w.case);
    let name = doc["steps"][0]["changes"][0]["object"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("custody-block-"), "{name}");
    let blocked = excepts(&w.kube.stored(NETPOL, "networkpolicies", &name).unwrap());
    assert!(!blocked.is_empty());

    // A second case blocks the same addresses.
    let case2 = another_case(&w);
    let second = approved_in(&w, &case2);
    let v = execute_in(&w, &case2, &second);
    assert_eq!(v["status"], "executed", "{v}");

    // Rolling back the first case's block: every address is the second case's too, so each
    // stays refused; the policy only loses the first case's claims.
    let lift = rollback(&w, &w.case, &first);
    let step = &lift["steps"][0];
    assert_eq!(step["kind"], "release_ips", "{step}");
    assert_eq!(step["detail"]["released"], json!([]), "{step}");
    assert_eq!(
        step["detail"]["kept"].as_array().unwrap().len(),
        blocked.len()
    );
    assert!(step["warnings"]
        .to_string()
        .contains("Secrets and sessions are not rolled back"));
    let id = lift["plan"].as_str().unwrap().to_owned();
    let v = execute_in(&w, &w.case, &id);
    assert_eq!(v["status"], "executed", "{v}");
    let policy = w.kube.stored(NETPOL, "networkpolicies", &name).unwrap();
    assert_eq!(
        excepts(&policy),
        blocked,
        "the shared addresses stay refused"
    );
    let owners = policy["metadata"]["annotations"]["custody.io/owners"]
        .as_str()
        .unwrap();
    assert!(
        owners.contains(&case2) && !owners.contains(&w.case),
        "{owners}"
    );
    // Executed twice: nothing more is sent.
    let writes = w.kube.calls().len();
    let again = execute_in(&w, &w.case, &id);
    assert_eq!(again["status"], "already_executed", "{again}");
    assert!(
        w.kube.calls()[writes..].iter().all(|c| c.method == "GET"),
        "a second run writes nothing"
    );
    // The first case's block is lifted: a rollback of it again has nothing to lift.
    let key = w.keys[2].private.to_str().unwrap().to_owned();
    let out = w.run(&["plan", "rollback", &w.case, &first, "--key", &key]);
    assert_success(&out);
    let (again, _) = newest(&w, &w.case);
    assert_eq!(again["steps"][0]["status"], "nothing_to_do", "{again}");

    // Someone adds an entry by hand; the second case's rollback lifts its addresses and keeps
    // the hand-added one, so the policy stays.
    let mut edited = w.kube.stored(NETPOL, "networkpolicies", &name).unwrap();
    edited["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"]
        .as_array_mut()
        .unwrap()
        .push(json!("192.0.2.77/32"));
    edited["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    w.kube.object(edited);
    let lift = rollback(&w, &case2, &second);
    let step = &lift["steps"][0];
    assert_eq!(
        step["detail"]["released"].as_array().unwrap().len(),
        blocked.len(),
        "{step}"
    );
    let id = lift["plan"].as_str().unwrap().to_owned();
    let v = execute_in(&w, &case2, &id);
    assert_eq!(v["status"], "executed", "{v}");
    let policy = w.kube.stored(NETPOL, "networkpolicies", &name).unwrap();
    assert_eq!(excepts(&policy), vec!["192.0.2.77/32".to_owned()]);

    // Without the hand-added entry, the last owner's rollback deletes the policy: a third
    // block and its rollback.
    w.kube.remove(NETPOL, "networkpolicies", &name);
    let case3 = another_case(&w);
    let third = approved_in(&w, &case3);
    assert_eq!(execute_in(&w, &case3, &third)["status"], "executed");
    assert!(w.kube.stored(NETPOL, "networkpolicies", &name).is_some());
    let lift = rollback(&w, &case3, &third);
    assert_eq!(lift["steps"][0]["changes"][0]["op"], "delete", "{lift}");
    let id = lift["plan"].as_str().unwrap().to_owned();
    assert_eq!(execute_in(&w, &case3, &id)["status"], "executed");
    assert!(w.kube.stored(NETPOL, "networkpolicies", &name).is_none());
    // Every case's journal, plan and actions bundle still verifies.
    let store = w.sb.store();
    let out = w.run(&["verify", store.to_str().unwrap()]);
    assert_success(&out);
}

#[test]
fn a_rollback_gives_a_rewritten_policy_its_rules_back_and_refuses_a_containment_plan_not_executed()
{
    let w = World::new();
    let before = w
        .kube
        .stored(NETPOL, "networkpolicies", "gateway-ingress")
        .unwrap();
    // Not executed yet: nothing to roll back.
    let plan = proposed(&w, 2);
    let key = w.keys[2].private.to_str().unwrap().to_owned();
    let out = w.run(&["plan", "rollback", &w.case, &plan, "--key", &key]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("no executed block step"),
        "{}",
        stderr(&out)
    );
    admin_secret(&w);
    assert_success(&execute(&w, &plan));
    let blocked = w
        .kube
        .stored(NETPOL, "networkpolicies", "gateway-ingress")
        .unwrap();
    assert_ne!(blocked["spec"], before["spec"]);
    let lift = rollback(&w, &w.case, &plan);
    let id = lift["plan"].as_str().unwrap().to_owned();
    let v = execute_in(&w, &w.case, &id);
    assert_eq!(v["status"], "executed", "{v}");
    let after = w
        .kube
        .stored(NETPOL, "networkpolicies", "gateway-ingress")
        .unwrap();
    assert_eq!(
        after["spec"], before["spec"],
        "the rules are as before the block"
    );
    // A rollback of a rollback is refused.
    let out = w.run(&["plan", "rollback", &w.case, &id, "--key", &key]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("itself a rollback"),
        "{}",
        stderr(&out)
    );
}
