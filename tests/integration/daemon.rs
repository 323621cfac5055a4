//! `custody serve` as Alertmanager and analysts use it: real HTTP on loopback, the fake API server
//! of `fake_kube` as the cluster, and a real Alertmanager for the end-to-end test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::fake_kube::{FakeContainer, FakeKube, FakePod, NOW};
use crate::util::{line, Sandbox};

pub const WEBHOOK_TOKEN: &str = "webhook-token-0123456789abcdef";
pub const ANALYST_TOKEN: &str = "analyst-token-0123456789abcdef";

/// A minimal HTTP/1.1 client: (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    // A server may answer (413) and close before a large body is sent: what it said counts.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Daemon {
    pub port: u16,
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Sends SIGKILL: nothing is flushed, nothing is drained.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes tokens, a key and a config for `store`; returns the config path.
pub fn daemon_config(sb: &Sandbox, store: &str, kube: Option<&FakeKube>, extra: &str) -> PathBuf {
    let dir = sb.path("daemon");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("webhook.token"), WEBHOOK_TOKEN).unwrap();
    std::fs::write(dir.join("analyst.token"), ANALYST_TOKEN).unwrap();
    if !dir.join("collector.key").exists() {
        let out = sb.run(&["keygen", "--out", dir.join("collector").to_str().unwrap()]);
        assert!(out.status.success());
    }
    let kubeconfig = kube
        .map(|k| {
            format!(
                "kubernetes:\n  kubeconfig: {}\n",
                k.kubeconfig(&dir).display()
            )
        })
        .unwrap_or_default();
    let config = dir.join("custody.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{}\nstore: {store}\nsigning_key: collector.key\nauth:\n  webhook_token_file: webhook.token\n  analyst_token_file: analyst.token\n{kubeconfig}{extra}",
            free_port()
        ),
    )
    .unwrap();
    config
}

/// Starts `custody serve` and waits until it is ready.
pub fn start(sb: &Sandbox, config: &Path, name: &str) -> Daemon {
    let text = std::fs::read_to_string(config).unwrap();
    // Any address; it is reached on loopback.
    let port: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("listen: "))
        .and_then(|a| a.rsplit_once(':'))
        .unwrap()
        .1
        .parse()
        .unwrap();
    let log = sb.path(&format!("{name}.log"));
    let child = sb
        .custody(&["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon { port, child, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/readyz", None, b"").0 == 200
        {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not become ready:\n{}",
            std::fs::read_to_string(&d.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn notification(
    status: &str,
    alertname: &str,
    starts_at: &str,
    labels: &[(&str, &str)],
) -> Vec<u8> {
    let mut l = serde_json::Map::new();
    l.insert("alertname".into(), alertname.into());
    l.insert("severity".into(), "critical".into());
    for (k, v) in labels {
        l.insert(k.to_string(), (*v).into());
    }
    let fingerprint =
        custody::digest::Sha256Digest::of(serde_json::to_string(&l).unwrap().as_bytes()).to_hex()
            [..16]
            .to_owned();
    serde_json::to_vec(&serde_json::json!({
        "receiver": "custody", "status": status, "version": "4", "groupKey": "{}:{alertname=\"x\"}", "truncatedAlerts": 0,
        "groupLabels": {"alertname": alertname}, "commonLabels": l, "commonAnnotations": {}, "externalURL": "http://am",
        "notification_reason": "new",
        "alerts": [{"status": status, "labels": l, "annotations": {"summary": "breach"}, "startsAt": starts_at,
                    "endsAt": if status == "resolved" { "2026-11-26T15:30:00Z" } else { "0001-01-01T00:00:00Z" },
                    "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint}]
    }))
    .unwrap()
}

pub fn gateway_cluster() -> FakeKube {
    let kube = FakeKube::start("waqiti");
    kube.deployment("api-gateway", &[("app", "api-gateway")], &["edge"]);
    let lines: Vec<(i64, Vec<u8>)> = (0..400)
        .map(|i| {
            let status = if i % 5 == 0 { 401 } else { 200 };
            (
                NOW - 400 + i,
                line(&format!("203.0.113.{}", i % 3), status, "/login")
                    .trim_end()
                    .as_bytes()
                    .to_vec(),
            )
        })
        .collect();
    kube.pod(FakePod {
        name: "api-gateway-7d4b9c-abcde".into(),
        labels: [
            ("app".to_owned(), "api-gateway".to_owned()),
            ("tier".to_owned(), "edge".to_owned()),
        ]
        .into(),
        containers: vec![FakeContainer {
            name: "gateway".into(),
            lines,
            previous: None,
        }],
        init_containers: Vec::new(),
        node: "node-a".into(),
    });
    kube
}

/// Polls the case API until the case is sealed (or failed), returning its view.
pub fn wait_sealed(port: u16, case: &str, within: Duration) -> serde_json::Value {
    wait_case(port, case, within, |v| {
        v["state"] != "collecting" && v["state"] != "storing"
    })
}

/// Polls the case API until the case's view satisfies `done`, returning it.
pub fn wait_case(
    port: u16,
    case: &str,
    within: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let (code, body) = http(
            port,
            "GET",
            &format!("/api/v1/cases/{case}"),
            Some(ANALYST_TOKEN),
            b"",
        );
        if code == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            if done(&v) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "case {case} not as awaited in time: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

const BREACH: &str = "WaqitiSecurityBreachDetected";
const STARTS: &str = "2026-11-26T14:50:00.123456789Z";

#[test]
fn an_alert_opens_exactly_one_case_per_episode_and_is_sealed() {
    let sb = Sandbox::new();
    let kube = gateway_cluster();
    let store = sb.store();
    let config = daemon_config(&sb, store.to_str().unwrap(), Some(&kube), "");
    let d = start(&sb, &config, "daemon");

    let (code, body) = http(
        d.port,
        "POST",
        "/api/v1/alerts",
        Some(WEBHOOK_TOKEN),
        &notification("firing", BREACH, STARTS, &[]),
    );
    assert_eq!(code, 200, "{body}");
    let result = json(&body);
    assert_eq!(result["alerts"][0]["outcome"], "opened");
    let case = result["alerts"][0]["case_id"].as_str().unwrap().to_owned();
    // Resends (Alertmanager's repeat_interval, or a retry) name the same case and open none.
    for _ in 0..3 {
        let (code, body) = http(
            d.port,
            "POST",
            "/api/v1/alerts",
            Some(WEBHOOK_TOKEN),
            &notification("firing", BREACH, STARTS, &[]),
        );
        assert_eq!(code, 200);
        assert_eq!(json(&body)["alerts"][0]["outcome"], "duplicate");
        assert_eq!(json(&body)["alerts"][0]["case_id"], case.as_str());
    }
    let view = wait_sealed(d.port, &case, Duration::from_secs(60));
    assert_eq!(view["state"], "sealed", "{view}");
    assert_eq!(view["bundles"].as_array().unwrap().len(), 1);
    let suspicious = view["findings"]["suspicious"].as_array().unwrap();
    assert!(
        suspicious
            .iter()
            .any(|s| s["ip"].as_str().unwrap().starts_with("203.0.113.")),
        "{view}"
    );

    // The resolve is journaled on the case, once.
    for _ in 0..2 {
        let (code, body) = http(
            d.port,
            "POST",
            "/api/v1/alerts",
            Some(WEBHOOK_TOKEN),
            &notification("resolved", BREACH, STARTS, &[]),
        );
        assert_eq!(code, 200, "{body}");
        assert_eq!(json(&body)["alerts"][0]["outcome"], "resolved");
    }
    let view = wait_sealed(d.port, &case, Duration::from_secs(5));
    assert_eq!(view["alert_resolved"], true);
    let kinds = journal_kinds(&store, &case);
    assert_eq!(
        kinds.iter().filter(|k| *k == "alert_resolved").count(),
        1,
        "{kinds:?}"
    );
    // A new episode of the same alert (a new startsAt) is a new case.
    let (_, body) = http(
        d.port,
        "POST",
        "/api/v1/alerts",
        Some(WEBHOOK_TOKEN),
        &notification("firing", BREACH, "2026-11-26T16:00:00Z", &[]),
    );
    let second = json(&body)["alerts"][0]["case_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(second, case);
    wait_sealed(d.port, &second, Duration::from_secs(60));
    // An alert no route matches is acknowledged, recorded, and opens nothing.
    let (code, body) = http(
        d.port,
        "POST",
        "/api/v1/alerts",
        Some(WEBHOOK_TOKEN),
        &notification("firing", "DiskAlmostFull", STARTS, &[]),
    );
    assert_eq!(code, 200);
    assert_eq!(json(&body)["alerts"][0]["outcome"], "ignored");

    let (_, list) = http(d.port, "GET", "/api/v1/cases", Some(ANALYST_TOKEN), b"");
    assert_eq!(json(&list)["cases"].as_array().unwrap().len(), 2, "{list}");
    // The bag holds the alert, and the store verifies.
    let alert = std::fs::read_dir(store.join("cases").join(&case).join("bundles"))
        .unwrap()
        .count();
    assert_eq!(alert, 4);
    assert!(sb
        .run(&["verify", store.to_str().unwrap()])
        .status
        .success());
    let (_, metrics) = http(d.port, "GET", "/metrics", None, b"");
    assert!(
        metrics.contains("custody_cases_opened_total{trigger=\"alert\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("custody_collections_total{outcome=\"sealed\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("custody_webhook_requests_total{code=\"200\"}"),
        "{metrics}"
    );
}

#[test]
fn bad_requests_are_refused_with_the_right_code() {
    let sb = Sandbox::new();
    let config = daemon_config(&sb, sb.store().to_str().unwrap(), None, "");
    let d = start(&sb, &config, "daemon");
    let body = notification("firing", BREACH, STARTS, &[]);
    assert_eq!(http(d.port, "POST", "/api/v1/alerts", None, &body).0, 401);
    assert_eq!(
        http(
            d.port,
            "POST",
            "/api/v1/alerts",
            Some("wrong-token-0123456789"),
            &body
        )
        .0,
        401
    );
    assert_eq!(
        http(d.port, "POST", "/api/v1/alerts", Some(ANALYST_TOKEN), &body).0,
        401
    );
    assert_eq!(
        http(
            d.port,
            "POST",
            "/api/v1/alerts",
            Some(WEBHOOK_TOKEN),
            b"{\"alerts\": ["
        )
        .0,
        400
    );
    let huge = vec![b' '; 30 * 1024 * 1024];
    assert_eq!(
        http(d.port, "POST", "/api/v1/alerts", Some(WEBHOOK_TOKEN), &huge).0,
        413
    );
    assert_eq!(
        http(d.port, "GET", "/api/v1/cases", Some(WEBHOOK_TOKEN), b"").0,
        401
    );
    assert_eq!(
        http(
            d.port,
            "GET",
            "/api/v1/cases/not_an_id",
            Some(ANALYST_TOKEN),
            b""
        )
        .0,
        400
    );
    assert_eq!(
        http(
            d.port,
            "POST",
            "/api/v1/cases",
            Some(ANALYST_TOKEN),
            b"{\"namespace\": \"w\"}"
        )
        .0,
        400
    );
    // Nothing was written by any of it.
    assert!(
        !sb.store().join("cases").exists()
            || std::fs::read_dir(sb.store().join("cases")).unwrap().count() == 0
    );
    assert_eq!(http(d.port, "GET", "/healthz", None, b"").0, 200);
}

#[test]
fn a_policy_with_an_error_stops_start_up_with_its_name() {
    let sb = Sandbox::new();
    let policies = sb.path("policies-bad");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("collection.yaml"),
        "kubernetes: {limit_bytes: 0, concurrency: 1}\n",
    )
    .unwrap();
    let config = daemon_config(
        &sb,
        sb.store().to_str().unwrap(),
        None,
        &format!("policies: {}\n", policies.display()),
    );
    let out = sb.run(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("collection.yaml") && err.contains("limit_bytes"),
        "{err}"
    );
    // A config error too.
    std::fs::write(&config, "listen: nowhere\n").unwrap();
    let out = sb.run(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_collection_killed_midway_is_done_again_after_a_restart() {
    let sb = Sandbox::new();
    let kube = gateway_cluster();
    // The kubelet is slow: the collection is still running when the daemon is killed.
    kube.faults(|f| f.log_delay = Some(Duration::from_secs(3)));
    let store = sb.store();
    let config = daemon_config(&sb, store.to_str().unwrap(), Some(&kube), "");
    let d = start(&sb, &config, "first");
    let (code, body) = http(
        d.port,
        "POST",
        "/api/v1/alerts",
        Some(WEBHOOK_TOKEN),
        &notification("firing", BREACH, STARTS, &[]),
    );
    assert_eq!(code, 200, "{body}");
    let case = json(&body)["alerts"][0]["case_id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_millis(800));
    d.kill9();
    kube.faults(|f| f.log_delay = None);
    let d = start(&sb, &config, "second");
    let view = wait_sealed(d.port, &case, Duration::from_secs(60));
    assert_eq!(view["state"], "sealed", "{view}");
    let journal = store.join("cases").join(&case).join("journal");
    let restarted = crate::util::journal_entry_paths(&journal)
        .iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("\"collection_restarted\"")
        })
        .count();
    assert_eq!(restarted, 1, "the interruption is journaled");
    assert!(sb
        .run(&["verify", store.to_str().unwrap()])
        .status
        .success());
}

/// The S3 settings of a daemon config for a moto bucket (through `endpoint`).
pub fn s3_extra(endpoint: &str) -> String {
    format!("s3:\n  endpoint: {endpoint}\n  path_style: true\n")
}

/// `custody serve` with the S3 test credentials in its environment.
pub fn start_s3(sb: &Sandbox, config: &Path, name: &str) -> Daemon {
    // The daemon reads credentials from the standard chain: the environment it inherits.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    start(sb, config, name)
}

#[test]
fn two_replicas_on_one_bucket_open_one_case_per_episode() {
    let moto = crate::s3::moto();
    let bucket = moto.bucket(true);
    let kube = gateway_cluster();
    let sb = Sandbox::new();
    let store = format!("s3://{bucket}/custody");
    let config = daemon_config(&sb, &store, Some(&kube), &s3_extra(&moto.endpoint));
    let text = std::fs::read_to_string(&config).unwrap();
    let config_b = sb.path("daemon/custody-b.yaml");
    std::fs::write(
        &config_b,
        text.replace(
            &text.lines().next().unwrap().to_owned(),
            &format!("listen: 127.0.0.1:{}", free_port()),
        ),
    )
    .unwrap();
    let a = start_s3(&sb, &config, "replica-a");
    let b = start_s3(&sb, &config_b, "replica-b");
    // The same notification reaches both replicas at once, several times.
    let body = notification("firing", BREACH, STARTS, &[]);
    let (pa, pb) = (a.port, b.port);
    let (ba, bb) = (body.clone(), body.clone());
    let ta = std::thread::spawn(move || {
        (0..3)
            .map(|_| http(pa, "POST", "/api/v1/alerts", Some(WEBHOOK_TOKEN), &ba))
            .collect::<Vec<_>>()
    });
    let tb = std::thread::spawn(move || {
        (0..3)
            .map(|_| http(pb, "POST", "/api/v1/alerts", Some(WEBHOOK_TOKEN), &bb))
            .collect::<Vec<_>>()
    });
    let mut answers = ta.join().unwrap();
    answers.extend(tb.join().unwrap());
    let mut cases = std::collections::BTreeSet::new();
    let mut opened = 0;
    for (code, body) in &answers {
        assert_eq!(*code, 200, "{body}");
        let v = json(body);
        cases.insert(v["alerts"][0]["case_id"].as_str().unwrap().to_owned());
        opened += usize::from(v["alerts"][0]["outcome"] == "opened");
    }
    assert_eq!(cases.len(), 1, "{answers:?}");
    assert_eq!(opened, 1, "{answers:?}");
    let case = cases.into_iter().next().unwrap();
    let view = wait_sealed(a.port, &case, Duration::from_secs(60));
    assert_eq!(view["state"], "sealed", "{view}");
    // The first entry names the replica that wrote it, the one that answered "opened" (the
    // first three answers are replica a's): two replicas writing it at once write different
    // bytes, so only one can find its own entry stored.
    let opener = answers
        .iter()
        .position(|(_, body)| json(body)["alerts"][0]["outcome"] == "opened")
        .unwrap();
    let port = if opener < 3 { a.port } else { b.port };
    let first = json(
        &String::from_utf8(moto.get(
            &bucket,
            &format!("custody/cases/{case}/journal/0000000001.json"),
        ))
        .unwrap(),
    );
    let replica = first["details"]["trigger_details"]["replica"]
        .as_str()
        .unwrap_or_default();
    assert!(replica.ends_with(&format!(":127.0.0.1:{port}")), "{first}");
    let case_headers = moto
        .keys(&bucket)
        .into_iter()
        .filter(|k| k.ends_with("/case.json"))
        .count();
    assert_eq!(case_headers, 1);
    // The evidence verifies from S3, every object locked and recorded.
    assert_verifies_from_s3(&sb, &moto.endpoint, &store);
}

#[test]
fn a_store_that_cannot_record_is_answered_503_so_alertmanager_retries() {
    let moto = crate::s3::moto();
    let bucket = moto.bucket(true);
    let proxy = crate::s3::outage(&moto.endpoint, i64::MAX);
    let sb = Sandbox::new();
    let store = format!("s3://{bucket}/custody");
    let config = daemon_config(
        &sb,
        &store,
        None,
        &s3_extra(&format!("http://127.0.0.1:{}", proxy.port)),
    );
    let d = start_s3(&sb, &config, "daemon");
    proxy.budget.store(0, std::sync::atomic::Ordering::SeqCst);
    let (code, body) = http(
        d.port,
        "POST",
        "/api/v1/alerts",
        Some(WEBHOOK_TOKEN),
        &notification("firing", BREACH, STARTS, &[]),
    );
    assert_eq!(code, 503, "{body}");
    assert_eq!(http(d.port, "GET", "/readyz", None, b"").0, 503);
    // S3 is back: the retry opens the case.
    proxy
        .budget
        .store(i64::MAX, std::sync::atomic::Ordering::SeqCst);
    let (code, body) = http(
        d.port,
        "POST",
        "/api/v1/alerts",
        Some(WEBHOOK_TOKEN),
        &notification("firing", BREACH, STARTS, &[]),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["alerts"][0]["outcome"], "opened");
}

/// A real Alertmanager routing every alert to the daemon on `daemon_port` (short group and
/// repeat intervals: several resends arrive within a test), started and ready; and its port.
pub(crate) fn start_alertmanager(sb: &Sandbox, daemon_port: u16) -> (std::process::Child, u16) {
    let binary = alertmanager_binary();
    let d_port = daemon_port;
    let am_port = free_port();
    let am_dir = sb.path("alertmanager");
    std::fs::create_dir_all(am_dir.join("data")).unwrap();
    // Short group and repeat intervals: several resends arrive within the test.
    std::fs::write(
        am_dir.join("alertmanager.yml"),
        format!(
            "route:\n  receiver: custody\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 2s\nreceivers:\n  - name: custody\n    webhook_configs:\n      - url: http://127.0.0.1:{}/api/v1/alerts\n        send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n            credentials_file: {}\n",
            d_port,
            sb.path("daemon/webhook.token").display()
        ),
    )
    .unwrap();
    let am = std::process::Command::new(binary)
        .args([
            &format!(
                "--config.file={}",
                am_dir.join("alertmanager.yml").display()
            ),
            &format!("--storage.path={}", am_dir.join("data").display()),
            &format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=",
            "--log.level=warn",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(am_dir.join("alertmanager.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", am_port)).is_err()
        || http(am_port, "GET", "/-/ready", None, b"").0 != 200
    {
        assert!(
            Instant::now() < deadline,
            "Alertmanager did not start: {}",
            std::fs::read_to_string(am_dir.join("alertmanager.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (am, am_port)
}

/// Fires the breach alert into the Alertmanager on `am_port`.
pub(crate) fn fire_through(am_port: u16) {
    let starts = time::OffsetDateTime::now_utc();
    let alert = serde_json::json!([{
        "labels": {"alertname": BREACH, "severity": "critical", "service": "api-gateway"},
        "annotations": {"summary": "Security breach detected on the API gateway"},
        "startsAt": custody::timefmt::rfc3339(starts),
        "generatorURL": "http://prometheus/graph"
    }]);
    let (code, body) = http(
        am_port,
        "POST",
        "/api/v2/alerts",
        None,
        alert.to_string().as_bytes(),
    );
    assert_eq!(code, 200, "{body}");
}

/// Alertmanager's binary (Debian's `prometheus-alertmanager`, installed by scripts/test.sh).
fn alertmanager_binary() -> PathBuf {
    let path = PathBuf::from("/usr/bin/prometheus-alertmanager");
    assert!(
        path.is_file(),
        "/usr/bin/prometheus-alertmanager is missing: scripts/test.sh installs Debian's prometheus-alertmanager"
    );
    path
}

#[test]
fn a_real_alertmanager_firing_the_breach_alert_yields_one_sealed_case() {
    let sb = Sandbox::new();
    let kube = gateway_cluster();
    let store = sb.store();
    let config = daemon_config(&sb, store.to_str().unwrap(), Some(&kube), "");
    let d = start(&sb, &config, "daemon");
    let (mut am, am_port) = start_alertmanager(&sb, d.port);
    let fired = Instant::now();
    fire_through(am_port);
    // Wait for the sealed case.
    let case = loop {
        let (_, list) = http(d.port, "GET", "/api/v1/cases", Some(ANALYST_TOKEN), b"");
        let cases = json(&list)["cases"].as_array().unwrap().clone();
        if let Some(c) = cases.iter().find(|c| c["state"] == "sealed") {
            break c["case_id"].as_str().unwrap().to_owned();
        }
        assert!(
            fired.elapsed() < Duration::from_secs(60),
            "no sealed case: {list}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let to_sealed = fired.elapsed();
    // Let Alertmanager resend a few times (repeat_interval 2s): still one case.
    std::thread::sleep(Duration::from_secs(6));
    let (_, list) = http(d.port, "GET", "/api/v1/cases", Some(ANALYST_TOKEN), b"");
    let cases = json(&list)["cases"].as_array().unwrap().clone();
    let (_, metrics) = http(d.port, "GET", "/metrics", None, b"");
    let _ = am.kill();
    let _ = am.wait();
    assert_eq!(cases.len(), 1, "{list}");
    assert_eq!(cases[0]["case_id"], case.as_str());
    let deliveries: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("custody_webhook_requests_total{code=\"200\"}"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum();
    assert!(deliveries >= 2, "Alertmanager resent the alert: {metrics}");
    assert!(sb
        .run(&["verify", store.to_str().unwrap()])
        .status
        .success());
    // The alert itself is in the bag.
    let bundle = std::fs::read_dir(store.join("cases").join(&case).join("bundles"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".tar.zst"))
        .unwrap()
        .path();
    let listing = crate::util::sh(
        &format!("zstd -dc '{}' | tar -t", bundle.display()),
        sb.dir.path(),
    );
    assert!(listing.contains("data/trigger/alert.json"), "{listing}");
    eprintln!(
        "alert to sealed bundle: {:.2} s ({deliveries} deliveries)",
        to_sealed.as_secs_f64()
    );
}

#[test]
fn an_analyst_opens_a_case_through_the_api() {
    let sb = Sandbox::new();
    let kube = gateway_cluster();
    let config = daemon_config(&sb, sb.store().to_str().unwrap(), Some(&kube), "");
    let d = start(&sb, &config, "daemon");
    let request = br#"{"namespace": "waqiti", "deployment": "api-gateway", "since": "2h", "requested_by": "alice"}"#;
    assert_eq!(
        http(
            d.port,
            "POST",
            "/api/v1/cases",
            Some(WEBHOOK_TOKEN),
            request
        )
        .0,
        401
    );
    let (code, body) = http(
        d.port,
        "POST",
        "/api/v1/cases",
        Some(ANALYST_TOKEN),
        request,
    );
    assert_eq!(code, 202, "{body}");
    let case = json(&body)["case_id"].as_str().unwrap().to_owned();
    let view = wait_sealed(d.port, &case, Duration::from_secs(60));
    assert_eq!(view["state"], "sealed", "{view}");
    assert_eq!(view["trigger"]["kind"], "api");
    assert_eq!(view["trigger"]["requested_by"], "alice");
    assert!(
        view["bundles"][0]["archive"]["sha256"].is_string(),
        "{view}"
    );
    assert!(kube
        .requests()
        .iter()
        .any(|r| r.contains("sinceSeconds=7200")));
    assert_eq!(
        http(
            d.port,
            "GET",
            "/api/v1/cases/20261126-000000-00000000",
            Some(ANALYST_TOKEN),
            b""
        )
        .0,
        404
    );
}

#[test]
fn sigterm_lets_the_running_collection_finish() {
    let sb = Sandbox::new();
    let kube = gateway_cluster();
    kube.faults(|f| f.log_delay = Some(Duration::from_secs(2)));
    let store = sb.store();
    let config = daemon_config(&sb, store.to_str().unwrap(), Some(&kube), "");
    let mut d = start(&sb, &config, "daemon");
    let (code, body) = http(
        d.port,
        "POST",
        "/api/v1/alerts",
        Some(WEBHOOK_TOKEN),
        &notification("firing", BREACH, STARTS, &[]),
    );
    assert_eq!(code, 200, "{body}");
    let case = json(&body)["alerts"][0]["case_id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_millis(500));
    let term = std::process::Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = d.child.wait().unwrap();
    assert!(
        status.success(),
        "{status:?}: {}",
        std::fs::read_to_string(&d.log).unwrap_or_default()
    );
    // It stopped only after sealing what it was collecting.
    let journal = store.join("cases").join(&case).join("journal");
    let entries: Vec<String> = crate::util::journal_entry_paths(&journal)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        entries.iter().any(|e| e.contains("\"bundle_sealed\"")),
        "{entries:?}"
    );
    assert!(sb
        .run(&["verify", store.to_str().unwrap()])
        .status
        .success());
}

#[test]
fn a_full_queue_is_answered_503_and_counted() {
    let sb = Sandbox::new();
    let kube = gateway_cluster();
    kube.faults(|f| f.log_delay = Some(Duration::from_secs(2)));
    let config = daemon_config(
        &sb,
        sb.store().to_str().unwrap(),
        Some(&kube),
        "limits:\n  queue: 1\n  workers: 1\n",
    );
    let d = start(&sb, &config, "daemon");
    let mut codes = Vec::new();
    for i in 0..5 {
        let starts = format!("2026-11-26T14:5{i}:00Z");
        codes.push(
            http(
                d.port,
                "POST",
                "/api/v1/alerts",
                Some(WEBHOOK_TOKEN),
                &notification("firing", BREACH, &starts, &[]),
            )
            .0,
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(codes[0], 200, "{codes:?}");
    assert!(codes.contains(&503), "{codes:?}");
    let (_, metrics) = http(d.port, "GET", "/metrics", None, b"");
    let refused = codes.iter().filter(|c| **c == 503).count();
    assert!(
        metrics.contains(&format!("custody_overloaded_total {refused}")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "custody_webhook_requests_total{{code=\"503\"}} {refused}"
        )),
        "{metrics}"
    );
    // Nothing half-done was left for the refused ones: only the accepted episodes have cases.
    let cases = std::fs::read_dir(sb.store().join("cases")).unwrap().count();
    assert_eq!(cases, codes.iter().filter(|c| **c == 200).count());
}

#[test]
fn with_a_certificate_it_serves_https_only() {
    let sb = Sandbox::new();
    let dir = sb.path("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let openssl = crate::util::tool("openssl");
    let made = std::process::Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            dir.join("key.pem").to_str().unwrap(),
            "-out",
            dir.join("cert.pem").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let config = daemon_config(
        &sb,
        sb.store().to_str().unwrap(),
        None,
        &format!(
            "tls:\n  cert_file: {}\n  key_file: {}\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        ),
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let port: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("listen: 127.0.0.1:"))
        .unwrap()
        .parse()
        .unwrap();
    let log = sb.path("tls-daemon.log");
    let child = sb
        .custody(&["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon { port, child, log };
    // A client that trusts the certificate: /readyz answers, the case API wants its token.
    let https = |path: &str| -> String {
        let out = std::process::Command::new(crate::util::tool("python3"))
            .args(["-c", "import ssl, sys, urllib.request, urllib.error\nctx = ssl.create_default_context(cafile=sys.argv[1])\ntry:\n print(urllib.request.urlopen(sys.argv[2], context=ctx, timeout=5).status)\nexcept urllib.error.HTTPError as e:\n print(e.code)\nexcept Exception as e:\n print('error', e)",
                   dir.join("cert.pem").to_str().unwrap(), &format!("https://127.0.0.1:{port}{path}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while https("/readyz") != "200" {
        assert!(
            Instant::now() < deadline,
            "no HTTPS: {}",
            std::fs::read_to_string(&d.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(https("/api/v1/cases"), "401");
    // Plain HTTP gets no answer from a TLS port.
    assert_ne!(http(d.port, "GET", "/readyz", None, b"").0, 200);
}

pub fn journal_kinds(store: &Path, case: &str) -> Vec<String> {
    let mut entries: Vec<(u64, String)> =
        crate::util::journal_entry_paths(&store.join("cases").join(case).join("journal"))
            .iter()
            .map(|p| {
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
                (
                    v["seq"].as_u64().unwrap(),
                    v["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
    entries.sort();
    entries.into_iter().map(|(_, k)| k).collect()
}

/// The kinds of a case's journal entries in a moto bucket (under the `custody` prefix), in order.
pub fn journal_kinds_s3(moto: &crate::s3::Moto, bucket: &str, case: &str) -> Vec<String> {
    let prefix = format!("custody/cases/{case}/journal/");
    let mut entries: Vec<(u64, String)> = moto
        .keys(bucket)
        .into_iter()
        .filter(|k| k.starts_with(&prefix) && k.ends_with(".json"))
        .map(|k| {
            let v: serde_json::Value = serde_json::from_slice(&moto.get(bucket, &k)).unwrap();
            (
                v["seq"].as_u64().unwrap(),
                v["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    entries.sort();
    entries.into_iter().map(|(_, k)| k).collect()
}

#[test]
fn a_resolve_during_the_collection_waits_for_it_and_is_journaled_once() {
    let sb = Sandbox::new();
    let kube = gateway_cluster();
    kube.faults(|f| f.log_delay = Some(Duration::from_secs(2)));
    let store = sb.store();
    let config = daemon_config(&sb, store.to_str().unwrap(), Some(&kube), "");
    let d = start(&sb, &config, "daemon");
    let (_, body) = http(
        d.port,
        "POST",
        "/api/v1/alerts",
        Some(WEBHOOK_TOKEN),
        &notification("firing", BREACH, STARTS, &[]),
    );
    let case = json(&body)["alerts"][0]["case_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        let (code, body) = http(
            d.port,
            "POST",
            "/api/v1/alerts",
            Some(WEBHOOK_TOKEN),
            &notification("resolved", BREACH, STARTS, &[]),
        );
        assert_eq!(code, 200, "{body}");
    }
    let view = wait_sealed(d.port, &case, Duration::from_secs(60));
    assert_eq!(
        view["state"], "sealed",
        "the resolve did not disturb the seal: {view}"
    );
    // The collection journals the resolve it kept aside just after its findings: wait for it.
    let view = wait_case(d.port, &case, Duration::from_secs(30), |v| {
        v["alert_resolved"] == true
    });
    assert_eq!(view["state"], "sealed", "{view}");
    let kinds = journal_kinds(&store, &case);
    assert_eq!(
        kinds.iter().filter(|k| *k == "alert_resolved").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("alert_resolved"),
        "{kinds:?}"
    );
    assert!(sb
        .run(&["verify", store.to_str().unwrap()])
        .status
        .success());
}

/// `custody verify s3://…` of `store` at `endpoint` passes: every object locked and recorded.
pub(crate) fn assert_verifies_from_s3(sb: &Sandbox, endpoint: &str, store: &str) {
    let out = sb
        .custody(&[
            "--s3-endpoint",
            endpoint,
            "--s3-path-style",
            "--json",
            "verify",
            store,
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Posts the breach alert (one firing `WaqitiSecurityBreachDetected`, always the same episode);
/// returns the answer for its one alert.
pub(crate) fn fire_breach(port: u16) -> serde_json::Value {
    let (code, body) = http(
        port,
        "POST",
        "/api/v1/alerts",
        Some(WEBHOOK_TOKEN),
        &notification(
            "firing",
            "WaqitiSecurityBreachDetected",
            "2026-11-26T14:50:00.123456789Z",
            &[],
        ),
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["alerts"][0].clone()
}
