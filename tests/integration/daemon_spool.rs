//! `custody serve` on S3 seals into its local spool and uploads from there, over real HTTP with
//! S3 taken away mid-collection by a proxy: a case sealed while S3 is down is kept in the spool,
//! whole, and uploaded when S3 answers again (by the periodic flush, or at the next start after
//! a crash), without a second trip to the cluster; the evidence then verifies from S3. A resolve
//! during a spooled collection waits for its upload; a spooled copy changed before its upload
//! is set aside and the case collected again. A case uploaded after S3 returns is announced
//! (`case_sealed`) and planned once, as a case collected straight into S3 is.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::daemon::{
    assert_verifies_from_s3, daemon_config, gateway_cluster, http, journal_kinds_s3, notification,
    s3_extra, start_s3, wait_sealed, Daemon, WEBHOOK_TOKEN,
};
use crate::daemon_plans::{planned_cluster, policies, Sink};
use crate::fake_kube::FakeKube;
use crate::s3::{Moto, Outage};
use crate::util::Sandbox;

use crate::daemon::fire_breach as fire;

/// The cases waiting in the daemon's spool (under the sandbox's home).
fn spooled_cases(sb: &Sandbox) -> Vec<PathBuf> {
    let root = sb.path("home/.local/state/custody/spool");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for case in std::fs::read_dir(dir.path().join("cases"))
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(case.path());
        }
    }
    out
}

/// The log requests the cluster has answered.
fn log_requests(kube: &FakeKube) -> usize {
    kube.requests()
        .iter()
        .filter(|r| r.contains("/log"))
        .count()
}

fn wait_log(d: &Daemon, what: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !std::fs::read_to_string(&d.log)
        .unwrap_or_default()
        .contains(what)
    {
        assert!(
            Instant::now() < deadline,
            "not logged: {what}\n{}",
            std::fs::read_to_string(&d.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Setup {
    moto: Moto,
    bucket: String,
    proxy: Outage,
    kube: FakeKube,
    sb: Sandbox,
    store: String,
    config: PathBuf,
    /// With `setup_planned`: the notification receiver.
    sink: Option<Sink>,
}

/// A daemon's config on a bucket reached through a proxy that can take S3 away, with a flush
/// of the spool every second, and a cluster whose logs come slowly.
fn setup() -> Setup {
    setup_with(false)
}

/// `setup`, and with `planned` notifications to a sink and the policies that propose a plan
/// on an alert's sealed case.
fn setup_with(planned: bool) -> Setup {
    let moto = crate::s3::moto();
    let bucket = moto.bucket(true);
    let proxy = crate::s3::outage(&moto.endpoint, i64::MAX / 2);
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let kube = if planned {
        planned_cluster()
    } else {
        gateway_cluster()
    };
    kube.faults(|f| f.log_delay = Some(Duration::from_secs(2)));
    let sb = Sandbox::new();
    let store = format!("s3://{bucket}/custody");
    let mut extra = format!("{}limits:\n  spool_flush_seconds: 1\n", s3_extra(&endpoint));
    let sink = planned.then(|| {
        policies(&sb);
        let sink = Sink::start();
        extra.push_str(&format!(
            "policies: policies\nnotify:\n  url: http://127.0.0.1:{}/hook\n",
            sink.port
        ));
        sink
    });
    let config = daemon_config(&sb, &store, Some(&kube), &extra);
    Setup {
        moto,
        bucket,
        proxy,
        kube,
        sb,
        store,
        config,
        sink,
    }
}

/// Fires the breach alert and takes S3 away once the cluster is streaming the logs: the
/// collection seals into the spool, and its upload fails for longer than the worker's retries.
fn seal_while_s3_is_down(s: &Setup, d: &Daemon) -> String {
    let case = fire(d.port)["case_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while log_requests(&s.kube) == 0 {
        assert!(Instant::now() < deadline, "no logs were asked for");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.proxy.budget.store(0, Ordering::SeqCst);
    wait_log(
        d,
        "kept in the local spool and uploaded when S3 answers",
        Duration::from_secs(60),
    );
    case
}

/// The case is in S3, whole, sealed once: it verifies, the spool is empty, and the cluster was
/// asked for the logs only by the first collection.
fn assert_uploaded_once(s: &Setup, d: &Daemon, case: &str, logs_asked: usize) {
    let view = wait_sealed(d.port, case, Duration::from_secs(60));
    assert_eq!(view["state"], "sealed", "{view}");
    assert_eq!(view["bundles"].as_array().unwrap().len(), 1, "{view}");
    assert_verifies_from_s3(&s.sb, &s.moto.endpoint, &s.store);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !spooled_cases(&s.sb).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", spooled_cases(&s.sb));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        log_requests(&s.kube),
        logs_asked,
        "collected from the cluster again"
    );
    let kinds = journal_kinds_s3(&s.moto, &s.bucket, case);
    for kind in [
        "source_captured",
        "bundle_sealed",
        "findings",
        "objects_stored",
    ] {
        assert_eq!(
            kinds.iter().filter(|k| *k == kind).count(),
            1,
            "{kind} in {kinds:?}"
        );
    }
    assert!(!kinds.iter().any(|k| k == "collection_failed"), "{kinds:?}");
    // Every entry is signed in S3: those the daemon wrote there before the collection (copied
    // into the spool with their signatures), and those the spool uploaded after it.
    let keys = s.moto.keys(&s.bucket);
    let entries: Vec<&String> = keys
        .iter()
        .filter(|k| k.contains(&format!("cases/{case}/journal/")) && k.ends_with(".json"))
        .collect();
    assert_eq!(entries.len(), kinds.len(), "{keys:?}");
    for entry in entries {
        assert!(
            keys.contains(&format!("{entry}.sig")),
            "{entry} unsigned: {keys:?}"
        );
    }
}

/// Whether the spooled case holds its sealed archive.
fn holds_archive(case_dir: &Path) -> bool {
    std::fs::read_dir(case_dir.join("bundles"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".tar.zst"))
}

#[test]
fn a_case_sealed_while_s3_is_down_is_kept_in_the_spool_and_uploaded_when_s3_answers() {
    let s = setup_with(true);
    let sink = s.sink.as_ref().unwrap();
    let d = start_s3(&s.sb, &s.config, "daemon");
    let case = seal_while_s3_is_down(&s, &d);
    let logs_asked = log_requests(&s.kube);
    let spooled = spooled_cases(&s.sb);
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    assert!(
        holds_archive(&spooled[0]),
        "the sealed archive is in the spool"
    );
    // S3 still down: the periodic flush keeps it, and says so.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(spooled_cases(&s.sb).len(), 1);
    let (code, metrics) = http(d.port, "GET", "/metrics", None, b"");
    assert_eq!(code, 200);
    assert!(metrics.contains("custody_spooled_cases 1"), "{metrics}");
    assert!(
        metrics.contains("custody_spool_uploads_total{outcome=\"kept\"}"),
        "{metrics}"
    );
    // Nothing is announced of a case that is not in S3.
    assert!(sink.events("case_sealed").is_empty());
    s.proxy.budget.store(i64::MAX / 2, Ordering::SeqCst);
    assert_uploaded_once(&s, &d, &case, logs_asked);
    // Once uploaded, the case is announced and planned as a case collected straight into S3
    // is, once: by the flush that uploaded it, not also by the worker whose upload failed.
    let announced = sink.wait_for("case_sealed", Duration::from_secs(30));
    assert_eq!(announced["custody"]["case"], case.as_str());
    assert!(!announced["custody"]["suspicious"]
        .as_array()
        .unwrap()
        .is_empty());
    let awaiting = sink.wait_for("plan_awaiting_approval", Duration::from_secs(60));
    assert_eq!(awaiting["custody"]["case"], case.as_str());
    // Several flush rounds later, still once.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.events("case_sealed").len(), 1);
    assert_eq!(sink.events("plan_awaiting_approval").len(), 1);
    let kinds = journal_kinds_s3(&s.moto, &s.bucket, &case);
    assert_eq!(
        kinds.iter().filter(|k| *k == "plan_proposed").count(),
        1,
        "{kinds:?}"
    );
    assert_verifies_from_s3(&s.sb, &s.moto.endpoint, &s.store);
}

#[test]
fn a_case_in_the_spool_when_the_daemon_dies_is_uploaded_at_the_next_start() {
    let s = setup();
    let d = start_s3(&s.sb, &s.config, "daemon");
    let case = seal_while_s3_is_down(&s, &d);
    let logs_asked = log_requests(&s.kube);
    d.kill9();
    assert_eq!(spooled_cases(&s.sb).len(), 1);
    s.proxy.budget.store(i64::MAX / 2, Ordering::SeqCst);
    let again = start_s3(&s.sb, &s.config, "daemon-again");
    assert_uploaded_once(&s, &again, &case, logs_asked);
}

#[test]
fn a_resolve_during_a_spooled_collection_is_journaled_once_after_its_upload() {
    // The resolve must not land in S3's journal between the spool's copy and its upload: the
    // upload would no longer continue it, and the case would never be recorded as stored.
    let s = setup();
    let d = start_s3(&s.sb, &s.config, "daemon");
    let case = fire(d.port)["case_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while log_requests(&s.kube) == 0 {
        assert!(Instant::now() < deadline, "no logs were asked for");
        std::thread::sleep(Duration::from_millis(20));
    }
    let resolved = notification(
        "resolved",
        "WaqitiSecurityBreachDetected",
        "2026-11-26T14:50:00.123456789Z",
        &[],
    );
    let (code, body) = http(
        d.port,
        "POST",
        "/api/v1/alerts",
        Some(WEBHOOK_TOKEN),
        &resolved,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"resolved\""), "{body}");
    let logs_asked = log_requests(&s.kube);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let kinds = journal_kinds_s3(&s.moto, &s.bucket, &case);
        if kinds.iter().any(|k| k == "alert_resolved") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resolve was not journaled: {kinds:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_uploaded_once(&s, &d, &case, logs_asked);
    let kinds = journal_kinds_s3(&s.moto, &s.bucket, &case);
    assert_eq!(
        kinds.iter().filter(|k| *k == "alert_resolved").count(),
        1,
        "{kinds:?}"
    );
    let resolved_at = kinds.iter().position(|k| k == "alert_resolved").unwrap();
    let stored_at = kinds.iter().position(|k| k == "objects_stored").unwrap();
    assert!(resolved_at > stored_at, "{kinds:?}");
}

#[test]
fn a_spooled_case_changed_before_its_upload_is_set_aside_and_the_case_collected_again() {
    let s = setup();
    let d = start_s3(&s.sb, &s.config, "daemon");
    let case = seal_while_s3_is_down(&s, &d);
    let first = log_requests(&s.kube);
    let spooled = spooled_cases(&s.sb);
    assert_eq!(spooled.len(), 1);
    // Someone with the account's access rewrites the sealed archive in the spool.
    let archive = std::fs::read_dir(spooled[0].join("bundles"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.zst"))
        .unwrap();
    let mut perms = std::fs::metadata(&archive).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&archive, perms).unwrap();
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    s.proxy.budget.store(i64::MAX / 2, Ordering::SeqCst);
    wait_log(&d, "kept aside in the spool", Duration::from_secs(30));
    // Nothing of the changed copy reached S3, the copy is kept for a person, and the case is
    // collected again from the cluster, whole.
    let view = wait_sealed(d.port, &case, Duration::from_secs(60));
    assert_eq!(view["state"], "sealed", "{view}");
    assert_verifies_from_s3(&s.sb, &s.moto.endpoint, &s.store);
    assert!(log_requests(&s.kube) > first, "not collected again");
    let refused = s.sb.path("home/.local/state/custody/spool");
    let aside: Vec<_> = std::fs::read_dir(&refused)
        .unwrap()
        .flatten()
        .flat_map(|d| {
            std::fs::read_dir(d.path().join(".refused"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .collect();
    assert!(!aside.is_empty(), "the changed copy is kept aside");
    let kinds = journal_kinds_s3(&s.moto, &s.bucket, &case);
    assert!(
        kinds.iter().any(|k| k == "collection_restarted"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "bundle_sealed").count(),
        1,
        "only the second collection's bundle is in S3: {kinds:?}"
    );
}
