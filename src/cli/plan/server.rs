//! `custody approve … --server URL --token-file FILE`: the plan is read from the daemon (its exact
//! `plan.json` bytes, hashed and shown from here, and its pinned roster), the statement is signed
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
use crate::plan::show::{render_text, ApproveHint, ShowStatus};
use crate::plan::PlanDoc;
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
        check_scheme(&uri, url)?;
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

/// The plan as the daemon serves it, checked here: the exact `plan.json` bytes (hashed here:
/// the digest signed is this SHA-256, never the daemon's word for it), decoded strictly and
/// naming this case and plan, and the pinned roster, whose SHA-256 must be the plan's
/// `roster_sha256`. The view shown is rendered here from those bytes.
fn plan_facts(json: &str, case: &CaseId, id: &PlanId) -> Result<(Sha256Digest, Roster, String)> {
    let v: serde_json::Value =
        serde_json::from_str(json).context("the daemon's view of the plan is not JSON")?;
    let bytes = v["plan_json"]
        .as_str()
        .context("the daemon's view of the plan has no plan_json")?
        .as_bytes();
    let digest = Sha256Digest::of(bytes);
    let doc: PlanDoc = crate::canonical::from_slice(bytes)
        .context("the daemon's plan.json is not a canonical plan")?;
    if &doc.case != case || &doc.plan != id {
        bail!(
            "the daemon served plan {} of case {}, not the one asked for",
            doc.plan,
            doc.case
        );
    }
    let text = v["pinned_roster"]
        .as_str()
        .context("the daemon's view of the plan has no pinned_roster")?;
    if Sha256Digest::of(text.as_bytes()) != doc.roster_sha256 {
        bail!("the roster the daemon served is not the one the plan pins");
    }
    let roster = Roster::parse("the plan's pinned roster", text)?;
    let st = &v["status"];
    let count = |k: &str| {
        st[k]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    let status = ShowStatus {
        required: doc.quorum.required,
        counted: count("counted"),
        approvals: Vec::new(),
        reached: st["reached"].as_bool().unwrap_or(false),
        rejected: st["rejected"].as_bool().unwrap_or(false),
        expired: st["expired"].as_bool().unwrap_or(false),
        unreadable: Vec::new(),
        reasons: vec![
            "the approvals as the daemon counts them: plan status on the store has each one"
                .to_owned(),
        ],
    };
    let hint = ApproveHint {
        store_args: vec![
            "--server".to_owned(),
            "URL".to_owned(),
            "--token-file".to_owned(),
            "FILE".to_owned(),
        ],
        ..ApproveHint::default()
    };
    Ok((digest, roster, render_text(&doc, &digest, &status, &hint)))
}

/// Plain HTTP only to this machine: elsewhere the plan and the token would cross the network
/// unprotected.
fn check_scheme(uri: &Uri, url: &str) -> Result<()> {
    let host = uri.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if uri.scheme_str() == Some("http") && !loopback {
        bail!(
            "--server {url}: plain http is accepted only for this machine (localhost); use https"
        );
    }
    Ok(())
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
    let json = runtime.block_on(daemon.get(&path))?;
    let (digest, roster, text) = plan_facts(&json, &case, &id)?;
    eprint!("{text}");
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
