//! `custody serve` and transient faults, over real HTTP: an incident is not lost to a failed
//! collection (a resend of its alert collects it again, and `verify` then passes it whole), a
//! short Kubernetes API outage is ridden out, a collection that fails on a transient S3 fault is
//! tried again, and a failed collection leaves nothing staged.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::daemon::{
    assert_verifies_from_s3, daemon_config, gateway_cluster, journal_kinds, s3_extra, start,
    start_s3, wait_case, wait_sealed,
};
use crate::util::Sandbox;

use crate::daemon::fire_breach as fire;

/// What the store's staging directory holds.
fn staged(store: &Path) -> Vec<String> {
    match std::fs::read_dir(store.join(".staging")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_failed_collection_is_collected_again_when_its_alert_is_resent() {
    let sb = Sandbox::new();
    let kube = gateway_cluster();
    let deployments = "/apis/apps/v1/namespaces/waqiti/deployments".to_owned();
    kube.faults(|f| f.forbidden.push(deployments));
    let store = sb.store();
    let config = daemon_config(&sb, store.to_str().unwrap(), Some(&kube), "");
    let d = start(&sb, &config, "daemon");
    let first = fire(d.port);
    assert_eq!(first["outcome"], "opened", "{first}");
    let case = first["case_id"].as_str().unwrap().to_owned();
    let view = wait_sealed(d.port, &case, Duration::from_secs(60));
    assert_eq!(view["state"], "failed", "{view}");
    // The incident is not lost: the next notification of the episode collects it again.
    kube.faults(|f| f.forbidden.clear());
    let resent = fire(d.port);
    assert_eq!(resent["outcome"], "restarted", "{resent}");
    assert_eq!(resent["case_id"], case.as_str(), "the same case");
    // A second resend before the collection began may be queued too; under the case's claim
    // it finds the collection done and leaves the case alone (one restart, below).
    let again = fire(d.port);
    assert!(
        again["outcome"] == "duplicate" || again["outcome"] == "restarted",
        "{again}"
    );
    // The worker journals the restart when it takes the case: until then the case still
    // reads `failed`, so wait for the collection after it to end.
    let view = wait_case(d.port, &case, Duration::from_secs(60), |v| {
        v["state"] == "sealed"
            || v["journal_entries"].as_u64().unwrap_or(0) > 3 && v["state"] == "failed"
    });
    assert_eq!(view["state"], "sealed", "{view}");
    let kinds = journal_kinds(&store, &case);
    let restarted = kinds
        .iter()
        .filter(|k| *k == "collection_restarted")
        .count();
    assert_eq!(restarted, 1, "{kinds:?}");
    let failed = kinds.iter().position(|k| k == "collection_failed");
    let sealed = kinds.iter().position(|k| k == "bundle_sealed");
    assert!(failed < sealed && failed.is_some(), "{kinds:?}");
    // The failed attempt sealed nothing and the second one superseded it: whole, exit 0.
    let out = sb.run(&["--json", "verify", store.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(staged(&store).is_empty(), "{:?}", staged(&store));
}

#[test]
fn a_two_second_api_outage_during_the_first_delivery_is_ridden_out() {
    let sb = Sandbox::new();
    let kube = gateway_cluster();
    let store = sb.store();
    let config = daemon_config(&sb, store.to_str().unwrap(), Some(&kube), "");
    let d = start(&sb, &config, "daemon");
    kube.faults(|f| f.unavailable_until = Some(Instant::now() + Duration::from_secs(2)));
    let first = fire(d.port);
    assert_eq!(first["outcome"], "opened", "{first}");
    let case = first["case_id"].as_str().unwrap().to_owned();
    let view = wait_sealed(d.port, &case, Duration::from_secs(60));
    assert_eq!(view["state"], "sealed", "{view}");
    let kinds = journal_kinds(&store, &case);
    assert!(
        !kinds
            .iter()
            .any(|k| k == "collection_failed" || k == "collection_restarted"),
        "{kinds:?}"
    );
    assert!(sb
        .run(&["verify", store.to_str().unwrap()])
        .status
        .success());
}

#[test]
fn a_failed_collection_leaves_nothing_staged() {
    let sb = Sandbox::new();
    let kube = gateway_cluster();
    // The logs come slowly, so that the store can be broken while they stream.
    kube.faults(|f| f.log_delay = Some(Duration::from_secs(2)));
    let store = sb.store();
    let config = daemon_config(&sb, store.to_str().unwrap(), Some(&kube), "");
    let d = start(&sb, &config, "daemon");
    let case = fire(d.port)["case_id"].as_str().unwrap().to_owned();
    // A file where the case's bundles go: the bundle cannot be stored.
    std::fs::write(store.join("cases").join(&case).join("bundles"), b"").unwrap();
    let view = wait_sealed(d.port, &case, Duration::from_secs(60));
    assert_eq!(view["state"], "failed", "{view}");
    let kinds = journal_kinds(&store, &case);
    assert!(
        kinds.iter().any(|k| k == "source_captured"),
        "it streamed first: {kinds:?}"
    );
    // The state reads failed once the failure's entry is stored; its signature is written
    // right after it, through the staging directory.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !staged(&store).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(staged(&store).is_empty(), "{:?}", staged(&store));
}

#[test]
fn a_collection_that_fails_on_a_transient_s3_fault_is_tried_again() {
    let moto = crate::s3::moto();
    let bucket = moto.bucket(true);
    let proxy = crate::s3::outage(&moto.endpoint, i64::MAX / 2);
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let kube = gateway_cluster();
    // The logs come slowly, so that S3 can be taken away before the collection writes.
    kube.faults(|f| f.log_delay = Some(Duration::from_secs(2)));
    let sb = Sandbox::new();
    let store = format!("s3://{bucket}/custody");
    let config = daemon_config(&sb, &store, Some(&kube), &s3_extra(&endpoint));
    let d = start_s3(&sb, &config, "daemon");
    let case = fire(d.port)["case_id"].as_str().unwrap().to_owned();
    proxy.budget.store(0, Ordering::SeqCst);
    // S3 comes back once the first attempt has failed on it: the collection's own writes
    // (tried again by the worker), or the case's claim or journal read before it (the job is
    // queued again for later).
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed_on_s3 = |log: &str| {
        log.contains("transient store fault")
            || log.contains("transient fault")
            || log.contains("trying again later")
    };
    while !failed_on_s3(&std::fs::read_to_string(&d.log).unwrap_or_default()) {
        assert!(Instant::now() < deadline, "no transient failure logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.budget.store(i64::MAX / 2, Ordering::SeqCst);
    let view = wait_sealed(d.port, &case, Duration::from_secs(60));
    assert_eq!(view["state"], "sealed", "{view}");
    // The evidence verifies from S3, every object locked and recorded, and whole.
    assert_verifies_from_s3(&sb, &moto.endpoint, &store);
    let journal = moto
        .keys(&bucket)
        .into_iter()
        .filter(|k| k.contains(&format!("{case}/journal/")))
        .count();
    assert!(journal > 3, "{journal} journal entries");
}
