//! Containment plans: the plan document (`document`, `plan.json`), how plans and their
//! approvals are stored beside the evidence, and the typestate `Plan<S>` by which only a plan
//! that passed the quorum check can be executed.

pub mod document;
pub mod planner;
pub mod show;

pub use document::{PlanDoc, PLAN_FORMAT};
