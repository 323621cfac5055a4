//! Replicas of `custody serve` sharing one store collect a case one at a time: each claims the
//! case (`leases/<case>/…`) before collecting it. A replica started while another collects
//! leaves the case alone, so nothing comes between the collector's journal head and its seal; a
//! replica restarted under the same name after `kill -9` takes its case back without waiting for
//! the claim to expire.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::daemon::{
    assert_verifies_from_s3, daemon_config, free_port, gateway_cluster, s3_extra, start, start_s3,
    wait_sealed,
};
use crate::util::Sandbox;

/// Posts the breach alert; the case it opened.
fn alert(port: u16) -> String {
    crate::daemon::fire_breach(port)["case_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until `log` contains `text`.
fn wait_logged(log: &Path, text: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(text)
    {
        assert!(
            Instant::now() < deadline,
            "{} never logged {text:?}:\n{}",
            log.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// A replica that started while another collected journaled `collection_restarted` between the
// other's journal head and its seal: the seal's append failed and the case never verified.
#[test]
fn a_replica_started_mid_collection_leaves_the_case_to_the_one_collecting_it() {
    let moto = crate::s3::moto();
    let bucket = moto.bucket(true);
    let kube = gateway_cluster();
    // The kubelet is slow: A is still collecting when B starts.
    kube.faults(|f| f.log_delay = Some(Duration::from_secs(4)));
    let sb = Sandbox::new();
    let store = format!("s3://{bucket}/custody");
    let config = daemon_config(&sb, &store, Some(&kube), &s3_extra(&moto.endpoint));
    let text = std::fs::read_to_string(&config).unwrap();
    let config_b = sb.path("daemon/custody-b.yaml");
    let listen_a = text.lines().next().unwrap().to_owned();
    std::fs::write(
        &config_b,
        text.replace(&listen_a, &format!("listen: 127.0.0.1:{}", free_port())),
    )
    .unwrap();
    let a = start_s3(&sb, &config, "replica-a");
    let case = alert(a.port);
    // A has claimed the case and is collecting it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !moto
        .keys(&bucket)
        .iter()
        .any(|k| k.starts_with(&format!("custody/leases/{case}/")))
    {
        assert!(Instant::now() < deadline, "A never claimed the case");
        std::thread::sleep(Duration::from_millis(50));
    }
    let b = start_s3(&sb, &config_b, "replica-b");
    wait_logged(
        &b.log,
        "another replica is collecting the case",
        Duration::from_secs(10),
    );
    let view = wait_sealed(a.port, &case, Duration::from_secs(60));
    assert_eq!(view["state"], "sealed", "{view}");
    let keys = moto.keys(&bucket);
    let kinds: Vec<String> = keys
        .iter()
        .filter(|k| k.contains(&format!("cases/{case}/journal/")) && k.ends_with(".json"))
        .map(|k| {
            let v: serde_json::Value = serde_json::from_slice(&moto.get(&bucket, k)).unwrap();
            v["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(
        !kinds.iter().any(|k| k == "collection_restarted"),
        "{kinds:?}"
    );
    let seals = keys.iter().filter(|k| k.ends_with(".seal.json")).count();
    assert_eq!(seals, 1, "{keys:?}");
    assert!(keys
        .iter()
        .any(|k| k.starts_with(&format!("custody/leases/{case}/"))));
    assert_verifies_from_s3(&sb, &moto.endpoint, &store);
    drop(b);
}

/// A claim record as stored: (holder, expires_at).
fn claims(store: &Path, case: &str) -> Vec<(String, u64)> {
    let dir = store.join("leases").join(case);
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            (
                v["holder"].as_str().unwrap().to_owned(),
                v["expires_at"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_replica_killed_mid_collection_takes_its_case_back_at_once_when_restarted() {
    let sb = Sandbox::new();
    let kube = gateway_cluster();
    kube.faults(|f| f.log_delay = Some(Duration::from_secs(3)));
    let store = sb.store();
    let config = daemon_config(
        &sb,
        store.to_str().unwrap(),
        Some(&kube),
        "replica: custody-0\n",
    );
    let d = start(&sb, &config, "first");
    let case = alert(d.port);
    std::thread::sleep(Duration::from_millis(800));
    d.kill9();
    let held = claims(&store, &case);
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(held[0].1 > 0, "a live claim: {held:?}");
    kube.faults(|f| f.log_delay = None);
    let started = Instant::now();
    let d = start(&sb, &config, "second");
    let view = wait_sealed(d.port, &case, Duration::from_secs(30));
    assert_eq!(view["state"], "sealed", "{view}");
    // Well within the claim's 60 s: it was taken back, not waited out.
    assert!(started.elapsed() < Duration::from_secs(30));
    let after = claims(&store, &case);
    assert!(after.iter().all(|(h, _)| h == "custody-0"), "{after:?}");
    assert_eq!(after.last().unwrap().1, 0, "given up at the end: {after:?}");
    assert!(sb
        .run(&["verify", store.to_str().unwrap()])
        .status
        .success());
}
