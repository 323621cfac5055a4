//! A case's state, folded from its checked journal: whether it is collecting, sealed or failed,
//! the bundles sealed and the failures each recorded, the findings, whether the alert was
//! resolved, and whether a collection is unfinished and with what parameters. One pure function
//! over the entries, so the daemon's views and `verify` read the same answer.

use super::entry::{
    BundleSealed, CollectionFailed, CollectionInterrupted, Details, Entry, EntryKind, Findings,
    TriggerDetails,
};
use super::Trigger;
use crate::source::Failure;

/// Where a case's collection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Opened; nothing collected yet.
    Open,
    /// A collection is under way (or was restarted).
    Collecting,
    /// A bundle is sealed; its findings are not journaled yet.
    Storing,
    /// Sealed, with its findings journaled.
    Sealed,
    /// The collection failed and sealed nothing.
    Failed,
    /// The collection was interrupted (a signal, or its process died) and sealed nothing.
    Interrupted,
}

impl Status {
    /// The state the daemon's case API names: `collecting`, `storing`, `sealed` or `failed`.
    pub fn api_name(self) -> &'static str {
        match self {
            Status::Open | Status::Collecting => "collecting",
            Status::Storing => "storing",
            Status::Sealed => "sealed",
            Status::Failed | Status::Interrupted => "failed",
        }
    }
}

/// What entry 1 recorded of the case's opening.
#[derive(Clone, Debug, PartialEq)]
pub struct Opened {
    pub at: String,
    pub trigger: Trigger,
    pub trigger_details: Option<TriggerDetails>,
}

/// How one collection of the case ended, in journal order.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A bundle sealed at entry `seq`, with the sources its collection could not capture whole
    /// (their entries' sequence numbers and records).
    Sealed {
        seq: u64,
        at: String,
        bundle: BundleSealed,
        failures: Vec<(u64, Failure)>,
    },
    Failed {
        seq: u64,
        details: CollectionFailed,
    },
    Interrupted {
        seq: u64,
        details: CollectionInterrupted,
    },
}

/// See the module comment.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseState {
    pub status: Status,
    /// Entry 1, if it opens the case.
    pub opened: Option<Opened>,
    /// Every collection's end, in journal order.
    pub outcomes: Vec<Outcome>,
    /// The last findings journaled.
    pub findings: Option<Findings>,
    pub alert_resolved: bool,
    /// How many entries were folded.
    pub entries: usize,
    /// The last collection step, if it is not an end (sealed, failed, interrupted).
    pub open_step: Option<(u64, EntryKind)>,
    /// Whether an `objects_stored` entry follows the last `bundle_sealed`: on S3, the last
    /// bundle's objects are all stored and their versions recorded.
    pub stored_recorded: bool,
    /// The last of findings, failure, interruption or restart.
    last_marker: Option<EntryKind>,
    /// Failures journaled since the current collection began.
    pending: Vec<(u64, Failure)>,
}

impl CaseState {
    /// Folds a case's entries, in sequence order.
    pub fn fold<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Self {
        let mut state = CaseState {
            status: Status::Open,
            opened: None,
            outcomes: Vec::new(),
            findings: None,
            alert_resolved: false,
            entries: 0,
            open_step: None,
            stored_recorded: false,
            last_marker: None,
            pending: Vec::new(),
        };
        for entry in entries {
            state.step(entry);
        }
        state
    }

    /// `fold` over a checked chain's entries.
    pub fn of(chain: &super::CheckedChain) -> Self {
        Self::fold(chain.entries.iter().map(|(e, _)| e))
    }

    fn step(&mut self, entry: &Entry) {
        self.entries += 1;
        let seq = entry.seq;
        let kind = entry.kind();
        match &entry.details {
            Details::CaseOpened(d) => {
                if self.entries == 1 {
                    self.opened = Some(Opened {
                        at: entry.at.clone(),
                        trigger: d.trigger.clone(),
                        trigger_details: d.trigger_details.clone(),
                    });
                }
                self.open_step = Some((seq, kind));
            }
            Details::SourceCaptured(_) => {
                if self.status == Status::Open {
                    self.status = Status::Collecting;
                }
                self.open_step = Some((seq, kind));
            }
            Details::SourceFailed(f) => {
                if self.status == Status::Open {
                    self.status = Status::Collecting;
                }
                self.pending.push((seq, f.clone()));
                self.open_step = Some((seq, kind));
            }
            Details::CollectionRestarted(_) => {
                // The interrupted attempt's failures are superseded by the new attempt.
                self.pending.clear();
                if self.status != Status::Sealed {
                    self.status = Status::Collecting;
                }
                self.open_step = Some((seq, kind));
                self.last_marker = Some(kind);
            }
            Details::BundleSealed(b) => {
                self.status = Status::Storing;
                self.stored_recorded = false;
                self.outcomes.push(Outcome::Sealed {
                    seq,
                    at: entry.at.clone(),
                    bundle: b.clone(),
                    failures: std::mem::take(&mut self.pending),
                });
                self.open_step = None;
            }
            Details::CollectionFailed(d) => {
                self.status = Status::Failed;
                self.pending.clear();
                self.outcomes.push(Outcome::Failed {
                    seq,
                    details: d.clone(),
                });
                self.open_step = None;
                self.last_marker = Some(kind);
            }
            Details::CollectionInterrupted(d) => {
                self.status = Status::Interrupted;
                self.pending.clear();
                self.outcomes.push(Outcome::Interrupted {
                    seq,
                    details: d.clone(),
                });
                self.open_step = None;
                self.last_marker = Some(kind);
            }
            Details::Findings(f) => {
                self.findings = Some(f.clone());
                self.status = Status::Sealed;
                self.last_marker = Some(kind);
            }
            Details::AlertResolved(_) => self.alert_resolved = true,
            Details::ObjectsStored(_) => self.stored_recorded = true,
            // Plans and approvals concern the case's containment, not its collection.
            Details::ApprovalRecorded(_)
            | Details::PlanProposed(_)
            | Details::PlanExpired(_)
            | Details::PlanStale(_)
            | Details::ExecutionStarted(_)
            | Details::StepStarted(_)
            | Details::StepWrite(_)
            | Details::StepDone(_)
            | Details::StepFailed(_)
            | Details::ActionsSealed(_) => {}
        }
    }

    /// The bundles sealed, with the entry that records each and when.
    pub fn bundles(&self) -> impl Iterator<Item = (u64, &str, &BundleSealed)> {
        self.outcomes.iter().filter_map(|o| match o {
            Outcome::Sealed {
                seq, at, bundle, ..
            } => Some((*seq, at.as_str(), bundle)),
            _ => None,
        })
    }

    /// Whether any collection of the case ended (sealed, failed or interrupted).
    pub fn ended(&self) -> bool {
        !self.outcomes.is_empty()
    }

    /// The daemon's case whose collection never ended: opened by an alert or the API, and no
    /// bundle sealed nor failure nor interruption recorded. Its opening says what to collect.
    pub fn unfinished(&self) -> Option<&Opened> {
        let opened = self.opened.as_ref()?;
        let daemon = matches!(opened.trigger.kind.as_str(), "alert" | "api");
        (daemon && !self.ended()).then_some(opened)
    }

    /// Whether the collection has ended (sealed with its findings, failed or interrupted):
    /// entries can then be added without getting in the way of a seal that pins the head.
    pub fn collection_over(&self) -> bool {
        self.last_marker
            .is_some_and(|k| k != EntryKind::CollectionRestarted)
    }

    /// Whether the last collection began and has not ended (its process is running or died).
    pub fn collection_unfinished(&self) -> bool {
        self.open_step.is_some()
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
