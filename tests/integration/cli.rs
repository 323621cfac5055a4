//! The command line end to end: what analysts and auditors type, what they get back, and the
//! exit codes (0 success, 1 verification failed, 2 usage or I/O error).

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;

use crate::util::*;

#[test]
fn collect_seals_and_verify_passes_at_every_level() {
    let sb = Sandbox::new();
    let log = data("apache-combined-2000.log");
    let out = sb.collect(&[&log]);
    for field in ["case_id", "bundle_id"] {
        assert!(
            out[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}"
        );
    }
    assert_eq!(out["archive"]["sha256"].as_str().unwrap().len(), 64);
    assert!(out["archive"]["size"].as_u64().unwrap() > 0);
    assert!(out["seal"]["uri"].as_str().unwrap().ends_with(".seal.json"));
    assert_eq!(out["summary"]["lines"], 2000);
    assert_eq!(out["summary"]["parsed"], 2000);
    let source_sha = out["sources"][0]["sha256"].as_str().unwrap();
    let expected = sh(
        &format!("sha256sum {} | cut -c1-64", log.display()),
        sb.dir.path(),
    );
    assert_eq!(source_sha, expected.trim());

    let files = BundleFiles::of(&out);
    let store = sb.store();
    for target in [&files.case_dir, &files.archive, &store] {
        let v = sb.run(&["verify", target.to_str().unwrap()]);
        assert_success(&v);
        let text = stdout(&v);
        assert!(text.contains("verified: no problems found"), "{text}");
        assert!(text.contains("not independently trusted"), "{text}");
    }
}

#[test]
fn the_per_user_key_is_created_once_and_published_to_the_store() {
    let sb = Sandbox::new();
    let log = data("apache-combined-2000.log");
    let first = sb
        .custody(&[
            "--store",
            sb.store().to_str().unwrap(),
            "collect",
            "--logs",
            log.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_success(&first);
    let key = sb.path("home/.config/custody/collector.key");
    assert!(
        stderr(&first).contains(key.to_str().unwrap()),
        "{}",
        stderr(&first)
    );
    let second = sb.run(&[
        "--store",
        sb.store().to_str().unwrap(),
        "collect",
        "--logs",
        log.to_str().unwrap(),
    ]);
    assert_success(&second);
    assert!(!stderr(&second).contains("created a new collector key"));
    let keys: Vec<_> = std::fs::read_dir(sb.store().join("keys"))
        .unwrap()
        .collect();
    assert_eq!(keys.len(), 1);

    // With the key given by the auditor, the report trusts it.
    let public = sb.path("home/.config/custody/collector.pub");
    let v = sb.run(&[
        "--json",
        "verify",
        sb.store().to_str().unwrap(),
        "--public-key",
        public.to_str().unwrap(),
    ]);
    assert_success(&v);
    let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["cases"].as_array().unwrap().len(), 2);
    assert_eq!(report["cases"][0]["bundles"][0]["key_trusted"], true);
    assert!(report["warnings"].as_array().unwrap().is_empty());
}

#[test]
fn explicit_signing_key_from_keygen_signs_the_seal() {
    let sb = Sandbox::new();
    let prefix = sb.path("collector");
    let k = sb.run(&["--json", "keygen", "--out", prefix.to_str().unwrap()]);
    assert_success(&k);
    let keygen: serde_json::Value = serde_json::from_slice(&k.stdout).unwrap();
    let key_id = keygen["key_id"].as_str().unwrap();
    let log = data("apache-combined-2000.log");
    let out = sb.run(&[
        "--store",
        sb.store().to_str().unwrap(),
        "--signing-key",
        sb.path("collector.key").to_str().unwrap(),
        "--json",
        "collect",
        "--logs",
        log.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert!(!sb.path("home/.config/custody/collector.key").exists());
    let seal: serde_json::Value = serde_json::from_slice(
        &std::fs::read(BundleFiles::of(&serde_json::from_slice(&out.stdout).unwrap()).seal)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(seal["key_id"], key_id);
    // keygen never overwrites.
    let again = sb.run(&["keygen", "--out", prefix.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("refusing to overwrite"));
}

/// Top-IP counts, computed by the runbook's own pipeline.
fn pipeline_counts(file: &std::path::Path, dir: &std::path::Path) -> Vec<(u64, String)> {
    let text = sh(
        &format!(
            "LC_ALL=C awk '{{print $1}}' {} | sort | uniq -c | sort -rn | sed -n 1,20p",
            file.display()
        ),
        dir,
    );
    // `sed -n 1,20p` is the runbook's `head -20` without the SIGPIPE that pipefail would report.
    text.lines()
        .map(|l| {
            let mut parts = l.split_whitespace();
            (
                parts.next().unwrap().parse().unwrap(),
                parts.next().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn analyze_top_ips_equal_the_runbook_pipeline() {
    let sb = Sandbox::new();
    let log = data("apache-combined-2000.log");
    let out = sb.run(&["--json", "analyze", log.to_str().unwrap(), "--top", "20"]);
    assert_success(&out);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "lines",
        "parsed",
        "unparsed",
        "unique_ips",
        "status",
        "auth_failures",
        "top_ips",
        "suspicious",
    ] {
        assert!(!s[field].is_null(), "analyze --json lacks {field}");
    }
    let expected = pipeline_counts(&log, sb.dir.path());
    let got: Vec<(u64, String)> = s["top_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["requests"].as_u64().unwrap(),
                t["ip"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let counts = |v: &[(u64, String)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
    assert_eq!(counts(&got), counts(&expected));
    let last = expected.last().unwrap().0;
    let expected_map: HashMap<_, _> = expected.iter().map(|(n, ip)| (ip.clone(), *n)).collect();
    for (n, ip) in got.iter().filter(|(n, _)| *n > last) {
        assert_eq!(expected_map.get(ip), Some(n), "{ip}");
    }
    let unique = sh(
        &format!(
            "LC_ALL=C awk '{{print $1}}' {} | sort -u | wc -l",
            log.display()
        ),
        sb.dir.path(),
    );
    assert_eq!(
        s["unique_ips"].as_u64().unwrap(),
        unique.trim().parse::<u64>().unwrap()
    );
}

#[test]
fn auth_failures_come_from_the_status_field_not_from_grep() {
    let sb = Sandbox::new();
    let log = sb.path("gateway.log");
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&line(
            "203.0.113.50",
            [401, 403, 419, 429][i % 4],
            "/api/v1/login",
        ));
    }
    // 200s whose path and byte count contain the failure codes: `grep -E "(401|403|419|429)"`
    // counts them, the status field does not.
    for _ in 0..30 {
        text.push_str(&line("198.51.100.7", 200, "/api/401/orders/429"));
    }
    std::fs::write(&log, &text).unwrap();
    let out = sb.run(&["--json", "analyze", log.to_str().unwrap()]);
    assert_success(&out);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_field = sh(
        &format!("awk '$9 ~ /^(401|403|419|429)$/' {} | wc -l", log.display()),
        sb.dir.path(),
    );
    let grep = sh(
        &format!("grep -cE '(401|403|419|429)' {}", log.display()),
        sb.dir.path(),
    );
    let total: u64 = s["auth_failures"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, by_field.trim().parse::<u64>().unwrap());
    assert_eq!(total, 40);
    assert!(
        grep.trim().parse::<u64>().unwrap() > total,
        "grep over-counts: {grep}"
    );
    for code in ["401", "403", "419", "429"] {
        assert_eq!(s["auth_failures"][code], 10, "{code}");
    }
    assert_eq!(s["suspicious"][0]["ip"], "203.0.113.50");
    assert_eq!(s["suspicious"][0]["auth_failures"], 40);
    assert_eq!(s["suspicious"].as_array().unwrap().len(), 1);
}

#[test]
fn stdin_and_binary_junk_are_preserved_byte_for_byte() {
    let sb = Sandbox::new();
    let mut bytes = line("192.0.2.1", 401, "/login").into_bytes();
    bytes.extend_from_slice(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\xff\xfe\n\0\0\0\r\n");
    bytes.extend_from_slice(&[0xc3, 0x28, 0xa0, 0xa1, b'\n']);
    bytes.extend_from_slice(line("192.0.2.2", 200, "/").as_bytes());
    let mut child = sb
        .custody(&[
            "--store",
            sb.store().to_str().unwrap(),
            "--json",
            "collect",
            "--logs",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_success(&out);
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["summary"]["parsed"], 2);
    assert_eq!(result["summary"]["unparsed"], 3);
    let files = BundleFiles::of(&result);
    let dir = sb.path("x");
    std::fs::create_dir(&dir).unwrap();
    sh(
        &format!("zstd -dc {} | tar -x", files.archive.display()),
        &dir,
    );
    let kept = std::fs::read(dir.join(&files.bundle_id).join("data/logs/01-stdin.log")).unwrap();
    assert_eq!(kept, bytes);
    assert_success(&sb.run(&["verify", files.archive.to_str().unwrap()]));
}

#[test]
fn bad_input_is_a_clear_error_with_exit_2_and_nothing_written() {
    let sb = Sandbox::new();
    let store = sb.store();
    let s = store.to_str().unwrap();
    std::fs::write(sb.path("empty.log"), b"").unwrap();
    std::fs::write(sb.path("a-file"), b"x").unwrap();
    std::fs::write(
        sb.path("bad.key"),
        b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let log = data("apache-combined-2000.log");
    let l = log.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--store", s, "collect", "--logs", "missing.log"],
            "cannot read log file missing.log",
        ),
        (
            vec!["--store", s, "collect", "--logs", "empty.log"],
            "the input is empty",
        ),
        (
            vec!["--store", s, "collect", "--logs", "-"],
            "the input is empty",
        ),
        (
            vec!["--store", s, "collect", "--logs", "."],
            "is a directory",
        ),
        (
            vec!["--store", "a-file", "collect", "--logs", l],
            "is not a directory",
        ),
        (
            vec![
                "--store",
                s,
                "--signing-key",
                "bad.key",
                "collect",
                "--logs",
                l,
            ],
            "not an Ed25519 private key",
        ),
        (
            vec![
                "--store",
                s,
                "--signing-key",
                "nokey.key",
                "collect",
                "--logs",
                l,
            ],
            "cannot read key file",
        ),
        (
            vec!["--store", "gs://bucket/x", "collect", "--logs", l],
            "unsupported store URI",
        ),
        (vec!["analyze", "missing.log"], "cannot read log file"),
        (
            vec!["verify", "evidence/cases/Not_A-Valid..Id"],
            "is not a store, a case directory",
        ),
        (
            vec!["verify", "nowhere"],
            "is not a store, a case directory",
        ),
        (
            vec!["verify", "a-file", "--public-key", "bad.key"],
            "not an Ed25519 public key",
        ),
        (vec!["collect"], "--logs"),
        (vec!["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, want) in cases {
        let out = sb.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(want),
            "{args:?}: want {want:?}, got {}",
            stderr(&out)
        );
    }
    let cases_dir = store.join("cases");
    assert!(!cases_dir.exists() || std::fs::read_dir(&cases_dir).unwrap().count() == 0);
    // With --json the error is JSON on standard output as well.
    let out = sb.run(&["--json", "analyze", "missing.log"]);
    assert_eq!(out.status.code(), Some(2));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["ok"], false);
    assert!(error["error"].as_str().unwrap().contains("missing.log"));
}

#[test]
fn an_invalid_case_id_in_a_store_path_is_refused() {
    let sb = Sandbox::new();
    sb.collect(&[&data("apache-combined-2000.log")]);
    std::fs::create_dir_all(sb.store().join("cases/UPPER")).unwrap();
    let out = sb.run(&["verify", sb.store().join("cases/UPPER").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    // At store level the stray directory is a problem, not an error.
    let out = sb.run(&["--json", "verify", sb.store().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["problems"][0]["subject"], "cases/UPPER");
}

#[test]
fn policy_lint_checks_the_containment_policy() {
    let sb = Sandbox::new();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let ok = sb.run(&["policy", "lint", shipped.to_str().unwrap()]);
    assert_success(&ok);
    assert!(stdout(&ok).contains("containment.yaml"), "{}", stdout(&ok));
    let bad = sb.path("bad-policies");
    std::fs::create_dir(&bad).unwrap();
    let full = std::fs::read_to_string(data("policies/containment.yaml")).unwrap();
    let text = full.replace("header: X-Custody-Admin-Token", "header: Authorization");
    std::fs::write(bad.join("containment.yaml"), text).unwrap();
    let out = sb.run(&["policy", "lint", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("invalidate_sessions[0].header")
            && err.contains("consumes it on pods/proxy")
            && err.contains("line 28"),
        "{err}"
    );
    // A cluster network that is no CIDR range.
    let text = full.replace(
        "  never_block: [203.0.113.0/24]\n",
        "  never_block: [203.0.113.0/24]\n  cluster_networks: [10.244.0.0/16, 10.96.0.0/99]\n",
    );
    std::fs::write(bad.join("containment.yaml"), text).unwrap();
    let out = sb.run(&["policy", "lint", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("block_ips.cluster_networks[1]")
            && err.contains("\"10.96.0.0/99\" is not an address or CIDR range")
            && err.contains("line 11"),
        "{err}"
    );
}

#[test]
fn policy_lint_accepts_the_shipped_policies_and_names_bad_ones() {
    let sb = Sandbox::new();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let ok = sb.run(&["policy", "lint", shipped.to_str().unwrap()]);
    assert_success(&ok);
    assert!(stdout(&ok).contains("detection.yaml"));
    let bad = sb.path("bad-policies");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("detection.yaml"),
        "rules:\n  - name: x\n    kind: count\n    codes: [401]\n    min_count: 0\n",
    )
    .unwrap();
    let out = sb.run(&["policy", "lint", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("min_count"), "{}", stderr(&out));
    // A bad policy stops a collection before anything is written.
    let log = data("apache-combined-2000.log");
    let out = sb.run(&[
        "--store",
        sb.store().to_str().unwrap(),
        "--policies",
        bad.to_str().unwrap(),
        "collect",
        "--logs",
        log.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!sb.store().join("cases").exists());
}
