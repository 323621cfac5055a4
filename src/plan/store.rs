//! Plans in the store, beside the evidence (CONTAINMENT.md, "Store layout"): `propose` writes a
//! plan's canonical `plan.json`, its sha256sum sidecar, the proposer's signature and the pinned
//! roster, all create-new, and journals `plan_proposed`; `load` reads them back and refuses
//! anything that is not exactly what a proposer signed; `list` names a case's plans. Also the
//! reads the quorum needs: the stored approvals and the journaled `approval_recorded` entries.

use std::path::Path;

use time::OffsetDateTime;

use super::document::{PlanDoc, ProposerClaim, PLAN_FORMAT};
use super::state::{Plan, Proposed};
use crate::approval::quorum::ProposerError;
use crate::approval::roster::RosterError;
use crate::approval::sshsig::{self, SignError};
use crate::approval::statement::sign_proposal;
use crate::approval::PROPOSAL_NAMESPACE;
use crate::approval::{ApprovalRecorded, KeyFingerprint, Proposer, Roster, StoredApproval};
use crate::canonical::{self, CanonicalError};
use crate::case::entry::{PlanProposed, ProposedBy};
use crate::case::journal::{self, CheckedChain, Details, Journal, JournalError};
use crate::case::CaseState;
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::keys::{PublicKey, SigningKey};
use crate::store::layout::{self, PLAN_FILE};
use crate::store::{Store, StoreError, StoreKey, StorePrefix};

/// The largest `plan.json` read.
pub const MAX_PLAN_BYTES: usize = 16 * 1024 * 1024;

/// How often an append is tried again after another writer extended the journal.
const APPEND_ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("plan {0}: plan.json is larger than {MAX_PLAN_BYTES} bytes")]
    TooLarge(PlanId),
    #[error("plan {plan}: plan.json: {source}")]
    Document {
        plan: PlanId,
        source: CanonicalError,
    },
    #[error("plan {plan}: its format is {found:?}, not {PLAN_FORMAT:?}")]
    Format { plan: PlanId, found: String },
    #[error("plan {plan}: plan.json names case {case} and plan {named}: it is another plan's")]
    OtherPlan {
        plan: PlanId,
        case: CaseId,
        named: PlanId,
    },
    #[error("plan {plan}: its {field} {value:?} is not an RFC 3339 time")]
    Time {
        plan: PlanId,
        field: &'static str,
        value: String,
    },
    #[error("plan {plan}: the plan's SHA-256 is {found}, but plan.json.sha256 says {sidecar:?}")]
    Digest {
        plan: PlanId,
        found: Sha256Digest,
        sidecar: String,
    },
    #[error("plan {plan}: {message}")]
    Signature { plan: PlanId, message: String },
    #[error(
        "plan {plan}: approvers.allowed_signers has SHA-256 {found}, but the plan pins {pinned}"
    )]
    RosterMismatch {
        plan: PlanId,
        pinned: Sha256Digest,
        found: Sha256Digest,
    },
    #[error("plan {plan}: the pinned roster: {source}")]
    Roster { plan: PlanId, source: RosterError },
    #[error("plan {plan}: {message}")]
    Evidence { plan: PlanId, message: String },
    #[error("plan {plan}: {message}")]
    Proposal { plan: PlanId, message: String },
    #[error("case {case}: the journal does not check ({message}), so neither does its record of plans and approvals")]
    JournalUnsound { case: CaseId, message: String },
    #[error("plan {0} already exists in the case")]
    Exists(PlanId),
    #[error("case {0} has no journal to record the plan in")]
    NoJournal(CaseId),
    #[error("plan {0}: the journal records no proposal of this plan with this digest: it was not proposed through custody")]
    NotJournaled(PlanId),
    #[error("plan {0}: cannot sign the proposal: {1}")]
    Sign(PlanId, SignError),
}

impl PlanError {
    /// A stable code, like `verify`'s problems.
    pub fn code(&self) -> &'static str {
        match self {
            PlanError::Store(_) | PlanError::Journal(_) | PlanError::NoJournal(_) => "store",
            PlanError::TooLarge(_) | PlanError::Document { .. } | PlanError::Format { .. } => {
                "plan_not_canonical"
            }
            PlanError::OtherPlan { .. } => "plan_other_plan",
            PlanError::Time { .. } => "plan_not_canonical",
            PlanError::Digest { .. } => "plan_digest_mismatch",
            PlanError::Signature { .. } => "plan_signature_invalid",
            PlanError::RosterMismatch { .. } | PlanError::Roster { .. } => "plan_roster_mismatch",
            PlanError::Evidence { .. } => "plan_evidence_mismatch",
            PlanError::Proposal { .. } | PlanError::Sign(..) => "plan_proposal_refused",
            PlanError::Exists(_) => "plan_exists",
            PlanError::JournalUnsound { .. } => "plan_journal_unsound",
            PlanError::NotJournaled(_) => "plan_not_journaled",
        }
    }
}

/// Who signs a proposal: the collector key (the daemon: `plan.json.sig`) or a person's SSH key
/// (`plan.json.sshsig` by `ssh-keygen -Y sign -n custody-proposal`).
#[derive(Clone, Copy)]
pub enum ProposalSigner<'a> {
    Collector(&'a SigningKey),
    Person(&'a Path),
    /// A person's SSHSIG already made over the plan's exact bytes (`POST …/plans`): checked
    /// here as `Person`'s own would be, never taken on trust.
    PersonSigned(&'a [u8]),
}

/// A plan as `propose` stored it.
#[derive(Clone, Debug)]
pub struct StoredPlan {
    pub case: CaseId,
    pub plan: PlanId,
    pub plan_sha256: Sha256Digest,
    /// The `plan_proposed` entry.
    pub journal_seq: u64,
}

/// The `plan.json.sha256` sidecar of a plan with digest `digest`.
pub fn sidecar_text(digest: &Sha256Digest) -> String {
    format!("{}  {PLAN_FILE}\n", digest.to_hex())
}

/// Stores `doc` as a new plan of its case, signed by `signer`, with `roster_text` as its pinned
/// roster, and journals `plan_proposed` (signed by `journal_key`). Refuses a plan whose
/// `roster_sha256` is not the roster's, whose proposer is not the signer, whose pinned evidence
/// is not the case's sealed evidence, or whose id is taken. The plan's files are written first
/// and `plan.json` last: the plan exists once its document does.
pub fn propose(
    store: &dyn Store,
    journal_key: &SigningKey,
    doc: &PlanDoc,
    roster_text: &str,
    signer: ProposalSigner<'_>,
) -> Result<StoredPlan, PlanError> {
    let plan = doc.plan.clone();
    let refuse = |message: String| PlanError::Proposal {
        plan: plan.clone(),
        message,
    };
    check_document(doc, &doc.case, &plan)?;
    let roster =
        Roster::parse(layout::ROSTER_FILE, roster_text).map_err(|source| PlanError::Roster {
            plan: plan.clone(),
            source,
        })?;
    if roster.sha256() != doc.roster_sha256 {
        return Err(PlanError::RosterMismatch {
            plan,
            pinned: doc.roster_sha256,
            found: roster.sha256(),
        });
    }
    let chain = journal::check_chain(store, &doc.case)?;
    if !chain.problems.is_empty() {
        return Err(refuse(format!(
            "the case's journal does not verify ({}): a plan needs sound evidence",
            chain.problems[0].message
        )));
    }
    check_evidence(doc, &chain).map_err(refuse)?;
    let bytes = canonical::to_vec(doc).map_err(|source| PlanError::Document {
        plan: plan.clone(),
        source,
    })?;
    let (sig_key, signature, actor) = sign(doc, &bytes, &roster, signer)?;
    // Signing may have waited on a passphrase or a touch: a plan stored now must still be
    // within what the quorum accepts between building and journaling (else it is dead on
    // arrival, and locked for good on S3).
    let created = parse_time(&plan, "created_at", &doc.created_at)?;
    let age = OffsetDateTime::now_utc() - created;
    if age > time::Duration::seconds(crate::approval::quorum::MAX_PROPOSAL_AGE_SECONDS) {
        return Err(refuse(format!(
            "the plan was built {} s ago: it is no longer what the cluster was; propose again",
            age.whole_seconds()
        )));
    }
    let case = doc.case.clone();
    if store.exists(&StoreKey::Plan(case.clone(), plan.clone()))? {
        return Err(PlanError::Exists(plan));
    }
    let digest = Sha256Digest::of(&bytes);
    let roster_key = StoreKey::PlanRoster(case.clone(), plan.clone());
    crate::store::put_new_or_same(store, &roster_key, roster_text.as_bytes())?;
    let sidecar = StoreKey::PlanSidecar(case.clone(), plan.clone());
    crate::store::put_new_or_same(store, &sidecar, sidecar_text(&digest).as_bytes())?;
    crate::store::put_new_or_same(store, &sig_key, &signature)?;
    match store.put_new(&StoreKey::Plan(case.clone(), plan.clone()), &bytes) {
        Ok(_) => {}
        Err(StoreError::AlreadyExists { .. }) => return Err(PlanError::Exists(plan)),
        Err(e) => return Err(e.into()),
    }
    let details = Details::PlanProposed(PlanProposed {
        not_after: doc.not_after.clone(),
        plan: plan.clone(),
        plan_sha256: digest,
        proposer: match &doc.proposer {
            ProposerClaim::Collector { key_id } => ProposedBy::Collector {
                key_id: key_id.clone(),
            },
            ProposerClaim::Person {
                principal,
                key_fingerprint,
            } => ProposedBy::Person {
                key_fingerprint: *key_fingerprint,
                principal: principal.clone(),
            },
        },
        required: doc.quorum.required,
        lifts: doc.rolls_back.as_ref().and_then(|rb| {
            let kind = match doc.kind {
                super::document::PlanKind::Rollback => crate::case::entry::LiftKind::Rollback,
                super::document::PlanKind::Expiry => crate::case::entry::LiftKind::Expiry,
                super::document::PlanKind::Containment => return None,
            };
            Some(crate::case::entry::Lifts {
                kind,
                plan: rb.plan.clone(),
            })
        }),
    });
    let head = append(store, journal_key, &case, &actor, details)?;
    Ok(StoredPlan {
        case,
        plan,
        plan_sha256: digest,
        journal_seq: head.seq,
    })
}

/// The proposer's signature over `bytes`, where it is stored, and the journal's actor.
fn sign(
    doc: &PlanDoc,
    bytes: &[u8],
    roster: &Roster,
    signer: ProposalSigner<'_>,
) -> Result<(StoreKey, Vec<u8>, String), PlanError> {
    let plan = doc.plan.clone();
    let refuse = |message: String| PlanError::Proposal {
        plan: plan.clone(),
        message,
    };
    let (case, id) = (doc.case.clone(), doc.plan.clone());
    match (signer, &doc.proposer) {
        (ProposalSigner::Collector(key), ProposerClaim::Collector { key_id }) => {
            if key.public().id() != key_id {
                return Err(refuse(format!(
                    "the plan names collector key {key_id} as its proposer, but key {} signs",
                    key.public().id()
                )));
            }
            let sig = key.sign(bytes).to_vec();
            Ok((StoreKey::PlanSignature(case, id), sig, "custody".into()))
        }
        (
            ProposalSigner::Person(key_file),
            ProposerClaim::Person {
                principal,
                key_fingerprint,
            },
        ) => {
            let public =
                sshsig::public_key_of(key_file).map_err(|e| PlanError::Sign(plan.clone(), e))?;
            let fp = KeyFingerprint::of(&public);
            if &fp != key_fingerprint {
                return Err(refuse(format!(
                    "the plan names key {key_fingerprint} as its proposer's, but {} is key {fp}",
                    key_file.display()
                )));
            }
            let created = parse_time(&plan, "created_at", &doc.created_at)?;
            roster
                .check(&fp, principal, PROPOSAL_NAMESPACE, created)
                .map_err(|e| refuse(format!("the proposer may not propose: {e}")))?;
            let sig =
                sign_proposal(key_file, bytes).map_err(|e| PlanError::Sign(plan.clone(), e))?;
            Ok((
                StoreKey::PlanSshSignature(case, id),
                sig,
                principal.to_string(),
            ))
        }
        (
            ProposalSigner::PersonSigned(sig),
            ProposerClaim::Person {
                principal,
                key_fingerprint,
            },
        ) => {
            let created = parse_time(&plan, "created_at", &doc.created_at)?;
            let proposer = Proposer::person(roster, bytes, sig, principal, created)
                .map_err(|e| refuse(format!("the proposer's signature: {e}")))?;
            if proposer.person_key().map(|(_, fp)| fp) != Some(key_fingerprint) {
                return Err(refuse(format!(
                    "the plan names key {key_fingerprint} as its proposer's, but another key signed it"
                )));
            }
            Ok((
                StoreKey::PlanSshSignature(case, id),
                sig.to_vec(),
                principal.to_string(),
            ))
        }
        (ProposalSigner::Collector(_), ProposerClaim::Person { .. }) => Err(refuse(
            "the plan names a person as its proposer, but the collector key signs".into(),
        )),
        (
            ProposalSigner::Person(_) | ProposalSigner::PersonSigned(_),
            ProposerClaim::Collector { .. },
        ) => Err(refuse(
            "the plan names the collector key as its proposer, but a person's key signs".into(),
        )),
    }
}

/// The plan's pinned evidence is the case's: the pinned journal head is an entry of the chain,
/// and every pinned bundle was sealed with that archive SHA-256 (and at least one is pinned).
pub fn check_evidence(doc: &PlanDoc, chain: &CheckedChain) -> Result<(), String> {
    let head = &doc.evidence.journal_head;
    if chain.digest_of(head.seq) != Some(head.sha256) {
        return Err(format!(
            "the pinned journal head (entry {}, {}) is not an entry of the case's journal",
            head.seq, head.sha256
        ));
    }
    if doc.evidence.bundles.is_empty() {
        return Err("the plan pins no sealed bundle".into());
    }
    let state = CaseState::of(chain);
    for pinned in &doc.evidence.bundles {
        let sealed = state
            .bundles()
            .find(|(_, _, b)| b.bundle_id == pinned.bundle)
            .map(|(_, _, b)| b.archive.sha256);
        match sealed {
            Some(d) if d == pinned.archive_sha256 => {}
            Some(d) => {
                return Err(format!(
                    "bundle {} was sealed with archive SHA-256 {d}, but the plan pins {}",
                    pinned.bundle, pinned.archive_sha256
                ))
            }
            None => {
                return Err(format!(
                    "the plan pins bundle {}, which the case's journal does not record as sealed",
                    pinned.bundle
                ))
            }
        }
    }
    Ok(())
}

/// The rules `serde` cannot state: the format, the ids, the times.
fn check_document(doc: &PlanDoc, case: &CaseId, plan: &PlanId) -> Result<(), PlanError> {
    if doc.format != PLAN_FORMAT {
        return Err(PlanError::Format {
            plan: plan.clone(),
            found: doc.format.chars().take(80).collect(),
        });
    }
    if &doc.case != case || &doc.plan != plan {
        return Err(PlanError::OtherPlan {
            plan: plan.clone(),
            case: doc.case.clone(),
            named: doc.plan.clone(),
        });
    }
    parse_time(plan, "created_at", &doc.created_at)?;
    parse_time(plan, "not_after", &doc.not_after)?;
    Ok(())
}

fn parse_time(
    plan: &PlanId,
    field: &'static str,
    value: &str,
) -> Result<OffsetDateTime, PlanError> {
    crate::timefmt::parse(value).ok_or_else(|| PlanError::Time {
        plan: plan.clone(),
        field,
        value: value.chars().take(80).collect(),
    })
}

/// The case's plans, sorted (plan ids sort by time), and the names under `plans/` that are not
/// plans.
pub fn list(store: &dyn Store, case: &CaseId) -> Result<(Vec<PlanId>, Vec<String>), PlanError> {
    Ok(layout::plans(
        store.list(&StorePrefix::Plans(case.clone()))?,
    ))
}

/// Reads plan `plan` of `case` back and checks it: canonical bytes of exactly the plan's fields
/// in this format, naming this case and plan, its digest as its sidecar says, signed by the
/// proposer it names (the collector key `trusted`, else the store's published copy of the key
/// it names; or a person's SSH key in the pinned roster), and the pinned roster's digest.
///
/// The journal must record the plan's proposal with this digest (`plan_proposed`): a plan put
/// into the store beside custody is not a plan.
pub fn load(
    store: &dyn Store,
    case: &CaseId,
    plan: &PlanId,
    trusted: Option<&PublicKey>,
) -> Result<Plan<Proposed>, PlanError> {
    let mut loaded = load_record(store, case, plan, trusted)?;
    let chain = trusted_chain(store, case, trusted)?;
    if !journaled_proposals(&chain, plan).any(|(_, p)| p.plan_sha256 == loaded.digest) {
        return Err(PlanError::NotJournaled(plan.clone()));
    }
    loaded.find_journaled_at(&chain);
    loaded.trusted = trusted.cloned();
    Ok(loaded)
}

/// The case's journal as everything that judges a plan reads it: its hash chain checked, and
/// every entry's signature (`journal_signatures`) by `trusted`, or without it by a key the
/// store publishes — so that writing to the store is not writing the record of who proposed
/// and who approved. Any fault refuses.
pub fn trusted_chain(
    store: &dyn Store,
    case: &CaseId,
    trusted: Option<&PublicKey>,
) -> Result<CheckedChain, PlanError> {
    let chain = journal::check_chain(store, case)?;
    let unsound = |message: String| PlanError::JournalUnsound {
        case: case.clone(),
        message,
    };
    if let Some(p) = chain.problems.first() {
        return Err(unsound(format!("{}: {}", p.key, p.message)));
    }
    let signatures = crate::journal_signatures::check(store, case, &chain, trusted)?;
    if let Some(p) = signatures.problems.first() {
        return Err(unsound(format!("{} {}: {}", p.code, p.subject, p.message)));
    }
    Ok(chain)
}

/// `load` without the journal's record of the proposal, for `verify`, which reports that
/// separately (`plan_not_journaled`) beside what else is wrong with the plan.
pub fn load_record(
    store: &dyn Store,
    case: &CaseId,
    plan: &PlanId,
    trusted: Option<&PublicKey>,
) -> Result<Plan<Proposed>, PlanError> {
    let bytes = store.get(&StoreKey::Plan(case.clone(), plan.clone()))?;
    if bytes.len() > MAX_PLAN_BYTES {
        return Err(PlanError::TooLarge(plan.clone()));
    }
    let doc: PlanDoc = canonical::from_slice(&bytes).map_err(|source| PlanError::Document {
        plan: plan.clone(),
        source,
    })?;
    check_document(&doc, case, plan)?;
    let digest = Sha256Digest::of(&bytes);
    let sidecar = store.get(&StoreKey::PlanSidecar(case.clone(), plan.clone()))?;
    if sidecar != sidecar_text(&digest).as_bytes() {
        return Err(PlanError::Digest {
            plan: plan.clone(),
            found: digest,
            sidecar: String::from_utf8_lossy(&sidecar)
                .chars()
                .take(120)
                .collect(),
        });
    }
    let roster_bytes = store.get(&StoreKey::PlanRoster(case.clone(), plan.clone()))?;
    let found = Sha256Digest::of(&roster_bytes);
    if found != doc.roster_sha256 {
        return Err(PlanError::RosterMismatch {
            plan: plan.clone(),
            pinned: doc.roster_sha256,
            found,
        });
    }
    let roster_error = |source| PlanError::Roster {
        plan: plan.clone(),
        source,
    };
    let roster_text = String::from_utf8(roster_bytes).map_err(|_| {
        roster_error(RosterError::NotText {
            path: layout::ROSTER_FILE.into(),
        })
    })?;
    let roster = Roster::parse(layout::ROSTER_FILE, &roster_text).map_err(roster_error)?;
    let created_at = parse_time(plan, "created_at", &doc.created_at)?;
    let not_after = parse_time(plan, "not_after", &doc.not_after)?;
    let proposer = proposer_of(store, &doc, &bytes, &roster, created_at, trusted)?;
    Ok(Plan {
        doc,
        bytes,
        digest,
        proposer,
        roster,
        roster_text,
        not_after,
        created_at,
        journaled_at: None,
        trusted: trusted.cloned(),
        state: Proposed,
    })
}

/// The proposer the plan names, proven by its signature; the other kind of signature must be
/// absent (a plan has one proposer).
fn proposer_of(
    store: &dyn Store,
    doc: &PlanDoc,
    bytes: &[u8],
    roster: &Roster,
    created_at: OffsetDateTime,
    trusted: Option<&PublicKey>,
) -> Result<Proposer, PlanError> {
    let (case, plan) = (doc.case.clone(), doc.plan.clone());
    let bad = |message: String| PlanError::Signature {
        plan: plan.clone(),
        message,
    };
    let sig_key = StoreKey::PlanSignature(case.clone(), plan.clone());
    let ssh_key = StoreKey::PlanSshSignature(case.clone(), plan.clone());
    let (mine, other) = match &doc.proposer {
        ProposerClaim::Collector { .. } => (&sig_key, &ssh_key),
        ProposerClaim::Person { .. } => (&ssh_key, &sig_key),
    };
    if store.exists(other)? {
        return Err(bad(format!(
            "{} is present, but the plan names a proposer who signs {}",
            other.path(),
            mine.path()
        )));
    }
    let signature = match store.get(mine) {
        Ok(s) => s,
        Err(StoreError::NotFound { .. }) => {
            return Err(bad(format!(
                "{} is missing: the plan is unsigned",
                mine.path()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let error = |e: ProposerError| bad(e.to_string());
    match &doc.proposer {
        ProposerClaim::Collector { key_id } => {
            let key = match trusted {
                Some(k) if k.id() == key_id => k.clone(),
                Some(k) => {
                    return Err(bad(format!(
                        "the plan names collector key {key_id}, not the trusted key {}",
                        k.id()
                    )))
                }
                None => crate::store::published::published(store)?
                    .into_iter()
                    .find(|k| k.id() == key_id)
                    .ok_or_else(|| bad(format!("the store publishes no key {key_id}")))?,
            };
            Proposer::collector(&key, bytes, &signature).map_err(error)
        }
        ProposerClaim::Person {
            principal,
            key_fingerprint,
        } => {
            let p = Proposer::person(roster, bytes, &signature, principal, created_at)
                .map_err(error)?;
            match p.person_key() {
                Some((_, fp)) if fp == key_fingerprint => Ok(p),
                _ => Err(bad(format!(
                    "plan.json.sshsig is not by the key the plan names ({key_fingerprint})"
                ))),
            }
        }
    }
}

/// The approvals stored for a plan, by number, and the names in `approvals/` that are none (a
/// signature without its statement among them). A missing signature reads as empty (it does
/// not verify).
pub fn stored_approvals(
    store: &dyn Store,
    case: &CaseId,
    plan: &PlanId,
) -> Result<(Vec<StoredApproval>, Vec<String>), StoreError> {
    let names = store.list(&StorePrefix::Approvals(case.clone(), plan.clone()))?;
    let (numbers, mut strays) = layout::approvals(names);
    let mut out = Vec::new();
    for number in numbers {
        let statement = match store.get(&StoreKey::Approval(case.clone(), plan.clone(), number)) {
            Ok(s) => s,
            // A signature without its statement: the approval is not stored (the quorum says
            // so if the journal records it), and the signature is a stray.
            Err(StoreError::NotFound { .. }) => {
                let sig = StoreKey::ApprovalSignature(case.clone(), plan.clone(), number);
                strays.push(sig.path().rsplit('/').next().unwrap_or_default().to_owned());
                continue;
            }
            Err(e) => return Err(e),
        };
        let signature = match store.get(&StoreKey::ApprovalSignature(
            case.clone(),
            plan.clone(),
            number,
        )) {
            Ok(s) => s,
            Err(StoreError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        out.push(StoredApproval {
            number,
            statement,
            signature,
        });
    }
    Ok((out, strays))
}

/// Every `approval_recorded` of the journal (any plan), with its entry's sequence number and
/// time.
pub fn journaled_approvals(chain: &CheckedChain) -> Vec<(u64, String, ApprovalRecorded)> {
    chain
        .entries
        .iter()
        .filter_map(|(e, _)| match &e.details {
            Details::ApprovalRecorded(r) => Some((e.seq, e.at.clone(), r.clone())),
            _ => None,
        })
        .collect()
}

/// The `plan_proposed` entries of the journal for `plan`.
pub fn journaled_proposals<'a>(
    chain: &'a CheckedChain,
    plan: &'a PlanId,
) -> impl Iterator<Item = (u64, &'a PlanProposed)> + 'a {
    chain
        .entries
        .iter()
        .filter_map(move |(e, _)| match &e.details {
            Details::PlanProposed(p) if &p.plan == plan => Some((e.seq, p)),
            _ => None,
        })
}

/// Appends `details` to the case's journal at its current head, reading the head again when
/// another writer appended first.
pub fn append(
    store: &dyn Store,
    key: &SigningKey,
    case: &CaseId,
    actor: &str,
    details: Details,
) -> Result<journal::Head, PlanError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let chain = journal::check_chain(store, case)?;
        let head = chain
            .head()
            .ok_or_else(|| PlanError::NoJournal(case.clone()))?;
        let mut j = Journal::resume(store, case.clone(), head, key);
        match j.append(actor, details.clone()) {
            Ok(head) => return Ok(head),
            Err(JournalError::Append {
                source: StoreError::AlreadyExists { .. },
                ..
            }) if attempt < APPEND_ATTEMPTS => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
