//! Plans that pass their `not_after` unexecuted. The daemon keeps the open plans it knows
//! ([`OpenPlans`]: seeded by the start-up scan of every case's journal, fed by each proposal it
//! stores, and by a slow rescan of the store every `limits.plan_rescan_seconds` for plans
//! written by others: another replica, `custody plan propose`), and a task ([`watch_expiries`])
//! sleeps until the earliest `not_after` — waking at least every minute, never scanning the
//! store to do so — then, under the case's claim, journals `plan_expired` once
//! (`plan::expiry::expire`: the journal is read first, so replicas and restarts record it once)
//! and notifies `plan_expired`. Only the replica that wrote the entry notifies; a rejected plan
//! is not announced. A failure (the store down, the case being collected) is logged, counted
//! and tried again later with backoff, the plan kept; a plan that cannot be read as a plan is
//! logged, counted and left to `verify`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use time::OffsetDateTime;

use super::lease::LeaseError;
use super::notify::Event;
use super::Daemon;
use crate::case::{journal, CaseState, CheckedChain};
use crate::id::{CaseId, PlanId};
use crate::plan::expiry::{self, Expiry};
use crate::plan::PlanError;

/// The longest the watcher sleeps: it looks at the clock at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How long past `not_after` the watcher wakes, so that the plan is past it on every clock
/// that reads the same second.
const MARGIN: time::Duration = time::Duration::seconds(1);
/// The wait before a failed expiry is tried again; doubled after each failure, up to
/// `MAX_BACKOFF`.
const FIRST_BACKOFF: time::Duration = time::Duration::seconds(15);
const MAX_BACKOFF: time::Duration = time::Duration::seconds(600);

/// One open plan: its `not_after`, when it is next looked at, and the failures so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Watched {
    not_after: OffsetDateTime,
    due: OffsetDateTime,
    failures: u32,
}

/// The open plans the daemon knows, by case and plan.
#[derive(Default)]
pub struct OpenPlans {
    plans: Mutex<BTreeMap<(CaseId, PlanId), Watched>>,
    changed: tokio::sync::Notify,
}

impl OpenPlans {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(CaseId, PlanId), Watched>> {
        self.plans.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watches `plan` of `case`, which expires at `not_after` (a plan watched already keeps its
    /// retry schedule).
    pub fn watch(&self, case: &CaseId, plan: &PlanId, not_after: OffsetDateTime) {
        let fresh = Watched {
            not_after,
            due: not_after + MARGIN,
            failures: 0,
        };
        let mut plans = self.lock();
        let w = plans.entry((case.clone(), plan.clone())).or_insert(fresh);
        if w.not_after != not_after {
            *w = fresh;
        }
        drop(plans);
        self.changed.notify_one();
    }

    /// Every open plan of `chain`'s case.
    pub fn watch_chain(&self, case: &CaseId, chain: &CheckedChain) {
        for (plan, not_after) in expiry::open_plans(chain) {
            self.watch(case, &plan, not_after);
        }
    }

    fn forget(&self, case: &CaseId, plan: &PlanId) {
        self.lock().remove(&(case.clone(), plan.clone()));
    }

    /// Looks at the plan again after a failure, later each time.
    fn retry_later(&self, case: &CaseId, plan: &PlanId, now: OffsetDateTime) {
        if let Some(w) = self.lock().get_mut(&(case.clone(), plan.clone())) {
            w.failures += 1;
            let factor = 1i32 << w.failures.saturating_sub(1).min(10);
            w.due = now + (FIRST_BACKOFF * factor).min(MAX_BACKOFF);
        }
    }

    /// The plans due at `now`, earliest first.
    fn due(&self, now: OffsetDateTime) -> Vec<(CaseId, PlanId)> {
        let plans = self.lock();
        let mut due: Vec<_> = plans.iter().filter(|(_, w)| w.due <= now).collect();
        due.sort_by_key(|(_, w)| w.due);
        due.into_iter().map(|(k, _)| k.clone()).collect()
    }

    /// How long to sleep from `now`: until the earliest plan is due, at most `MAX_SLEEP`.
    fn sleep_from(&self, now: OffsetDateTime) -> Duration {
        let next = self.lock().values().map(|w| w.due).min();
        match next {
            Some(due) => Duration::try_from(due - now)
                .unwrap_or(Duration::ZERO)
                .min(MAX_SLEEP),
            None => MAX_SLEEP,
        }
    }

    /// How many plans are watched.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why an expiry was not settled now.
#[derive(Debug, thiserror::Error)]
enum ExpireError {
    /// Worth trying again later: the store, the claim, a collection under way.
    #[error("{0}")]
    Later(String),
    /// The plan cannot be read as a plan: `verify` reports it; it is not watched any more.
    #[error("{0}")]
    Invalid(String),
}

impl From<PlanError> for ExpireError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Store(_) | PlanError::Journal(_) | PlanError::NoJournal(_) => {
                Self::Later(e.to_string())
            }
            // The journal kept changing: the next look settles it.
            PlanError::Proposal { .. } => Self::Later(e.to_string()),
            other => Self::Invalid(format!("{other} ({})", other.code())),
        }
    }
}

/// Watches the open plans until `stopping` turns true (see the module's header); the store is
/// rescanned for plans every `rescan`.
pub async fn watch_expiries(
    daemon: Arc<Daemon>,
    rescan: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    // The start-up scan (`requeue_unfinished`) seeds the plans; the first rescan comes later.
    let mut last_scan = tokio::time::Instant::now();
    loop {
        let wait = daemon
            .expiries
            .sleep_from(OffsetDateTime::now_utc())
            .min(rescan.saturating_sub(last_scan.elapsed()));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // A plan was added: the earliest may have changed.
            _ = daemon.expiries.changed.notified() => continue,
            _ = stopping.changed() => return,
        }
        let scan = last_scan.elapsed() >= rescan;
        if scan {
            last_scan = tokio::time::Instant::now();
        }
        let d = daemon.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if scan {
                d.rescan_plans();
            }
            d.expire_due();
        })
        .await;
    }
}

impl Daemon {
    /// The open plans the daemon watches for expiry.
    pub fn open_plans(&self) -> &OpenPlans {
        &self.expiries
    }

    /// Reads every case's journal for open plans (plans written by another replica or by
    /// `custody plan propose`); a case that cannot be read now is read at the next rescan.
    pub(super) fn rescan_plans(&self) {
        let cases = match self.store.list_cases() {
            Ok(cases) => cases,
            Err(e) => {
                self.metrics.plan_expiry_failed();
                tracing::warn!(error = %e, "cannot list the cases to look for open plans; looking again at the next rescan");
                return;
            }
        };
        for case in cases {
            match journal::check_chain(self.store.as_ref(), &case) {
                Ok(chain) => self.expiries.watch_chain(&case, &chain),
                Err(e) => {
                    self.metrics.plan_expiry_failed();
                    tracing::warn!(case = %case, error = %e, "cannot read the case's journal to look for open plans; looking again at the next rescan");
                }
            }
        }
        self.metrics.open_plans(self.expiries.len());
    }

    /// Settles every plan due now: journaled and notified as expired, found recorded or
    /// rejected already, or looked at again later.
    pub(super) fn expire_due(&self) {
        let now = OffsetDateTime::now_utc();
        for (case, plan) in self.expiries.due(now) {
            match self.expire(&case, &plan, now) {
                Ok(Expiry::Recorded(d)) => {
                    self.expiries.forget(&case, &plan);
                    self.metrics.plan_expired();
                    tracing::info!(case = %case, plan = %plan, not_after = %d.not_after, counted = d.counted, required = d.required, quorum_reached = d.quorum_reached, "plan expired unexecuted");
                    self.notify(Event::PlanExpired {
                        case: case.clone(),
                        plan: plan.clone(),
                        plan_sha256: d.plan_sha256,
                        not_after: d.not_after,
                        required: d.required,
                        counted: d.counted,
                        quorum_reached: d.quorum_reached,
                    });
                }
                Ok(Expiry::AlreadyRecorded | Expiry::Rejected | Expiry::Executed) => {
                    self.expiries.forget(&case, &plan);
                }
                // Another clock: the plan says when, and the watcher waits for it.
                Ok(Expiry::NotYet) => self.expiries.retry_later(&case, &plan, now),
                Err(ExpireError::Later(e)) => {
                    self.metrics.plan_expiry_failed();
                    tracing::warn!(case = %case, plan = %plan, error = %e, "cannot record the plan's expiry now; trying again later");
                    self.expiries.retry_later(&case, &plan, now);
                }
                Err(ExpireError::Invalid(e)) => {
                    self.metrics.plan_expiry_failed();
                    tracing::error!(case = %case, plan = %plan, error = %e, "the expired plan cannot be read as a plan; its expiry is not recorded (custody verify reports it)");
                    self.expiries.forget(&case, &plan);
                }
            }
        }
        self.metrics.open_plans(self.expiries.len());
    }

    /// One plan's expiry under the case's claim, so that it never lands inside a collection and
    /// one replica at a time looks.
    fn expire(
        &self,
        case: &CaseId,
        plan: &PlanId,
        now: OffsetDateTime,
    ) -> Result<Expiry, ExpireError> {
        let held = self.leases.hold(self.store.as_ref(), case, |held| {
            let chain = journal::check_chain(held, case).map_err(PlanError::Store)?;
            if super::plans::collecting(&CaseState::of(&chain)) {
                return Err(ExpireError::Later("the case is being collected".into()));
            }
            let p = crate::plan::load(held, case, plan, Some(self.key.public()))?;
            Ok(expiry::expire(
                held,
                &self.key,
                &p,
                self.roster_for(&p),
                Some(&self.policies.containment),
                now,
            )?)
        });
        // Busy (a collection, a request or another replica holds the case), or the claim's
        // store failed: looked at again later.
        held.unwrap_or_else(|e: LeaseError| Err(ExpireError::Later(e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> OffsetDateTime {
        crate::timefmt::parse(s).unwrap()
    }

    #[test]
    fn the_watcher_sleeps_until_the_earliest_plan_at_most_a_minute_and_backs_off() {
        let open = OpenPlans::default();
        let now = t("2026-12-02T03:00:00Z");
        assert_eq!(open.sleep_from(now), MAX_SLEEP);
        let case = CaseId::new("20261202-030000-00000001").unwrap();
        let (a, b) = (
            PlanId::new("plan-a").unwrap(),
            PlanId::new("plan-b").unwrap(),
        );
        open.watch(&case, &a, t("2026-12-02T03:00:20Z"));
        open.watch(&case, &b, t("2026-12-02T05:00:00Z"));
        assert_eq!(open.sleep_from(now), Duration::from_secs(21));
        assert!(open.due(now).is_empty());
        // Due one second past `not_after`, not at it.
        assert!(open.due(t("2026-12-02T03:00:20Z")).is_empty());
        let later = t("2026-12-02T03:00:21Z");
        assert_eq!(open.due(later), vec![(case.clone(), a.clone())]);
        assert_eq!(open.sleep_from(later), Duration::ZERO);
        // A failure puts it off, longer each time, up to the cap.
        open.retry_later(&case, &a, later);
        assert!(open.due(later).is_empty());
        assert_eq!(open.sleep_from(later), Duration::from_secs(15));
        open.retry_later(&case, &a, later);
        assert_eq!(open.sleep_from(later), Duration::from_secs(30));
        for _ in 0..20 {
            open.retry_later(&case, &a, later);
        }
        assert_eq!(open.sleep_from(later), MAX_SLEEP);
        assert_eq!(
            open.due(later + MAX_BACKOFF),
            vec![(case.clone(), a.clone())]
        );
        // Watching it again (the rescan) keeps the schedule; a new `not_after` resets it.
        open.watch(&case, &a, t("2026-12-02T03:00:20Z"));
        assert!(open.due(later).is_empty());
        open.forget(&case, &a);
        assert_eq!(open.len(), 1);
        assert_eq!(open.due(t("2026-12-02T05:00:01Z")), vec![(case, b)]);
    }
}
