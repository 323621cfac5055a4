//! `custody cases timeline CASE [--markdown]`: the incident's timeline for the post-incident
//! review, derived from the case's journal alone (never stored apart from it): when it opened
//! and why, each collection, seal, finding, plan and approval, with times and actors. Text for
//! the terminal (escaped), `--json`, or `--markdown` to paste into a post-mortem (escaped for
//! Markdown, so an address or path out of an attacker's log cannot add a link, a heading or HTML).
//! A journal that does not check is printed with its problems, and the exit is 1.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::{exit, one_case, print_json, trigger_text};
use crate::case::summary::CaseSummary;
use crate::cli::Cli;
use crate::terminal::escape as esc;

/// The entry kind's journal name (`plan_proposed`, …).
fn kind_name(kind: crate::case::EntryKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// `text` escaped for a Markdown table cell: control characters as the terminal escape shows
/// them, and every character Markdown or HTML would read as markup behind a backslash or as an
/// entity.
pub(super) fn markdown_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in esc(text).chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '|' | '!' | '~' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The first and last times of the journal.
fn span(s: &CaseSummary) -> (Option<&str>, Option<&str>) {
    (
        s.timeline.first().map(|t| t.at.as_str()),
        s.timeline.last().map(|t| t.at.as_str()),
    )
}

fn text(s: &CaseSummary, out: &mut impl Write) -> Result<()> {
    let (first, last) = span(s);
    writeln!(out, "case      {}", s.case_id)?;
    writeln!(out, "trigger   {}", trigger_text(s))?;
    writeln!(out, "started   {}", first.map_or("?".into(), esc))?;
    writeln!(out, "last      {}", last.map_or("?".into(), esc))?;
    for p in &s.problems {
        writeln!(out, "PROBLEM   {}: {}", esc(&p.subject), esc(&p.message))?;
    }
    writeln!(out)?;
    for t in &s.timeline {
        writeln!(
            out,
            "{}  {:<22}  {}  [{}]",
            esc(&t.at),
            kind_name(t.kind),
            esc(&t.summary),
            esc(&t.actor)
        )?;
    }
    Ok(())
}

pub(super) fn markdown(s: &CaseSummary, out: &mut impl Write) -> Result<()> {
    let (first, last) = span(s);
    writeln!(out, "## Incident timeline: case {}", s.case_id)?;
    writeln!(out)?;
    writeln!(out, "- Trigger: {}", markdown_cell(&trigger_text(s)))?;
    writeln!(
        out,
        "- Started: {}",
        first.map_or("?".into(), markdown_cell)
    )?;
    writeln!(
        out,
        "- Last recorded: {}",
        last.map_or("?".into(), markdown_cell)
    )?;
    writeln!(
        out,
        "- Derived from the case's journal ({} entries){}",
        s.journal_entries,
        if s.problems.is_empty() {
            ", which checks."
        } else {
            ", which does NOT check:"
        }
    )?;
    for p in &s.problems {
        writeln!(
            out,
            "  - **{}**: {}",
            markdown_cell(&p.subject),
            markdown_cell(&p.message)
        )?;
    }
    writeln!(out)?;
    writeln!(out, "| # | Time (UTC) | Event | What | Actor |")?;
    writeln!(out, "|---:|---|---|---|---|")?;
    for t in &s.timeline {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            t.seq,
            markdown_cell(&t.at),
            markdown_cell(&kind_name(t.kind)),
            markdown_cell(&t.summary),
            markdown_cell(&t.actor)
        )?;
    }
    Ok(())
}

pub(in crate::cli) fn timeline(
    cli: &Cli,
    case: &str,
    markdown_out: bool,
    public_key: Option<&Path>,
) -> Result<ExitCode> {
    let (_, _, _, s) = one_case(cli, case, public_key)?;
    if cli.json {
        let (first, last) = span(&s);
        print_json(&json!({
            "case_id": s.case_id, "ok": s.ok(), "trigger": s.trigger,
            "started_at": first, "last_at": last,
            "entries": s.timeline, "problems": s.problems,
        }))?;
    } else if markdown_out {
        markdown(&s, &mut std::io::stdout().lock())?;
    } else {
        text(&s, &mut std::io::stdout().lock())?;
    }
    Ok(exit(s.ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cells_carry_no_markup_from_outside_strings() {
        assert_eq!(markdown_cell("10.0.0.1"), "10.0.0.1");
        assert_eq!(
            markdown_cell("[x](http://e) | <img> `c` *b*"),
            "\\[x\\]\\(http://e\\) \\| &lt;img&gt; \\`c\\` \\*b\\*"
        );
        let escaped = markdown_cell("a\nb\u{1b}[31m");
        assert!(
            !escaped.contains('\n') && !escaped.contains('\u{1b}'),
            "{escaped}"
        );
    }
}
