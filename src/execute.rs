//! Carrying out an approved plan (CONTAINMENT.md, "Execution"): only a `Plan<Approved>` runs,
//! on a cluster that has not changed since the plan was made (`plan::stale`), in runbook order,
//! each step journaled before and after. This module holds what execution is built from; the
//! values of the new Secret (`secret_values`) come first, because nothing about them may leak,
//! then the admin call (`admin_call`), the check that a plan is not stale (`preflight`), the
//! object writes (`write`) and the new Secret's create (`secret_create`).

pub mod actions;
pub mod admin_call;
pub mod apply;
pub mod expire;
pub mod owners;
pub mod preflight;
pub mod rollout;
pub mod run;
pub mod secret_create;
pub mod secret_values;
mod sessions;
pub mod write;
