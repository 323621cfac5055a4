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
    // 0.1 did not sign journal entries: each case's are legacy, a warning, not a problem.
    let legacy = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| {
            w.as_str()
                .is_some_and(|w| w.starts_with("legacy: the journal entries of case"))
        })
        .count();
    assert_eq!(legacy, 3, "{report:#}");
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

/// Every `.json` file directly under `dir`'s `cases/*/journal/` (a store) or in `dir` itself.
fn journal_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut push_dir = |d: &std::path::Path| {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    };
    if dir.join("cases").is_dir() {
        for case in std::fs::read_dir(dir.join("cases")).unwrap() {
            push_dir(&case.unwrap().path().join("journal"));
        }
    } else {
        push_dir(dir);
    }
    files.sort();
    files
}

/// Decodes each file as a typed journal entry and encodes it again: the bytes must not change.
fn round_trip_kinds(files: &[std::path::PathBuf]) -> std::collections::BTreeSet<String> {
    let mut kinds = std::collections::BTreeSet::new();
    for path in files {
        let bytes = std::fs::read(path).unwrap();
        let entry: custody::case::Entry =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let again = custody::case::encode(&entry).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(&bytes),
            "{} re-encodes to other bytes",
            path.display()
        );
        kinds.insert(format!("{:?}", entry.kind()));
    }
    kinds
}

// The typed journal entries must read what earlier builds wrote and write it back byte for
// byte: the chain is over the exact bytes.
#[test]
fn every_journal_entry_written_by_custody_0_1_decodes_and_reencodes_byte_for_byte() {
    let store = journal_files(&data("store-0.1"));
    assert_eq!(store.len(), 9);
    let in_store = round_trip_kinds(&store);
    // The daemon's kinds (and the variants the fixture store lacks) were captured from
    // custody 0.1's daemon and collector runs; see tests/data/README.md.
    let samples = journal_files(&data("journal-0.1"));
    let mut all = in_store.clone();
    all.extend(round_trip_kinds(&samples));
    let every: Vec<String> = [
        "CaseOpened",
        "SourceCaptured",
        "SourceFailed",
        "BundleSealed",
        "ObjectsStored",
        "Findings",
        "CollectionFailed",
        "CollectionRestarted",
        "AlertResolved",
        "CollectionInterrupted",
    ]
    .map(String::from)
    .into();
    for kind in &every {
        assert!(all.contains(kind), "no {kind} entry in the fixtures");
    }
    assert_eq!(all.len(), every.len(), "{all:?}");
    for kind in [
        "CaseOpened",
        "SourceCaptured",
        "SourceFailed",
        "BundleSealed",
    ] {
        assert!(in_store.contains(kind), "{kind} not in the fixture store");
    }
}

// `collection.json`'s failure records are typed too: read and written back, they are the same.
#[test]
fn the_failures_in_a_collection_record_decode_and_reencode_unchanged() {
    let sandbox = Sandbox::new();
    let store = fixture(&sandbox);
    let bundle =
        store.join("cases/20261201-222628-eb25996a/bundles/20261201-222628-c45e5ba9.tar.zst");
    let out = sh(
        &format!(
            "zstd -dc '{}' | tar -xO --wildcards '*/data/collection.json'",
            bundle.display()
        ),
        sandbox.dir.path(),
    );
    let collection: serde_json::Value = serde_json::from_str(&out).unwrap();
    let failures = collection["failures"].clone();
    assert_eq!(failures.as_array().unwrap().len(), 1);
    let typed: Vec<custody::source::Failure> = serde_json::from_value(failures.clone()).unwrap();
    assert_eq!(typed[0].kind.as_deref(), Some("truncated"));
    assert_eq!(
        serde_json::to_string_pretty(&typed).unwrap(),
        serde_json::to_string_pretty(&failures).unwrap()
    );
}
