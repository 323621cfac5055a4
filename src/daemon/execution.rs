//! The daemon executing approved plans: when asked (`POST /api/v1/cases/{id}/plans/{plan}/
//! execute`), as soon as an approval brings a plan to its quorum when `containment.yaml` says
//! `plan.execute: on_quorum`, and at start-up for an execution a stopped daemon left unfinished
//! (it resumes from the first unfinished step). The execution is the CLI's (`execute::run`),
//! under the case's claim for its whole length, with the daemon's own key trusted for the
//! journal and its proposals. The daemon takes no Secret values: a plan that marks keys as
//! provided is executed with `custody plan execute --secret-values`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::lease::LeaseError;
use super::plans::PlansError;
use super::Daemon;
use crate::case::{journal, CaseState, Details};
use crate::execute::run::{self, ended_json, Ended};
use crate::id::{CaseId, PlanId};
use crate::plan::document::{KeyPlan, StepDetail};
use crate::policy::containment::ExecuteWhen;
use crate::store::Store;

/// How long each Deployment's rollout may take when the daemon executes.
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(300);

/// What an execution answered: the HTTP status and the report.
pub struct Executed {
    pub status: u16,
    pub body: Value,
}

impl Daemon {
    /// Executes plan `id` of `case` (`trigger`: `api`, `on_quorum`, `resume`), logged and
    /// counted.
    pub async fn execute_plan(
        self: Arc<Self>,
        case: CaseId,
        id: PlanId,
        trigger: &'static str,
    ) -> Result<Executed, PlansError> {
        let cluster = crate::kube::connect(self.kubeconfig.as_deref(), self.context.as_deref())
            .await
            .map_err(|e| PlansError::Unavailable(format!("cannot reach the cluster: {e}")))?;
        let handle = tokio::runtime::Handle::current();
        let d = self.clone();
        let (c, p) = (case.clone(), id.clone());
        let out = tokio::task::spawn_blocking(move || d.execute_held(&c, &p, &cluster, &handle))
            .await
            .map_err(|e| PlansError::Internal(e.to_string()))?;
        match &out {
            Ok(e) => {
                tracing::info!(case = %case, plan = %id, trigger, status = %e.body["status"], "plan execution ended")
            }
            Err(e) => {
                tracing::warn!(case = %case, plan = %id, trigger, error = %e, "plan not executed")
            }
        }
        out
    }

    fn execute_held(
        &self,
        case: &CaseId,
        id: &PlanId,
        cluster: &crate::kube::Cluster,
        handle: &tokio::runtime::Handle,
    ) -> Result<Executed, PlansError> {
        let held = self.leases.hold(self.store.as_ref(), case, |held| {
            self.execute_under_claim(held, case, id, cluster, handle)
        });
        match held {
            Ok(out) => out,
            Err(LeaseError::Busy { .. }) => Err(PlansError::Busy(
                "the case is held (a collection, or another execution): send it again later".into(),
            )),
            Err(e) => Err(PlansError::Unavailable(e.to_string())),
        }
    }

    fn execute_under_claim(
        &self,
        store: &dyn Store,
        case: &CaseId,
        id: &PlanId,
        cluster: &crate::kube::Cluster,
        handle: &tokio::runtime::Handle,
    ) -> Result<Executed, PlansError> {
        let refused = |e: &dyn std::fmt::Display| PlansError::Refused(e.to_string());
        let loaded =
            crate::plan::load(store, case, id, Some(self.key.public())).map_err(|e| match e {
                crate::plan::PlanError::Store(crate::store::StoreError::NotFound { .. }) => {
                    PlansError::NoSuchPlan {
                        case: case.clone(),
                        plan: id.clone(),
                    }
                }
                other => refused(&other),
            })?;
        let executed = |ended: &Ended| {
            let (status, body) = ended_json(case, id, ended);
            Executed { status, body }
        };
        let chain = crate::plan::store::trusted_chain(store, case, Some(self.key.public()))
            .map_err(|e| PlansError::Unavailable(e.to_string()))?;
        if super::plans::collecting(&CaseState::of(&chain)) {
            return Err(PlansError::Busy(
                "the case is being collected: send it again once its collection is over".into(),
            ));
        }
        if let Some(ended) =
            run::settled(store, &self.key, "custody", &loaded).map_err(|e| refused(&e))?
        {
            return Ok(executed(&ended));
        }
        if loaded.doc().kind == crate::plan::document::PlanKind::Expiry {
            // Pre-approved by the plan whose blocks it lifts: run on that authority.
            let ctx = crate::execute::expire::Context {
                store,
                key: &self.key,
                actor: "custody",
                policies: &self.policies,
                claims: &self.leases,
                cluster,
                handle,
            };
            let ended =
                crate::execute::expire::execute(&ctx, store, &loaded).map_err(|e| refused(&e))?;
            return Ok(executed(&ended));
        }
        let provided = loaded.doc().steps.iter().any(|s| match &s.detail {
            StepDetail::RotateSecrets { keys, .. } => {
                keys.values().any(|k| matches!(k, KeyPlan::Provided))
            }
            _ => false,
        });
        if provided {
            return Err(PlansError::Refused("the plan marks Secret keys as provided: the daemon takes no Secret values; execute it with custody plan execute --secret-values, signing with the daemon's collector key (--signing-key), which writes the case's journal".into()));
        }
        let options = crate::verify::Options {
            public_key: Some(self.key.public().clone()),
            ..Default::default()
        };
        let evidence = crate::propose::evidence(store, case, &options).map_err(|e| refused(&e))?;
        crate::plan::store::check_evidence(loaded.doc(), &chain).map_err(|e| refused(&e))?;
        let pinned = crate::execute::preflight::pinned_evidence(&loaded.doc().evidence, &evidence)
            .map_err(|e| refused(&e))?;
        let roster = self.roster_in_force()?;
        let block_owners = self.block_owners(loaded.doc().kind)?;
        let rollback =
            crate::execute::owners::rollback_of(store, loaded.doc(), Some(self.key.public()))
                .map_err(|e| refused(&e))?;
        let (_, api_server_date) = handle
            .block_on(crate::containment::cluster::identity(cluster))
            .map_err(|e| {
                PlansError::Unavailable(format!("cannot read the cluster's identity: {e}"))
            })?;
        let (stored, _) = crate::plan::store::stored_approvals(store, case, id)?;
        let journaled: Vec<_> = crate::plan::store::journaled_approvals(&chain)
            .into_iter()
            .map(|(_, _, r)| r)
            .collect();
        let now = OffsetDateTime::now_utc();
        let approved = match loaded.approve_check(
            &roster.roster,
            &self.policies.containment,
            &stored,
            &journaled,
            now,
            api_server_date,
        ) {
            Ok(a) => a,
            Err(r) => {
                // An execution left unfinished whose not_after passed can never resume: it is
                // closed, its actions bundle sealed as failed.
                // Both clocks must say so: custody's running ahead is skew, not an expiry.
                if now > loaded.not_after() && api_server_date > loaded.not_after() {
                    let why = "the execution could not resume: the plan's not_after passed";
                    if let Some(report) =
                        run::close_unfinished(store, &self.key, "custody", &loaded, why)
                            .map_err(|e| refused(&e))?
                    {
                        return Ok(executed(&Ended::Ran(report)));
                    }
                }
                return Err(PlansError::Refused(format!(
                    "plan {id} cannot be executed now, so nothing was sent: {r}"
                )));
            }
        };
        // The store is reached from the execution's async code only through this.
        let off = crate::store::OffRuntime(store);
        let input = run::Input {
            store: &off,
            key: &self.key,
            actor: "custody",
            plan: &approved,
            build: crate::propose::BuildInput {
                case,
                policies: &self.policies,
                evidence: &pinned,
                proposer: approved.doc().proposer.clone(),
                roster_sha256: approved.doc().roster_sha256,
                now,
                block_owners,
                rollback,
            },
            secret_values: None,
            rollout_timeout: ROLLOUT_TIMEOUT,
            api_server_date,
        };
        let ended = handle
            .block_on(run::execute(cluster, &input))
            .map_err(|e| refused(&e))?;
        Ok(executed(&ended))
    }

    /// After an approval was recorded: with `plan.execute: on_quorum`, the plan is executed as
    /// soon as it has quorum (in the background; its outcome is logged and journaled).
    pub fn after_approval(self: &Arc<Self>, case: CaseId, id: PlanId) {
        if self.policies.containment.plan.execute != ExecuteWhen::OnQuorum {
            return;
        }
        let d = self.clone();
        tokio::spawn(async move {
            let (c, p) = (case.clone(), id.clone());
            let judged = {
                let d = d.clone();
                tokio::task::spawn_blocking(move || d.plan_json(&c, &p)).await
            };
            match judged {
                Ok(Ok(v)) if v["status"]["reached"] == true => {
                    let _ = d.execute_plan(case, id, "on_quorum").await;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(case = %case, plan = %id, error = %e, "cannot judge the quorum to execute on it")
                }
                Err(e) => {
                    tracing::warn!(case = %case, plan = %id, error = %e, "cannot judge the quorum to execute on it")
                }
            }
        });
    }

    /// The executions `chain` shows interrupted — started, not sealed, no step failed since —
    /// which a daemon stopped in the middle of them resumes at start-up. One that ended with a
    /// failed step and no sealed bundle is resumed only when asked.
    pub(super) fn unfinished_executions(chain: &journal::CheckedChain) -> Vec<PlanId> {
        let mut plans: Vec<PlanId> = Vec::new();
        for (e, _) in &chain.entries {
            if let Details::ExecutionStarted(s) = &e.details {
                if !plans.contains(&s.plan) {
                    plans.push(s.plan.clone());
                }
            }
        }
        plans.retain(|p| run::interrupted(chain, p));
        plans
    }
}
