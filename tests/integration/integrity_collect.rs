//! Collection never passes off wrong or incomplete evidence as whole: what was read is sealed,
//! what is known to be missing or changed is journaled, listed in `collection.json` and reported
//! by `verify`, and `collect` exits 3 for it. Also: endless inputs, signals, and collections that
//! died, and the analysis's memory budget.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use custody::case::entry::{ObjectsStored, SourceCaptured};
use custody::case::Details;
use custody::collect::{self, Outcome, Request, Trigger};
use custody::keys::SigningKey;
use custody::policy::Policies;
use custody::source::k8s::{K8sRequest, K8sSource, Since, Target};
use custody::source::{FileSource, Source, SourceError, Stream};
use custody::store::LocalStore;
use custody::verify;

use crate::k8s::{cluster, NS};
use crate::util::*;

fn request(staging: Option<PathBuf>) -> Request {
    let mut r = Request::new(
        Trigger {
            kind: "cli".into(),
            requested_by: "analyst".into(),
        },
        20,
        custody::analysis::format::FormatChoice::Auto,
        false,
    );
    r.staging = staging;
    r
}

/// Opens the sources, lets `meddle` act between opening and sealing, then seals.
fn collect_with(
    store: &LocalStore,
    source: &mut dyn Source,
    request: &Request,
    meddle: impl FnOnce(),
) -> Outcome {
    let policies = Policies::default();
    let key = SigningKey::generate();
    let opened = collect::open_sources(&policies, source, request).unwrap();
    meddle();
    let journal = collect::open_case(store, &key, request, serde_json::Value::Null).unwrap();
    collect::seal_case(store, &key, &policies, source, request, journal, opened).unwrap()
}

fn bag_file(outcome: &Outcome, sandbox: &Sandbox, name: &str) -> Vec<u8> {
    let archive = outcome.bundle.archive.uri.strip_prefix("file://").unwrap();
    let into = sandbox.path("unpacked");
    std::fs::create_dir_all(&into).unwrap();
    sh(
        &format!(
            "{} -dc '{archive}' | tar -x -C '{}'",
            tool("zstd").display(),
            into.display()
        ),
        &into,
    );
    std::fs::read(into.join(outcome.bundle.bundle_id.as_str()).join(name)).unwrap()
}

fn verified(store: &Path) -> verify::Report {
    verify::verify_path(store, &verify::Options::default()).unwrap()
}

fn access_log(lines: usize) -> Vec<u8> {
    let mut text = String::new();
    for i in 0..lines {
        text.push_str(&line(
            &format!("10.1.{}.{}", i / 250 % 250, i % 250),
            if i % 7 == 0 { 401 } else { 200 },
            "/api/v1/login",
        ));
    }
    text.into_bytes()
}

// A staged Kubernetes log changed between download and sealing was sealed with exit 0 and
// `failures: []`; now it is a recorded failure, and verify reports it.
#[test]
fn a_kubernetes_log_changed_after_download_is_recorded_and_reported() {
    let kube = cluster();
    let sandbox = Sandbox::new();
    let store = LocalStore::open(&sandbox.store(), true).unwrap();
    let work = sandbox.path("downloads");
    let mut source = K8sSource::new(
        K8sRequest {
            namespace: NS.into(),
            target: Target::Selector("app=api-gateway,pod-template-hash=5f6a1b".into()),
            since: Since::All,
            container: Some("gateway".into()),
            context: None,
            kubeconfig: Some(kube.kubeconfig(sandbox.dir.path())),
        },
        Policies::default().collection.kubernetes,
        work.clone(),
    );
    let req = request(None);
    let outcome = collect_with(&store, &mut source, &req, || {
        // Someone with access to the staging directory rewrites a downloaded log.
        let staged = std::fs::read_dir(&work)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "log"))
            .unwrap();
        // (What was read while opening is already held; the rest is read from the file.)
        make_writable(&staged);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&staged)
            .unwrap();
        f.write_all(
            b"203.0.113.99 - - [26/Nov/2026:14:55:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"\n",
        )
        .unwrap();
    });
    assert!(!outcome.complete());
    assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
    assert_eq!(
        failures_json(&outcome.failures)[0]["kind"],
        "staged_changed"
    );
    let collection: serde_json::Value =
        serde_json::from_slice(&bag_file(&outcome, &sandbox, "data/collection.json")).unwrap();
    assert_eq!(collection["failures"][0]["kind"], "staged_changed");
    let report = verified(&sandbox.store());
    assert!(report.ok, "{:?}", report.problems);
    assert!(!report.complete);
    assert!(report.incomplete[0]
        .message
        .contains("changed between download and sealing"));
}

// A log truncated while it was read (logrotate's copytruncate) was sealed in part with exit 0
// and `failures: []`; now the shrink is recorded with the sizes.
#[test]
fn a_log_truncated_while_collected_is_recorded_as_shrunk() {
    let sandbox = Sandbox::new();
    let store = LocalStore::open(&sandbox.store(), true).unwrap();
    let log = sandbox.path("access.log");
    let full = access_log(40_000);
    std::fs::write(&log, &full).unwrap();
    let mut source = FileSource::new(vec![log.clone()], 1 << 30);
    let keep = 1_000_000u64;
    let outcome = collect_with(&store, &mut source, &request(None), || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(keep)
            .unwrap();
    });
    assert_eq!(outcome.sources[0].bytes, keep);
    assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
    let failures = failures_json(&outcome.failures);
    let f = &failures[0];
    assert_eq!(f["kind"], "shrank");
    assert_eq!(f["size_at_open"], full.len() as u64);
    assert_eq!(f["bytes_read"], keep);
    let collection: serde_json::Value =
        serde_json::from_slice(&bag_file(&outcome, &sandbox, "data/collection.json")).unwrap();
    assert_eq!(collection["failures"][0]["kind"], "shrank");
    let sealed = bag_file(&outcome, &sandbox, "data/logs/01-access.log");
    assert_eq!(sealed, &full[..keep as usize], "what was read is sealed");
    let report = verified(&sandbox.store());
    assert!(report.ok && !report.complete, "{report:?}");
    // The bundle alone is reported incomplete too.
    let archive = outcome.bundle.archive.uri.strip_prefix("file://").unwrap();
    let report = verified(Path::new(archive));
    assert!(report.ok && !report.complete, "{report:?}");
    assert_eq!(report.incomplete[0].code, "capture_incomplete");
}

// copytruncate with a writer that does not append: the file is truncated, then written at its
// old offset, so its size is back and the lost bytes read as a hole of zeros. This was sealed
// as whole with exit 0; the fall in the file's allocation shows it.
#[test]
fn a_log_truncated_and_rewritten_at_its_old_offset_is_recorded() {
    use std::os::unix::fs::FileExt;
    let sandbox = Sandbox::new();
    let store = LocalStore::open(&sandbox.store(), true).unwrap();
    let log = sandbox.path("access.log");
    let full = access_log(40_000);
    std::fs::write(&log, &full).unwrap();
    std::fs::File::open(&log).unwrap().sync_all().unwrap();
    let mut source = FileSource::new(vec![log.clone()], 1 << 30);
    let outcome = collect_with(&store, &mut source, &request(None), || {
        let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        f.set_len(0).unwrap();
        f.write_at(
            b"10.9.9.9 - - [26/Nov/2026:14:59:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"\n",
            full.len() as u64,
        )
        .unwrap();
    });
    assert!(outcome.sources[0].bytes > full.len() as u64);
    assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
    assert_eq!(failures_json(&outcome.failures)[0]["kind"], "shrank");
    assert!(
        failures_json(&outcome.failures)[0]["error"]
            .as_str()
            .unwrap()
            .contains("hole"),
        "{:?}",
        outcome.failures
    );
}

// A live log is appended to while it is read, and a writer trims space it had reserved past
// the end: neither loses a byte, and neither may be reported (an allocation-based check took
// the trim for a truncation).
#[test]
fn a_log_appended_to_or_trimmed_of_reserved_space_while_collected_is_whole() {
    let sandbox = Sandbox::new();
    let store = LocalStore::open(&sandbox.store(), true).unwrap();
    let log = sandbox.path("access.log");
    let full = access_log(40_000);
    std::fs::write(&log, &full).unwrap();
    let f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    rustix::fs::fallocate(
        &f,
        rustix::fs::FallocateFlags::KEEP_SIZE,
        full.len() as u64,
        32 << 20,
    )
    .expect("fallocate with KEEP_SIZE, to reserve space past the end");
    let more = access_log(10);
    let mut source = FileSource::new(vec![log.clone()], 1 << 30);
    let outcome = collect_with(&store, &mut source, &request(None), || {
        let mut f = f;
        f.write_all(&more).unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len).unwrap();
    });
    assert_eq!(outcome.failures, Vec::<custody::source::Failure>::new());
    assert_eq!(outcome.sources[0].bytes, (full.len() + more.len()) as u64);
}

// A log rotated away (renamed, a new file at its path) while it was collected: the file that
// was opened is sealed, and the rotation is recorded.
#[test]
fn a_log_replaced_while_collected_is_recorded() {
    let sandbox = Sandbox::new();
    let store = LocalStore::open(&sandbox.store(), true).unwrap();
    let log = sandbox.path("access.log");
    let full = access_log(2_000);
    std::fs::write(&log, &full).unwrap();
    let mut source = FileSource::new(vec![log.clone()], 1 << 30);
    let outcome = collect_with(&store, &mut source, &request(None), || {
        std::fs::rename(&log, sandbox.path("access.log.1")).unwrap();
        std::fs::write(&log, b"new\n").unwrap();
    });
    assert_eq!(outcome.sources[0].bytes, full.len() as u64);
    assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
    assert_eq!(failures_json(&outcome.failures)[0]["kind"], "replaced");
}

/// A source of two streams whose second, when first read, rewrites the bag's spool file
/// (where the first stream's compressed bytes wait): staging changed after capture.
struct RewritesSpool {
    staging: PathBuf,
    logs: Vec<u8>,
}

struct Rewriter {
    staging: PathBuf,
    done: bool,
    rest: std::io::Cursor<Vec<u8>>,
}

impl Read for Rewriter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.done {
            self.done = true;
            for entry in std::fs::read_dir(&self.staging)? {
                let path = entry?.path();
                let mut f = std::fs::OpenOptions::new().write(true).open(&path)?;
                f.write_all(&[0x55; 64])?;
                f.sync_all()?;
            }
        }
        self.rest.read(buf)
    }
}

impl Source for RewritesSpool {
    fn request(&self) -> serde_json::Value {
        serde_json::json!({"kind": "test"})
    }

    fn open(&mut self) -> Result<Vec<Stream>, SourceError> {
        let stream = |name: &str, reader: Box<dyn Read + Send>| Stream {
            name: name.into(),
            bag_name: format!("{name}.log"),
            provenance: custody::source::Provenance::from_json(serde_json::json!({"kind": "test"})),
            first: Vec::new(),
            reader,
            check: None,
        };
        Ok(vec![
            stream(
                "01-first",
                Box::new(std::io::Cursor::new(self.logs.clone())),
            ),
            stream(
                "02-second",
                Box::new(Rewriter {
                    staging: self.staging.clone(),
                    done: false,
                    rest: std::io::Cursor::new(self.logs.clone()),
                }),
            ),
        ])
    }
}

// The staging spool rewritten between capture and seal gave a signed bundle that failed its
// own manifest, with exit 0; now the changed source is left out and recorded.
#[test]
fn a_spool_rewritten_between_capture_and_seal_is_left_out_and_recorded() {
    let sandbox = Sandbox::new();
    let store = LocalStore::open(&sandbox.store(), true).unwrap();
    let staging = sandbox.path("run");
    std::fs::create_dir_all(&staging).unwrap();
    let mut source = RewritesSpool {
        staging: staging.clone(),
        logs: access_log(5_000),
    };
    let mut req = request(Some(staging));
    req.format = custody::analysis::format::FormatChoice::Auto;
    let outcome = collect_with(&store, &mut source, &req, || {});
    assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
    assert_eq!(
        failures_json(&outcome.failures)[0]["kind"],
        "staging_changed"
    );
    assert_eq!(
        failures_json(&outcome.failures)[0]["bag_path"],
        "data/logs/01-first.log"
    );
    assert_eq!(outcome.sources.len(), 1);
    let report = verified(&sandbox.store());
    assert!(
        report.ok,
        "the bundle holds only what is intact: {:?}",
        report.problems
    );
    assert!(!report.complete);
    assert!(report.incomplete[0].message.contains("staging_changed"));
}

fn write_policies(sandbox: &Sandbox, collection: &str) -> PathBuf {
    let dir = sandbox.path("policies-under-test");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("collection.yaml"),
        format!("kubernetes:\n  limit_bytes: 1000000\n  concurrency: 1\n{collection}"),
    )
    .unwrap();
    dir
}

/// `collect --json ARGS…` into the sandbox's store with the policies in `policies`.
fn collect_json(sandbox: &Sandbox, policies: &Path, args: &[&str]) -> std::process::Output {
    let store = sandbox.store();
    let mut all = vec![
        "--store",
        store.to_str().unwrap(),
        "--policies",
        policies.to_str().unwrap(),
        "--json",
        "collect",
    ];
    all.extend_from_slice(args);
    sandbox.run(&all)
}

// The analysis's memory was unbounded: 4 M distinct clients needed 1.58 GB and a memory limit
// killed custody with nothing sealed. Now the analysis keeps to its budget, the logs are sealed
// whole, and the summary says exactly what was not counted per client.
#[test]
fn an_analysis_past_its_memory_budget_still_seals_every_byte_and_says_what_it_missed() {
    let sandbox = Sandbox::new();
    let log = sandbox.path("many-clients.log");
    let mut text = String::new();
    for i in 0..150_000u32 {
        let ip = format!("2001:db8:{:x}:{:x}::1", i >> 16, i & 0xffff);
        text.push_str(&line(&ip, if i % 3 == 0 { 401 } else { 200 }, "/login"));
    }
    std::fs::write(&log, &text).unwrap();
    let policies = write_policies(&sandbox, "analysis:\n  memory_budget_bytes: 4194304\n");
    let out = collect_json(&sandbox, &policies, &["--logs", log.to_str().unwrap()]);
    assert_code(&out, INCOMPLETE);
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary = &result["summary"];
    assert_eq!(summary["lines"], 150_000, "the totals stay exact");
    assert_eq!(summary["auth_failures"]["401"], 50_000);
    let limit = &summary["limit"];
    let tracked = limit["clients_tracked"].as_u64().unwrap();
    let untracked = limit["requests_not_attributed"].as_u64().unwrap();
    assert!(tracked > 1000 && tracked < 150_000, "{limit}");
    assert_eq!(
        tracked + untracked,
        150_000,
        "each client has one request: {limit}"
    );
    assert_eq!(summary["unique_ips"], tracked);
    assert_eq!(result["failures"][0]["kind"], "analysis_limited");
    let report = sandbox.run(&["--json", "verify", sandbox.store().to_str().unwrap()]);
    assert_code(&report, INCOMPLETE);
    // `analyze` under the same budget says so too, and exits 3.
    let analyzed = sandbox.run(&[
        "--policies",
        policies.to_str().unwrap(),
        "analyze",
        log.to_str().unwrap(),
    ]);
    assert_code(&analyzed, INCOMPLETE);
    assert!(
        stdout(&analyzed).contains("LIMITED"),
        "{}",
        stdout(&analyzed)
    );
    // The whole log is in the bag.
    assert_eq!(result["sources"][0]["bytes"], text.len() as u64);
    assert_eq!(
        result["sources"][0]["sha256"],
        custody::digest::Sha256Digest::of(text.as_bytes()).to_hex()
    );
}

// `collect --logs /dev/zero` read for ever; inputs are capped like Kubernetes logs and the cut
// is recorded as truncation.
#[test]
fn an_endless_input_is_capped_and_recorded_as_truncated() {
    let sandbox = Sandbox::new();
    let policies = write_policies(&sandbox, "files:\n  limit_bytes: 3000000\n");
    let out = collect_json(&sandbox, &policies, &ENDLESS[1..]);
    assert_code(&out, INCOMPLETE);
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["sources"][0]["bytes"], 3_000_000);
    assert_eq!(result["failures"][0]["kind"], "truncated");
    assert_eq!(result["failures"][0]["limit_bytes"], 3_000_000);
}

/// Waits until the store holds a case's first journal entry; returns the case directory.
fn wait_for_case(store: &Path, child: &mut Child) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(case) = std::fs::read_dir(store.join("cases"))
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path())
        {
            if case.join("journal/0000000001.json").exists() {
                return case;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "custody ended early");
        assert!(Instant::now() < deadline, "no case was opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A collection that never ends by itself.
const ENDLESS: [&str; 5] = ["collect", "--format", "combined", "--logs", "/dev/zero"];

/// `collect --logs /dev/zero` into the sandbox's store, its standard error piped, once its case
/// is open and reading has begun; returns the process and the case directory.
fn endless_collection(sandbox: &Sandbox) -> (Child, PathBuf) {
    let store = sandbox.store();
    let mut args = vec!["--store", store.to_str().unwrap()];
    args.extend_from_slice(&ENDLESS);
    let mut child = sandbox
        .custody(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let case = wait_for_case(&store, &mut child);
    std::thread::sleep(Duration::from_millis(300));
    (child, case)
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits at most `limit` for the child to end.
fn wait_at_most(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("custody did not stop within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn last_entry(case: &Path) -> serde_json::Value {
    let entries: Vec<PathBuf> = crate::util::journal_entry_paths(&case.join("journal"));
    serde_json::from_slice(&std::fs::read(entries.last().unwrap()).unwrap()).unwrap()
}

fn staging_is_empty(store: &Path) -> bool {
    std::fs::read_dir(store.join(".staging"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

// After Ctrl-C, `collect --logs /dev/zero` kept reading for 10 s and more, left
// `.staging/tmp-*` behind and the case open, so every later verify failed. Now it stops within
// a couple of seconds, journals the interruption, cleans staging and exits 130, and verify
// reports the case as interrupted rather than as corrupt.
#[test]
fn sigint_stops_a_collection_at_once_and_journals_the_interruption() {
    let sandbox = Sandbox::new();
    let store = sandbox.store();
    let (mut child, case) = endless_collection(&sandbox);
    // While it runs, verify says so: neither whole nor tampered.
    let running = sandbox.run(&["--json", "verify", store.to_str().unwrap()]);
    assert_code(&running, INCOMPLETE);
    assert!(
        stdout(&running).contains("collection_running"),
        "{}",
        stdout(&running)
    );
    signal(&child, "INT");
    let status = wait_at_most(&mut child, Duration::from_secs(5));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    let last = last_entry(&case);
    assert_eq!(last["kind"], "collection_interrupted", "{last}");
    assert_eq!(last["details"]["signal"], "SIGINT");
    assert!(staging_is_empty(&store), "staging is cleaned");
    let out = sandbox.run(&["--json", "verify", store.to_str().unwrap()]);
    assert_code(&out, INCOMPLETE);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["incomplete"][0]["code"], "collection_interrupted");
}

// Standard input that never sends anything blocked the collection past any signal; SIGTERM
// now ends it at once, before any case is opened.
#[test]
fn sigterm_stops_a_collection_waiting_on_standard_input() {
    let sandbox = Sandbox::new();
    let store = sandbox.store();
    let mut child = sandbox
        .custody(&["--store", store.to_str().unwrap(), "collect", "--logs", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    signal(&child, "TERM");
    let status = wait_at_most(&mut child, Duration::from_secs(3));
    assert_eq!(status.code(), Some(143));
    drop(child.stdin.take());
    assert!(
        !store.join("cases").exists()
            || std::fs::read_dir(store.join("cases"))
                .unwrap()
                .next()
                .is_none()
    );
}

// A collection killed outright left its case open for ever (verify failing) and its temporary
// files behind; the next collection in the store journals it as interrupted and cleans up.
#[test]
fn a_killed_collection_is_journaled_as_interrupted_by_the_next_one() {
    let sandbox = Sandbox::new();
    let store = sandbox.store();
    let (mut child, case) = endless_collection(&sandbox);
    signal(&child, "KILL");
    child.wait().unwrap();
    assert!(!staging_is_empty(&store), "the killed run left its files");
    // Before anything cleans up, verify reads the dead run as an interrupted collection, not
    // as tampering.
    let before = sandbox.run(&["--json", "verify", store.to_str().unwrap()]);
    assert_code(&before, INCOMPLETE);
    assert!(
        stdout(&before).contains("process died"),
        "{}",
        stdout(&before)
    );
    let log = sandbox.path("small.log");
    std::fs::write(&log, access_log(100)).unwrap();
    let out = sandbox.run(&[
        "--store",
        store.to_str().unwrap(),
        "collect",
        "--logs",
        log.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert!(
        stderr(&out).contains("journaled as interrupted"),
        "{}",
        stderr(&out)
    );
    assert_eq!(last_entry(&case)["kind"], "collection_interrupted");
    assert!(staging_is_empty(&store));
    let verified = sandbox.run(&["--json", "verify", store.to_str().unwrap()]);
    assert_code(&verified, INCOMPLETE);
}

// A flushed interrupted case passed `verify s3://`: the `objects_stored` entry appended at the
// upload hid that the collection never finished. Entries after a collection change nothing.
#[test]
fn an_upload_record_does_not_make_an_unfinished_collection_look_finished() {
    let sandbox = Sandbox::new();
    let store = LocalStore::open(&sandbox.store(), true).unwrap();
    let req = request(None);
    let key = SigningKey::generate();
    let mut journal = collect::open_case(&store, &key, &req, serde_json::Value::Null).unwrap();
    journal
        .append(
            "custody",
            Details::SourceCaptured(SourceCaptured {
                bag_path: "data/logs/01-x.log".into(),
                bytes: 1,
                sha256: custody::digest::Sha256Digest::of(b"x"),
                sha512: "00".into(),
                source: "x".into(),
            }),
        )
        .unwrap();
    journal
        .append(
            "custody",
            Details::ObjectsStored(ObjectsStored {
                objects: Vec::new(),
            }),
        )
        .unwrap();
    let report = verified(&sandbox.store());
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("no bundle sealed")),
        "{:?}",
        report.problems
    );
}

// A collection to S3 killed mid-way left an unfinished case in the spool; once flushed, the
// `objects_stored` entry the upload appended made `verify s3://` pass it. Now `store flush`
// journals the dead collection as interrupted before uploading it, and verify reports it.
#[test]
fn a_killed_collection_flushed_to_s3_is_reported_not_passed() {
    let moto = crate::s3::moto();
    let bucket = moto.bucket(true);
    let store = format!("s3://{bucket}/evidence");
    let sandbox = Sandbox::new();
    let mut args = vec!["--store", store.as_str()];
    args.extend_from_slice(&ENDLESS);
    let mut child = crate::s3::s3_command(&sandbox, &moto.endpoint, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let spooled = loop {
        let found = std::fs::read_dir(sandbox.path("spool"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("cases").is_dir());
        if let Some(dir) = found {
            break wait_for_case(&dir, &mut child);
        }
        assert!(Instant::now() < deadline, "nothing was spooled");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "KILL");
    child.wait().unwrap();
    let flushed = crate::s3::s3_run(&sandbox, &moto.endpoint, &["store", "flush", &store]);
    assert_success(&flushed);
    assert!(
        stderr(&flushed).contains("journaled as interrupted"),
        "{}",
        stderr(&flushed)
    );
    assert!(!spooled.exists(), "the case left the spool");
    let out = crate::s3::s3_run(&sandbox, &moto.endpoint, &["--json", "verify", &store]);
    assert_code(&out, INCOMPLETE);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["incomplete"][0]["code"], "collection_interrupted",
        "{report}"
    );
}

/// The failures as JSON, as `collection.json` and `--json` hold them.
fn failures_json(failures: &[custody::source::Failure]) -> serde_json::Value {
    serde_json::to_value(failures).unwrap()
}
