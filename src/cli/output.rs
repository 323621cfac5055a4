//! What the command prints: a concise summary for people, or one JSON object with `--json`.
//! Every outside-controlled string in the human output (paths, addresses, reasons, problem
//! messages, URIs) goes through `esc`, so that text from a log or a store cannot drive the
//! terminal; JSON is exact, as serde escapes it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::json;

use crate::analysis::Summary;
use crate::collect::Outcome;
use crate::spool::{FlushReport, UploadedCase};
use crate::terminal::{escape as esc, escape_path};
use crate::verify::Report;

fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The upload of a collection to S3: what was stored, or why not and where the case waits.
pub(super) type Upload<'a> = Option<std::result::Result<&'a UploadedCase, (&'a str, &'a Path)>>;

fn version_of<'a>(uploaded: &'a UploadedCase, uri: &str) -> Option<&'a str> {
    uploaded
        .objects
        .iter()
        .find(|o| o.uri == uri)
        .and_then(|o| o.version_id.as_deref())
}

pub(super) fn collected(o: &Outcome, upload: Upload<'_>, as_json: bool) -> Result<()> {
    let (archive_version, seal_version) = match upload {
        Some(Ok(u)) => (
            version_of(u, &o.bundle.archive.uri),
            version_of(u, &o.bundle.seal.uri),
        ),
        _ => (None, None),
    };
    if as_json {
        let mut value = json!({
            "case_id": o.case_id,
            "bundle_id": o.bundle.bundle_id,
            "archive": {"uri": o.bundle.archive.uri, "sha256": o.bundle.archive_sha256, "size": o.bundle.archive_size,
                        "version_id": archive_version},
            "seal": {"uri": o.bundle.seal.uri, "sha256": o.bundle.seal_sha256, "version_id": seal_version},
            "stored": !matches!(upload, Some(Err(_))),
            "complete": o.complete(),
            "failures": o.failures,
            "sources": o.sources,
            "summary": o.summary,
        });
        match upload {
            Some(Ok(u)) => {
                value["objects"] = serde_json::to_value(&u.objects)?;
                value["journal_entry"] = serde_json::to_value(&u.journal_entry)?;
            }
            Some(Err((error, spooled))) => {
                value["error"] = json!(error);
                value["spooled"] = json!(spooled);
            }
            None => {}
        }
        return print_json(&value);
    }
    let input: u64 = o.sources.iter().map(|s| s.bytes).sum();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Sealed case {} bundle {}",
        o.case_id, o.bundle.bundle_id
    )?;
    writeln!(out, "  archive  {}", esc(&o.bundle.archive.uri))?;
    writeln!(out, "  sha256   {}", o.bundle.archive_sha256)?;
    writeln!(
        out,
        "  size     {} (from {} of logs in {} file(s))",
        mib(o.bundle.archive_size),
        mib(input),
        o.sources.len()
    )?;
    writeln!(out, "  seal     {}", esc(&o.bundle.seal.uri))?;
    match upload {
        Some(Ok(u)) => {
            let lock = u.objects.first();
            writeln!(
                out,
                "  stored   {} objects in S3, locked {} until {}",
                u.objects.len(),
                esc(lock.map_or("", |l| l.lock_mode.as_str())),
                lock.map(|l| crate::timefmt::unix_rfc3339(l.retain_until))
                    .unwrap_or_default()
            )?;
            writeln!(
                out,
                "  version  archive {}",
                esc(archive_version.unwrap_or("(none)"))
            )?;
        }
        Some(Err((_, spooled))) => {
            writeln!(out, "  NOT STORED in S3: kept in {}", escape_path(spooled))?;
        }
        None => {}
    }
    drop(out);
    analysis(&o.summary, false)?;
    incomplete(&o.failures)
}

/// What is known to be missing from a sealed bundle, last, where it is seen.
fn incomplete(failures: &[crate::source::Failure]) -> Result<()> {
    if failures.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "INCOMPLETE: {} thing(s) could not be captured whole; what was read is sealed, and this is recorded in collection.json and the journal:",
        failures.len()
    )?;
    for f in failures {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let source = match f.source.as_deref() {
            None | Some("") => text(&f.pod),
            Some(s) => s.to_owned(),
        };
        writeln!(
            out,
            "  {:<16} {}: {}",
            esc(&text(&f.kind)),
            esc(&source),
            esc(&text(&f.error))
        )?;
    }
    Ok(())
}

pub(super) fn analysis(s: &Summary, as_json: bool) -> Result<()> {
    if as_json {
        return print_json(&serde_json::to_value(s)?);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Analysis: {} lines ({} parsed, {} unparsed), {} client addresses, {} to {}",
        s.lines,
        s.parsed,
        s.unparsed,
        s.unique_ips,
        esc(s.first_seen.as_deref().unwrap_or("-")),
        esc(s.last_seen.as_deref().unwrap_or("-")),
    )?;
    let formats: Vec<String> = s
        .sources
        .iter()
        .map(|f| format!("{} ({})", esc(&f.source), esc(&f.format)))
        .collect();
    writeln!(out, "  sources        {}", formats.join(", "))?;
    let auth: Vec<String> = s
        .auth_failures
        .iter()
        .map(|(k, v)| format!("{}: {v}", esc(k)))
        .collect();
    writeln!(out, "  auth failures  {}", auth.join(", "))?;
    if let Some(limit) = &s.limit {
        writeln!(out, "  LIMITED        {}", esc(&limit.describe()))?;
    }
    if s.analysis_failed {
        writeln!(
            out,
            "  FAILED         the analysis failed; these counts are empty"
        )?;
    }
    writeln!(out, "  top clients    requests  auth-failures")?;
    for ip in s.top_ips.iter().take(10) {
        writeln!(
            out,
            "    {:<39} {:>9} {:>14}",
            esc(&ip.ip),
            ip.requests,
            ip.auth_failures
        )?;
    }
    if !s.auth_failure_paths.is_empty() {
        writeln!(out, "  failing paths  failures")?;
        for p in s.auth_failure_paths.iter().take(5) {
            writeln!(out, "    {:<39} {:>9}", esc(&p.path), p.total)?;
        }
    }
    if s.suspicious.is_empty() {
        writeln!(out, "  suspicious     none")?;
    } else {
        writeln!(out, "  suspicious     {} client(s)", s.suspicious.len())?;
        for f in &s.suspicious {
            writeln!(out, "    {:<39} {}", esc(&f.ip), esc(&f.reason))?;
        }
    }
    Ok(())
}

pub(super) fn verification(r: &Report, as_json: bool) -> Result<()> {
    if as_json {
        return print_json(&serde_json::to_value(r)?);
    }
    let mut out = std::io::stdout().lock();
    for case in &r.cases {
        writeln!(
            out,
            "case {}: {} journal entries",
            case.case_id, case.journal_entries
        )?;
        for b in &case.bundles {
            let key = b.key_id.as_ref().map_or("-".to_string(), |k| k.to_string());
            writeln!(
                out,
                "  bundle {}: {} payload files, {} bytes, signature {} (key {key}{})",
                b.bundle_id,
                b.payload_files,
                b.payload_bytes,
                if b.signature_valid {
                    "valid"
                } else {
                    "NOT valid"
                },
                if b.key_trusted {
                    ", given"
                } else {
                    ", from the store"
                },
            )?;
        }
    }
    for w in &r.warnings {
        writeln!(out, "warning: {}", esc(w))?;
    }
    for (label, list) in [("PROBLEM", &r.problems), ("INCOMPLETE", &r.incomplete)] {
        for p in list {
            let (subject, message) = (esc(&p.subject), esc(&p.message));
            writeln!(out, "{label} [{}] {subject}: {message}", p.code)?;
        }
    }
    if r.ok && r.complete {
        writeln!(out, "verified: no problems found")?;
    } else if r.ok {
        writeln!(
            out,
            "verified intact, but INCOMPLETE: {} record(s) of evidence not captured whole",
            r.incomplete.len()
        )?;
    } else {
        writeln!(out, "verification FAILED: {} problem(s)", r.problems.len())?;
    }
    Ok(())
}

pub(super) fn keygen(
    private: &PathBuf,
    public: &PathBuf,
    key_id: &str,
    as_json: bool,
) -> Result<()> {
    if as_json {
        return print_json(
            &json!({"private_key": private, "public_key": public, "key_id": key_id}),
        );
    }
    println!("private key  {} (keep secret)", escape_path(private));
    println!("public key   {}", escape_path(public));
    println!("key id       {key_id}");
    Ok(())
}

pub(super) fn lint(dir: &Path, files: &[PathBuf], as_json: bool) -> Result<()> {
    if as_json {
        return print_json(&json!({"dir": dir, "ok": true, "files": files}));
    }
    for f in files {
        println!("ok  {}", escape_path(f));
    }
    println!(
        "{} policy file(s) in {} are valid",
        files.len(),
        escape_path(dir)
    );
    Ok(())
}

pub(super) fn store_check(uri: &str, done: &[String], as_json: bool) -> Result<()> {
    if as_json {
        return print_json(&json!({"ok": true, "store": uri, "checks": done}));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} can hold evidence:", esc(uri))?;
    for d in done {
        writeln!(out, "  ok  {}", esc(d))?;
    }
    Ok(())
}

/// `elsewhere`: spools of the same store for other endpoints that hold cases.
pub(super) fn flushed(
    uri: &str,
    report: &FlushReport,
    elsewhere: &[(PathBuf, Option<String>)],
    as_json: bool,
) -> Result<()> {
    if as_json {
        return print_json(
            &json!({"ok": report.failed.is_empty() && elsewhere.is_empty(), "store": uri,
            "uploaded": report.uploaded, "busy": report.busy,
            "failed": report.failed.iter().map(|(c, e)| json!({"case_id": c, "error": e})).collect::<Vec<_>>(),
            "waiting_elsewhere": elsewhere.iter().map(|(d, e)| json!({"spool": d, "endpoint": e})).collect::<Vec<_>>()}),
        );
    }
    let uri = esc(uri);
    let mut out = std::io::stdout().lock();
    if report.uploaded.is_empty() && report.busy.is_empty() && report.failed.is_empty() {
        if elsewhere.is_empty() {
            writeln!(out, "nothing waits in the spool for {uri}")?;
        } else {
            writeln!(
                out,
                "nothing waits in this endpoint's spool for {uri}; cases for it wait in {} other spool(s)",
                elsewhere.len()
            )?;
        }
    }
    for u in &report.uploaded {
        writeln!(
            out,
            "uploaded case {} ({} objects) to {uri}",
            u.case_id,
            u.objects.len()
        )?;
    }
    for case in &report.busy {
        writeln!(
            out,
            "case {case} is being written or uploaded by another process; left alone"
        )?;
    }
    Ok(())
}
