//! The S3 spool and uploads never put wrong evidence under a lock: a spooled case changed after
//! sealing is refused before its first PUT; one spool used for two endpoints keeps their receipts
//! apart; multipart uploads read back the whole lock; large archives are recorded as stored.
//! Against moto_server (`CUSTODY_TEST_S3_ENDPOINT`, and a second one in
//! `CUSTODY_TEST_S3_SECOND_ENDPOINT`), started by `scripts/test.sh`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use custody::case::{self as journal, Details, EntryKind};
use custody::digest::Sha256Digest;
use custody::policy::StoragePolicy;
use custody::store::s3::{PutReceipt, S3Location, S3Options, S3Store};
use custody::store::{Store, StoreError, StoreKey};

use crate::s3::{collect_s3, json, moto, moto_at, outage, s3_run, Moto, Outage};
use crate::util::{assert_success, data, make_writable, stderr, stdout, Sandbox};

/// A case sealed into the spool while S3 is away, and the proxy that stands for S3 (its budget
/// restored, so a flush through it reaches moto).
struct Spooled {
    case: String,
    dir: PathBuf,
}

fn spool_case(sandbox: &Sandbox, proxy: &Outage, store: &str) -> Spooled {
    proxy.budget.store(0, Ordering::SeqCst);
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let out = collect_s3(sandbox, &endpoint, store, &data("apache-combined-2000.log"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let result = json(&out);
    assert_eq!(result["stored"], false);
    let case = result["case_id"].as_str().unwrap().to_owned();
    proxy.budget.store(i64::MAX / 2, Ordering::SeqCst);
    let dir = std::fs::read_dir(sandbox.path("spool"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("cases").join(&case))
        .find(|p| p.is_dir())
        .expect("the spooled case");
    Spooled { case, dir }
}

/// Every file of a spooled case and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn only(dir: &Path, under: &str, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir.join(under))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no {suffix} in {under}"))
}

fn rewrite(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    make_writable(path);
    let mut bytes = std::fs::read(path).unwrap();
    change(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

/// Spools a case to be changed by `tamper` and an untouched one, then flushes: the changed case
/// is refused whole, kept byte for byte, and nothing of it reaches the bucket; the other one is
/// uploaded and verifies.
fn flush_refuses(tamper: impl FnOnce(&Path), names: &str) {
    let moto = moto();
    let bucket = moto.bucket(true);
    let store = format!("s3://{bucket}/p");
    let sandbox = Sandbox::new();
    let proxy = outage(&moto.endpoint, 0);
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let bad = spool_case(&sandbox, &proxy, &store);
    let good = spool_case(&sandbox, &proxy, &store);
    tamper(&bad.dir);
    let before = snapshot(&bad.dir);

    let out = s3_run(&sandbox, &endpoint, &["store", "flush", &store]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains(&bad.case), "{err}");
    assert!(err.contains("not what was sealed"), "{err}");
    assert!(err.contains(names), "the message names {names}: {err}");
    let keys = moto.keys(&bucket);
    assert!(
        !keys.iter().any(|k| k.contains(&bad.case)),
        "an object of the refused case is in the bucket: {keys:?}"
    );
    assert_eq!(snapshot(&bad.dir), before, "the refused case was changed");
    assert!(keys.iter().any(|k| k.contains(&good.case)), "{keys:?}");
    assert!(!good.dir.exists());
    let verify = s3_run(
        &sandbox,
        &endpoint,
        &["verify", &format!("{store}/cases/{}", good.case)],
    );
    assert_success(&verify);
    // Flushed again, the refused case is refused again, the same way.
    let again = s3_run(&sandbox, &endpoint, &["store", "flush", &store]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("not what was sealed"));
}

#[test]
fn flush_refuses_a_tampered_spooled_archive() {
    // `store flush` uploaded and COMPLIANCE-locked an archive rewritten in the spool.
    flush_refuses(
        |dir| {
            let archive = only(dir, "bundles", ".tar.zst");
            rewrite(&archive, |b| {
                let i = b.len() / 2;
                b[i] ^= 0x55;
            });
        },
        ".tar.zst",
    );
}

#[test]
fn flush_refuses_a_spooled_archive_of_another_size() {
    // The same with bytes added: the archive's size and SHA-256 both differ from the seal.
    flush_refuses(
        |dir| {
            rewrite(&only(dir, "bundles", ".tar.zst"), |b| {
                b.extend_from_slice(b"more")
            })
        },
        ".tar.zst",
    );
}

#[test]
fn flush_refuses_a_rewritten_spooled_sidecar() {
    // The sidecar was uploaded as it was found, whatever digest it named.
    flush_refuses(
        |dir| {
            rewrite(&only(dir, "bundles", ".tar.zst.sha256"), |b| {
                b[0] = if b[0] == b'0' { b'1' } else { b'0' };
            })
        },
        ".tar.zst.sha256",
    );
}

#[test]
fn flush_refuses_an_archive_resealed_without_the_key() {
    // Archive, sidecar and seal rewritten to agree with each other: only the signature and the
    // journal still say what was sealed.
    flush_refuses(
        |dir| {
            let archive = only(dir, "bundles", ".tar.zst");
            let old = Sha256Digest::of(&std::fs::read(&archive).unwrap()).to_hex();
            rewrite(&archive, |b| {
                let i = b.len() / 2;
                b[i] ^= 0x55;
            });
            let new = Sha256Digest::of(&std::fs::read(&archive).unwrap()).to_hex();
            for suffix in [".tar.zst.sha256", ".seal.json"] {
                rewrite(&only(dir, "bundles", suffix), |b| {
                    *b = String::from_utf8(b.clone())
                        .unwrap()
                        .replace(&old, &new)
                        .into_bytes();
                });
            }
        },
        "signature does not verify",
    );
}

#[test]
fn flush_refuses_a_rewritten_spooled_journal_entry() {
    // A journal entry changed in the spool breaks the chain; it was uploaded anyway.
    flush_refuses(
        |dir| {
            rewrite(&dir.join("journal/0000000002.json"), |b| {
                *b = String::from_utf8(b.clone())
                    .unwrap()
                    .replacen("\"custody\"", "\"mallory\"", 1)
                    .into_bytes();
            })
        },
        "journal chain is broken",
    );
}

#[test]
fn flush_refuses_a_spooled_journal_signature_changed_or_removed() {
    // A signature that no longer verifies, or none where the case is signed, is not uploaded.
    flush_refuses(
        |dir| {
            rewrite(&dir.join("journal/0000000002.json.sig"), |b| b[0] ^= 0x01);
        },
        "0000000002.json.sig",
    );
    flush_refuses(
        |dir| std::fs::remove_file(dir.join("journal/0000000003.json.sig")).unwrap(),
        "the entry is not signed",
    );
}

#[test]
fn flush_without_a_collector_key_refuses_and_uploads_nothing() {
    // The entry a flush appends is signed: with no key given and no per-user key, it stops
    // before anything is sent, rather than making up a key nobody knows.
    let moto = moto();
    let bucket = moto.bucket(true);
    let store = format!("s3://{bucket}/p");
    let sandbox = Sandbox::new();
    let proxy = outage(&moto.endpoint, 0);
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let spooled = spool_case(&sandbox, &proxy, &store);
    std::fs::remove_file(sandbox.path("home/.config/custody/collector.key")).unwrap();
    let out = s3_run(&sandbox, &endpoint, &["store", "flush", &store]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("no collector key"),
        "{}",
        stderr(&out)
    );
    assert!(moto
        .keys(&bucket)
        .iter()
        .all(|k| !k.contains(&spooled.case)));
    assert!(spooled.dir.exists());
}

#[test]
fn flush_refuses_a_rewritten_spooled_case_header() {
    // case.json is pinned by journal entry 1; a changed one was uploaded as it was.
    flush_refuses(
        |dir| {
            rewrite(&dir.join("case.json"), |b| {
                *b = String::from_utf8(b.clone())
                    .unwrap()
                    .replacen("\"requested_by\"", "\"requested_by\" ", 1)
                    .into_bytes();
            })
        },
        "case.json",
    );
}

/// The `objects_stored` receipts of `case` at `endpoint`.
fn objects_stored(endpoint: &str, store: &str, case: &str) -> Vec<PutReceipt> {
    let s3 = s3_client(endpoint, store, S3Options::default());
    let case = custody::id::CaseId::new(case).unwrap();
    let chain = journal::check_chain(&s3, &case).unwrap();
    assert!(chain.problems.is_empty(), "{:?}", chain.problems);
    let entries: Vec<_> = chain
        .entries
        .iter()
        .filter(|(e, _)| e.kind() == EntryKind::ObjectsStored)
        .collect();
    assert_eq!(entries.len(), 1);
    let Details::ObjectsStored(stored) = &entries[0].0.details else {
        unreachable!("filtered by kind")
    };
    stored
        .objects
        .iter()
        .cloned()
        .map(PutReceipt::from)
        .collect()
}

fn s3_client(endpoint: &str, store: &str, options: S3Options) -> S3Store {
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    S3Store::connect(
        S3Location::parse(store).unwrap(),
        &S3Options {
            endpoint: Some(endpoint.to_owned()),
            path_style: true,
            ..options
        },
        StoragePolicy::default().object_lock,
        std::env::temp_dir(),
    )
    .unwrap()
}

fn second_moto() -> Moto {
    moto_at(std::env::var("CUSTODY_TEST_S3_SECOND_ENDPOINT").expect(
        "CUSTODY_TEST_S3_SECOND_ENDPOINT is not set: this test needs the second moto_server that scripts/test.sh starts",
    ))
}

#[test]
fn one_spool_for_two_endpoints_records_only_each_cases_own_objects() {
    // The spool was keyed by the store URI alone: the second endpoint's case reused the first
    // one's receipt for keys/, never stored the key there, and failed `verify` with s3_missing.
    let (a, b) = (moto(), second_moto());
    let bucket = format!(
        "evidence-{}",
        &Sha256Digest::of(unique().as_bytes()).to_hex()[..12]
    );
    a.create_bucket(&bucket, true);
    b.create_bucket(&bucket, true);
    let store = format!("s3://{bucket}/p");
    let sandbox = Sandbox::new();
    let log = data("apache-combined-2000.log");
    let mut cases = Vec::new();
    for moto in [&a, &b] {
        let out = collect_s3(&sandbox, &moto.endpoint, &store, &log);
        assert_success(&out);
        cases.push(json(&out)["case_id"].as_str().unwrap().to_owned());
    }
    // A third case, at the first endpoint, signed with another key.
    let other = sandbox.path("other");
    assert_success(&sandbox.run(&["keygen", "--out", other.to_str().unwrap()]));
    let other_key = other.with_extension("key");
    let out = s3_run(
        &sandbox,
        &a.endpoint,
        &[
            "--store",
            &store,
            "--signing-key",
            other_key.to_str().unwrap(),
            "--json",
            "collect",
            "--logs",
            log.to_str().unwrap(),
        ],
    );
    assert_success(&out);
    cases.push(json(&out)["case_id"].as_str().unwrap().to_owned());

    for (moto, case) in [(&a, &cases[0]), (&b, &cases[1]), (&a, &cases[2])] {
        let verify = s3_run(
            &sandbox,
            &moto.endpoint,
            &["--json", "verify", &format!("{store}/cases/{case}")],
        );
        assert_success(&verify);
        let receipts = objects_stored(&moto.endpoint, &store, case);
        let keys: Vec<&str> = receipts
            .iter()
            .map(|r| r.uri.as_str())
            .filter(|u| u.contains("/keys/"))
            .collect();
        assert_eq!(keys.len(), 1, "one key per case: {keys:?}");
        for r in &receipts {
            assert!(
                r.uri.contains(&format!("/cases/{case}/")) || r.uri.contains("/keys/"),
                "{} is not an object of case {case}",
                r.uri
            );
        }
    }
    let key_of = |moto: &Moto, case: &str| {
        objects_stored(&moto.endpoint, &store, case)
            .into_iter()
            .find(|r| r.uri.contains("/keys/"))
            .unwrap()
            .uri
    };
    assert_ne!(key_of(&a, &cases[0]), key_of(&a, &cases[2]));
    assert_eq!(key_of(&a, &cases[0]), key_of(&b, &cases[1]));
}

fn unique() -> String {
    format!("{:?}{}", std::time::SystemTime::now(), std::process::id())
}

/// A TCP proxy to `target` that renames the response headers `from` to `to` (same length): an
/// S3-compatible store that accepts a lock request and does not keep it, as HeadObject shows.
fn hiding_proxy(target: &str, from: &'static str, to: &'static str) -> u16 {
    assert_eq!(from.len(), to.len());
    let target = target.trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match s_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let chunk = replace(&buf[..n], from.as_bytes(), to.as_bytes());
                    if c_write.write_all(&chunk).is_err() {
                        break;
                    }
                }
                let _ = c_write.shutdown(Shutdown::Both);
            });
        }
    });
    port
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = hay.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

fn big_file(dir: &Path, mib: u8) -> (PathBuf, Sha256Digest, u64) {
    let path = dir.join("big");
    let mut f = std::fs::File::create(&path).unwrap();
    let mut block = vec![0u8; 1024 * 1024];
    for i in 0..mib {
        block
            .iter_mut()
            .enumerate()
            .for_each(|(j, b)| *b = (j as u8).wrapping_mul(31) ^ i);
        f.write_all(&block).unwrap();
    }
    drop(f);
    let bytes = std::fs::read(&path).unwrap();
    (path, Sha256Digest::of(&bytes), bytes.len() as u64)
}

const SMALL_PARTS: S3Options = S3Options {
    endpoint: None,
    path_style: true,
    multipart_threshold: 6 * 1024 * 1024,
    part_size: 5 * 1024 * 1024,
};

fn case_and_bundle() -> (custody::id::CaseId, custody::id::BundleId) {
    let now = time::OffsetDateTime::now_utc();
    (
        custody::id::CaseId::generate(now),
        custody::id::BundleId::generate(now),
    )
}

#[test]
fn multipart_uploads_refuse_a_lock_without_its_date_or_legal_hold() {
    // Multipart uploads checked only the lock mode after upload; single PUTs checked all three.
    let moto = moto();
    let dir = tempfile::tempdir().unwrap();
    let (path, sha, size) = big_file(dir.path(), 12);
    for (header, hidden, policy_hold) in [
        (
            "x-amz-object-lock-retain-until-date",
            "x-amz-object-lock-retain-until-xxxx",
            false,
        ),
        (
            "x-amz-object-lock-legal-hold",
            "x-amz-object-lock-legal-xxxx",
            true,
        ),
    ] {
        let bucket = moto.bucket(true);
        let port = hiding_proxy(&moto.endpoint, header, hidden);
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        let mut lock = StoragePolicy::default().object_lock;
        lock.legal_hold = policy_hold;
        let store = S3Store::connect(
            S3Location::parse(&format!("s3://{bucket}/p")).unwrap(),
            &S3Options {
                endpoint: Some(format!("http://127.0.0.1:{port}")),
                ..SMALL_PARTS
            },
            lock,
            dir.path().to_owned(),
        )
        .unwrap();
        let (case, bundle) = case_and_bundle();
        let single = store.put_bytes(&StoreKey::CaseHeader(case.clone()), b"{}");
        assert!(
            matches!(single, Err(StoreError::BucketNotReady { .. })),
            "{header}: {single:?}"
        );
        let multi = store.put_path(&StoreKey::Archive(case, bundle), &path, size, sha);
        match multi {
            Err(StoreError::BucketNotReady { why, .. }) => {
                assert!(why.contains("not locked as asked"), "{why}")
            }
            other => panic!("{header} hidden, the multipart upload was accepted: {other:?}"),
        }
    }
}

#[test]
fn a_multipart_archive_is_recorded_among_the_stored_objects() {
    // The daemon rebuilt objects_stored by re-reading objects; a multipart archive over the
    // small-object cap could not be re-read, was left out, and verify said s3_unrecorded. The
    // daemon now records the receipts of its own PUTs, as the CLI does.
    let moto = moto();
    let bucket = moto.bucket(true);
    let store_uri = format!("s3://{bucket}/p");
    let dir = tempfile::tempdir().unwrap();
    let (path, sha256, size) = big_file(dir.path(), 17);
    let store = s3_client(&moto.endpoint, &store_uri, SMALL_PARTS);
    let recording = custody::store::Recording::new(&store);
    let (case, bundle) = case_and_bundle();
    recording
        .put_new(&StoreKey::CaseHeader(case.clone()), b"{}\n")
        .unwrap();
    let archive = StoreKey::Archive(case.clone(), bundle);
    let staged = custody::store::StagedFile { path, sha256, size };
    let receipt = recording
        .put_new_file(&archive, staged)
        .unwrap()
        .record()
        .unwrap();
    assert!(receipt.s3_checksum.contains('-'), "a multipart upload");

    let objects = recording.records();
    assert_eq!(objects.len(), 2, "{objects:?}");
    let recorded = objects
        .iter()
        .find(|o| o.uri == store.object_uri(&archive))
        .expect("the archive is recorded");
    assert_eq!(recorded, &receipt);

    // A store that did not write it (a restarted daemon) cannot establish its SHA-256: it
    // says so instead of leaving the archive out.
    let fresh = s3_client(&moto.endpoint, &store_uri, SMALL_PARTS);
    match fresh.receipt_of(&archive) {
        Err(e) => assert!(e.to_string().contains("cannot record"), "{e}"),
        Ok(v) => panic!("an object was left out silently: {v:?}"),
    }
}

// Keying the spool by endpoint let `store flush` through another spelling of the endpoint say
// "nothing waits" with exit 0 while a case for the same store waited in the spool of the first.
#[test]
fn a_flush_through_another_endpoint_names_the_cases_it_leaves_waiting() {
    let moto = moto();
    let bucket = moto.bucket(true);
    let store = format!("s3://{bucket}/p");
    let sandbox = Sandbox::new();
    let proxy = outage(&moto.endpoint, 0);
    let waiting = spool_case(&sandbox, &proxy, &store);
    let out = s3_run(&sandbox, &moto.endpoint, &["store", "flush", &store]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("http://127.0.0.1:{}", proxy.port))
            && err.contains("does not upload"),
        "{err}"
    );
    assert!(waiting.dir.exists());
    let as_json = s3_run(
        &sandbox,
        &moto.endpoint,
        &["--json", "store", "flush", &store],
    );
    assert_eq!(as_json.status.code(), Some(2));
    let report = json(&as_json);
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(
        report["waiting_elsewhere"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    // Through the endpoint it was spooled for, it is uploaded.
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    assert_success(&s3_run(&sandbox, &endpoint, &["store", "flush", &store]));
    assert!(!waiting.dir.exists());
    assert_success(&s3_run(
        &sandbox,
        &moto.endpoint,
        &["store", "flush", &store],
    ));
}
