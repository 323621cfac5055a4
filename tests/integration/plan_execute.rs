//! `custody plan execute` end to end over the fake API server: a case collected from the sample
//! logs, a plan proposed and approved by two of three real `ssh-keygen` keys, then executed —
//! the policy rewritten, the new Secret created and the Deployment repointed and rolled out, each
//! running pod's admin endpoint called — and the actions bundle checked with `custody verify` and
//! the standard tools. Also: a second execution sends nothing, a plan without quorum or on a
//! changed cluster is refused with nothing written, a Secret create with an unknown outcome fails
//! the step and the resumed run creates a fresh Secret.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

use crate::plan_propose::World;
use crate::util::{assert_code, assert_success, sh, stderr, stdout, tool};

const TOKEN: &str = "admin-token-7c1d9e";

/// Proposes a plan for the world's case and has `approvers` of the roster approve it.
pub(crate) fn proposed(w: &World, approvers: usize) -> String {
    assert_success(&w.propose(&w.case));
    let out = w.run(&["--json", "plan", "show", &w.case]);
    assert_success(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = v["plan"]["plan"].as_str().unwrap().to_owned();
    let digest = v["sha256"].as_str().unwrap().to_owned();
    for k in w.keys.iter().take(approvers) {
        let key = k.private.to_str().unwrap();
        let out = w.run(&[
            "approve", &w.case, &plan, "--key", key, "--sha256", &digest, "--reason", "contain",
        ]);
        assert_success(&out);
    }
    plan
}

/// The admin token's Secret, readable by custody by its name only.
pub(crate) fn admin_secret(w: &World) {
    let token = aws_smithy_types::base64::encode(TOKEN);
    w.kube.object(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "gateway-admin"}, "data": {"token": token}}));
    w.kube.faults(|f| {
        f.readable
            .push("/api/v1/namespaces/waqiti/secrets/gateway-admin".into())
    });
}

pub(crate) fn execute(w: &World, plan: &str) -> std::process::Output {
    w.run(&[
        "--json",
        "plan",
        "execute",
        &w.case,
        plan,
        "--rollout-timeout",
        "30",
    ])
}

/// The writes the fake received for real (not dry-run).
fn writes(w: &World) -> Vec<String> {
    w.kube
        .calls()
        .iter()
        .filter(|c| {
            c.method != "GET" && !c.target.contains("dryRun") && !c.target.contains("/proxy")
        })
        .map(|c| format!("{} {}", c.method, c.target))
        .collect()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_approved_plan_is_executed_once_and_its_actions_bundle_verifies() {
    let w = World::new();
    let plan = proposed(&w, 2);
    admin_secret(&w);
    let out = execute(&w, &plan);
    assert_success(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "executed", "{v}");
    let steps = v["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["outcome"] == "done"), "{v}");

    // Step 1: the policy as the plan shows it, the offenders refused.
    let policy = w
        .kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .unwrap();
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"],
        json!(["203.0.113.10/32", "203.0.113.11/32"])
    );
    // Step 2: an immutable Secret of the plan's name and keys, the Deployment repointed.
    let name = steps[1]["result"]["new_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        name.starts_with(&format!("gateway-api-keys-{plan}-")),
        "{name}"
    );
    let secret = w.kube.secret(&name).unwrap();
    assert_eq!(secret["immutable"], true);
    assert_eq!(
        secret["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "custody"
    );
    let data = w.kube.secret_data(&name).unwrap();
    let value = data["API_KEY"].clone();
    assert_eq!(value.len(), 44, "32 bytes in base64");
    let deployment = w
        .kube
        .stored("apps/v1", "deployments", "api-gateway")
        .unwrap();
    assert_eq!(
        deployment
            .pointer("/spec/template/spec/containers/0/env/0/valueFrom/secretKeyRef/name")
            .unwrap(),
        &json!(name)
    );
    assert_eq!(
        steps[1]["result"]["values_sha256"]["API_KEY"],
        json!(hex_sha256(&value))
    );
    // Step 3: every running pod of the target called once, with the token in the plan's header.
    let calls = w.kube.proxied();
    assert!(!calls.is_empty());
    let mut pods: Vec<&str> = calls.iter().map(|c| c.pod.as_str()).collect();
    pods.sort();
    let n = pods.len();
    pods.dedup();
    assert_eq!(pods.len(), n, "each pod once: {pods:?}");
    for c in &calls {
        assert_eq!(c.method, "POST");
        assert_eq!(c.path, "/admin/sessions/revoke");
        assert_eq!(c.header("x-custody-admin-token"), Some(TOKEN));
        assert!(
            contains(&c.body, b"203.0.113.10"),
            "the body names the blocked addresses"
        );
    }
    let called = steps[2]["result"]["calls"].as_array().unwrap();
    assert_eq!(called.len(), n);

    // `verify` checks the store, the plan's quorum, and the actions bundle like any bundle.
    let roster = w.sb.path("policies/approvers.allowed_signers");
    let out = w.run(&[
        "verify",
        w.sb.store().to_str().unwrap(),
        "--approvers",
        roster.to_str().unwrap(),
    ]);
    assert_success(&out);

    // The actions bundle opens and validates with the standard tools, and each approval in it
    // verifies with ssh-keygen against the roster it holds.
    let bundle = v["actions_bundle"].as_str().unwrap();
    let case_dir = w.sb.store().join("cases").join(&w.case);
    let out_dir = w.sb.path("actions");
    std::fs::create_dir_all(&out_dir).unwrap();
    sh(
        &format!(
            "sha256sum -c {bundle}.tar.zst.sha256 >/dev/null && {} -dc {bundle}.tar.zst | {} -x -C {}",
            tool("zstd").display(),
            tool("tar").display(),
            out_dir.display()
        ),
        &case_dir.join("bundles"),
    );
    let bag = out_dir.join(bundle);
    let validated = std::process::Command::new(tool("bagit.py"))
        .args(["--validate", bag.to_str().unwrap()])
        .output()
        .unwrap();
    assert_success(&validated);
    let results: Value =
        serde_json::from_slice(&std::fs::read(bag.join("data/results.json")).unwrap()).unwrap();
    assert_eq!(results["outcome"], "done");
    assert_eq!(results["plan"], json!(plan));
    assert_approvals_verify(&bag, &["alice", "bob"]);

    // No Secret value is anywhere custody wrote: the store, the bag, the output.
    let encoded = aws_smithy_types::base64::encode(&value);
    let mut all = files(&w.sb.store());
    all.extend(files(&bag));
    for f in &all {
        let bytes = std::fs::read(f).unwrap();
        assert!(!contains(&bytes, &value), "{} holds the value", f.display());
        assert!(
            !contains(&bytes, encoded.as_bytes()),
            "{} holds it in base64",
            f.display()
        );
    }
    assert!(!contains(&out.stdout, &value) && !contains(&out.stderr, &value));

    // The post-incident timeline, from the journal alone, names every approval and step.
    let timeline = stdout(&w.run(&["cases", "timeline", &w.case, "--markdown"]));
    for expected in [
        "approve by alice@example.org",
        "approve by bob@example.org",
        "execution started",
        "step 1 \\(block\\_ips\\) done",
        "step 2 \\(rotate\\_secrets\\) done",
        "step 3 \\(invalidate\\_sessions\\) done",
        "execution done; actions bundle",
    ] {
        assert!(timeline.contains(expected), "{expected}: {timeline}");
    }

    // Executed twice: the second run sends nothing.
    let before = (writes(&w).len(), w.kube.proxied().len());
    let out = execute(&w, &plan);
    assert_success(&out);
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["status"], "already_executed");
    assert_eq!((writes(&w).len(), w.kube.proxied().len()), before);
}

/// Each approval in the actions bundle `bag`, the n-th by `who[n-1]`, verifies with
/// `ssh-keygen -Y verify` against the roster the bundle holds.
pub(crate) fn assert_approvals_verify(bag: &Path, who: &[&str]) {
    for (i, name) in who.iter().enumerate() {
        let statement = bag.join(format!("data/plan/approvals/{:010}.json", i + 1));
        let out = std::process::Command::new(tool("ssh-keygen"))
            .args(["-Y", "verify", "-f"])
            .arg(bag.join("data/plan/approvers.allowed_signers"))
            .args([
                "-I",
                &format!("{name}@example.org"),
                "-n",
                "custody-approval",
                "-s",
            ])
            .arg(statement.with_extension("json.sig"))
            .stdin(std::fs::File::open(&statement).unwrap())
            .output()
            .unwrap();
        assert_success(&out);
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn a_plan_without_quorum_or_on_a_changed_cluster_writes_nothing() {
    let w = World::new();
    let plan = proposed(&w, 1);
    admin_secret(&w);
    let out = execute(&w, &plan);
    assert_code(&out, 4);
    assert!(writes(&w).is_empty(), "{:?}", writes(&w));

    // With quorum, but custody's clock an hour off the API server's: refused, nothing sent.
    let bob = w.keys[1].private.to_str().unwrap();
    let shown = w.run(&["--json", "plan", "show", &w.case, &plan]);
    let digest = serde_json::from_slice::<Value>(&shown.stdout).unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_success(&w.run(&["approve", &w.case, &plan, "--key", bob, "--sha256", &digest]));
    w.kube.faults(|f| f.clock_skew = 3600);
    let out = w.run(&["plan", "execute", &w.case, &plan]);
    assert_code(&out, 4);
    assert!(
        stderr(&out).contains("s off the API server's Date"),
        "{}",
        stderr(&out)
    );
    assert!(writes(&w).is_empty(), "{:?}", writes(&w));
    w.kube.faults(|f| f.clock_skew = 0);

    // The clocks agree, but the policy was edited since the plan read it.
    w.kube.object(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "gateway-ingress"},
        "spec": {"podSelector": {"matchLabels": {"app": "api-gateway"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 8443}, {"port": 9443}]}]}}));
    let out = w.run(&["plan", "execute", &w.case, &plan]);
    assert_code(&out, 5);
    assert!(
        stderr(&out).contains("STALE") && stderr(&out).contains("gateway-ingress"),
        "{}",
        stderr(&out)
    );
    assert!(writes(&w).is_empty(), "{:?}", writes(&w));
    assert!(w.kube.proxied().is_empty());
    let timeline = w.run(&["cases", "timeline", &w.case]);
    assert!(stdout(&timeline).contains("stale"), "{}", stdout(&timeline));
}

#[test]
fn a_secret_create_with_an_unknown_outcome_fails_the_step_and_the_resumed_run_uses_a_fresh_name() {
    let w = World::new();
    let plan = proposed(&w, 2);
    admin_secret(&w);
    w.kube
        .faults(|f| f.broken.push("/api/v1/namespaces/waqiti/secrets".into()));
    let out = execute(&w, &plan);
    assert_code(&out, 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "failed");
    assert_eq!(v["steps"][0]["outcome"], "done");
    assert_eq!(v["steps"][1]["outcome"], "failed");
    assert_eq!(v["steps"][2]["outcome"], "not_run");
    let error = v["steps"][1]["error"].as_str().unwrap();
    assert!(error.contains("outcome is unknown"), "{error}");
    assert!(w.kube.proxied().is_empty(), "nothing after the failed step");
    let first: Vec<String> = w
        .kube
        .calls()
        .iter()
        .filter(|c| c.method == "POST" && c.target.contains("/secrets"))
        .map(|c| {
            serde_json::from_slice::<Value>(&c.body).unwrap()["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(first.len(), 1, "sent once, never again blind");

    // The API server answers again: the run resumes after the block, under a fresh name.
    w.kube.faults(|f| f.broken.clear());
    let out = execute(&w, &plan);
    assert_success(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"][0]["outcome"], "done_before");
    assert_eq!(v["steps"][1]["outcome"], "done");
    let name = v["steps"][1]["result"]["new_secret"].as_str().unwrap();
    assert_ne!(
        name, first[0],
        "a Secret whose create had an unknown outcome is never adopted"
    );
    let puts = writes(&w)
        .iter()
        .filter(|c| c.starts_with("PUT ") && c.contains("networkpolicies"))
        .count();
    assert_eq!(puts, 1, "the block is not applied twice: {:?}", writes(&w));
    let roster = w.sb.path("policies/approvers.allowed_signers");
    let out = w.run(&[
        "verify",
        w.sb.store().to_str().unwrap(),
        "--approvers",
        roster.to_str().unwrap(),
    ]);
    assert_success(&out);
}

/// `verify --approvers` of `store`: its exit code and stdout.
fn verify(w: &World, store: &Path) -> (i32, String) {
    let roster = w.sb.path("policies/approvers.allowed_signers");
    let out = w.run(&[
        "--json",
        "verify",
        store.to_str().unwrap(),
        "--approvers",
        roster.to_str().unwrap(),
    ]);
    (out.status.code().unwrap_or(-1), stdout(&out))
}

/// A writable copy of the world's store, as an attacker with write access has it.
fn copy_of(w: &World, name: &str) -> std::path::PathBuf {
    let to = w.sb.path(name);
    sh(
        &format!(
            "cp -a {} {} && chmod -R u+w {}",
            w.sb.store().display(),
            to.display(),
            to.display()
        ),
        w.sb.dir.path(),
    );
    to
}

#[test]
fn tampering_with_an_execution_is_caught_by_verify() {
    let w = World::new();
    let plan = proposed(&w, 2);
    admin_secret(&w);
    let out = execute(&w, &plan);
    assert_success(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bundle = v["actions_bundle"].as_str().unwrap().to_owned();
    assert_eq!(verify(&w, &w.sb.store()).0, 0);

    // The actions bundle's results changed: its archive no longer matches its seal.
    let store = copy_of(&w, "edited");
    let archive = store
        .join("cases")
        .join(&w.case)
        .join("bundles")
        .join(format!("{bundle}.tar.zst"));
    let mut bytes = std::fs::read(&archive).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x01;
    std::fs::write(&archive, bytes).unwrap();
    let (code, text) = verify(&w, &store);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&bundle), "{text}");

    // An approval removed after the execution: the journal still names it.
    let store = copy_of(&w, "unapproved");
    let approvals = store
        .join("cases")
        .join(&w.case)
        .join("plans")
        .join(&plan)
        .join("approvals");
    std::fs::remove_file(approvals.join("0000000002.json")).unwrap();
    std::fs::remove_file(approvals.join("0000000002.json.sig")).unwrap();
    let (code, text) = verify(&w, &store);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("0000000002.json"), "{text}");
}

#[test]
fn an_execution_journaled_without_quorum_is_caught_by_verify() {
    let w = World::new();
    let plan = proposed(&w, 1);
    // Whoever holds the collector key journals an execution the quorum never allowed.
    let store = custody::store::LocalStore::open(&w.sb.store(), false).unwrap();
    let key =
        custody::keys::SigningKey::load(&w.sb.path("home/.config/custody/collector.key")).unwrap();
    let case = custody::id::CaseId::new(&w.case).unwrap();
    let id = custody::id::PlanId::new(&plan).unwrap();
    let bytes = std::fs::read(
        w.sb.store()
            .join("cases")
            .join(&w.case)
            .join("plans")
            .join(&plan)
            .join("plan.json"),
    )
    .unwrap();
    let details =
        custody::case::Details::ExecutionStarted(custody::case::entry::ExecutionStarted {
            approvals: Vec::new(),
            api_server_date: "2026-12-02T00:00:00Z".into(),
            done_before: Vec::new(),
            plan: id,
            plan_sha256: custody::digest::Sha256Digest::of(&bytes),
            required: 2,
        });
    custody::plan::store::append(&store, &key, &case, "mallory", details).unwrap();
    let (code, text) = verify(&w, &w.sb.store());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("execution_without_quorum"), "{text}");
}

#[test]
fn a_write_whose_answer_was_lost_is_found_applied_on_resume_and_the_role_allows_every_request() {
    let w = World::new();
    let plan = proposed(&w, 2);
    admin_secret(&w);
    let policy = "/apis/networking.k8s.io/v1/namespaces/waqiti/networkpolicies/gateway-ingress";
    w.kube.faults(|f| f.lost_write_answers.push(policy.into()));
    let out = execute(&w, &plan);
    assert_code(&out, 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"][0]["outcome"], "failed", "{v}");
    assert!(
        v["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("never sends it blind"),
        "{v}"
    );
    assert_eq!(v["steps"][1]["outcome"], "not_run");
    // The write landed; only its answer was lost.
    let stored = w
        .kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .unwrap();
    assert!(stored["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"].is_array());

    w.kube.faults(|f| f.lost_write_answers.clear());
    let out = execute(&w, &plan);
    assert_success(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"][0]["outcome"], "done", "{v}");
    assert!(v["steps"][0]["applied"][0]
        .as_str()
        .unwrap()
        .contains("gateway-ingress"));
    let puts = writes(&w)
        .iter()
        .filter(|c| c.starts_with("PUT ") && c.contains("gateway-ingress"))
        .count();
    assert_eq!(puts, 1, "found applied, not sent again: {:?}", writes(&w));

    crate::planner_reads::roles_allow(
        &["deploy/role-planner.yaml", "deploy/role-containment.yaml"],
        "deploy/role-containment.yaml",
        &w.kube.calls(),
    );
}

#[test]
fn a_dry_run_refusal_or_a_paused_deployment_stops_the_execution_before_its_first_change() {
    let w = World::new();
    let plan = proposed(&w, 2);
    admin_secret(&w);
    // The Deployment paused since the plan was made (its references unchanged: not stale).
    let mut d = w
        .kube
        .stored("apps/v1", "deployments", "api-gateway")
        .unwrap();
    d["spec"]["paused"] = json!(true);
    w.kube.object(d.clone());
    let out = execute(&w, &plan);
    assert_code(&out, 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"][0]["outcome"], "not_run", "{v}");
    assert_eq!(v["steps"][1]["outcome"], "failed", "{v}");
    assert!(
        v["steps"][1]["error"]
            .as_str()
            .unwrap()
            .contains("is paused"),
        "{v}"
    );
    assert_eq!(v["steps"][2]["outcome"], "not_run");
    assert!(writes(&w).is_empty(), "{:?}", writes(&w));

    // Resumed, the API server refuses the Deployment's patch at dry-run: still nothing sent.
    d["spec"]["paused"] = json!(false);
    w.kube.object(d);
    w.kube.faults(|f| {
        f.forbidden
            .push("/apis/apps/v1/namespaces/waqiti/deployments/api-gateway".into())
    });
    let out = execute(&w, &plan);
    assert_code(&out, 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"][0]["outcome"], "not_run", "{v}");
    assert_eq!(v["steps"][1]["outcome"], "failed", "{v}");
    assert!(writes(&w).is_empty(), "{:?}", writes(&w));
    assert!(w.kube.proxied().is_empty());

    // Once the API server allows it, the same plan runs whole.
    w.kube.faults(|f| f.forbidden.clear());
    let out = execute(&w, &plan);
    assert_success(&out);
    let (code, text) = verify(&w, &w.sb.store());
    assert_eq!(code, 0, "{text}");
}

/// A second case whose offenders a first case's executed plan already blocks is planned with
/// the first case's claims, read from its journal: the custody block policy keeps and records
/// both owners of each shared address, so lifting one case's block would leave the other's.
#[test]
fn a_second_case_is_planned_with_the_claims_of_an_executed_block() {
    let w = World::new();
    // No policy isolates the gateway: the block is the custody block policy.
    for name in ["gateway-ingress", "allow-gateway"] {
        w.kube
            .remove("networking.k8s.io/v1", "networkpolicies", name);
    }
    let plan = proposed(&w, 2);
    admin_secret(&w);
    assert_success(&execute(&w, &plan));
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/api-gateway-incident.log");
    let second = w.sb.collect(&[&log]);
    let case2 = second["case_id"].as_str().unwrap().to_owned();
    assert_ne!(case2, w.case);
    assert_success(&w.propose(&case2));
    let out = w.run(&["--json", "plan", "show", &case2]);
    assert_success(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let step = &v["plan"]["steps"][0];
    assert_eq!(step["kind"], "block_ips", "{step}");
    let owners = step["detail"]["owners"].as_object().unwrap();
    assert!(!owners.is_empty(), "{step}");
    for (address, claims) in owners {
        let cases: BTreeSet<&str> = claims
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["case"].as_str().unwrap())
            .collect();
        assert_eq!(
            cases,
            BTreeSet::from([w.case.as_str(), case2.as_str()]),
            "{address}: {step}"
        );
        let first = claims
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["case"] == w.case.as_str())
            .unwrap();
        assert_eq!(first["plan"], plan.as_str(), "{address}");
    }
}
