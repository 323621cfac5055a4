//! The S3 store against a real S3 implementation: `moto_server`, which `scripts/test.sh` starts
//! and names in `CUSTODY_TEST_S3_ENDPOINT`. Without it these tests fail; they never skip.
//!
//! Faults are real too: an outage is a TCP proxy in front of moto that closes every connection
//! once a byte budget is spent, so S3 stops answering in the middle of an upload.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;
use custody::digest::Sha256Digest;
use custody::policy::StoragePolicy;
use custody::store::s3::{S3Location, S3Options, S3Store};
use custody::store::{Store, StoreError, StoreKey};

use crate::util::{assert_success, data, stderr, stdout, Sandbox};

/// moto, and a client of our own to set up buckets and to act as an attacker.
pub struct Moto {
    pub endpoint: String,
    client: aws_sdk_s3::Client,
    runtime: tokio::runtime::Runtime,
}

pub fn moto() -> Moto {
    let endpoint = std::env::var("CUSTODY_TEST_S3_ENDPOINT").expect(
        "CUSTODY_TEST_S3_ENDPOINT is not set: the S3 tests need moto_server, which scripts/test.sh starts",
    );
    moto_at(endpoint)
}

/// moto at `endpoint`.
pub fn moto_at(endpoint: String) -> Moto {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let credentials = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "t");
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(&endpoint)
        .force_path_style(true)
        .build();
    let m = Moto {
        client: aws_sdk_s3::Client::from_conf(config),
        endpoint,
        runtime,
    };
    // Fail loudly, with the reason, when moto is not there.
    m.runtime
        .block_on(m.client.list_buckets().send())
        .unwrap_or_else(|e| {
            panic!(
                "moto_server at {} does not answer: {}",
                m.endpoint,
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
    m
}

impl Moto {
    /// A new bucket; `locked` enables Object Lock (and so versioning).
    pub fn bucket(&self, locked: bool) -> String {
        let name = format!(
            "custody-test-{}",
            &Sha256Digest::of(format!("{:?}{}", std::time::SystemTime::now(), rand()).as_bytes())
                .to_hex()[..16]
        );
        self.create_bucket(&name, locked);
        name
    }

    /// A bucket called `name`.
    pub fn create_bucket(&self, name: &str, locked: bool) {
        self.runtime
            .block_on(
                self.client
                    .create_bucket()
                    .bucket(name)
                    .object_lock_enabled_for_bucket(locked)
                    .send(),
            )
            .unwrap();
    }

    /// A plain PUT, as someone with write access might do.
    fn plant(&self, bucket: &str, key: &str, body: &[u8]) {
        self.runtime
            .block_on(
                self.client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(body.to_vec()))
                    .send(),
            )
            .unwrap();
    }

    fn delete(&self, bucket: &str, key: &str) {
        self.runtime
            .block_on(self.client.delete_object().bucket(bucket).key(key).send())
            .unwrap();
    }

    /// Every version of every key under `prefix`: (key, version id).
    fn versions(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        let out = self
            .runtime
            .block_on(
                self.client
                    .list_object_versions()
                    .bucket(bucket)
                    .prefix(prefix)
                    .send(),
            )
            .unwrap();
        assert_ne!(out.is_truncated(), Some(true));
        out.versions()
            .iter()
            .map(|v| {
                (
                    v.key().unwrap().to_owned(),
                    v.version_id().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The latest version of `key`'s bytes.
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.runtime.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            out.body.collect().await.unwrap().into_bytes().to_vec()
        })
    }

    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .versions(bucket, "")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

fn rand() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id())
}

/// The sandbox's `custody` pointed at `endpoint` with test credentials and its own spool.
pub(crate) fn s3_run(sandbox: &Sandbox, endpoint: &str, args: &[&str]) -> Output {
    s3_command(sandbox, endpoint, args).output().unwrap()
}

/// `s3_run`'s command, to be spawned.
pub(crate) fn s3_command(
    sandbox: &Sandbox,
    endpoint: &str,
    args: &[&str],
) -> std::process::Command {
    let mut all = vec!["--s3-endpoint", endpoint, "--s3-path-style"];
    all.extend_from_slice(args);
    let mut cmd = sandbox.custody(&all);
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", sandbox.path("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            sandbox.path("no-aws-credentials"),
        )
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("CUSTODY_SPOOL", sandbox.path("spool"));
    cmd
}

pub(crate) fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr:\n{}", stdout(out), stderr(out)))
}

pub(crate) fn collect_s3(sandbox: &Sandbox, endpoint: &str, store: &str, log: &Path) -> Output {
    s3_run(
        sandbox,
        endpoint,
        &[
            "--store",
            store,
            "--json",
            "collect",
            "--logs",
            log.to_str().unwrap(),
        ],
    )
}

fn problem_codes(report: &serde_json::Value) -> Vec<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap().to_owned(),
                p["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn spooled_files(spool: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(spool, &mut out);
    out.into_iter()
        .filter(|p| p.to_string_lossy().contains("/cases/"))
        .filter(|p| !p.to_string_lossy().contains("/.receipts/"))
        .collect()
}

#[test]
fn a_collection_is_stored_locked_and_checksummed_and_verifies_from_s3() {
    let moto = moto();
    let bucket = moto.bucket(true);
    let store = format!("s3://{bucket}/evidence/prod");
    let sandbox = Sandbox::new();
    let out = collect_s3(
        &sandbox,
        &moto.endpoint,
        &store,
        &data("apache-combined-2000.log"),
    );
    assert_success(&out);
    let result = json(&out);
    assert_eq!(result["stored"], true);
    let case = result["case_id"].as_str().unwrap().to_owned();
    assert!(result["archive"]["uri"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{store}/cases/{case}/bundles/")));
    assert!(result["archive"]["version_id"].is_string());

    // Every object: one version, COMPLIANCE-locked for the policy's days, with S3's SHA-256
    // equal to the bytes'.
    let versions = moto.versions(&bucket, "evidence/prod/");
    let keys: Vec<&str> = versions.iter().map(|(k, _)| k.as_str()).collect();
    // The case (header, four journal entries and their four signatures, the bundle's four
    // files), the collector's public key, and the probe object of the bucket check.
    let in_case = keys
        .iter()
        .filter(|k| k.contains(&format!("/cases/{case}/")))
        .count();
    assert_eq!(in_case, 13, "{keys:?}");
    assert_eq!(
        keys.iter().filter(|k| k.contains("/keys/")).count(),
        1,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.contains("/probes/")).count(),
        1,
        "{keys:?}"
    );
    assert_eq!(keys.len(), 15, "{keys:?}");
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "one version per key: {keys:?}");
    let days = i64::from(StoragePolicy::default().object_lock.days);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (key, version) in &versions {
        let head = moto
            .runtime
            .block_on(
                moto.client
                    .head_object()
                    .bucket(&bucket)
                    .key(key)
                    .version_id(version)
                    .checksum_mode(ChecksumMode::Enabled)
                    .send(),
            )
            .unwrap();
        assert_eq!(
            head.object_lock_mode().map(|m| m.as_str()),
            Some("COMPLIANCE"),
            "{key}"
        );
        let until = head.object_lock_retain_until_date().unwrap().secs();
        // The bucket check's probe is kept for one day; evidence for the policy's days.
        let days = if key.contains("/probes/") { 1 } else { days };
        assert!(
            (until - (now + days * 86_400)).abs() < 600,
            "{key}: {until}"
        );
        let body = moto.runtime.block_on(async {
            let o = moto
                .client
                .get_object()
                .bucket(&bucket)
                .key(key)
                .version_id(version)
                .send()
                .await
                .unwrap();
            o.body.collect().await.unwrap().into_bytes()
        });
        let expected = aws_smithy_types::base64::encode(Sha256Digest::of(&body).as_bytes());
        assert_eq!(head.checksum_sha256(), Some(expected.as_str()), "{key}");
        // A locked version cannot be deleted, not even by the owner.
        let deleted = moto.runtime.block_on(
            moto.client
                .delete_object()
                .bucket(&bucket)
                .key(key)
                .version_id(version)
                .send(),
        );
        assert!(deleted.is_err(), "{key}: a locked version was deleted");
    }
    // The journal records each version; each entry is signed beside it.
    let journal: Vec<&String> = versions
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k.contains("/journal/") && k.ends_with(".json"))
        .collect();
    assert_eq!(journal.len(), 4);
    for entry in &journal {
        assert!(keys.contains(&format!("{entry}.sig").as_str()), "{keys:?}");
    }
    let verify = s3_run(
        &sandbox,
        &moto.endpoint,
        &["--json", "verify", &format!("{store}/cases/{case}")],
    );
    assert_success(&verify);
    let report = json(&verify);
    assert_eq!(report["ok"], true, "{report}");
    // case_opened, source_captured, bundle_sealed, objects_stored.
    assert_eq!(report["cases"][0]["journal_entries"], 4);
    // The whole store verifies too, and the spool is empty again.
    assert_success(&s3_run(&sandbox, &moto.endpoint, &["verify", &store]));
    assert!(spooled_files(&sandbox.path("spool")).is_empty());
}

#[test]
fn verify_names_every_key_written_over_or_deleted() {
    let moto = moto();
    let bucket = moto.bucket(true);
    let store = format!("s3://{bucket}/p");
    let sandbox = Sandbox::new();
    let out = collect_s3(
        &sandbox,
        &moto.endpoint,
        &store,
        &data("apache-combined-2000.log"),
    );
    assert_success(&out);
    let result = json(&out);
    let case = result["case_id"].as_str().unwrap();
    let bundle = result["bundle_id"].as_str().unwrap();
    let archive_key = format!("p/cases/{case}/bundles/{bundle}.tar.zst");
    let seal_key = format!("p/cases/{case}/bundles/{bundle}.seal.json");
    let entry_key = format!("p/cases/{case}/journal/0000000002.json");
    moto.plant(&bucket, &archive_key, b"not the evidence");
    moto.plant(&bucket, &seal_key, b"{}");
    moto.delete(&bucket, &entry_key);
    // An object added under the case after custody stored it.
    let added_key = format!("p/cases/{case}/bundles/notes.txt");
    moto.plant(&bucket, &added_key, b"added later");

    let verify = s3_run(&sandbox, &moto.endpoint, &["--json", "verify", &store]);
    assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
    let problems = problem_codes(&json(&verify));
    let uri = |k: &str| format!("s3://{bucket}/{k}");
    assert!(
        problems.contains(&("s3_overwritten".into(), uri(&archive_key))),
        "{problems:?}"
    );
    assert!(
        problems.contains(&("s3_overwritten".into(), uri(&seal_key))),
        "{problems:?}"
    );
    assert!(
        problems.contains(&("s3_deleted".into(), uri(&entry_key))),
        "{problems:?}"
    );
    assert!(
        problems.contains(&("s3_unrecorded".into(), uri(&added_key))),
        "{problems:?}"
    );
    // The locked versions themselves are intact and were the ones verified: nothing else is
    // wrong (the added object is also outside the layout).
    let others: Vec<_> = problems
        .iter()
        .filter(|(code, _)| !code.starts_with("s3_"))
        .collect();
    assert!(
        others
            .iter()
            .all(|(code, subject)| code == "unexpected_file" && subject.ends_with("notes.txt")),
        "{problems:?}"
    );
    assert_eq!(
        problems
            .iter()
            .filter(|(c, _)| c.starts_with("s3_"))
            .count(),
        4,
        "{problems:?}"
    );
}

#[test]
fn the_store_refuses_to_overwrite_and_sends_large_files_in_checksummed_parts() {
    let moto = moto();
    let bucket = moto.bucket(true);
    let dir = tempfile::tempdir().unwrap();
    let options = S3Options {
        endpoint: Some(moto.endpoint.clone()),
        path_style: true,
        multipart_threshold: 6 * 1024 * 1024,
        part_size: 5 * 1024 * 1024,
    };
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let store = S3Store::connect(
        S3Location::parse(&format!("s3://{bucket}/x")).unwrap(),
        &options,
        StoragePolicy::default().object_lock,
        dir.path().to_owned(),
    )
    .unwrap();
    let case = custody::id::CaseId::new("20261126-000000-00000001").unwrap();
    let key = StoreKey::CaseHeader(case.clone());
    store.put_new(&key, b"first").unwrap();
    match store.put_new(&key, b"second") {
        Err(StoreError::AlreadyExists { uri }) => assert!(uri.ends_with("case.json")),
        other => panic!("an existing key was written: {other:?}"),
    }
    assert_eq!(store.get(&key).unwrap(), b"first");

    // 12 MiB in 5 MiB parts: three parts, each with its SHA-256.
    let big = dir.path().join("big");
    let mut f = std::fs::File::create(&big).unwrap();
    let mut block = vec![0u8; 1024 * 1024];
    for i in 0..12u8 {
        block
            .iter_mut()
            .enumerate()
            .for_each(|(j, b)| *b = (j as u8) ^ i);
        f.write_all(&block).unwrap();
    }
    drop(f);
    let bytes = std::fs::read(&big).unwrap();
    let sha = Sha256Digest::of(&bytes);
    let archive = StoreKey::Archive(
        case.clone(),
        custody::id::BundleId::new("20261126-000000-00000002").unwrap(),
    );
    let receipt = store
        .put_path(&archive, &big, bytes.len() as u64, sha)
        .unwrap();
    assert!(
        receipt.s3_checksum.ends_with("-3"),
        "{}",
        receipt.s3_checksum
    );
    assert_eq!(receipt.s3_checksum, store.composite_checksum(&big).unwrap());
    let state = store.head(&archive, receipt.version_id.as_deref()).unwrap();
    // S3 reports `<base64>-3`; moto leaves out the part count.
    assert!(
        custody::store::s3::same_checksum(state.s3_checksum.as_deref(), &receipt.s3_checksum),
        "{:?} vs {}",
        state.s3_checksum,
        receipt.s3_checksum
    );
    assert_eq!(state.lock_mode.as_deref(), Some("COMPLIANCE"));
    let mut back = Vec::new();
    store
        .open(&archive)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(Sha256Digest::of(&back), sha);
    // Create-new holds for multipart uploads too.
    assert!(matches!(
        store.put_path(&archive, &big, bytes.len() as u64, sha),
        Err(StoreError::AlreadyExists { .. })
    ));
}

/// A TCP proxy to `target` that forwards until `budget` request bytes have passed, then closes
/// every connection and refuses new ones: S3 going away mid-request.
pub struct Outage {
    pub port: u16,
    closed: Arc<AtomicBool>,
    /// Request bytes still to forward; set to 0 to take S3 away.
    pub budget: Arc<AtomicI64>,
}

pub fn outage(target: &str, budget: i64) -> Outage {
    let target = target
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let budget = Arc::new(AtomicI64::new(budget));
    let closed = Arc::new(AtomicBool::new(false));
    let c = closed.clone();
    let remaining = budget.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            if budget.load(Ordering::SeqCst) <= 0 {
                c.store(true, Ordering::SeqCst);
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            let budget = budget.clone();
            let closed = c.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    let n = match c_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if budget.fetch_sub(n as i64, Ordering::SeqCst) - (n as i64) <= 0 {
                        closed.store(true, Ordering::SeqCst);
                        break;
                    }
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_read.shutdown(Shutdown::Both);
                let _ = s_write.shutdown(Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(Shutdown::Both);
            });
        }
    });
    Outage {
        port,
        closed,
        budget: remaining,
    }
}

#[test]
fn s3_failing_in_the_middle_of_an_upload_loses_nothing() {
    let moto = moto();
    let bucket = moto.bucket(true);
    let store = format!("s3://{bucket}/p");
    let sandbox = Sandbox::new();
    // Enough for the bucket check and the first objects, not for the archive.
    let proxy = outage(&moto.endpoint, 40_000);
    let via_proxy = format!("http://127.0.0.1:{}", proxy.port);
    let log = data("apache-combined-2000.log");
    let out = collect_s3(&sandbox, &via_proxy, &store, &log);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(proxy.closed.load(Ordering::SeqCst));
    let result = json(&out);
    assert_eq!(result["stored"], false);
    assert!(stderr(&out).contains("store flush"), "{}", stderr(&out));
    let case = result["case_id"].as_str().unwrap().to_owned();
    // Some objects reached S3, the archive did not; the whole case waits in the spool.
    let keys = moto.keys(&bucket);
    assert!(keys.iter().any(|k| k.ends_with("case.json")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.ends_with(".tar.zst")), "{keys:?}");
    let spooled = spooled_files(&sandbox.path("spool"));
    assert!(
        spooled
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".tar.zst")),
        "{spooled:?}"
    );
    // The receipt of an object that did reach S3 is lost, as if the process died right after
    // the PUT: the flush must adopt that object, not fail or write it twice.
    let receipts: Vec<PathBuf> = walk_receipts(&sandbox.path("spool"));
    let header_receipt = receipts
        .iter()
        .find(|p| p.to_string_lossy().ends_with("case.json.json"))
        .expect("a receipt for case.json");
    std::fs::remove_file(header_receipt).unwrap();

    // While S3 stays away, flush fails and keeps everything. (The spool is the store's at
    // this endpoint: the same proxy address throughout.)
    proxy.budget.store(0, Ordering::SeqCst);
    let failed = s3_run(&sandbox, &via_proxy, &["store", "flush", &store]);
    assert_eq!(failed.status.code(), Some(2));
    assert!(
        stderr(&failed).contains("unreachable"),
        "{}",
        stderr(&failed)
    );
    assert_eq!(spooled_files(&sandbox.path("spool")).len(), spooled.len());

    // S3 is back: flush uploads it all, the spool empties, and the case verifies.
    proxy.budget.store(i64::MAX / 2, Ordering::SeqCst);
    let flushed = s3_run(&sandbox, &via_proxy, &["--json", "store", "flush", &store]);
    assert_success(&flushed);
    let flushed = json(&flushed);
    assert_eq!(flushed["uploaded"][0]["case_id"], case.as_str());
    assert!(spooled_files(&sandbox.path("spool")).is_empty());
    let verify = s3_run(
        &sandbox,
        &moto.endpoint,
        &["--json", "verify", &format!("{store}/cases/{case}")],
    );
    assert_success(&verify);
    // Every key was written exactly once.
    let versions = moto.versions(&bucket, "p/cases/");
    let mut keys: Vec<&String> = versions.iter().map(|(k, _)| k).collect();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n, "a key was written twice");
    // The stored log is the original, byte for byte.
    let summary_sources = json(&out)["sources"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        summary_sources,
        Sha256Digest::of(&std::fs::read(&log).unwrap()).to_hex()
    );
}

fn walk_receipts(spool: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![spool.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains("/.receipts/") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn buckets_that_cannot_hold_evidence_are_refused_clearly() {
    let moto = moto();
    let sandbox = Sandbox::new();
    let plain = moto.bucket(false);
    let out = s3_run(
        &sandbox,
        &moto.endpoint,
        &["store", "check", &format!("s3://{plain}/p")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Object Lock is not enabled"),
        "{}",
        stderr(&out)
    );

    let out = s3_run(
        &sandbox,
        &moto.endpoint,
        &["store", "check", "s3://no-such-bucket-here/p"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the bucket does not exist"),
        "{}",
        stderr(&out)
    );

    let locked = moto.bucket(true);
    let out = s3_run(
        &sandbox,
        &moto.endpoint,
        &["--json", "store", "check", &format!("s3://{locked}/p")],
    );
    assert_success(&out);
    let checks = json(&out)["checks"].as_array().unwrap().len();
    assert!(checks >= 6, "{}", stdout(&out));

    // A collection to a bucket without Object Lock is sealed and kept, not lost.
    let out = collect_s3(
        &sandbox,
        &moto.endpoint,
        &format!("s3://{plain}/p"),
        &data("apache-combined-2000.log"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json(&out)["stored"], false);
    assert!(
        stderr(&out).contains("Object Lock is not enabled"),
        "{}",
        stderr(&out)
    );
    assert!(!spooled_files(&sandbox.path("spool")).is_empty());
    assert!(
        moto.keys(&plain).is_empty(),
        "nothing is written to an unlocked bucket"
    );
}

#[test]
fn an_unreachable_store_is_a_clear_error() {
    let sandbox = Sandbox::new();
    let dead = outage("127.0.0.1:9", 0);
    let endpoint = format!("http://127.0.0.1:{}", dead.port);
    let out = s3_run(&sandbox, &endpoint, &["verify", "s3://some-bucket/p"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unreachable"), "{}", stderr(&out));
    let out = s3_run(&sandbox, &endpoint, &["verify", "s3://Bad_Bucket/p"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bucket name"), "{}", stderr(&out));
}

#[test]
fn wrong_credentials_are_named() {
    // A second moto_server that checks credentials (scripts/test.sh starts it with
    // INITIAL_NO_AUTH_ACTION_COUNT=0): the test keys are unknown to it.
    let endpoint = std::env::var("CUSTODY_TEST_S3_AUTH_ENDPOINT").expect(
        "CUSTODY_TEST_S3_AUTH_ENDPOINT is not set: this test needs the credential-checking moto_server that scripts/test.sh starts",
    );
    let sandbox = Sandbox::new();
    let out = s3_run(
        &sandbox,
        &endpoint,
        &["store", "check", "s3://any-bucket/p"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("credentials were refused"),
        "{}",
        stderr(&out)
    );
    let out = s3_run(&sandbox, &endpoint, &["verify", "s3://any-bucket/p"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("credentials were refused"),
        "{}",
        stderr(&out)
    );
}
