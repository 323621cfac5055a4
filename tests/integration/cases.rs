//! Browsing cases: `custody cases`, `cases show` and `cases report` on stores made by collecting
//! the sample logs in `examples/`: the counts against the journal, the `--json` fields, text
//! from an attacker escaped, a journal that does not check listed with its problem, and the
//! report written only out of a bundle that verifies, byte for byte the bag's member.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use custody::case::entry::{Findings, SuspiciousClient};
use custody::case::{self as journal, CaseHeader, Details, Journal, Trigger};
use custody::id::{BundleId, CaseId};
use custody::keys::SigningKey;
use custody::store::{LocalStore, Receipt, StagedFile, Store, StoreError, StoreKey, StorePrefix};
use custody::verify::{self, ExtractError};

use crate::s3::{collect_s3, json, moto, s3_run};
use crate::util::{assert_code, assert_success, make_writable, sh, stderr, stdout, Sandbox};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

fn incident_log() -> PathBuf {
    example("api-gateway-incident.log")
}

fn collector_key(sb: &Sandbox) -> SigningKey {
    SigningKey::load(&sb.path("home/.config/custody/collector.key")).unwrap()
}

fn run_in(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    let store = sb.store();
    let mut all = vec!["--store", store.to_str().unwrap()];
    all.extend_from_slice(args);
    sb.run(&all)
}

fn collect_as(sb: &Sandbox, requested_by: &str) -> serde_json::Value {
    let out = run_in(
        sb,
        &[
            "--json",
            "collect",
            "--requested-by",
            requested_by,
            "--logs",
            incident_log().to_str().unwrap(),
        ],
    );
    assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Journals the collection's suspicious clients as a `findings` entry, signed by the collector
/// key, as the daemon does after sealing (the CLI journals none); `extra` adds clients.
fn journal_findings(sb: &Sandbox, collected: &serde_json::Value, extra: &[SuspiciousClient]) {
    let store = LocalStore::open(&sb.store(), false).unwrap();
    let case = CaseId::new(collected["case_id"].as_str().unwrap()).unwrap();
    let chain = journal::check_chain(&store, &case).unwrap();
    let key = collector_key(sb);
    let mut suspicious: Vec<SuspiciousClient> = collected["summary"]["suspicious"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| SuspiciousClient {
            auth_failures: s["auth_failures"].as_u64().unwrap(),
            ip: s["ip"].as_str().unwrap().to_owned(),
            pods: Vec::new(),
            rule: s["reason"].as_str().unwrap_or("rule").to_owned(),
        })
        .collect();
    suspicious.extend_from_slice(extra);
    let findings = Findings {
        auth_failures: Default::default(),
        bundle_id: custody::id::BundleId::new(collected["bundle_id"].as_str().unwrap()).unwrap(),
        complete: true,
        failures: Vec::new(),
        lines: collected["summary"]["lines"].as_u64().unwrap(),
        suspicious,
    };
    let mut j = Journal::resume(&store, case, chain.head().unwrap(), &key);
    j.append("custody", Details::Findings(findings)).unwrap();
}

/// The suspicious clients the journal's last `findings` entry names, read from the files.
fn findings_in_journal(sb: &Sandbox, case: &str) -> usize {
    let dir = sb.store().join("cases").join(case).join("journal");
    let mut count = None;
    for path in crate::util::journal_entry_paths(&dir) {
        let entry: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        if entry["kind"] == "findings" {
            count = Some(entry["details"]["suspicious"].as_array().unwrap().len());
        }
    }
    count.expect("a findings entry")
}

#[test]
fn cases_lists_every_case_with_its_counts_and_stable_json_fields() {
    let sb = Sandbox::new();
    let first = collect_as(&sb, "alice");
    journal_findings(&sb, &first, &[]);
    let second = collect_as(&sb, "bob");
    let case = first["case_id"].as_str().unwrap();
    let expected = findings_in_journal(&sb, case);
    assert!(expected > 0, "the incident log has suspicious clients");

    let out = run_in(&sb, &["--json", "cases"]);
    assert_success(&out);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    // Two cases opened in the same second are in id order, not the order they were collected.
    let row = list
        .iter()
        .find(|r| r["case_id"] == case)
        .expect("the first case is listed");
    let mut fields: Vec<&str> = row
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "alert_resolved",
            "bundles",
            "case_id",
            "journal_entries",
            "ok",
            "opened_at",
            "plans",
            "problems",
            "state",
            "suspicious",
            "trigger"
        ]
    );
    assert_eq!(row["suspicious"], expected);
    assert_eq!(row["bundles"], 1);
    assert_eq!(row["plans"], 0);
    assert_eq!(row["state"], "sealed");
    assert_eq!(row["ok"], true);
    assert_eq!(row["journal_entries"], 4);
    assert_eq!(row["trigger"]["kind"], "cli");
    assert_eq!(row["trigger"]["requested_by"], "alice");
    assert!(row["opened_at"].as_str().unwrap().starts_with("20"));
    // A CLI case journals no findings: its count is unknown, not zero.
    let other = list
        .iter()
        .find(|r| r["case_id"] == second["case_id"])
        .expect("the second case is listed");
    assert_eq!(other["suspicious"], serde_json::Value::Null);

    let out = run_in(&sb, &["cases"]);
    assert_success(&out);
    let text = stdout(&out);
    let line = text.lines().find(|l| l.starts_with(case)).unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cells[cells.len() - 3..], ["1", &expected.to_string(), "0"]);
    assert!(
        line.contains("sealed") && line.contains("cli by alice"),
        "{line}"
    );

    // The findings entry is a valid signed link: the case still verifies.
    assert_success(&sb.run(&["verify", sb.store().to_str().unwrap()]));

    let out = run_in(&sb, &["--json", "cases", "show", case]);
    assert_success(&out);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["suspicious"], expected);
    assert_eq!(
        shown["findings"]["suspicious"].as_array().unwrap().len(),
        expected
    );
    assert_eq!(shown["timeline"].as_array().unwrap().len(), 4);
    assert_eq!(shown["timeline"][3]["kind"], "findings");
    assert_eq!(shown["bundles"][0]["bundle_id"], first["bundle_id"]);
    assert_eq!(
        shown["bundles"][0]["archive_sha256"],
        first["archive"]["sha256"]
    );
    assert_eq!(shown["plans"], serde_json::json!([]));
    assert_eq!(shown["ok"], true);
}

#[test]
fn text_an_attacker_controls_is_escaped_for_the_terminal_and_exact_in_json() {
    let sb = Sandbox::new();
    let evil_name = "mallory\u{1b}]0;owned\u{7}";
    let collected = collect_as(&sb, evil_name);
    let evil_ip = "203.0.113.66\u{1b}[2J\u{9b}31m";
    journal_findings(
        &sb,
        &collected,
        &[SuspiciousClient {
            auth_failures: 7,
            ip: evil_ip.into(),
            pods: Vec::new(),
            rule: "rule\r\nforged line".into(),
        }],
    );
    let case = collected["case_id"].as_str().unwrap();
    for args in [vec!["cases"], vec!["cases", "show", case]] {
        let out = run_in(&sb, &args);
        assert_success(&out);
        assert!(
            !out.stdout
                .iter()
                .any(|b| *b == 0x1b || *b == 0x07 || *b == b'\r'),
            "raw control bytes in {args:?}: {:?}",
            stdout(&out)
        );
        assert!(!stdout(&out).contains('\u{9b}'));
        assert!(
            stdout(&out).contains("mallory\\x1b]0;owned\\x07"),
            "{}",
            stdout(&out)
        );
    }
    let text = stdout(&run_in(&sb, &["cases", "show", case]));
    assert!(text.contains("203.0.113.66\\x1b[2J\\u{9b}31m"), "{text}");
    assert!(text.contains("rule\\x0d\\x0aforged line"), "{text}");
    let out = run_in(&sb, &["--json", "cases", "show", case]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["trigger"]["requested_by"], evil_name);
    let ips: Vec<&str> = shown["findings"]["suspicious"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ip"].as_str().unwrap())
        .collect();
    assert!(ips.contains(&evil_ip));
}

#[test]
fn the_report_is_the_bag_member_byte_for_byte() {
    let sb = Sandbox::new();
    let collected = collect_as(&sb, "alice");
    let case = collected["case_id"].as_str().unwrap();
    let bundle = collected["bundle_id"].as_str().unwrap();
    let archive = collected["archive"]["uri"]
        .as_str()
        .unwrap()
        .strip_prefix("file://")
        .unwrap()
        .to_owned();
    let reference = sb.path("reference.html");
    sh(
        &format!(
            "zstd -dc '{archive}' | tar -xO '{bundle}/data/analysis/report.html' > '{}'",
            reference.display()
        ),
        sb.dir.path(),
    );
    let reference = std::fs::read(reference).unwrap();
    assert!(reference.len() > 1000);

    // To a file (created new), and to standard output when it is not a terminal.
    let out = run_in(&sb, &["--json", "cases", "report", case, "--out", "r.html"]);
    assert_success(&out);
    assert_eq!(std::fs::read(sb.path("r.html")).unwrap(), reference);
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["bundle_id"], bundle);
    assert_eq!(result["bytes"], reference.len());
    assert_eq!(
        result["sha256"],
        custody::digest::Sha256Digest::of(&reference).to_hex()
    );
    let out = run_in(&sb, &["cases", "report", case, "--bundle", bundle]);
    assert_success(&out);
    assert_eq!(out.stdout, reference);

    // An existing file is not overwritten, unless --force.
    std::fs::write(sb.path("r.html"), b"mine").unwrap();
    let out = run_in(&sb, &["cases", "report", case, "--out", "r.html"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(sb.path("r.html")).unwrap(), b"mine");
    let out = run_in(
        &sb,
        &["cases", "report", case, "--out", "r.html", "--force"],
    );
    assert_success(&out);
    assert_eq!(std::fs::read(sb.path("r.html")).unwrap(), reference);

    // With the collector's public key given, as an auditor would.
    let public = sb.path("collector.pub");
    let key = collector_key(&sb);
    std::fs::write(&public, key.public().to_pem().unwrap()).unwrap();
    let out = run_in(
        &sb,
        &[
            "cases",
            "report",
            case,
            "--public-key",
            public.to_str().unwrap(),
        ],
    );
    assert_success(&out);
    assert_eq!(out.stdout, reference);
    // Another key: the seal does not verify with it.
    let other = sb.path("other.pub");
    std::fs::write(&other, SigningKey::generate().public().to_pem().unwrap()).unwrap();
    let out = run_in(
        &sb,
        &[
            "cases",
            "report",
            case,
            "--public-key",
            other.to_str().unwrap(),
        ],
    );
    assert_code(&out, 1);
    assert!(out.stdout.is_empty());
}

#[test]
fn a_tampered_archive_is_refused_and_nothing_written() {
    let sb = Sandbox::new();
    let collected = collect_as(&sb, "alice");
    let case = collected["case_id"].as_str().unwrap();
    let archive = PathBuf::from(
        collected["archive"]["uri"]
            .as_str()
            .unwrap()
            .strip_prefix("file://")
            .unwrap(),
    );
    make_writable(&archive);
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&archive, &bytes).unwrap();

    let out = run_in(&sb, &["cases", "report", case, "--out", "r.html"]);
    assert_code(&out, 1);
    assert!(!sb.path("r.html").exists());
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("archive_hash_mismatch"),
        "{}",
        stderr(&out)
    );
    let out = run_in(&sb, &["cases", "report", case]);
    assert_code(&out, 1);
    assert!(out.stdout.is_empty());
}

#[test]
fn a_case_with_no_sealed_bundle_exits_2_and_a_broken_journal_is_listed_with_exit_1() {
    let sb = Sandbox::new();
    let collected = collect_as(&sb, "alice");
    let sealed_case = collected["case_id"].as_str().unwrap().to_owned();
    // A case opened and never collected.
    let store = LocalStore::open(&sb.store(), false).unwrap();
    let key = collector_key(&sb);
    let open = CaseId::new("20261202-000000-0000abcd").unwrap();
    let header = CaseHeader::new(
        open.clone(),
        time::OffsetDateTime::now_utc(),
        Trigger {
            kind: "api".into(),
            requested_by: "carol".into(),
        },
    );
    journal::open(&store, &header, None, &key).unwrap();
    let out = run_in(&sb, &["cases", "report", open.as_str()]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("no sealed bundle"),
        "{}",
        stderr(&out)
    );
    let out = run_in(
        &sb,
        &[
            "cases",
            "report",
            &sealed_case,
            "--bundle",
            "20261202-000000-00000000",
        ],
    );
    assert_code(&out, 2);
    let out = run_in(&sb, &["cases", "show", "20261202-000000-ffffffff"]);
    assert_code(&out, 2);

    let out = run_in(&sb, &["--json", "cases"]);
    assert_success(&out);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["case_id"] == open.as_str())
        .unwrap();
    assert_eq!(row["state"], "collecting");
    assert_eq!(row["bundles"], 0);

    // Entry 2 of the sealed case changed: the chain breaks at entry 3, and the case is listed
    // with its problem, not hidden.
    let entry = sb
        .store()
        .join(format!("cases/{sealed_case}/journal/0000000002.json"));
    make_writable(&entry);
    let text = std::fs::read_to_string(&entry)
        .unwrap()
        .replace("custody", "cust0dy");
    std::fs::write(&entry, text).unwrap();
    let out = run_in(&sb, &["--json", "cases"]);
    assert_code(&out, 1);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["case_id"] == sealed_case.as_str())
        .unwrap();
    assert_eq!(row["ok"], false);
    assert!(!row["problems"].as_array().unwrap().is_empty());
    let out = run_in(&sb, &["cases"]);
    assert_code(&out, 1);
    assert!(stdout(&out).contains("PROBLEM"), "{}", stdout(&out));
    let out = run_in(&sb, &["cases", "show", &sealed_case]);
    assert_code(&out, 1);
}

#[test]
fn cases_browse_an_s3_store() {
    let moto = moto();
    let bucket = moto.bucket(true);
    let store = format!("s3://{bucket}/evidence");
    let sb = Sandbox::new();
    let out = collect_s3(&sb, &moto.endpoint, &store, &incident_log());
    assert_success(&out);
    let collected = json(&out);
    let case = collected["case_id"].as_str().unwrap();

    let out = s3_run(&sb, &moto.endpoint, &["--store", &store, "--json", "cases"]);
    assert_success(&out);
    let list = json(&out);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["case_id"], case);
    assert_eq!(list[0]["bundles"], 1);
    assert_eq!(list[0]["state"], "sealed");

    let out = s3_run(
        &sb,
        &moto.endpoint,
        &[
            "--store", &store, "cases", "report", case, "--out", "r.html",
        ],
    );
    assert_success(&out);
    let report = std::fs::read(sb.path("r.html")).unwrap();
    let archive = moto.get(
        &bucket,
        &format!(
            "evidence/cases/{case}/bundles/{}.tar.zst",
            collected["bundle_id"].as_str().unwrap()
        ),
    );
    std::fs::write(sb.path("a.tar.zst"), archive).unwrap();
    let reference = sh(
        &format!(
            "zstd -dc a.tar.zst | tar -xO '{}/data/analysis/report.html' | sha256sum",
            collected["bundle_id"].as_str().unwrap()
        ),
        sb.dir.path(),
    );
    assert!(reference.starts_with(&custody::digest::Sha256Digest::of(&report).to_hex()));
}

#[test]
fn an_entry_signature_removed_lists_the_case_with_its_problem() {
    let sb = Sandbox::new();
    let collected = collect_as(&sb, "alice");
    let case = collected["case_id"].as_str().unwrap();
    let sig = sb
        .store()
        .join(format!("cases/{case}/journal/0000000002.json.sig"));
    std::fs::remove_file(&sig).unwrap();
    let out = run_in(&sb, &["--json", "cases"]);
    assert_code(&out, 1);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = list[0]["problems"].to_string();
    assert!(problems.contains("journal_entry_unsigned"), "{problems}");
    // With another key given as the trusted one, every signature fails.
    let sb2 = Sandbox::new();
    let collected = collect_as(&sb2, "alice");
    let other = sb2.path("other.pub");
    std::fs::write(&other, SigningKey::generate().public().to_pem().unwrap()).unwrap();
    let case = collected["case_id"].as_str().unwrap();
    let out = run_in(
        &sb2,
        &[
            "cases",
            "show",
            case,
            "--public-key",
            other.to_str().unwrap(),
        ],
    );
    assert_code(&out, 1);
    assert!(
        stdout(&out).contains("journal_signature_invalid"),
        "{}",
        stdout(&out)
    );
}

/// A store that serves other bytes for one archive from its second read on: the archive
/// replaced between verification and extraction.
struct Swapping {
    inner: LocalStore,
    archive: StoreKey,
    replacement: Vec<u8>,
    opens: AtomicUsize,
}

impl Store for Swapping {
    fn uri(&self) -> String {
        self.inner.uri()
    }
    fn object_uri(&self, key: &StoreKey) -> String {
        self.inner.object_uri(key)
    }
    fn staging_dir(&self) -> &Path {
        self.inner.staging_dir()
    }
    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Receipt, StoreError> {
        self.inner.put_new(key, bytes)
    }
    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Receipt, StoreError> {
        self.inner.put_new_file(key, staged)
    }
    fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError> {
        self.inner.get(key)
    }
    fn open(&self, key: &StoreKey) -> Result<Box<dyn std::io::Read + Send>, StoreError> {
        if key == &self.archive && self.opens.fetch_add(1, Ordering::SeqCst) > 0 {
            return Ok(Box::new(std::io::Cursor::new(self.replacement.clone())));
        }
        self.inner.open(key)
    }
    fn exists(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.inner.exists(key)
    }
    fn list(&self, prefix: &StorePrefix) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix)
    }
}

#[test]
fn read_member_hands_out_only_verified_members() {
    let sb = Sandbox::new();
    let collected = collect_as(&sb, "alice");
    let store = LocalStore::open(&sb.store(), false).unwrap();
    let case = CaseId::new(collected["case_id"].as_str().unwrap()).unwrap();
    let bundle = BundleId::new(collected["bundle_id"].as_str().unwrap()).unwrap();
    let options = verify::Options::default();
    let read = |store: &dyn Store, path: &str, max: u64| {
        verify::read_member(store, &case, &bundle, path, max, &options)
    };

    // The planner's read: the sealed summary, as collect printed it.
    let bytes = read(&store, "data/analysis/summary.json", 1 << 20).unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(summary["suspicious"], collected["summary"]["suspicious"]);

    assert!(matches!(
        read(&store, "data/analysis/nope.json", 1 << 20),
        Err(ExtractError::NoSuchMember { .. })
    ));
    assert!(matches!(
        read(&store, "bagit.txt", 1 << 20),
        Err(ExtractError::BadPath(_))
    ));
    assert!(matches!(
        read(&store, "data/analysis/summary.json", 10),
        Err(ExtractError::TooLarge { max: 10, .. })
    ));

    // Replaced after it verified, by a valid archive of another bundle: refused.
    let other = collect_as(&sb, "bob");
    let other_archive = std::fs::read(collected_path(&other)).unwrap();
    let swapping = Swapping {
        inner: LocalStore::open(&sb.store(), false).unwrap(),
        archive: StoreKey::Archive(case.clone(), bundle.clone()),
        replacement: other_archive,
        opens: AtomicUsize::new(0),
    };
    let e = read(&swapping, "data/analysis/summary.json", 1 << 20).unwrap_err();
    assert!(matches!(e, ExtractError::ArchiveChanged { .. }), "{e}");
    assert!(
        e.to_string().contains("changed after it was verified"),
        "{e}"
    );
}

fn collected_path(collected: &serde_json::Value) -> PathBuf {
    PathBuf::from(
        collected["archive"]["uri"]
            .as_str()
            .unwrap()
            .strip_prefix("file://")
            .unwrap(),
    )
}

#[test]
fn the_timeline_is_the_journal_in_text_json_and_markdown_with_outside_text_disarmed() {
    let sb = Sandbox::new();
    let collected = collect_as(&sb, "mallory [x](http://evil.example) | <b>");
    let case = collected["case_id"].as_str().unwrap().to_owned();
    journal_findings(&sb, &collected, &[]);
    let journaled =
        crate::util::journal_entry_paths(&sb.store().join("cases").join(&case).join("journal"))
            .len();

    let out = run_in(&sb, &["--json", "cases", "timeline", &case]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), journaled);
    assert_eq!(entries[0]["kind"], "case_opened");
    assert!(entries.iter().any(|e| e["kind"] == "bundle_sealed"));
    assert_eq!(entries.last().unwrap()["kind"], "findings");
    assert_eq!(v["started_at"], entries[0]["at"]);
    assert_eq!(v["last_at"], entries.last().unwrap()["at"]);
    assert_eq!(v["ok"], true);
    // JSON is exact.
    assert!(entries[0]["summary"]
        .as_str()
        .unwrap()
        .contains("mallory [x](http://evil.example) | <b>"));

    let out = run_in(&sb, &["cases", "timeline", &case]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("bundle_sealed") && text.contains("findings"),
        "{text}"
    );

    let out = run_in(&sb, &["cases", "timeline", &case, "--markdown"]);
    assert_success(&out);
    let md = stdout(&out);
    assert!(
        md.contains("| # | Time (UTC) | Event | What | Actor |"),
        "{md}"
    );
    let rows = md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| #"))
        .count();
    assert_eq!(rows, journaled, "{md}");
    assert!(!md.contains("<b>") && !md.contains("](http"), "{md}");
    assert!(md.contains("&lt;b&gt;") && md.contains("\\[x\\]"), "{md}");
    // Every row has exactly the table's five cells: the `|` from outside is escaped.
    for row in md.lines().filter(|l| l.starts_with("| ")) {
        let cells = row.replace("\\|", "").matches('|').count();
        assert_eq!(cells, 6, "{row}");
    }

    // A journal that does not check: printed with its problem, exit 1.
    let entry = sb
        .store()
        .join(format!("cases/{case}/journal/0000000002.json"));
    make_writable(&entry);
    let changed = std::fs::read_to_string(&entry)
        .unwrap()
        .replace("custody", "cust0dy");
    std::fs::write(&entry, changed).unwrap();
    let out = run_in(&sb, &["cases", "timeline", &case, "--markdown"]);
    assert_code(&out, 1);
    assert!(stdout(&out).contains("does NOT check"), "{}", stdout(&out));
    let out = run_in(&sb, &["cases", "timeline", &case]);
    assert_code(&out, 1);
    assert!(stdout(&out).contains("PROBLEM"), "{}", stdout(&out));
}
