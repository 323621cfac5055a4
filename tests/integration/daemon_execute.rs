//! Containment end to end through the daemon: a real Alertmanager fires the breach alert, the
//! daemon seals the case and proposes a plan, two approvers sign it with real `ssh-keygen` keys
//! through `custody approve --server`, and with `plan.execute: on_quorum` the daemon executes it
//! — the NetworkPolicies' union then refuses exactly the offenders and admits everything else it
//! admitted, the new Secret is immutable and referenced, every Ready pod's admin endpoint was
//! called once — and the actions bundle verifies with `custody verify` and the standard tools.
//! Also: `kill -9` of the daemon in the middle of an execution, and its restart resuming it.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::daemon::{
    daemon_config, fire_through, http, start, start_alertmanager, wait_sealed, ANALYST_TOKEN,
};
use crate::daemon_plans::{approve_through, json_of, plan_digest, planned_cluster, wait_plan};
use crate::fake_kube::FakeKube;
use crate::util::{sh, tool, Sandbox};

/// The containment policy of `plan_propose`, proposed on alert and executed on quorum.
fn containment() -> String {
    let policy = crate::plan_propose::CONTAINMENT.replace(
        "propose_on_alert: false}",
        "propose_on_alert: true, execute: on_quorum}",
    );
    assert!(policy.contains("execute: on_quorum"));
    policy
}

/// The policies directory with the policy above and a roster of alice and bob.
fn policies(sb: &Sandbox) -> (crate::approval::SshKey, crate::approval::SshKey) {
    let keys = crate::daemon_plans::policies(sb);
    std::fs::write(sb.path("daemon/policies/containment.yaml"), containment()).unwrap();
    keys
}

/// The gateway's cluster as the planner reads it, with the Deployment's reference to the API
/// key Secret and the admin token's Secret (readable by its name only).
fn cluster() -> FakeKube {
    let kube = planned_cluster();
    kube.object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api-gateway", "generation": 3},
        "spec": {"selector": {"matchLabels": {"app": "api-gateway"}},
            "template": {"metadata": {"labels": {"app": "api-gateway"}}, "spec": {"containers": [{
                "name": "gateway", "image": "registry.example/gateway:2.4.1",
                "env": [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "gateway-api-keys", "key": "API_KEY"}}}]}]}}}}));
    // The operator's policy admitting the gateway's port to everyone (the seeded
    // `allow-gateway` isolates the pods and admits nothing by itself).
    kube.object(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "gateway-ingress"},
        "spec": {"podSelector": {"matchLabels": {"app": "api-gateway"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 8443}]}]}}));
    kube.object(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gateway-admin"},
        "data": {"token": aws_smithy_types::base64::encode("admin-token-e2e")}}),
    );
    kube.faults(|f| {
        f.readable
            .push("/api/v1/namespaces/waqiti/secrets/gateway-admin".into())
    });
    kube
}

/// `custody verify --approvers` of the local `store` passes.
fn assert_verifies(sb: &Sandbox, store: &Path) {
    let roster = sb.path("daemon/policies/approvers.allowed_signers");
    let out = sb.run(&[
        "verify",
        store.to_str().unwrap(),
        "--approvers",
        roster.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The case's journal entry kinds, in order.
fn kinds(store: &Path, case: &str) -> Vec<String> {
    let dir = store.join("cases").join(case).join("journal");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|n| {
            let v: Value = serde_json::from_slice(&std::fs::read(dir.join(n)).ok()?).ok()?;
            v["kind"].as_str().map(str::to_owned)
        })
        .collect()
}

fn wait_kind(store: &Path, case: &str, kind: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let k = kinds(store, case);
        if k.iter().any(|x| x == kind) {
            return k;
        }
        assert!(Instant::now() < deadline, "no {kind} in time: {k:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The namespace's NetworkPolicies as the fake stores them.
fn policies_of(kube: &FakeKube) -> Vec<k8s_openapi::api::networking::v1::NetworkPolicy> {
    let (code, list) = crate::fake_kube_exec::get(
        kube,
        "/apis/networking.k8s.io/v1/namespaces/waqiti/networkpolicies",
    );
    assert_eq!(code, 200);
    serde_json::from_value(list["items"].clone()).unwrap()
}

#[test]
fn an_alert_is_contained_on_quorum_and_the_actions_bundle_verifies() {
    use custody::containment::netpol::eval::{admits, EvalPod, Source, Traffic};
    let sb = Sandbox::new();
    let kube = cluster();
    let (alice, bob) = policies(&sb);
    let store = sb.path("evidence");
    let config = daemon_config(
        &sb,
        store.to_str().unwrap(),
        Some(&kube),
        "policies: policies\n",
    );
    let d = start(&sb, &config, "daemon");
    let server = format!("http://127.0.0.1:{}", d.port);
    let (mut am, am_port) = start_alertmanager(&sb, d.port);
    fire_through(am_port);
    let case = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, list) = http(d.port, "GET", "/api/v1/cases", Some(ANALYST_TOKEN), b"");
            if let Some(c) = json_of(&list)["cases"].as_array().unwrap().first() {
                break c["case_id"].as_str().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "no case: {list}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let sealed = wait_sealed(d.port, &case, Duration::from_secs(60));
    assert_eq!(sealed["state"], "sealed", "{sealed}");
    let _ = am.kill();
    let _ = am.wait();
    let plan = wait_plan(d.port, &case, Duration::from_secs(60));
    let (_, shown) = http(
        d.port,
        "GET",
        &format!("/api/v1/cases/{case}/plans/{plan}"),
        Some(ANALYST_TOKEN),
        b"",
    );
    let shown = json_of(&shown);
    let offenders: Vec<String> = shown["plan"]["addresses"]["block"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap().to_owned())
        .collect();
    assert!(!offenders.is_empty(), "{shown}");
    let before = policies_of(&kube);

    let digest = plan_digest(d.port, &case, &plan);
    approve_through(&sb, &server, (&case, &plan, &digest), &alice, false);
    approve_through(&sb, &server, (&case, &plan, &digest), &bob, false);
    let journal = wait_kind(&store, &case, "actions_sealed", Duration::from_secs(90));
    for kind in [
        "execution_started",
        "step_started",
        "step_write",
        "step_done",
    ] {
        assert!(journal.iter().any(|k| k == kind), "{journal:?}");
    }
    assert!(!journal.iter().any(|k| k == "step_failed"), "{journal:?}");

    // The union of the policies: the offenders refused, everything else as before.
    let after = policies_of(&kube);
    let pod = EvalPod {
        namespace: "waqiti".into(),
        name: "api-gateway-7d4b9c-abcde".into(),
        labels: [("app".to_owned(), "api-gateway".to_owned())].into(),
        ports: Vec::new(),
        target: true,
    };
    let traffic = Traffic {
        protocol: "TCP".into(),
        port: 8443,
    };
    let mut samples: Vec<String> = offenders.clone();
    samples.extend(
        [
            "203.0.113.9",
            "198.51.100.1",
            "8.8.8.8",
            "10.244.0.7",
            "2001:db8::1",
        ]
        .map(String::from),
    );
    for addr in &samples {
        let source = Source::Ip {
            addr: addr.parse().unwrap(),
        };
        let was = admits(&before, &pod, &source, &traffic);
        let is = admits(&after, &pod, &source, &traffic);
        if offenders.contains(addr) {
            assert!(
                was && !is,
                "{addr}: admitted before ({was}), refused after ({is}): {}\n{journal:?}\n{}",
                serde_json::to_string(&after).unwrap(),
                std::fs::read_to_string(&d.log).unwrap_or_default()
            );
        } else {
            assert_eq!(was, is, "{addr}: unchanged");
        }
    }
    let same_namespace = Source::Pod {
        namespace: "waqiti".into(),
        namespace_labels: Default::default(),
        labels: [("app".to_owned(), "web".to_owned())].into(),
    };
    assert_eq!(
        admits(&before, &pod, &same_namespace, &traffic),
        admits(&after, &pod, &same_namespace, &traffic)
    );
    assert_eq!(
        journal.iter().filter(|k| *k == "step_done").count(),
        3,
        "{journal:?}"
    );

    // The new Secret, immutable, and the Deployment repointed to it.
    let deployment = kube
        .stored("apps/v1", "deployments", "api-gateway")
        .unwrap();
    let name = deployment
        .pointer("/spec/template/spec/containers/0/env/0/valueFrom/secretKeyRef/name")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();
    assert!(
        name.starts_with(&format!("gateway-api-keys-{plan}-")),
        "{name}"
    );
    assert_eq!(kube.secret(&name).unwrap()["immutable"], true);
    // Its value is nowhere the daemon wrote: the store, its log.
    let value = kube.secret_data(&name).unwrap()["API_KEY"].clone();
    let encoded = aws_smithy_types::base64::encode(&value);
    let mut written = vec![d.log.clone()];
    let mut dirs = vec![store.clone()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                written.push(e.path());
            }
        }
    }
    for f in &written {
        let bytes = std::fs::read(f).unwrap();
        let holds = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(
            !holds(&value) && !holds(encoded.as_bytes()) && !holds(b"admin-token-e2e"),
            "{} holds a secret",
            f.display()
        );
    }
    // Every Ready pod called once, with the token.
    let calls = kube.proxied();
    assert_eq!(calls.len(), 1, "one pod, one call");
    assert_eq!(calls[0].pod, "api-gateway-7d4b9c-abcde");
    assert_eq!(
        calls[0].header("x-custody-admin-token"),
        Some("admin-token-e2e")
    );

    // custody verify, and the actions bundle with the standard tools.
    assert_verifies(&sb, &store);
    let bundles = store.join("cases").join(&case).join("bundles");
    let actions: Value = {
        let (_, v) = http(
            d.port,
            "POST",
            &format!("/api/v1/cases/{case}/plans/{plan}/execute"),
            Some(ANALYST_TOKEN),
            b"",
        );
        json_of(&v)
    };
    assert_eq!(actions["status"], "already_executed", "{actions}");
    let bundle = actions["actions_bundle"].as_str().unwrap();
    let out_dir = sb.path("actions");
    std::fs::create_dir_all(&out_dir).unwrap();
    sh(
        &format!(
            "sha256sum -c {bundle}.tar.zst.sha256 >/dev/null && {} -dc {bundle}.tar.zst | {} -x -C {}",
            tool("zstd").display(),
            tool("tar").display(),
            out_dir.display()
        ),
        &bundles,
    );
    let bag = out_dir.join(bundle);
    let validated = std::process::Command::new(tool("bagit.py"))
        .args(["--validate", bag.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(validated.status.success(), "{validated:?}");
    crate::plan_execute::assert_approvals_verify(&bag, &["alice", "bob"]);
    let sig = bag.join("data/plan/plan.json.sig");
    let key = sb.path("daemon/collector.pub");
    let out = std::process::Command::new(tool("openssl"))
        .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(&key)
        .args(["-rawin", "-in"])
        .arg(bag.join("data/plan/plan.json"))
        .arg("-sigfile")
        .arg(&sig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_daemon_killed_in_the_middle_of_an_execution_resumes_it_when_restarted() {
    let sb = Sandbox::new();
    let kube = cluster();
    let (alice, bob) = policies(&sb);
    // Manual execution, through the API.
    let manual = containment().replace("execute: on_quorum", "execute: manual");
    std::fs::write(sb.path("daemon/policies/containment.yaml"), manual).unwrap();
    let store = sb.path("evidence");
    let config = daemon_config(
        &sb,
        store.to_str().unwrap(),
        Some(&kube),
        "policies: policies\n",
    );
    let d = start(&sb, &config, "daemon");
    let server = format!("http://127.0.0.1:{}", d.port);
    let alert = crate::daemon::fire_breach(d.port);
    let case = alert["case_id"].as_str().unwrap().to_owned();
    wait_sealed(d.port, &case, Duration::from_secs(60));
    let plan = wait_plan(d.port, &case, Duration::from_secs(60));
    let digest = plan_digest(d.port, &case, &plan);
    approve_through(&sb, &server, (&case, &plan, &digest), &alice, false);
    approve_through(&sb, &server, (&case, &plan, &digest), &bob, false);
    // The rollout never completes while the daemon runs: it waits in step 2.
    kube.rollout_lag(1_000_000);
    let port = d.port;
    let (c, p) = (case.clone(), plan.clone());
    std::thread::spawn(move || {
        let _ = http(
            port,
            "POST",
            &format!("/api/v1/cases/{c}/plans/{p}/execute"),
            Some(ANALYST_TOKEN),
            b"",
        );
    });
    wait_kind(&store, &case, "step_started", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    while kinds(&store, &case)
        .iter()
        .filter(|k| *k == "step_done")
        .count()
        < 1
    {
        assert!(Instant::now() < deadline, "step 1 not done");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Wait for the Deployment's patch to land, then kill the daemon mid-rollout.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = kube
            .stored("apps/v1", "deployments", "api-gateway")
            .unwrap();
        let name = d
            .pointer("/spec/template/spec/containers/0/env/0/valueFrom/secretKeyRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if name != "gateway-api-keys" {
            break;
        }
        assert!(Instant::now() < deadline, "the Deployment was not patched");
        std::thread::sleep(Duration::from_millis(100));
    }
    d.kill9();
    assert!(!kinds(&store, &case).iter().any(|k| k == "actions_sealed"));
    let secrets_created = |kube: &FakeKube| {
        kube.calls()
            .iter()
            .filter(|c| {
                c.method == "POST" && c.target.contains("/secrets") && !c.target.contains("dryRun")
            })
            .count()
    };
    assert_eq!(secrets_created(&kube), 1);

    // Restarted, the daemon resumes the execution by itself, from the rollout.
    kube.rollout_lag(1);
    kube.catch_up_rollouts();
    let d = start(&sb, &config, "daemon-2");
    let journal = wait_kind(&store, &case, "actions_sealed", Duration::from_secs(90));
    assert!(!journal.iter().any(|k| k == "step_failed"), "{journal:?}");
    assert_eq!(
        secrets_created(&kube),
        1,
        "the Secret created before the kill is used"
    );
    let puts = kube
        .calls()
        .iter()
        .filter(|c| {
            c.method != "GET"
                && c.target.contains("networkpolicies")
                && !c.target.contains("dryRun")
        })
        .count();
    assert_eq!(puts, 1, "the block was applied once");
    assert_eq!(kube.proxied().len(), 1);
    assert_verifies(&sb, &store);
    drop(d);
}

#[test]
fn the_daemon_lifts_a_block_when_its_expiry_passes_and_the_rewritten_policy_gets_its_rules_back() {
    let sb = Sandbox::new();
    let kube = cluster();
    let (alice, bob) = policies(&sb);
    // Blocks for one minute; the daemon looks for expired blocks every second.
    let short = containment().replace("ttl: 24h", "ttl: 1m");
    assert!(short.contains("ttl: 1m"));
    std::fs::write(sb.path("daemon/policies/containment.yaml"), short).unwrap();
    let before = kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .unwrap();
    let store = sb.path("evidence");
    let config = daemon_config(
        &sb,
        store.to_str().unwrap(),
        Some(&kube),
        "policies: policies\nlimits:\n  block_expiry_seconds: 1\n",
    );
    let d = start(&sb, &config, "daemon");
    let server = format!("http://127.0.0.1:{}", d.port);
    let alert = crate::daemon::fire_breach(d.port);
    let case = alert["case_id"].as_str().unwrap().to_owned();
    wait_sealed(d.port, &case, Duration::from_secs(60));
    let plan = wait_plan(d.port, &case, Duration::from_secs(60));
    let digest = plan_digest(d.port, &case, &plan);
    approve_through(&sb, &server, (&case, &plan, &digest), &alice, false);
    approve_through(&sb, &server, (&case, &plan, &digest), &bob, false);
    wait_kind(&store, &case, "actions_sealed", Duration::from_secs(90));
    let blocked = kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .unwrap();
    assert_ne!(
        blocked["spec"], before["spec"],
        "the block rewrote the policy"
    );

    // A minute later the daemon proposes an expiry plan of its own and executes it.
    let deadline = Instant::now() + Duration::from_secs(150);
    while kinds(&store, &case)
        .iter()
        .filter(|k| *k == "actions_sealed")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the block was not lifted: {:?}",
            kinds(&store, &case)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let journal = kinds(&store, &case);
    assert!(!journal.iter().any(|k| k == "step_failed"), "{journal:?}");
    let after = kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .unwrap();
    assert_eq!(
        after["spec"], before["spec"],
        "the rules are as before the block"
    );
    // Nothing more is expired at later rounds.
    std::thread::sleep(Duration::from_secs(3));
    let again = kinds(&store, &case);
    assert_eq!(again.len(), journal.len(), "{again:?}");
    let (_, text) = http(d.port, "GET", "/metrics", None, b"");
    assert!(
        text.contains("custody_block_expiries_total{outcome=\"expired\"} 1"),
        "{text}"
    );
    assert_verifies(&sb, &store);
    drop(d);
}

#[test]
fn on_s3_an_approved_plan_is_executed_through_the_daemon_and_verifies() {
    use crate::daemon::{assert_verifies_from_s3, journal_kinds_s3, s3_extra, start_s3};
    let moto = crate::s3::moto();
    let bucket = moto.bucket(true);
    let store = format!("s3://{bucket}/custody");
    let sb = Sandbox::new();
    let kube = cluster();
    let (alice, bob) = policies(&sb);
    let manual = containment().replace("execute: on_quorum", "execute: manual");
    std::fs::write(sb.path("daemon/policies/containment.yaml"), manual).unwrap();
    let extra = format!("{}policies: policies\n", s3_extra(&moto.endpoint));
    let config = daemon_config(&sb, &store, Some(&kube), &extra);
    let d = start_s3(&sb, &config, "daemon");
    let server = format!("http://127.0.0.1:{}", d.port);
    let case = crate::daemon::fire_breach(d.port)["case_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_sealed(d.port, &case, Duration::from_secs(60));
    let plan = wait_plan(d.port, &case, Duration::from_secs(60));
    let digest = plan_digest(d.port, &case, &plan);
    approve_through(&sb, &server, (&case, &plan, &digest), &alice, false);
    approve_through(&sb, &server, (&case, &plan, &digest), &bob, false);
    let (code, body) = http(
        d.port,
        "POST",
        &format!("/api/v1/cases/{case}/plans/{plan}/execute"),
        Some(ANALYST_TOKEN),
        b"",
    );
    assert_eq!(code, 200, "{body}");
    let v = json_of(&body);
    assert_eq!(v["status"], "executed", "{v}");
    let bundle = v["actions_bundle"].as_str().unwrap();
    let keys = moto.keys(&bucket);
    assert!(
        keys.contains(&format!("custody/cases/{case}/bundles/{bundle}.tar.zst")),
        "{keys:?}"
    );
    let kinds = journal_kinds_s3(&moto, &bucket, &case);
    // The actions bundle sealed, then its objects' versions and locks recorded.
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["actions_sealed".to_owned(), "objects_stored".to_owned()],
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "step_done").count(),
        3,
        "{kinds:?}"
    );
    assert_verifies_from_s3(&sb, &moto.endpoint, &store);
}
