//! What the command prints: a concise summary for people, or one JSON object with `--json`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::json;

use custody::analysis::Summary;
use custody::collect::Outcome;
use custody::verify::Report;

fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn collected(o: &Outcome, as_json: bool) -> Result<()> {
    if as_json {
        return print_json(&json!({
            "case_id": o.case_id,
            "bundle_id": o.bundle.bundle_id,
            "archive": {"uri": o.bundle.archive.uri, "sha256": o.bundle.archive_sha256, "size": o.bundle.archive_size,
                        "version_id": o.bundle.archive.version_id},
            "seal": {"uri": o.bundle.seal.uri, "sha256": o.bundle.seal_sha256},
            "sources": o.sources,
            "summary": o.summary,
        }));
    }
    let input: u64 = o.sources.iter().map(|s| s.bytes).sum();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Sealed case {} bundle {}",
        o.case_id, o.bundle.bundle_id
    )?;
    writeln!(out, "  archive  {}", o.bundle.archive.uri)?;
    writeln!(out, "  sha256   {}", o.bundle.archive_sha256)?;
    writeln!(
        out,
        "  size     {} (from {} of logs in {} file(s))",
        mib(o.bundle.archive_size),
        mib(input),
        o.sources.len()
    )?;
    writeln!(out, "  seal     {}", o.bundle.seal.uri)?;
    drop(out);
    analysis(&o.summary, false)
}

pub fn analysis(s: &Summary, as_json: bool) -> Result<()> {
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
        s.first_seen.as_deref().unwrap_or("-"),
        s.last_seen.as_deref().unwrap_or("-"),
    )?;
    let formats: Vec<String> = s
        .sources
        .iter()
        .map(|f| format!("{} ({})", f.source, f.format))
        .collect();
    writeln!(out, "  sources        {}", formats.join(", "))?;
    let auth: Vec<String> = s
        .auth_failures
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    writeln!(out, "  auth failures  {}", auth.join(", "))?;
    writeln!(out, "  top clients    requests  auth-failures")?;
    for ip in s.top_ips.iter().take(10) {
        writeln!(
            out,
            "    {:<39} {:>9} {:>14}",
            ip.ip, ip.requests, ip.auth_failures
        )?;
    }
    if !s.auth_failure_paths.is_empty() {
        writeln!(out, "  failing paths  failures")?;
        for p in s.auth_failure_paths.iter().take(5) {
            writeln!(out, "    {:<39} {:>9}", p.path, p.total)?;
        }
    }
    if s.suspicious.is_empty() {
        writeln!(out, "  suspicious     none")?;
    } else {
        writeln!(out, "  suspicious     {} client(s)", s.suspicious.len())?;
        for f in &s.suspicious {
            writeln!(out, "    {:<39} {}", f.ip, f.reason)?;
        }
    }
    Ok(())
}

pub fn verification(r: &Report, as_json: bool) -> Result<()> {
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
        writeln!(out, "warning: {w}")?;
    }
    for p in &r.problems {
        writeln!(out, "PROBLEM [{}] {}: {}", p.code, p.subject, p.message)?;
    }
    if r.ok {
        writeln!(out, "verified: no problems found")?;
    } else {
        writeln!(out, "verification FAILED: {} problem(s)", r.problems.len())?;
    }
    Ok(())
}

pub fn keygen(private: &PathBuf, public: &PathBuf, key_id: &str, as_json: bool) -> Result<()> {
    if as_json {
        return print_json(
            &json!({"private_key": private, "public_key": public, "key_id": key_id}),
        );
    }
    println!("private key  {} (keep secret)", private.display());
    println!("public key   {}", public.display());
    println!("key id       {key_id}");
    Ok(())
}

pub fn lint(dir: &Path, files: &[PathBuf], as_json: bool) -> Result<()> {
    if as_json {
        return print_json(&json!({"dir": dir, "ok": true, "files": files}));
    }
    for f in files {
        println!("ok  {}", f.display());
    }
    println!(
        "{} policy file(s) in {} are valid",
        files.len(),
        dir.display()
    );
    Ok(())
}
