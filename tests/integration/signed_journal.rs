//! Signed journal entries: a fresh case has every entry signed by the collector key, and an
//! attacker with write access who removes or changes a signature, or removes every signature of
//! a sealed case to pass it off as written before entries were signed, is caught by `verify`.

use std::path::PathBuf;

use custody::keys::{PublicKey, SigningKey};

use crate::tamper::{has, sealed, Tampered};
use crate::util::*;

/// Each problem's code, subject and message.
type Problems = Vec<(String, String, String)>;

/// `verify --json` of the tampered case: its exit code, problems and warnings.
fn verify(t: &Tampered, extra: &[&str]) -> (Option<i32>, Problems, Vec<String>) {
    let mut args = vec!["--json", "verify", t.files.case_dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = t.sb.run(&args);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap().to_owned();
            (s("code"), s("subject"), s("message"))
        })
        .collect();
    let warnings = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect();
    (out.status.code(), problems, warnings)
}

fn signatures(t: &Tampered) -> Vec<PathBuf> {
    crate::util::journal_entry_paths(&t.files.case_dir.join("journal"))
        .into_iter()
        .map(|p| p.with_extension("json.sig"))
        .collect()
}

fn collector_key(t: &Tampered) -> PathBuf {
    t.sb.path("home/.config/custody/collector.key")
}

#[test]
fn a_fresh_case_has_every_entry_signed_by_the_collector_key() {
    let t = sealed();
    let key = SigningKey::load(&collector_key(&t)).unwrap();
    let entries = crate::util::journal_entry_paths(&t.files.case_dir.join("journal"));
    assert!(entries.len() >= 3, "{entries:?}");
    for entry in &entries {
        let sig = std::fs::read(entry.with_extension("json.sig")).unwrap();
        assert!(
            key.public().verify(&std::fs::read(entry).unwrap(), &sig),
            "{entry:?}"
        );
    }
    let seal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&t.files.seal).unwrap()).unwrap();
    assert_eq!(seal["journal_signed"], true, "{seal}");
    let (code, problems, warnings) = verify(&t, &[]);
    assert_eq!(code, Some(0), "{problems:?}");
    assert!(
        warnings.iter().all(|w| !w.starts_with("legacy")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w
                .contains("journal entry signatures were checked against the store's own keys/")),
        "{warnings:?}"
    );
    // With the collector's key given, only it counts, and nothing is untrusted.
    let public = t.sb.path("collector.pub");
    std::fs::write(&public, key.public().to_pem().unwrap()).unwrap();
    let (code, problems, warnings) = verify(&t, &["--public-key", public.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{problems:?}");
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn a_removed_signature_or_a_changed_byte_is_reported_with_its_code() {
    let t = sealed();
    let sigs = signatures(&t);
    std::fs::remove_file(&sigs[1]).unwrap();
    let (code, p, _) = verify(&t, &[]);
    assert_eq!(code, Some(1), "{p:?}");
    assert!(
        has(&p, "journal_entry_unsigned", "0000000002.json"),
        "{p:?}"
    );
    assert_eq!(p.len(), 1, "{p:?}");

    let t = sealed();
    let sig = &signatures(&t)[2];
    make_writable(sig);
    let mut bytes = std::fs::read(sig).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(sig, bytes).unwrap();
    let (code, p, _) = verify(&t, &[]);
    assert_eq!(code, Some(1), "{p:?}");
    assert!(
        has(&p, "journal_signature_invalid", "0000000003.json.sig"),
        "{p:?}"
    );
    assert_eq!(p.len(), 1, "{p:?}");
}

#[test]
fn removing_every_signature_of_a_sealed_case_does_not_make_it_legacy() {
    let t = sealed();
    let sigs = signatures(&t);
    for sig in &sigs {
        std::fs::remove_file(sig).unwrap();
    }
    let (code, p, warnings) = verify(&t, &[]);
    assert_eq!(code, Some(1), "{p:?}");
    let unsigned = p
        .iter()
        .filter(|(c, _, _)| c == "journal_entry_unsigned")
        .count();
    assert_eq!(unsigned, sigs.len(), "{p:?}");
    assert!(
        warnings.iter().all(|w| !w.starts_with("legacy")),
        "{warnings:?}"
    );
}

#[test]
fn a_signature_by_another_key_is_invalid_under_the_given_key() {
    // Entries re-signed by an attacker's key published in keys/: the store's own keys accept
    // them, the auditor's key does not.
    let t = sealed();
    let attacker = SigningKey::generate();
    for sig in signatures(&t) {
        let entry = sig.with_extension("");
        make_writable(&sig);
        std::fs::write(&sig, attacker.sign(&std::fs::read(&entry).unwrap())).unwrap();
    }
    let keys = t.sb.store().join("keys");
    std::fs::write(
        keys.join(format!("{}.pub", attacker.public().id())),
        attacker.public().to_pem().unwrap(),
    )
    .unwrap();
    let (code, p, _) = verify(&t, &[]);
    assert_eq!(code, Some(0), "{p:?}");
    let ours = SigningKey::load(&collector_key(&t)).unwrap();
    let public = t.sb.path("collector.pub");
    std::fs::write(&public, ours.public().to_pem().unwrap()).unwrap();
    assert!(PublicKey::load(&public).is_ok());
    let (code, p, _) = verify(&t, &["--public-key", public.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{p:?}");
    assert!(
        has(&p, "journal_signature_invalid", "under the given key"),
        "{p:?}"
    );
}
