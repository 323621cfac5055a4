//! Stores written by earlier builds keep verifying: `tests/data/store-0.1` was written by custody
//! 0.1 (one whole case, one whose input was cut at its cap, one interrupted by SIGINT), signed
//! by the key in `tests/data/store-0.1-collector.pub`. Changes to the code must leave its
//! verdict exactly as it is.

use crate::util::*;

/// The fixture store, copied so that nothing a test does can touch the original.
fn fixture(sandbox: &Sandbox) -> std::path::PathBuf {
    let copy = sandbox.path("store-0.1");
    sh(
        &format!(
            "cp -r '{}' '{}'",
            data("store-0.1").display(),
            copy.display()
        ),
        sandbox.dir.path(),
    );
    copy
}

#[test]
fn a_store_written_by_custody_0_1_verifies_with_the_same_verdict() {
    let sandbox = Sandbox::new();
    let store = fixture(&sandbox);
    let key = data("store-0.1-collector.pub");
    let out = sandbox.run(&[
        "--json",
        "verify",
        store.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
    ]);
    assert_code(&out, INCOMPLETE);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["key_trusted"], true);
    assert_eq!(report["problems"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["cases"].as_array().unwrap().len(), 3);
    let mut codes: Vec<&str> = report["incomplete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        ["capture_incomplete", "collection_interrupted"],
        "{report:#}"
    );
    let bundles: usize = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bundles"].as_array().unwrap().len())
        .sum();
    assert_eq!(bundles, 2);
    for case in report["cases"].as_array().unwrap() {
        for b in case["bundles"].as_array().unwrap() {
            assert_eq!(b["signature_valid"], true, "{b}");
        }
    }
    // The whole case alone is whole.
    let whole = store.join("cases/20261201-222627-e0a3567b");
    let out = sandbox.run(&[
        "verify",
        whole.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
    ]);
    assert_success(&out);
}

// The fixture's bytes are the evidence: one changed byte must still be caught.
#[test]
fn the_fixture_store_is_not_trusted_blindly() {
    let sandbox = Sandbox::new();
    let store = fixture(&sandbox);
    let archive =
        store.join("cases/20261201-222627-e0a3567b/bundles/20261201-222627-00e285c5.tar.zst");
    make_writable(&archive);
    let mut bytes = std::fs::read(&archive).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    std::fs::write(&archive, bytes).unwrap();
    let out = sandbox.run(&["verify", store.to_str().unwrap()]);
    assert_code(&out, 1);
}
