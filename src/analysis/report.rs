//! The human report, `data/analysis/report.html`: one self-contained page (inline CSS, no scripts,
//! no external assets) that opens from the bag on an air-gapped machine. Everything that came from
//! a log is escaped, since log lines are written by the attacker.

use std::fmt::Write;

use super::chart;
use super::Summary;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// What the report says about where the analysis came from.
pub struct ReportContext<'a> {
    pub case_id: &'a str,
    pub bundle_id: &'a str,
    pub created_at: &'a str,
    pub sources: &'a [String],
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.warn{color:#a40000}code{background:#f6f6f6;padding:0 .2em}";

/// The HTML report of a bundle's analysis: the same summary, for a person to read.
pub fn render(summary: &Summary, ctx: &ReportContext<'_>) -> String {
    let mut h = String::new();
    head(&mut h, summary, ctx);
    overview(&mut h, summary);
    h.push_str("<h2>Requests over time</h2>\n");
    h.push_str(&chart::timeline(&summary.timeline));
    auth_failures_table(&mut h, summary);
    suspicious_table(&mut h, summary);
    paths_table(&mut h, summary);
    clients_table(&mut h, summary);
    status_table(&mut h, summary);
    unparsed_table(&mut h, summary);
    h.push_str("</body></html>\n");
    h
}

/// The document's head, title, and the sources with their formats.
fn head(h: &mut String, summary: &Summary, ctx: &ReportContext<'_>) {
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>custody report {case}</title><style>{STYLE}</style></head><body>\n\
         <h1>Evidence analysis</h1>\n<p>Case <code>{case}</code>, bundle <code>{bundle}</code>, sealed {at}.</p>\n",
        case = escape(ctx.case_id),
        bundle = escape(ctx.bundle_id),
        at = escape(ctx.created_at),
    );
    h.push_str("<h2>Sources</h2>\n<ul>\n");
    for s in ctx.sources {
        let format = summary
            .sources
            .iter()
            .find(|f| &f.source == s)
            .map_or("", |f| f.format.as_str());
        let _ = writeln!(
            h,
            "<li><code>{}</code> ({})</li>",
            escape(s),
            escape(format)
        );
    }
    h.push_str("</ul>\n");
}

/// Lines, parsed and unparsed, distinct clients, first and last request.
fn overview(h: &mut String, summary: &Summary) {
    let _ = write!(
        h,
        "<h2>Overview</h2>\n<table><tr><th>lines</th><td class=n>{}</td></tr>\
         <tr><th>parsed</th><td class=n>{}</td></tr><tr><th>unparsed</th><td class=n>{}</td></tr>\
         <tr><th>distinct client addresses</th><td class=n>{}</td></tr>\
         <tr><th>first request</th><td>{}</td></tr><tr><th>last request</th><td>{}</td></tr></table>\n",
        summary.lines,
        summary.parsed,
        summary.unparsed,
        summary.unique_ips,
        escape(summary.first_seen.as_deref().unwrap_or("-")),
        escape(summary.last_seen.as_deref().unwrap_or("-")),
    );
}

/// Authentication failures by status.
fn auth_failures_table(h: &mut String, summary: &Summary) {
    h.push_str(
        "<h2>Authentication failures</h2>\n<table><tr><th>status</th><th>responses</th></tr>\n",
    );
    for (code, n) in &summary.auth_failures {
        let _ = writeln!(h, "<tr><td>{}</td><td class=n>{n}</td></tr>", escape(code));
    }
    h.push_str("</table>\n");
}

/// The busiest clients, charted and tabled.
fn clients_table(h: &mut String, summary: &Summary) {
    h.push_str("<h2>Top client addresses</h2>\n");
    let top: Vec<(String, u64, u64)> = summary
        .top_ips
        .iter()
        .take(20)
        .map(|t| (t.ip.clone(), t.requests, t.auth_failures))
        .collect();
    h.push_str(&chart::bars(
        "Requests per client (red: authentication failures)",
        &top,
    ));
    h.push_str("<table><tr><th>address</th><th>requests</th><th>auth failures</th><th>first seen</th><th>last seen</th></tr>\n");
    for ip in &summary.top_ips {
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td class=n>{}</td><td class=n>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&ip.ip),
            ip.requests,
            ip.auth_failures,
            escape(ip.first_seen.as_deref().unwrap_or("-")),
            escape(ip.last_seen.as_deref().unwrap_or("-")),
        );
    }
    h.push_str("</table>\n");
}

/// Responses by status, charted and tabled.
fn status_table(h: &mut String, summary: &Summary) {
    h.push_str("<h2>Responses by status</h2>\n");
    let statuses: Vec<(String, u64, u64)> = summary
        .status
        .iter()
        .map(|(code, n)| {
            let auth = summary.auth_failures.get(code).copied().unwrap_or(0);
            (code.clone(), *n, auth)
        })
        .collect();
    h.push_str(&chart::bars(
        "Responses by status (red: authentication failures)",
        &statuses,
    ));
    h.push_str("<table><tr><th>status</th><th>responses</th></tr>\n");
    for (code, n) in &summary.status {
        let _ = writeln!(h, "<tr><td>{}</td><td class=n>{n}</td></tr>", escape(code));
    }
    h.push_str("</table>\n");
}

/// The first few lines no format could parse.
fn unparsed_table(h: &mut String, summary: &Summary) {
    if !summary.unparsed_samples.is_empty() {
        h.push_str("<h2>Unparsed lines (first few)</h2>\n<table><tr><th>source</th><th>byte offset</th><th>text</th></tr>\n");
        for s in &summary.unparsed_samples {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=n>{}</td><td><code>{}</code></td></tr>",
                escape(&s.source),
                s.offset,
                escape(&s.text)
            );
        }
        h.push_str("</table>\n");
    }
}

fn paths_table(h: &mut String, summary: &Summary) {
    if summary.auth_failure_paths.is_empty() {
        return;
    }
    h.push_str("<h2>Authentication failures by path</h2>\n<table><tr><th>path</th><th>failures</th><th>by status</th></tr>\n");
    for p in &summary.auth_failure_paths {
        let by: Vec<String> = p.by_code.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td class=n>{}</td><td>{}</td></tr>",
            escape(&p.path),
            p.total,
            escape(&by.join(", "))
        );
    }
    h.push_str("</table>\n");
}

fn suspicious_table(h: &mut String, summary: &Summary) {
    h.push_str("<h2>Suspicious clients</h2>\n");
    if summary.suspicious.is_empty() {
        h.push_str("<p>No client met a detection rule.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>address</th><th>why</th><th>requests</th><th>auth failures</th><th>first seen</th><th>last seen</th><th>evidence (source: byte offset)</th></tr>\n");
    for s in &summary.suspicious {
        // Offsets grouped by source: "data/logs/01-x.log: 120, 4096".
        let mut by_source: Vec<(String, Vec<String>)> = Vec::new();
        for l in &s.evidence.lines {
            match by_source.iter_mut().find(|(src, _)| *src == l.source) {
                Some((_, offsets)) => offsets.push(l.offset.to_string()),
                None => by_source.push((l.source.clone(), vec![l.offset.to_string()])),
            }
        }
        let lines: Vec<String> = by_source
            .iter()
            .map(|(src, offsets)| format!("{src}: {}", offsets.join(", ")))
            .collect();
        let _ = writeln!(
            h,
            "<tr class=warn><td><code>{}</code></td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.ip),
            escape(&s.reason),
            s.requests,
            s.auth_failures,
            escape(s.first_seen.as_deref().unwrap_or("-")),
            escape(s.last_seen.as_deref().unwrap_or("-")),
            escape(&lines.join("; ")),
        );
    }
    h.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Analyzer, UnparsedSample};
    use crate::policy::DetectionPolicy;

    #[test]
    fn attacker_text_is_escaped_and_nothing_is_external() {
        let mut a = Analyzer::new(std::sync::Arc::new(crate::policy::FormatsPolicy::default()));
        a.begin_source(
            "<script>alert(1)</script>",
            crate::analysis::format::Format::Combined,
        );
        a.feed(b"<img src=x onerror=alert(1)>\n");
        let mut s = a.summary(&DetectionPolicy::default(), 10);
        s.unparsed_samples.push(UnparsedSample {
            source: "x".into(),
            offset: 2,
            text: "\"'&".into(),
        });
        let sources = vec!["<b>".to_string()];
        let html = render(
            &s,
            &ReportContext {
                case_id: "c",
                bundle_id: "b",
                created_at: "t",
                sources: &sources,
            },
        );
        assert!(!html.contains("<script"));
        assert!(!html.contains("<img"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
