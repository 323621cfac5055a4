//! `custody approve … --server URL --token-file FILE`: the plan is read from the daemon (its
//! text view, shown before signing, and its digest and pinned roster), the statement is signed
//! here with `ssh-keygen -Y sign` as for the store, and the statement's exact bytes and armored
//! signature are POSTed to `…/plans/{plan}/approvals` with the analyst token. The daemon checks
//! the signature (the token only admits the request) and records it; a refusal exits 1 with the
//! daemon's reason. HTTP goes through the notifier's client (`daemon::notify::client_for`).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;

use super::{statement_for, ApproveArgs};
use crate::approval::Roster;
use crate::cli::Cli;
use crate::daemon::notify::{client_for, exchange, HttpClient};
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::plan::approvals::ApprovalRequest;
use crate::terminal::escape as esc;

/// Each request's limit, from connecting to the end of the answer.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The most of an answer read (a plan's view included).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The daemon at `base`, with the analyst token.
struct Daemon {
    client: HttpClient,
    base: String,
    authorization: HeaderValue,
}

impl Daemon {
    fn new(url: &str, token_file: &Path) -> Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .with_context(|| format!("--server {url}: not a URL"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            bail!("--server {url}: give an http:// or https:// URL with a host");
        }
        let token = std::fs::read(token_file)
            .with_context(|| format!("cannot read --token-file {}", token_file.display()))?;
        let token = token.trim_ascii();
        if token.is_empty() {
            bail!("--token-file {} is empty", token_file.display());
        }
        let mut authorization = HeaderValue::from_bytes(&[b"Bearer ", token].concat())
            .context("the token holds characters a header cannot carry")?;
        authorization.set_sensitive(true);
        Ok(Self {
            client: client_for(&uri)?,
            base,
            authorization,
        })
    }

    /// One request to `path`: the status and the answer's text.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, String)> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/plain")
            .header(USER_AGENT, concat!("custody/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(Bytes::from(body)))?;
        let (status, body) = exchange(&self.client, request, TIMEOUT, MAX_ANSWER_BYTES)
            .await
            .map_err(|why| anyhow::anyhow!("the daemon at {} did not answer: {why}", self.base))?;
        let body = body.map_err(|why| anyhow::anyhow!("the daemon's answer: {why}"))?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// A GET that must succeed.
    async fn get(&self, path: &str) -> Result<String> {
        let (status, text) = self.call(Method::GET, path, Vec::new()).await?;
        if !status.is_success() {
            bail!("the daemon answered {status}: {}", esc(&reason(&text)));
        }
        Ok(text)
    }
}

/// The `error` of a refusal's JSON body, else the body itself.
fn reason(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.chars().take(2000).collect())
}

/// What the daemon says of the plan: its digest and its pinned roster.
fn plan_facts(json: &str) -> Result<(Sha256Digest, Roster)> {
    let v: serde_json::Value =
        serde_json::from_str(json).context("the daemon's view of the plan is not JSON")?;
    let digest: Sha256Digest = serde_json::from_value(v["sha256"].clone())
        .context("the daemon's view of the plan has no sha256")?;
    let text = v["pinned_roster"]
        .as_str()
        .context("the daemon's view of the plan has no pinned_roster")?;
    let roster = Roster::parse("the plan's pinned roster", text)?;
    Ok((digest, roster))
}

pub(in crate::cli) fn approve_on_server(
    cli: &Cli,
    args: &ApproveArgs<'_>,
    url: &str,
    token_file: &Path,
) -> Result<ExitCode> {
    let case = CaseId::new(args.case)?;
    let id = PlanId::new(args.plan)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the client runtime")?;
    let daemon = Daemon::new(url, token_file)?;
    let path = format!("/api/v1/cases/{case}/plans/{id}");
    let (text, json) = runtime.block_on(async {
        let text = daemon.get(&format!("{path}?format=text")).await?;
        let json = daemon.get(&path).await?;
        anyhow::Ok((text, json))
    })?;
    // The daemon escapes the view for a terminal; each line is escaped here too, so that a
    // daemon (or what is between) cannot write control characters to this terminal.
    for line in text.lines() {
        eprintln!("{}", esc(line));
    }
    let (digest, roster) = plan_facts(&json)?;
    let statement = statement_for(args, &case, &id, digest, &roster)?;
    let (bytes, signature) = statement.sign(args.key)?;
    let request = ApprovalRequest {
        statement: String::from_utf8(bytes).context("the statement is not UTF-8")?,
        signature: String::from_utf8(signature).context("the signature is not armored text")?,
    };
    let body = serde_json::to_vec(&request)?;
    let (status, answer) =
        runtime.block_on(daemon.call(Method::POST, &format!("{path}/approvals"), body))?;
    if !status.is_success() {
        eprintln!(
            "error: the daemon refused the approval ({status}): {}",
            esc(&reason(&answer))
        );
        return Ok(ExitCode::from(1));
    }
    if cli.json {
        println!("{answer}");
    } else {
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        println!(
            "recorded {} #{} of plan {} by {} ({}) on {}",
            esc(v["decision"].as_str().unwrap_or("?")),
            v["number"],
            id,
            esc(v["principal"].as_str().unwrap_or("?")),
            esc(v["key_fingerprint"].as_str().unwrap_or("?")),
            esc(&daemon.base),
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_read_from_its_json_body() {
        assert_eq!(
            reason(r#"{"error": "the plan expired"}"#),
            "the plan expired"
        );
        assert_eq!(reason("plain words"), "plain words");
    }
}
