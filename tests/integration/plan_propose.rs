//! `custody plan propose` and `plan show` end to end: a case collected from the sample logs, the
//! fake API server standing in for the cluster (what the planner reads, and the dry-runs of every
//! change over real HTTP), real `ssh-keygen` keys approving through `custody approve`, and
//! `plan status` and `verify --approvers` on the result. Also the refusals: a case with no sealed
//! bundle (exit 2), evidence that does not verify (exit 1), an unreadable cluster (exit 2).

use std::path::{Path, PathBuf};

use serde_json::json;

use custody::id::CaseId;
use custody::store::LocalStore;

use crate::approval::{ssh_key, SshKey};
use crate::fake_kube::FakeKube;
use crate::k8s::cluster;
use crate::util::{
    assert_code, assert_success, make_writable, stderr, stdout, BundleFiles, Sandbox,
};

pub(crate) const CONTAINMENT: &str = "\
targets:
  - name: api-gateway
    namespace: waqiti
    pod_selector:
      matchLabels: {app: api-gateway}
block_ips:
  method: networkpolicy
  never_block: [192.0.2.0/24]
  max_addresses: 100
  ttl: 24h
rotate_secrets:
  - target: api-gateway
    secret: gateway-api-keys
    keys:
      API_KEY: {generate: 32, encoding: base64}
    keys_complete: true
    deployments: [api-gateway]
invalidate_sessions:
  - target: api-gateway
    port: 9000
    method: POST
    path: /admin/sessions/revoke
    body: '{\"clients\": {{addresses}}}'
    token: {secret: gateway-admin, key: token}
    header: X-Custody-Admin-Token
    scope: per_pod
    idempotent: true
    timeout: 10s
quorum: {block_ips: 2, rotate_secrets: 2, invalidate_sessions: 2}
plan: {not_after: 2h, veto: any_reject, propose_on_alert: false}
";

pub(crate) struct World {
    pub sb: Sandbox,
    pub kube: FakeKube,
    pub case: String,
    pub collected: serde_json::Value,
    pub keys: Vec<SshKey>,
}

impl World {
    pub fn new() -> World {
        let sb = Sandbox::new();
        let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/api-gateway-incident.log");
        let collected = sb.collect(&[&log]);
        let policies = sb.path("policies");
        std::fs::create_dir_all(&policies).unwrap();
        std::fs::write(policies.join("containment.yaml"), CONTAINMENT).unwrap();
        let keys_dir = sb.path("ssh");
        std::fs::create_dir_all(&keys_dir).unwrap();
        let mut roster = String::new();
        let mut keys = Vec::new();
        for name in ["alice", "bob", "carol"] {
            let k = ssh_key(&keys_dir, name);
            roster.push_str(&format!("{name}@example.org {}\n", k.openssh));
            keys.push(k);
        }
        std::fs::write(policies.join("approvers.allowed_signers"), roster).unwrap();
        World {
            case: collected["case_id"].as_str().unwrap().to_owned(),
            collected,
            kube: planned(),
            sb,
            keys,
        }
    }

    /// `plan propose CASE`, by carol (the roster's third key).
    pub fn propose(&self, case: &str) -> std::process::Output {
        let key = self.keys[2].private.to_str().unwrap().to_owned();
        self.run(&["plan", "propose", case, "--key", &key])
    }

    fn kubeconfig(&self) -> PathBuf {
        self.kube.kubeconfig(self.sb.dir.path())
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        let store = self.sb.store();
        let policies = self.sb.path("policies");
        let mut all = vec![
            "--store",
            store.to_str().unwrap(),
            "--policies",
            policies.to_str().unwrap(),
        ];
        all.extend(args);
        self.sb
            .custody(&all)
            .env("KUBECONFIG", self.kubeconfig())
            .output()
            .unwrap()
    }
}

/// The collector's fake cluster plus what the planner reads: Nodes, a LoadBalancer Service, an
/// Ingress, the policy admitting the gateway's port to everyone, and the Deployment's references
/// to the API-key Secret.
fn planned() -> FakeKube {
    let kube = cluster();
    kube.object(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}),
    );
    kube.object(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api-gateway"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "api-gateway"}, "clusterIP": "10.96.0.10",
                 "clusterIPs": ["10.96.0.10"], "ports": [{"port": 443, "targetPort": 8443}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.12"}]}}}));
    kube.object(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "gateway-ingress"},
        "spec": {"podSelector": {"matchLabels": {"app": "api-gateway"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 8443}]}]}}));
    kube.object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api-gateway", "generation": 3},
        "spec": {"selector": {"matchLabels": {"app": "api-gateway"}},
            "template": {"metadata": {"labels": {"app": "api-gateway"}}, "spec": {"containers": [{
                "name": "gateway", "image": "registry.example/gateway:2.4.1",
                "env": [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "gateway-api-keys", "key": "API_KEY"}}}]}]}}}}));
    kube
}

#[test]
fn a_proposed_plan_is_shown_approved_by_two_and_verifies() {
    let w = World::new();
    let out = w.propose(&w.case);
    assert_success(&out);
    let shown = stdout(&out);
    // For a person who wants to read the view a real planned case gives.
    if let Some(path) = std::env::var_os("CUSTODY_TEST_PLAN_SHOW_OUT") {
        std::fs::write(path, &shown).unwrap();
    }
    // Warnings come before the steps.
    let warn = shown
        .find("externalTrafficPolicy: Cluster")
        .expect("the SNAT warning");
    let step = shown
        .find("custody-block-api-gateway")
        .map_or(usize::MAX, |_| shown.find("gateway-ingress").unwrap());
    assert!(warn < step, "{shown}");
    assert!(
        shown.contains("203.0.113.10") && shown.contains("203.0.113.11"),
        "{shown}"
    );
    assert!(
        shown.contains("load-balancer address of Service waqiti/api-gateway"),
        "{shown}"
    );
    assert!(shown.contains("198.51.100.") || !shown.contains("UNREADABLE"));
    assert!(shown.contains("custody approve"), "{shown}");
    // The rewrite of the existing policy was dry-run on the API server and accepted.
    let calls = w.kube.calls();
    let dry: Vec<_> = calls
        .iter()
        .filter(|c| c.target.contains("dryRun=All"))
        .collect();
    assert!(
        dry.iter()
            .any(|c| c.method == "PUT" && c.target.contains("networkpolicies/gateway-ingress")),
        "{:?}",
        calls
            .iter()
            .map(|c| format!("{} {}", c.method, c.target))
            .collect::<Vec<_>>()
    );
    assert!(dry
        .iter()
        .any(|c| c.method == "PATCH" && c.target.contains("deployments/api-gateway")));
    assert!(
        calls.iter().all(|c| !c.target.contains("secrets")),
        "no request touches Secrets"
    );
    let stored = w
        .kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .unwrap();
    assert!(
        stored["spec"]["ingress"][0]["from"][0]["ipBlock"]
            .get("except")
            .is_none(),
        "a dry-run changes nothing"
    );

    let out = w.run(&["--json", "plan", "show", &w.case]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = v["plan"]["plan"].as_str().unwrap().to_owned();
    let block = &v["plan"]["steps"][0];
    assert_eq!(block["kind"], "block_ips");
    assert_eq!(
        block["changes"][0]["dry_run"]["outcome"], "accepted",
        "{block}"
    );
    assert_eq!(
        block["changes"][0]["after"]["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"],
        json!(["203.0.113.10/32", "203.0.113.11/32"])
    );
    assert_eq!(v["status"]["reached"], false);

    let out = w.run(&["plan", "status", &w.case, &plan]);
    assert_code(&out, 4);
    let digest = v["sha256"].as_str().unwrap().to_owned();
    let alice = w.keys[0].private.to_str().unwrap();
    // Without the digest read, or with another, nothing is signed (and no terminal to ask on).
    let out = w.run(&["approve", &w.case, &plan, "--key", alice]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("give --sha256"), "{}", stderr(&out));
    let wrong = "a".repeat(64);
    let out = w.run(&[
        "approve", &w.case, &plan, "--key", alice, "--sha256", &wrong,
    ]);
    assert_code(&out, 2);
    assert!(!w
        .sb
        .store()
        .join("cases")
        .join(&w.case)
        .join("plans")
        .join(&plan)
        .join("approvals")
        .exists());
    for (i, k) in w.keys.iter().take(2).enumerate() {
        let out = w.run(&[
            "approve",
            &w.case,
            &plan,
            "--key",
            k.private.to_str().unwrap(),
            "--reason",
            &format!("approver {i}"),
            "--sha256",
            &digest,
        ]);
        assert_success(&out);
        assert!(
            stderr(&out).contains("To approve"),
            "approve shows the plan first"
        );
    }
    let out = w.run(&["plan", "status", &w.case, &plan]);
    assert_success(&out);
    let out = w.run(&[
        "verify",
        w.sb.store().to_str().unwrap(),
        "--approvers",
        w.sb.path("policies/approvers.allowed_signers")
            .to_str()
            .unwrap(),
    ]);
    assert_success(&out);
    let _ = &w.collected;
}

#[test]
fn a_case_with_no_sealed_bundle_exits_2_and_tampered_evidence_exits_1() {
    let w = World::new();
    // A case opened and never collected.
    let store = LocalStore::open(&w.sb.store(), false).unwrap();
    let key =
        custody::keys::SigningKey::load(&w.sb.path("home/.config/custody/collector.key")).unwrap();
    let open = CaseId::new("20261202-000000-0000abcd").unwrap();
    let header = custody::case::CaseHeader::new(
        open.clone(),
        time::OffsetDateTime::now_utc(),
        custody::case::Trigger {
            kind: "api".into(),
            requested_by: "carol".into(),
        },
    );
    custody::case::open(&store, &header, None, &key).unwrap();
    let out = w.propose(open.as_str());
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("no sealed bundle"),
        "{}",
        stderr(&out)
    );

    let files = BundleFiles::of(&w.collected);
    make_writable(&files.archive);
    let mut bytes = std::fs::read(&files.archive).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x55;
    std::fs::write(&files.archive, bytes).unwrap();
    let out = w.propose(&w.case);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));
    assert!(
        w.kube.calls().iter().all(|c| !c.target.contains("dryRun")),
        "nothing planned from bad evidence"
    );
}

#[test]
fn a_cluster_list_that_fails_proposes_nothing() {
    let w = World::new();
    w.kube.faults(|f| {
        f.forbidden
            .push("/apis/networking.k8s.io/v1/namespaces/waqiti/networkpolicies".into())
    });
    let out = w.propose(&w.case);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("partial view"), "{}", stderr(&out));
    let plans = w.sb.store().join("cases").join(&w.case).join("plans");
    assert!(!plans.exists() || std::fs::read_dir(&plans).unwrap().next().is_none());
}

#[test]
fn an_api_server_clock_that_is_unknown_or_off_proposes_nothing() {
    let w = World::new();
    let plans = w.sb.store().join("cases").join(&w.case).join("plans");
    let nothing_proposed = |w: &World| {
        assert!(!plans.exists() || std::fs::read_dir(&plans).unwrap().next().is_none());
        assert!(
            w.kube.calls().iter().all(|c| !c.target.contains("dryRun")),
            "nothing dry-run"
        );
    };
    // No Date header: the clock check cannot be made, so it is not skipped but refused.
    w.kube.faults(|f| f.no_date = true);
    let out = w.propose(&w.case);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("the API server sent no usable Date")
            && stderr(&out).contains("the answer has no Date header"),
        "{}",
        stderr(&out)
    );
    nothing_proposed(&w);
    // A Date that does not parse is refused the same way.
    w.kube.faults(|f| {
        f.no_date = false;
        f.date_text = Some("yesterday".into());
    });
    let out = w.propose(&w.case);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains(r#"its Date header "yesterday" is not an HTTP date"#),
        "{}",
        stderr(&out)
    );
    nothing_proposed(&w);
    // A clock an hour off.
    w.kube.faults(|f| {
        f.date_text = None;
        f.clock_skew = 3600;
    });
    let out = w.propose(&w.case);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("s off the API server's Date: fix the clock first"),
        "{}",
        stderr(&out)
    );
    nothing_proposed(&w);
    // Within 60 s, the plan is proposed.
    w.kube.faults(|f| f.clock_skew = 30);
    assert_success(&w.propose(&w.case));
    assert_eq!(std::fs::read_dir(&plans).unwrap().count(), 1);
}
