//! An auditor with no custody binary: the archive, sidecar, seal and keys work with the standard
//! tools exactly as docs/EVIDENCE_FORMAT.md says.

use crate::util::*;

#[test]
fn standard_tools_verify_a_bundle() {
    let sb = Sandbox::new();
    // Several 1 MiB chunks (so several zstd frames in the spool), a small file and an empty one.
    let big = sb.path("big.log");
    let mut text = String::new();
    for i in 0..40_000 {
        text.push_str(&line(
            &format!("10.{}.{}.{}", i % 3, i % 250, i % 7),
            [200, 401, 429][i % 3],
            "/api/v1/x",
        ));
    }
    std::fs::write(&big, &text).unwrap();
    assert!(text.len() > 3 << 20);
    let empty = sb.path("empty.log");
    std::fs::write(&empty, b"").unwrap();
    let result = sb.collect(&[&data("apache-combined-2000.log"), &big, &empty]);
    let files = BundleFiles::of(&result);
    let bundles = files.archive.parent().unwrap().to_owned();
    let seal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files.seal).unwrap()).unwrap();
    let key_id = seal["key_id"].as_str().unwrap();
    let public = sb.store().join(format!("keys/{key_id}.pub"));
    let (sha256sum, openssl, zstd, tar, bagit) = (
        tool("sha256sum"),
        tool("openssl"),
        tool("zstd"),
        tool("tar"),
        tool("bagit.py"),
    );

    let ok = sh(
        &format!(
            "{} -c {}.tar.zst.sha256",
            sha256sum.display(),
            files.bundle_id
        ),
        &bundles,
    );
    assert!(ok.contains(": OK"), "{ok}");

    let verified = sh(
        &format!(
            "{} pkeyutl -verify -pubin -inkey {} -rawin -in {id}.seal.json -sigfile {id}.seal.json.sig",
            openssl.display(),
            public.display(),
            id = files.bundle_id
        ),
        &bundles,
    );
    assert!(
        verified.contains("Signature Verified Successfully"),
        "{verified}"
    );
    // Every journal entry's signature, as an auditor checks it.
    let journal = files.case_dir.join("journal");
    let entries = crate::util::journal_entry_paths(&journal);
    assert!(entries.len() >= 3, "{entries:?}");
    for entry in &entries {
        let name = entry.file_name().unwrap().to_str().unwrap();
        let verified = sh(
            &format!(
                "{} pkeyutl -verify -pubin -inkey {} -rawin -in {name} -sigfile {name}.sig",
                openssl.display(),
                public.display(),
            ),
            &journal,
        );
        assert!(
            verified.contains("Signature Verified Successfully"),
            "{name}: {verified}"
        );
    }

    // The key id is computable from the public key with standard tools.
    let computed = sh(
        &format!(
            "{} pkey -pubin -in {} -outform DER | {} | cut -c1-16",
            openssl.display(),
            public.display(),
            sha256sum.display()
        ),
        &bundles,
    );
    assert_eq!(computed.trim(), key_id);

    // openssl reads the private key custody wrote and derives the same public key.
    let private = sb.path("home/.config/custody/collector.key");
    let derived = sh(
        &format!(
            "{} pkey -in {} -pubout",
            openssl.display(),
            private.display()
        ),
        &bundles,
    );
    assert_eq!(derived, std::fs::read_to_string(&public).unwrap());

    let out = sb.path("extracted");
    std::fs::create_dir(&out).unwrap();
    sh(
        &format!(
            "{} -dc {} | {} -x",
            zstd.display(),
            files.archive.display(),
            tar.display()
        ),
        &out,
    );
    let bag = out.join(&files.bundle_id);
    let validated = std::process::Command::new(&bagit)
        .arg("--validate")
        .arg(&bag)
        .output()
        .expect("run bagit.py");
    assert_success(&validated);
    assert!(
        stderr(&validated).contains("is valid"),
        "{}",
        stderr(&validated)
    );
    assert!(!stderr(&validated).contains("--fast"));

    // And a bag altered after extraction fails the same validator.
    assert_eq!(
        std::fs::read(bag.join("data/logs/02-big.log")).unwrap(),
        text.as_bytes()
    );
    assert_eq!(
        std::fs::read(bag.join("data/logs/03-empty.log")).unwrap(),
        b""
    );
    let log = bag.join("data/logs/01-apache-combined-2000.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&log, bytes).unwrap();
    let invalid = std::process::Command::new(&bagit)
        .arg("--validate")
        .arg(&bag)
        .output()
        .unwrap();
    assert!(!invalid.status.success());
}

#[test]
fn a_key_made_by_openssl_signs_seals() {
    let sb = Sandbox::new();
    let openssl = tool("openssl");
    sh(
        &format!(
            "{} genpkey -algorithm ed25519 -out ossl.key",
            openssl.display()
        ),
        sb.dir.path(),
    );
    sh(
        &format!(
            "{} pkey -in ossl.key -pubout -out ossl.pub",
            openssl.display()
        ),
        sb.dir.path(),
    );
    let log = data("apache-combined-2000.log");
    let out = sb.run(&[
        "--store",
        sb.store().to_str().unwrap(),
        "--signing-key",
        "ossl.key",
        "--json",
        "collect",
        "--logs",
        log.to_str().unwrap(),
    ]);
    assert_success(&out);
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = BundleFiles::of(&result);
    let v = sb.run(&[
        "verify",
        files.case_dir.to_str().unwrap(),
        "--public-key",
        "ossl.pub",
    ]);
    assert_success(&v);
    assert!(!stdout(&v).contains("not independently trusted"));
}
