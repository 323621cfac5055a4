//! The daemon's containment plans: proposing one for a case (asked through the API, or by the
//! daemon itself once an alert's case is sealed and stored, when `containment.yaml` says so),
//! recording the approvals sent to it, and the views of plans the API answers with. Proposals
//! are signed with the collector key. Every journal append (`plan_proposed`,
//! `approval_recorded`) is made under the case's claim (`lease`), as a resolve is, so that it
//! never comes between a collection's journal head and its seal: while a collection holds the
//! case the request is refused (409) and can be sent again. The notifications of sealed cases,
//! plans awaiting approval, quorum reached and vetoes go out from here, never holding up a case
//! or a request. A sealed case is announced by the daemon that stored it (`announce_later`,
//! then `announce_pending` once the case's claim is given up), exactly once whether the worker
//! or the spool's later upload stored it.

use std::sync::Arc;

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::lease::LeaseError;
use super::notify::{Event, Notifier};
use super::Daemon;
use crate::approval::{Decision, Roster};
use crate::case::{journal, CaseState, EntryKind, Status};
use crate::id::{BundleId, CaseId, PlanId};
use crate::plan::approvals::{ApprovalRequest, Recorded};
use crate::plan::document::{PlanDoc, ProposerClaim};
use crate::plan::show::{self, ApproveHint, ShowStatus};
use crate::plan::store::{PlanError, ProposalSigner, StoredPlan};
use crate::plan::{self, Plan, Proposed};
use crate::propose::{BuildInput, Evidence, ProposeError};
use crate::store::{StoreError, StoreKey};

/// The approvers' roster in force (`approvers.allowed_signers` in the policies directory): the
/// roster the daemon's plans pin and their quorum is judged with.
pub struct RosterInForce {
    pub text: String,
    pub roster: Roster,
}

/// Why a plan request is refused, with the HTTP status it is answered with.
#[derive(Debug, thiserror::Error)]
pub enum PlansError {
    #[error("no such case")]
    NoSuchCase,
    #[error("case {case} has no plan {plan}")]
    NoSuchPlan { case: CaseId, plan: PlanId },
    /// Not a request the endpoint takes (400).
    #[error("{0}")]
    BadRequest(String),
    /// The case is being collected, or another request holds it (409): send it again later.
    #[error("{0}")]
    Busy(String),
    /// A well-formed request that is refused (422), with the reason.
    #[error("{0}")]
    Refused(String),
    /// An approval refused by `record_approval`, with the status its error maps to.
    #[error("{message}")]
    Approval { status: u16, message: String },
    /// The store or the cluster cannot answer now (503).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal failure: {0}")]
    Internal(String),
}

impl PlansError {
    pub fn http_status(&self) -> u16 {
        match self {
            PlansError::NoSuchCase | PlansError::NoSuchPlan { .. } => 404,
            PlansError::BadRequest(_) => 400,
            PlansError::Busy(_) => 409,
            PlansError::Refused(_) => 422,
            PlansError::Approval { status, .. } => *status,
            PlansError::Unavailable(_) => 503,
            PlansError::Internal(_) => 500,
        }
    }
}

impl From<StoreError> for PlansError {
    fn from(e: StoreError) -> Self {
        PlansError::Unavailable(e.to_string())
    }
}

/// The most plans one case may hold: every plan is stored for good (locked, on S3), and each
/// proposal reads the cluster and dry-runs on the API server.
const MAX_PLANS_PER_CASE: usize = 50;

const COLLECTING: &str =
    "the case is being collected: a plan is built from sealed evidence; ask again when the collection ends";
const CLAIMED: &str =
    "the case is being collected (or another request is writing to it): send the request again shortly";

fn plan_error(case: &CaseId, plan: &PlanId, e: PlanError) -> PlansError {
    match e {
        PlanError::Store(StoreError::NotFound { .. }) => PlansError::NoSuchPlan {
            case: case.clone(),
            plan: plan.clone(),
        },
        PlanError::Store(s) => s.into(),
        PlanError::Journal(_) | PlanError::NoJournal(_) => PlansError::Unavailable(e.to_string()),
        PlanError::Exists(p) => PlansError::Busy(format!("plan {p} exists already")),
        other => PlansError::Refused(format!("{} ({})", other, other.code())),
    }
}

fn propose_error(e: ProposeError) -> PlansError {
    match e {
        ProposeError::NoSealedBundle(_)
        | ProposeError::Evidence { .. }
        | ProposeError::NoTargets
        | ProposeError::Proposer(_) => PlansError::Refused(e.to_string()),
        ProposeError::Cluster(_) | ProposeError::Clock { .. } | ProposeError::Store(_) => {
            PlansError::Unavailable(e.to_string())
        }
    }
}

/// Runs `f` on the blocking pool (the store's calls block).
async fn blocking<T: Send + 'static>(
    d: &Arc<Daemon>,
    f: impl FnOnce(&Daemon) -> T + Send + 'static,
) -> Result<T, PlansError> {
    let d = d.clone();
    tokio::task::spawn_blocking(move || f(&d))
        .await
        .map_err(|e| PlansError::Internal(e.to_string()))
}

/// A proposal the daemon made.
#[derive(Clone, Debug)]
pub struct Proposal {
    pub stored: StoredPlan,
    pub required: u32,
}

impl Daemon {
    /// Uses `roster` as the roster in force.
    pub fn set_roster(&mut self, roster: RosterInForce) {
        self.roster = Some(Arc::new(roster));
    }

    /// Sends notifications through `notifier`.
    pub fn set_notifier(&mut self, notifier: Notifier) {
        self.notifier = Some(notifier);
    }

    /// The URL approvers reach the daemon at, for the approve commands it shows.
    pub fn set_server_url(&mut self, url: String) {
        self.server_url = url;
    }

    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    pub(super) fn notify(&self, event: Event) {
        if let Some(n) = &self.notifier {
            n.notify(event);
        }
    }

    /// The approve command for the daemon's own readers: `--server URL --token-file FILE`.
    pub fn server_hint(&self, server: &str) -> ApproveHint {
        ApproveHint {
            store_args: vec![
                "--server".into(),
                server.to_owned(),
                "--token-file".into(),
                "FILE".into(),
            ],
            ..ApproveHint::default()
        }
    }

    /// The roster to judge `p` with: the roster in force, else the plan's own.
    pub(super) fn roster_for<'a>(&'a self, p: &'a Plan<Proposed>) -> &'a Roster {
        self.roster
            .as_deref()
            .map_or(p.pinned_roster(), |r| &r.roster)
    }

    fn case_exists(&self, case: &CaseId) -> Result<(), PlansError> {
        if self.store.exists(&StoreKey::CaseHeader(case.clone()))? {
            Ok(())
        } else {
            Err(PlansError::NoSuchCase)
        }
    }

    /// `GET /api/v1/cases/{case}/plans`: every plan with its quorum, judged with the roster in
    /// force; a plan that does not load is listed with why.
    pub fn plan_list(&self, case: &CaseId) -> Result<Value, PlansError> {
        self.case_exists(case)?;
        let (plans, strays) = plan::list(self.store.as_ref(), case)
            .map_err(|e| PlansError::Unavailable(e.to_string()))?;
        let now = OffsetDateTime::now_utc();
        let mut rows = Vec::new();
        for id in &plans {
            let loaded = plan::load(self.store.as_ref(), case, id, Some(self.key.public()));
            rows.push(match loaded {
                Ok(p) => {
                    let s = self.judged(&p, now).map_err(|e| plan_error(case, id, e))?;
                    json!({
                        "plan": id, "plan_sha256": s.plan_sha256, "created_at": s.created_at,
                        "not_after": s.not_after, "required": s.required, "counted": s.counted,
                        "quorum_reached": s.quorum_reached, "rejected": s.rejected,
                        "expired": s.expired, "valid": true,
                    })
                }
                Err(e) => {
                    json!({"plan": id, "valid": false, "code": e.code(), "message": e.to_string()})
                }
            });
        }
        Ok(json!({"case": case, "plans": rows, "strays": strays}))
    }

    /// Where `p` stands at `now`, judged with the roster and containment policy in force.
    fn judged(
        &self,
        p: &Plan<Proposed>,
        now: OffsetDateTime,
    ) -> Result<plan::PlanStatus, PlanError> {
        plan::status_in(
            self.store.as_ref(),
            p,
            self.roster_for(p),
            Some(&self.policies.containment),
            now,
        )
    }

    /// A stored plan, its digest and its quorum status, judged with the roster in force.
    fn plan_status(
        &self,
        case: &CaseId,
        id: &PlanId,
    ) -> Result<(Plan<Proposed>, ShowStatus), PlansError> {
        self.case_exists(case)?;
        let p = plan::load(self.store.as_ref(), case, id, Some(self.key.public()))
            .map_err(|e| plan_error(case, id, e))?;
        let now = OffsetDateTime::now_utc();
        let status = self.judged(&p, now).map_err(|e| plan_error(case, id, e))?;
        let (stored, _) = plan::store::stored_approvals(self.store.as_ref(), case, id)?;
        Ok((p, ShowStatus::of(&status, &stored)))
    }

    /// `GET …/plans/{plan}`: `plan show --json`'s view, and the plan's pinned roster (so that a
    /// client can name the principal its key speaks for).
    pub fn plan_json(&self, case: &CaseId, id: &PlanId) -> Result<Value, PlansError> {
        let (p, status) = self.plan_status(case, id)?;
        let mut value = show::render_json(p.doc(), &p.digest(), &status);
        value["pinned_roster"] = Value::String(p.pinned_roster_text().to_owned());
        // The exact bytes whose SHA-256 approvals sign: `approve --server` hashes and shows
        // these itself rather than trusting the daemon's digest or text.
        value["plan_json"] = Value::String(String::from_utf8_lossy(p.bytes()).into_owned());
        // The proposer's signature over those bytes, for the client to check itself.
        value["proposal_signature"] = match &p.doc().proposer {
            ProposerClaim::Collector { key_id } => {
                let sig = self
                    .store
                    .get(&StoreKey::PlanSignature(case.clone(), id.clone()))?;
                let pem = self
                    .key
                    .public()
                    .to_pem()
                    .map_err(|e| PlansError::Internal(e.to_string()))?;
                json!({"kind": "collector", "key_id": key_id, "public_key_pem": pem, "signature_hex": hex::encode(sig)})
            }
            ProposerClaim::Person { .. } => {
                let sig = self
                    .store
                    .get(&StoreKey::PlanSshSignature(case.clone(), id.clone()))?;
                json!({"kind": "person", "sshsig": String::from_utf8_lossy(&sig)})
            }
        };
        Ok(value)
    }

    /// `GET …/plans/{plan}?format=text`: what `plan show` prints, with `hint`'s approve command.
    pub fn plan_text(
        &self,
        case: &CaseId,
        id: &PlanId,
        hint: &ApproveHint,
    ) -> Result<String, PlansError> {
        let (p, status) = self.plan_status(case, id)?;
        Ok(show::render_text(p.doc(), &p.digest(), &status, hint))
    }

    /// The case's sealed, verified evidence, unless a collection of it is under way.
    fn evidence_for(&self, case: &CaseId) -> Result<Evidence, PlansError> {
        self.case_exists(case)?;
        let chain = journal::check_chain(self.store.as_ref(), case)?;
        if collecting(&CaseState::of(&chain)) {
            return Err(PlansError::Busy(COLLECTING.into()));
        }
        let options = crate::verify::Options {
            public_key: Some(self.key.public().clone()),
            ..Default::default()
        };
        crate::propose::evidence(self.store.as_ref(), case, &options).map_err(propose_error)
    }

    /// Per target, the owners of the addresses executed plans block (`execute::owners`), from
    /// journals signed by the daemon's key, for a plan of `kind`.
    pub(super) fn block_owners(
        &self,
        kind: crate::plan::document::PlanKind,
    ) -> Result<std::collections::BTreeMap<String, crate::containment::netpol::Owners>, PlansError>
    {
        crate::execute::owners::block_owners(
            self.store.as_ref(),
            Some(self.key.public()),
            &self.policies.containment,
            kind,
        )
        .map_err(|e| PlansError::Unavailable(format!("the owners of blocked addresses: {e}")))
    }

    /// Proposes a plan for `case`, signed with the collector key: the evidence verified, the
    /// cluster read and every change dry-run, then stored and journaled under the case's claim.
    /// `trigger` (`api`, `alert`) is counted; an alert's proposal is made once per sealed
    /// bundle (`None` if a plan was proposed since the case's newest bundle was sealed).
    pub async fn propose_plan(
        self: Arc<Self>,
        case: CaseId,
        trigger: &'static str,
    ) -> Result<Option<Proposal>, PlansError> {
        let outcome = self.clone().propose_inner(case.clone(), trigger).await;
        match &outcome {
            Ok(Some(p)) => {
                self.metrics.plan_proposed(trigger);
                tracing::info!(case = %case, plan = %p.stored.plan, trigger, "plan proposed");
            }
            Ok(None) => {}
            Err(e) => {
                self.metrics.plan_proposal_failed(trigger);
                tracing::warn!(case = %case, trigger, error = %e, "no plan proposed");
            }
        }
        outcome
    }

    async fn propose_inner(
        self: Arc<Self>,
        case: CaseId,
        trigger: &'static str,
    ) -> Result<Option<Proposal>, PlansError> {
        let proposer = ProposerClaim::Collector {
            key_id: self.key.public().id().clone(),
        };
        let (doc, roster) = self.clone().build_plan(&case, proposer).await?;
        let once = trigger == "alert";
        blocking(&self, move |d| d.store_plan(&doc, &roster, once, None)).await?
    }

    /// The roster in force, which every plan the daemon builds pins.
    pub(super) fn roster_in_force(&self) -> Result<Arc<RosterInForce>, PlansError> {
        self.roster.clone().ok_or_else(|| {
            PlansError::Refused(format!(
                "the daemon has no approvers' roster ({} in its policies directory): a plan pins the roster its approvals are judged by",
                crate::policy::ROSTER_FILE
            ))
        })
    }

    /// Refuses a case that holds as many plans as one case may.
    pub(super) fn check_plan_count(&self, case: &CaseId) -> Result<(), PlansError> {
        let count = plan::list(self.store.as_ref(), case)
            .map_err(|e| PlansError::Unavailable(e.to_string()))?
            .0
            .len();
        if count >= MAX_PLANS_PER_CASE {
            return Err(PlansError::Busy(format!(
                "case {case} has {count} plans, the most one case may hold: each is kept for good, so no more are proposed"
            )));
        }
        Ok(())
    }

    /// Builds, but does not store, a plan for `case` naming `proposer`: the evidence verified,
    /// the cluster read and every change dry-run. Also the roster it pins.
    pub(super) async fn build_plan(
        self: Arc<Self>,
        case: &CaseId,
        proposer: ProposerClaim,
    ) -> Result<(PlanDoc, Arc<RosterInForce>), PlansError> {
        let roster = self.roster_in_force()?;
        let c = case.clone();
        blocking(&self, move |d| d.check_plan_count(&c)).await??;
        let c = case.clone();
        let evidence = blocking(&self, move |d| d.evidence_for(&c)).await??;
        let block_owners = blocking(&self, |d| {
            d.block_owners(crate::plan::document::PlanKind::Containment)
        })
        .await??;
        let cluster = crate::kube::connect(self.kubeconfig.as_deref(), self.context.as_deref())
            .await
            .map_err(|e| PlansError::Unavailable(format!("cannot reach the cluster: {e}")))?;
        let input = BuildInput {
            case,
            policies: &self.policies,
            evidence: &evidence,
            proposer,
            roster_sha256: roster.roster.sha256(),
            now: OffsetDateTime::now_utc(),
            block_owners,
            rollback: None,
        };
        let doc = crate::propose::build(&cluster, &input)
            .await
            .map_err(propose_error)?;
        Ok((doc, roster))
    }

    /// Stores and journals `doc` under the case's claim, then tells the approvers. The daemon's
    /// own proposal is signed here with the collector key; a person's comes with `sshsig`, their
    /// SSHSIG over the plan's exact bytes, checked against the pinned roster before anything is
    /// stored.
    pub(super) fn store_plan(
        &self,
        doc: &PlanDoc,
        roster: &RosterInForce,
        once: bool,
        sshsig: Option<&[u8]>,
    ) -> Result<Option<Proposal>, PlansError> {
        let case = &doc.case;
        let held = self.leases.hold(self.store.as_ref(), case, |held| {
            let chain = journal::check_chain(held, case)?;
            let state = CaseState::of(&chain);
            if collecting(&state) {
                return Err(PlansError::Busy(COLLECTING.into()));
            }
            if once && proposed_since_seal(&chain) {
                return Ok(None);
            }
            let signer = match sshsig {
                Some(sig) => ProposalSigner::PersonSigned(sig),
                None => ProposalSigner::Collector(&self.key),
            };
            plan::propose(held, &self.key, doc, &roster.text, signer)
                .map(Some)
                .map_err(|e| plan_error(case, &doc.plan, e))
        });
        let stored = match held {
            Ok(Ok(Some(s))) => s,
            Ok(other) => return other.map(|_| None),
            Err(LeaseError::Busy { .. }) => return Err(PlansError::Busy(CLAIMED.into())),
            Err(e) => return Err(PlansError::Unavailable(e.to_string())),
        };
        let required = doc.quorum.required;
        match crate::timefmt::parse(&doc.not_after) {
            Some(not_after) => {
                self.expiries.watch(case, &stored.plan, not_after);
                self.metrics.open_plans(self.expiries.len());
            }
            None => {
                tracing::error!(case = %case, plan = %stored.plan, "the plan's not_after is not a time; its expiry is not watched")
            }
        }
        if self.notifier.is_some() {
            let hint = self.server_hint(&self.server_url);
            match self.plan_text(case, &stored.plan, &hint) {
                Ok(summary_text) => self.notify(Event::PlanAwaitingApproval {
                    case: case.clone(),
                    plan: stored.plan.clone(),
                    summary_text,
                    approve_command: hint.approve_command(doc),
                }),
                Err(e) => {
                    tracing::warn!(case = %case, plan = %stored.plan, error = %e, "cannot read the proposed plan back to notify")
                }
            }
        }
        Ok(Some(Proposal { stored, required }))
    }

    /// `POST …/plans/{plan}/approvals`: checks the statement and its signature (the authority;
    /// the token only admitted the request), stores and journals it under the case's claim.
    pub fn record_approval(
        &self,
        case: &CaseId,
        id: &PlanId,
        body: &[u8],
    ) -> Result<Recorded, PlansError> {
        let request: ApprovalRequest = serde_json::from_slice(body).map_err(|e| {
            PlansError::BadRequest(format!(
                "not an approval request ({{\"statement\", \"signature\"}}): {e}"
            ))
        })?;
        self.case_exists(case)?;
        let held = self.leases.hold(self.store.as_ref(), case, |held| {
            // The plan is checked with this daemon's own key, as when it is shown: a plan in
            // the store signed by a key published beside it is not taken on the store's word.
            plan::load(held, case, id, Some(self.key.public()))
                .map_err(plan::ApprovalError::from)
                .and_then(|p| {
                    p.record(
                        held,
                        &self.key,
                        request.statement.as_bytes(),
                        request.signature.as_bytes(),
                        OffsetDateTime::now_utc(),
                    )
                })
        });
        let recorded = match held {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let status = e.http_status();
                if (400..500).contains(&status) {
                    self.metrics.approval("refused");
                }
                return Err(match status {
                    404 => PlansError::NoSuchPlan {
                        case: case.clone(),
                        plan: id.clone(),
                    },
                    _ => PlansError::Approval {
                        status,
                        message: e.to_string(),
                    },
                });
            }
            Err(LeaseError::Busy { .. }) => return Err(PlansError::Busy(CLAIMED.into())),
            Err(e) => return Err(PlansError::Unavailable(e.to_string())),
        };
        self.metrics.approval(match recorded.decision {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        });
        tracing::info!(case = %case, plan = %id, principal = %recorded.principal, decision = %recorded.decision, "approval recorded");
        self.notify_quorum(&recorded);
        Ok(recorded)
    }

    /// After an approval: a reject is the veto; the approval that brings the count to the quorum
    /// reaches it.
    fn notify_quorum(&self, r: &Recorded) {
        if self.notifier.is_none() {
            return;
        }
        if r.decision == Decision::Reject {
            return self.notify(Event::PlanRejected {
                case: r.case.clone(),
                plan: r.plan.clone(),
                by: r.principal.clone(),
            });
        }
        match self.plan_status(&r.case, &r.plan) {
            Ok((_, s)) if s.reached && s.counted == s.required => {
                self.notify(Event::QuorumReached {
                    case: r.case.clone(),
                    plan: r.plan.clone(),
                })
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(case = %r.case, plan = %r.plan, error = %e, "cannot judge the quorum to notify")
            }
        }
    }

    /// Records that this daemon stored sealed `bundle` of `case` (collected into the store, or
    /// uploaded from the spool): it is announced once the case's claim is given up
    /// (`announce_pending`). Only the daemon that stored a bundle announces it, so a case is
    /// announced once however its bundle reached the store.
    pub(super) fn announce_later(&self, case: &CaseId, bundle: &BundleId) {
        lock(&self.announcements).insert(case.clone(), bundle.clone());
    }

    /// Announces what this daemon stored of `case` and is not announced yet; kept for the next
    /// housekeeping round if the case's journal cannot be read now.
    pub(super) fn announce_pending(self: &Arc<Self>, case: &CaseId) {
        let Some(bundle) = lock(&self.announcements).remove(case) else {
            return;
        };
        if !self.announce_sealed(case, &bundle) {
            lock(&self.announcements)
                .entry(case.clone())
                .or_insert(bundle);
        }
    }

    /// `announce_pending` for every case no worker of this daemon holds (housekeeping).
    pub(super) fn announce_all_pending(self: &Arc<Self>) {
        let cases: Vec<CaseId> = lock(&self.announcements).keys().cloned().collect();
        for case in cases {
            if !self.leases.is_active(&case) {
                self.announce_pending(&case);
            }
        }
    }

    /// Announces sealed `bundle` of `case` and, for an alert's case when the policy says so,
    /// proposes a plan in the background (`propose_plan` proposes once per sealed bundle).
    /// Never fails the case: what goes wrong is logged and counted. False if the case's journal
    /// cannot be read now (to try again later).
    fn announce_sealed(self: &Arc<Self>, case: &CaseId, bundle: &BundleId) -> bool {
        let chain = match journal::check_chain(self.store.as_ref(), case) {
            Ok(chain) => chain,
            Err(e) => {
                tracing::warn!(case = %case, error = %e, "cannot read the case's journal to announce its sealed bundle; trying again later");
                return false;
            }
        };
        let state = CaseState::of(&chain);
        if !state.bundles().any(|(_, _, b)| &b.bundle_id == bundle) {
            tracing::warn!(case = %case, bundle = %bundle, "the case's journal does not record the stored bundle as sealed; it is not announced");
            return true;
        }
        let suspicious = state
            .findings
            .as_ref()
            .filter(|f| &f.bundle_id == bundle)
            .map(|f| f.suspicious.iter().map(|s| s.ip.clone()).collect())
            .unwrap_or_default();
        self.notify(Event::CaseSealed {
            case: case.clone(),
            bundle: bundle.clone(),
            suspicious,
        });
        let trigger = state.opened.as_ref().map(|o| o.trigger.kind.as_str());
        let policy = &self.policies.containment;
        if trigger != Some("alert") || !policy.plan.propose_on_alert || policy.targets.is_empty() {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(case = %case, "no runtime to propose the plan on");
            return true;
        };
        let (d, case) = (self.clone(), case.clone());
        runtime.spawn(async move {
            // Logged and counted by `propose_plan`.
            let _ = d.propose_plan(case, "alert").await;
        });
        true
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether a collection of the case is under way (or never ended).
pub(super) fn collecting(state: &CaseState) -> bool {
    state.collection_unfinished()
        || matches!(
            state.status,
            Status::Open | Status::Collecting | Status::Storing
        )
}

/// Whether a plan was proposed after the newest sealed bundle.
fn proposed_since_seal(chain: &journal::CheckedChain) -> bool {
    let mut sealed = None;
    let mut proposed = None;
    for (e, _) in &chain.entries {
        match e.kind() {
            EntryKind::BundleSealed => sealed = Some(e.seq),
            EntryKind::PlanProposed => proposed = Some(e.seq),
            _ => {}
        }
    }
    matches!((sealed, proposed), (Some(s), Some(p)) if p > s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_their_status() {
        let case = CaseId::new("20261126-145448-00000001").unwrap();
        assert_eq!(PlansError::NoSuchCase.http_status(), 404);
        assert_eq!(PlansError::Busy(COLLECTING.into()).http_status(), 409);
        assert_eq!(
            propose_error(ProposeError::NoSealedBundle(case.clone())).http_status(),
            422
        );
        assert_eq!(
            propose_error(ProposeError::Evidence {
                case,
                message: "x".into()
            })
            .http_status(),
            422
        );
        assert_eq!(propose_error(ProposeError::NoTargets).http_status(), 422);
        assert_eq!(
            propose_error(ProposeError::Clock { seconds: 90 }).http_status(),
            503
        );
        assert_eq!(
            PlansError::Approval {
                status: 422,
                message: "x".into()
            }
            .http_status(),
            422
        );
    }
}
