//! Containment: what custody would change on the cluster to stop an attack, built as a plan that
//! nothing executes until a quorum of the security team has signed it. This module owns the
//! changes themselves, computed as pure functions of what was read from the cluster: `netpol`,
//! the NetworkPolicy method of the `block_ips` step (which policies to create or replace so that
//! the offending addresses are refused and nothing else is, and how a block is removed again when
//! it expires or is rolled back). Reading the cluster, dry-runs, the plan document and execution
//! live with their callers.

pub mod cluster;
pub mod netpol;
