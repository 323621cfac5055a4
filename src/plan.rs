//! Containment plans: the plan document (`document`, `plan.json`), how plans and their
//! approvals are stored beside the evidence (`store`, `approvals`), where a plan stands
//! (`status`), when one expires unexecuted (`expiry`), and the typestate `Plan<S>` (`state`) by
//! which only a plan that passed the quorum check can be executed.

pub mod approvals;
pub mod block_expiry;
pub mod document;
pub mod expiry;
pub mod planner;
pub mod show;
pub mod stale;
pub mod state;
pub mod status;
pub mod store;

pub use approvals::{record_approval, ApprovalError, ApprovalRequest, Recorded};
pub use document::{PlanDoc, PLAN_FORMAT};
pub use state::{Approved, Plan, Proposed};
pub use status::{status, status_in, ApprovalView, PlanStatus};
pub use store::{list, load, propose, PlanError, ProposalSigner, StoredPlan};
