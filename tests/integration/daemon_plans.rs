//! The daemon's plans end to end, over real HTTP on loopback with the fake API server as the
//! cluster and a local store: an alert's case sealed, a plan proposed by the daemon itself
//! (`propose_on_alert`), the notification received by a local sink with the approve command,
//! two approvals sent with `custody approve --server` signed by real `ssh-keygen` keys, and
//! quorum reported by the API and notified; the same flow with the daemon's store on S3 (moto).
//! Also what the plan endpoints refuse: a bad
//! statement (400), one for another plan (422), an oversized body (413), a plan for a case with
//! no sealed bundle (422), a case or plan that does not exist (404).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::OffsetDateTime;

use custody::approval::statement::Statement;
use custody::approval::{Decision, Principal};
use custody::id::{CaseId, PlanId};

use crate::approval::{ssh_key, SshKey};
use crate::daemon::{
    assert_verifies_from_s3, daemon_config, fire_breach, gateway_cluster, http, journal_kinds_s3,
    s3_extra, start, start_s3, wait_case, wait_sealed, ANALYST_TOKEN,
};
use crate::fake_kube::FakeKube;
use crate::util::Sandbox;

/// A notification receiver: every body POSTed to it, as JSON.
pub struct Sink {
    pub port: u16,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Sink {
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let into = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        into.lock().unwrap().push(v);
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        Sink { port, got }
    }

    /// Every event named `name` received so far.
    pub fn events(&self, name: &str) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["custody"]["event"] == name)
            .cloned()
            .collect()
    }

    /// Waits for an event named `name`, returning its body.
    pub fn wait_for(&self, name: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = self
                .got
                .lock()
                .unwrap()
                .iter()
                .find(|v| v["custody"]["event"] == name)
            {
                return v.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {name} notification in time; got {:?}",
                self.got.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub(crate) const CONTAINMENT: &str = "targets:
  - name: api-gateway
    namespace: waqiti
    pod_selector:
      matchLabels:
        app: api-gateway
block_ips:
  method: networkpolicy
  never_block: [198.51.100.0/24]
  max_addresses: 100
  ttl: 24h
rotate_secrets: []
invalidate_sessions: []
quorum:
  block_ips: 2
  rotate_secrets: 2
  invalidate_sessions: 2
plan:
  not_after: 2h
  veto: any_reject
  propose_on_alert: true
";

/// The policies directory: the containment policy above and a roster of alice and bob.
pub fn policies(sb: &Sandbox) -> (SshKey, SshKey) {
    let dir = sb.path("daemon/policies");
    std::fs::create_dir_all(&dir).unwrap();
    let keys = sb.path("ssh");
    std::fs::create_dir_all(&keys).unwrap();
    let (alice, bob) = (ssh_key(&keys, "alice"), ssh_key(&keys, "bob"));
    let roster = format!(
        "alice@example.org namespaces=\"custody-approval,custody-proposal\" {}\nbob@example.org namespaces=\"custody-approval\" {}\n",
        alice.openssh, bob.openssh
    );
    std::fs::write(dir.join("approvers.allowed_signers"), roster).unwrap();
    std::fs::write(dir.join("containment.yaml"), CONTAINMENT).unwrap();
    (alice, bob)
}

pub fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Polls the case's plans until there is one, stored whole; its id.
pub fn wait_plan(port: u16, case: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (code, body) = http(
            port,
            "GET",
            &format!("/api/v1/cases/{case}/plans"),
            Some(ANALYST_TOKEN),
            b"",
        );
        assert_eq!(code, 200, "{body}");
        if let Some(p) = json_of(&body)["plans"].as_array().and_then(|p| p.first()) {
            // A plan being stored is listed before its plan.json (written last) is there.
            if p["valid"] == true {
                return p["plan"].as_str().unwrap().to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no plan proposed in time: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The gateway's cluster with its Node, as the planner reads it.
pub fn planned_cluster() -> FakeKube {
    let kube = gateway_cluster();
    kube.object(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}),
    );
    kube
}

/// Sends `key`'s approval (or reject) of `plan` to the daemon at `server` with `approve
/// --server`, checking the digest it signs.
pub fn approve_through(
    sb: &Sandbox,
    server: &str,
    (case, plan, digest): (&str, &str, &str),
    key: &SshKey,
    reject: bool,
) {
    let token = sb.path("daemon/analyst.token");
    let mut args = vec![
        "approve",
        case,
        plan,
        "--sha256",
        digest,
        "--key",
        key.private.to_str().unwrap(),
        "--server",
        server,
        "--token-file",
        token.to_str().unwrap(),
    ];
    if reject {
        args.extend(["--reject", "--reason", "not this one"]);
    }
    let out = sb.run(&args);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    let decision = if reject { "reject" } else { "approve" };
    assert!(said.contains(&format!("recorded {decision}")), "{said}");
}

/// The plan's digest, as the daemon shows it.
pub fn plan_digest(port: u16, case: &str, plan: &str) -> String {
    let (code, body) = http(
        port,
        "GET",
        &format!("/api/v1/cases/{case}/plans/{plan}"),
        Some(ANALYST_TOKEN),
        b"",
    );
    assert_eq!(code, 200, "{body}");
    json_of(&body)["sha256"].as_str().unwrap().to_owned()
}

#[test]
fn on_s3_an_alert_is_sealed_planned_notified_and_approved_through_the_daemon() {
    let moto = crate::s3::moto();
    let bucket = moto.bucket(true);
    let store = format!("s3://{bucket}/custody");
    let sb = Sandbox::new();
    let kube = planned_cluster();
    let sink = Sink::start();
    let (alice, bob) = policies(&sb);
    let extra = format!(
        "{}policies: policies\nnotify:\n  url: http://127.0.0.1:{}/hook\n",
        s3_extra(&moto.endpoint),
        sink.port
    );
    let config = daemon_config(&sb, &store, Some(&kube), &extra);
    let d = start_s3(&sb, &config, "daemon");
    let server = format!("http://127.0.0.1:{}", d.port);

    let case = fire_breach(d.port)["case_id"].as_str().unwrap().to_owned();
    let sealed = wait_sealed(d.port, &case, Duration::from_secs(60));
    assert_eq!(sealed["state"], "sealed", "{sealed}");
    let announced = sink.wait_for("case_sealed", Duration::from_secs(30));
    assert_eq!(announced["custody"]["case"], case.as_str());
    let plan = wait_plan(d.port, &case, Duration::from_secs(60));
    let awaiting = sink.wait_for("plan_awaiting_approval", Duration::from_secs(30));
    assert_eq!(awaiting["custody"]["plan"], plan.as_str());
    // The plan is in the bucket beside the evidence, and journaled there.
    let keys = moto.keys(&bucket);
    assert!(
        keys.contains(&format!("custody/cases/{case}/plans/{plan}/plan.json")),
        "{keys:?}"
    );
    let digest = plan_digest(d.port, &case, &plan);
    for key in [&alice, &bob] {
        approve_through(&sb, &server, (&case, &plan, &digest), key, false);
    }
    let reached = sink.wait_for("quorum_reached", Duration::from_secs(30));
    assert_eq!(reached["custody"]["plan"], plan.as_str());
    let kinds = journal_kinds_s3(&moto, &bucket, &case);
    for (kind, n) in [("plan_proposed", 1), ("approval_recorded", 2)] {
        assert_eq!(
            kinds.iter().filter(|k| *k == kind).count(),
            n,
            "{kind} in {kinds:?}"
        );
    }
    assert_eq!(sink.events("case_sealed").len(), 1);
    let (_, metrics) = http(d.port, "GET", "/metrics", None, b"");
    // The plan is watched for its expiry.
    assert!(metrics.contains("custody_open_plans 1"), "{metrics}");
    assert!(
        metrics.contains("custody_approvals_total{outcome=\"approve\"} 2"),
        "{metrics}"
    );
    assert_verifies_from_s3(&sb, &moto.endpoint, &store);
}

#[test]
fn an_alert_is_sealed_planned_notified_approved_through_the_daemon_and_reaches_quorum() {
    let sb = Sandbox::new();
    let kube = planned_cluster();
    let sink = Sink::start();
    let (alice, bob) = policies(&sb);
    let store = sb.path("evidence");
    let extra = format!(
        "policies: policies\nnotify:\n  url: http://127.0.0.1:{}/hook\n",
        sink.port
    );
    let config = daemon_config(&sb, store.to_str().unwrap(), Some(&kube), &extra);
    let d = start(&sb, &config, "daemon");
    let server = format!("http://127.0.0.1:{}", d.port);
    let token = sb.path("daemon/analyst.token");

    let alert = fire_breach(d.port);
    let case = alert["case_id"].as_str().unwrap().to_owned();
    let sealed = wait_sealed(d.port, &case, Duration::from_secs(60));
    assert_eq!(sealed["state"], "sealed", "{sealed}");
    let announced = sink.wait_for("case_sealed", Duration::from_secs(30));
    assert_eq!(announced["custody"]["case"], case.as_str());
    assert!(!announced["custody"]["suspicious"]
        .as_array()
        .unwrap()
        .is_empty());

    let plan = wait_plan(d.port, &case, Duration::from_secs(60));
    let awaiting = sink.wait_for("plan_awaiting_approval", Duration::from_secs(30));
    let command = awaiting["custody"]["approve_command"].as_str().unwrap();
    assert!(
        command.contains(&format!("approve {case} {plan} --key"))
            && command.contains("--server")
            && command.contains("--token-file"),
        "{command}"
    );
    assert!(awaiting["custody"]["summary_text"]
        .as_str()
        .unwrap()
        .contains(&plan));
    let (code, metrics) = http(d.port, "GET", "/metrics", None, b"");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("custody_plans_proposed_total{trigger=\"alert\"} 1"),
        "{metrics}"
    );

    // The text view an approver reads names the daemon to send the approval to.
    let (code, text) = http(
        d.port,
        "GET",
        &format!("/api/v1/cases/{case}/plans/{plan}?format=text"),
        Some(ANALYST_TOKEN),
        b"",
    );
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("--server http://127.0.0.1"), "{text}");

    let (code, body) = http(
        d.port,
        "GET",
        &format!("/api/v1/cases/{case}/plans/{plan}"),
        Some(ANALYST_TOKEN),
        b"",
    );
    assert_eq!(code, 200, "{body}");
    let digest = json_of(&body)["sha256"].as_str().unwrap().to_owned();
    for key in [&alice, &bob] {
        let out = sb.run(&[
            "approve",
            &case,
            &plan,
            "--sha256",
            &digest,
            "--key",
            key.private.to_str().unwrap(),
            "--server",
            &server,
            "--token-file",
            token.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("recorded approve"), "{said}");
        // What the approver was shown before signing: the plan's view.
        assert!(String::from_utf8_lossy(&out.stderr).contains(&plan));
    }
    let (code, body) = http(
        d.port,
        "GET",
        &format!("/api/v1/cases/{case}/plans/{plan}"),
        Some(ANALYST_TOKEN),
        b"",
    );
    assert_eq!(code, 200, "{body}");
    let shown = json_of(&body);
    assert_eq!(shown["status"]["reached"], true, "{shown}");
    assert_eq!(shown["status"]["counted"], 2, "{shown}");
    // The planner's plan: the suspicious clients blocked on the target.
    assert!(
        !shown["plan"]["steps"].as_array().unwrap().is_empty(),
        "{shown}"
    );
    assert!(shown["pinned_roster"]
        .as_str()
        .unwrap()
        .contains("alice@example.org"));
    let (_, list) = http(
        d.port,
        "GET",
        &format!("/api/v1/cases/{case}/plans"),
        Some(ANALYST_TOKEN),
        b"",
    );
    assert_eq!(json_of(&list)["plans"][0]["quorum_reached"], true, "{list}");
    let reached = sink.wait_for("quorum_reached", Duration::from_secs(30));
    assert_eq!(reached["custody"]["plan"], plan.as_str());
    let (_, metrics) = http(d.port, "GET", "/metrics", None, b"");
    assert!(
        metrics.contains("custody_approvals_total{outcome=\"approve\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("custody_notifications_sent_total"),
        "{metrics}"
    );

    refusals(&sb, d.port, &case, &plan, &alice);

    // A case with no sealed bundle: its collection failed (no such Deployment).
    let (code, body) = http(
        d.port,
        "POST",
        "/api/v1/cases",
        Some(ANALYST_TOKEN),
        br#"{"namespace": "waqiti", "deployment": "nothing-here"}"#,
    );
    assert_eq!(code, 202, "{body}");
    let failed = json_of(&body)["case_id"].as_str().unwrap().to_owned();
    wait_case(d.port, &failed, Duration::from_secs(60), |v| {
        v["state"] == "failed"
    });
    let draft = json!({"public_key": alice.openssh});
    let (code, body) = http(
        d.port,
        "POST",
        &format!("/api/v1/cases/{failed}/plans/drafts"),
        Some(ANALYST_TOKEN),
        &serde_json::to_vec(&draft).unwrap(),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("no sealed bundle"), "{body}");
    // The `api` proposal that failed is counted.
    let (_, metrics) = http(d.port, "GET", "/metrics", None, b"");
    assert!(
        metrics.contains("custody_plan_proposals_failed_total{trigger=\"api\"} 1"),
        "{metrics}"
    );
}

/// What the approvals endpoint refuses, and why.
fn refusals(sb: &Sandbox, port: u16, case: &str, plan: &str, alice: &SshKey) {
    let approvals = format!("/api/v1/cases/{case}/plans/{plan}/approvals");
    let post = |body: &[u8]| http(port, "POST", &approvals, Some(ANALYST_TOKEN), body);
    // Not an approval request at all.
    let (code, body) = post(b"{\"statement\": 1}");
    assert_eq!(code, 400, "{body}");
    // Not a statement (not canonical JSON).
    let (code, body) =
        post(&serde_json::to_vec(&json!({"statement": "{ }", "signature": "x"})).unwrap());
    assert_eq!(code, 400, "{body}");
    assert!(
        json_of(&body)["error"]
            .as_str()
            .unwrap()
            .contains("statement"),
        "{body}"
    );
    // A well-signed statement for another plan.
    let other = PlanId::generate(OffsetDateTime::now_utc());
    let statement = Statement::new(
        CaseId::new(case).unwrap(),
        other,
        custody::digest::Sha256Digest::of(b"another plan"),
        Decision::Approve,
        Principal::new("alice@example.org").unwrap(),
        alice.fingerprint,
        String::new(),
        OffsetDateTime::now_utc(),
    );
    let (bytes, sig) = statement.sign(&alice.private).unwrap();
    let request = json!({"statement": String::from_utf8(bytes).unwrap(), "signature": String::from_utf8(sig).unwrap()});
    let (code, body) = post(&serde_json::to_vec(&request).unwrap());
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("not this plan"), "{body}");
    // Over the body limit.
    let (code, _) = post(&vec![b' '; 5 * 1024 * 1024]);
    assert_eq!(code, 413);
    // Without the token.
    let (code, _) = http(port, "POST", &approvals, None, b"{}");
    assert_eq!(code, 401);
    // No such plan, no such case.
    let (code, _) = http(
        port,
        "GET",
        &format!(
            "/api/v1/cases/{case}/plans/{}",
            PlanId::generate(OffsetDateTime::now_utc())
        ),
        Some(ANALYST_TOKEN),
        b"",
    );
    assert_eq!(code, 404);
    let (code, _) = http(
        port,
        "GET",
        "/api/v1/cases/20261126-145448-00000009/plans",
        Some(ANALYST_TOKEN),
        b"",
    );
    assert_eq!(code, 404);
    let (_, metrics) = http(port, "GET", "/metrics", None, b"");
    assert!(
        metrics.contains("custody_approvals_total{outcome=\"refused\"} 2"),
        "{metrics}"
    );
    let _ = sb;
}
