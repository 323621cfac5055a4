//! `custody approve … --server URL --token-file FILE`: the plan is read from the daemon (its exact
//! `plan.json` bytes, hashed and shown from here, its pinned roster, and its proposer's
//! signature over those bytes, checked here), the statement is signed here with `ssh-keygen -Y
//! sign` as for the store, and the statement's exact bytes and armored signature are POSTed to
//! `…/plans/{plan}/approvals` with the analyst token. The daemon checks the signature (the token
//! only admits the request) and records it; a refusal exits 1 with the daemon's reason.
//!
//! `custody plan propose … --server URL --token-file FILE`: the daemon builds a draft naming the
//! proposer's key (`POST …/plans/drafts`); its bytes are checked, shown and signed here
//! (`ssh-keygen -Y sign -n custody-proposal`) and sent back (`POST …/plans`).
//!
//! HTTP goes through the notifier's client (`daemon::notify::client_for`).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;

use super::{statement_for, ApproveArgs};
use crate::approval::quorum::Proposer;
use crate::approval::{sshsig, KeyFingerprint, Roster};
use crate::cli::Cli;
use crate::daemon::drafts::{Draft, SignedProposal};
use crate::daemon::notify::{client_for, exchange, HttpClient};
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::keys::PublicKey;
use crate::plan::approvals::ApprovalRequest;
use crate::plan::document::ProposerClaim;
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
fn plan_facts(
    json: &str,
    case: &CaseId,
    id: &PlanId,
    trusted: Option<&PublicKey>,
) -> Result<(Sha256Digest, Roster, String)> {
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
    check_proposer(&v["proposal_signature"], &doc, bytes, &roster, trusted)?;
    let st = &v["status"];
    let count = |k: &str| {
        st[k]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    let status = ShowStatus {
        // What the daemon judged it needs (at least the policy's), never less than the plan's.
        required: count("required").max(doc.quorum.required),
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

/// The proposer's signature over the plan's exact bytes, as the daemon serves it, checked here:
/// a person's SSHSIG against the roster the plan pins (whose digest was checked); the daemon's
/// Ed25519 signature against the collector key given from a trusted source (`--public-key`),
/// else against the key the daemon serves beside it, with a warning that this proves only that
/// the plan is the daemon's word.
fn check_proposer(
    served: &serde_json::Value,
    doc: &PlanDoc,
    bytes: &[u8],
    roster: &Roster,
    trusted: Option<&PublicKey>,
) -> Result<()> {
    match &doc.proposer {
        ProposerClaim::Person {
            principal,
            key_fingerprint,
        } => {
            let sig = served["sshsig"]
                .as_str()
                .context("the daemon served no proposer's signature for the plan")?;
            let created = crate::timefmt::parse(&doc.created_at)
                .context("the plan's created_at is not a time")?;
            let proposer = Proposer::person(roster, bytes, sig.as_bytes(), principal, created)
                .context("the plan's proposer's signature does not check: nothing signed")?;
            if proposer.person_key().map(|(_, fp)| fp) != Some(key_fingerprint) {
                bail!("the plan names key {key_fingerprint} as its proposer's, but another key signed it: nothing signed");
            }
        }
        ProposerClaim::Collector { key_id } => {
            let served_key;
            let key = match trusted {
                Some(k) => k,
                None => {
                    let pem = served["public_key_pem"]
                        .as_str()
                        .context("the daemon served no collector key for the plan")?;
                    served_key = PublicKey::from_pem(pem)
                        .map_err(|e| anyhow::anyhow!("the daemon's collector key: {e}"))?;
                    eprintln!("warning: the daemon's signature on this plan was checked with the collector key the daemon serves, which proves nothing by itself: give --public-key FILE with the key from a trusted source");
                    &served_key
                }
            };
            if key.id() != key_id {
                bail!(
                    "the plan names collector key {key_id} as its proposer, not {}: nothing signed",
                    key.id()
                );
            }
            let sig = served["signature_hex"]
                .as_str()
                .and_then(|h| hex::decode(h).ok())
                .context("the daemon served no collector signature for the plan")?;
            if !key.verify(bytes, &sig) {
                bail!("the collector's signature on the plan does not verify with key {key_id}: nothing signed");
            }
        }
    }
    Ok(())
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
    let runtime = runtime()?;
    let daemon = Daemon::new(url, token_file)?;
    let path = format!("/api/v1/cases/{case}/plans/{id}");
    let json = runtime.block_on(daemon.get(&path))?;
    let trusted = super::trusted_key(args.public_key)?;
    let (digest, roster, text) = plan_facts(&json, &case, &id, trusted.as_ref())?;
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the client runtime")
}

/// The draft the daemon built, checked: its bytes are a canonical plan of this case, naming
/// this key as its proposer. The plan's view, rendered here from those bytes, and its digest.
fn checked_draft(
    draft: &Draft,
    case: &CaseId,
    fingerprint: &KeyFingerprint,
    server: &str,
) -> Result<(Sha256Digest, u32, String)> {
    let bytes = draft.plan_json.as_bytes();
    let digest = Sha256Digest::of(bytes);
    let doc: PlanDoc = crate::canonical::from_slice(bytes)
        .context("the daemon's draft is not a canonical plan")?;
    if &doc.case != case || doc.plan != draft.plan {
        bail!(
            "the daemon drafted plan {} of case {}, not a plan of {case}",
            doc.plan,
            doc.case
        );
    }
    match &doc.proposer {
        ProposerClaim::Person {
            key_fingerprint, ..
        } if key_fingerprint == fingerprint => {}
        _ => bail!("the daemon's draft does not name key {fingerprint} as its proposer"),
    }
    let status = ShowStatus {
        required: doc.quorum.required,
        reasons: vec!["a draft: proposed once you sign it".to_owned()],
        ..ShowStatus::default()
    };
    let hint = ApproveHint {
        store_args: vec![
            "--server".to_owned(),
            server.to_owned(),
            "--token-file".to_owned(),
            "FILE".to_owned(),
        ],
        ..ApproveHint::default()
    };
    let text = render_text(&doc, &digest, &status, &hint);
    Ok((digest, doc.quorum.required, text))
}

pub(in crate::cli) fn propose_on_server(
    cli: &Cli,
    case: &str,
    key: &Path,
    principal: Option<&str>,
    url: &str,
    token_file: &Path,
) -> Result<ExitCode> {
    let case = CaseId::new(case)?;
    let public = sshsig::public_key_of(key)?;
    let fingerprint = KeyFingerprint::of(&public);
    let line = public
        .to_openssh()
        .context("cannot write the public key as an OpenSSH line")?;
    let runtime = runtime()?;
    let daemon = Daemon::new(url, token_file)?;
    let mut request = serde_json::json!({ "public_key": line });
    if let Some(p) = principal {
        request["principal"] = p.into();
    }
    let plans = format!("/api/v1/cases/{case}/plans");
    let refused = |what: &str, status: StatusCode, answer: &str| {
        eprintln!(
            "error: the daemon refused {what} ({status}): {}",
            esc(&reason(answer))
        );
        Ok(ExitCode::from(1))
    };
    let (status, answer) = runtime.block_on(daemon.call(
        Method::POST,
        &format!("{plans}/drafts"),
        serde_json::to_vec(&request)?,
    ))?;
    if !status.is_success() {
        return refused("to draft a plan", status, &answer);
    }
    let draft: Draft =
        serde_json::from_str(&answer).context("the daemon's answer is not a draft")?;
    let (digest, required, text) = checked_draft(&draft, &case, &fingerprint, &daemon.base)?;
    eprint!("{text}");
    // On a terminal the proposer confirms what they sign, as an approver does.
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        super::confirm(None, &digest)?;
    }
    let signature = crate::approval::statement::sign_proposal(key, draft.plan_json.as_bytes())?;
    let proposal = SignedProposal {
        plan_json: draft.plan_json,
        draft_signature: draft.draft_signature,
        signature: String::from_utf8(signature).context("the signature is not armored text")?,
    };
    let (status, answer) =
        runtime.block_on(daemon.call(Method::POST, &plans, serde_json::to_vec(&proposal)?))?;
    if !status.is_success() {
        return refused("the proposal", status, &answer);
    }
    if cli.json {
        println!("{answer}");
    } else {
        println!(
            "proposed plan {} of case {case} (sha256 {}) on {}: it needs {} approval(s), none of them yours",
            draft.plan,
            digest.to_hex(),
            esc(&daemon.base),
            required,
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
