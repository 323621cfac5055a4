//! Integration tests: the `custody` binary and library used as a user, an auditor and an attacker
//! would. One test binary; the modules are:
//!
//! - `util`: running the binary in a sandboxed home, locating the standard tools.
//! - `layout`: the source tree's shape: no module cycles, no file over 800 lines.
//! - `compat`: a store written by an earlier build (`tests/data/store-0.1`) keeps its verdict.
//! - `cli`: collect/analyze/verify/keygen/policy end to end, `--json` contracts, exit codes,
//!   bad input.
//! - `interop`: the archives open and verify with sha256sum, openssl, zstd, tar and bagit.py.
//! - `tamper`: every kind of tampering is caught by `verify` with a message naming it.
//! - `determinism`: the same inputs sealed at the same time give byte-identical archives.
//! - `formats`: every log format gives the runbook pipeline's answer; proxies; detection rules.
//! - `integrity_collect`: incomplete or changed evidence is sealed, recorded and reported, never
//!   passed off as whole; endless inputs, signals, dead runs, the analysis's memory budget.
//! - `integrity_store`: the S3 spool and uploads: a spooled case changed after sealing is refused
//!   before any PUT, one spool for two endpoints, multipart locks read back, large archives recorded.
//! - `shipped`: every shipped policy and configuration (files, docs' examples, deploy/) parses;
//!   a bad configuration is refused naming its file, line and field.
//! - `daemon_recovery`: the daemon and transient faults: a failed case collected again when its
//!   alert is resent, a short API outage ridden out, a transient S3 fault retried, nothing left
//!   staged by a failed collection.
//! - `server`: the daemon's HTTP side under hostile clients: bodies not read before the token,
//!   declared lengths over the limit, slow headers and bodies, the connection cap, plain HTTP off
//!   loopback.
//! - `daemon_replicas`: replicas sharing a store collect a case one at a time (the case's claim):
//!   one started mid-collection waits, one restarted after `kill -9` takes its case back at once.
//! - `daemon_plans`: the daemon's plans: an alert's case sealed, a plan proposed by the daemon,
//!   the notification received, approvals sent with `approve --server`, quorum reported; what
//!   the plan endpoints refuse.
//! - `daemon_execute`: containment end to end through the daemon — a real Alertmanager, the
//!   case sealed, the plan proposed and approved with real `ssh-keygen` keys, executed on
//!   quorum, the policies' union, the Secret and the admin calls checked, the actions bundle
//!   verified with the standard tools; a daemon killed mid-execution resuming it on restart.
//! - `daemon_expiry`: plans past `not_after` journaled `plan_expired` and notified once by one of
//!   two replicas; a rejected plan not announced; `verify` reports forged expiries.
//! - `daemon_spool`: the daemon on S3 seals into its local spool: a case sealed while S3 is
//!   down is kept, whole, and uploaded when S3 answers (or at the next start), never collected twice.
//! - `approval`: the roster and SSHSIG against `ssh-keygen -Y verify` / `-Y find-principals` as
//!   the reference; `ssh-keygen -Y verify` accepts every statement custody signs.
//! - `approval_quorum`: the quorum matrix, with real `ssh-keygen` keys and signatures.
//! - `integrity_verify`: key ids against keys, tar headers custody never writes, links in the
//!   store, terminal escapes in what is printed.
//! - `cases`: `custody cases`, `cases show`, `cases report` on collected stores (local and S3):
//!   counts against the journal, `--json` fields, escaping, the report only out of a bundle that
//!   verifies, byte for byte.
//! - `plan_propose`: `plan propose` and `plan show` against the fake API server (reads and dry-runs
//!   over real HTTP), approvals through `custody approve`, and the refusals (no bundle, bad evidence,
//!   a cluster that cannot be read whole).
//! - `plan_rollback`: `plan rollback` over the fake API server: a rollback plan approved and
//!   executed lifts only its plan's block (another case's shared addresses stay, a hand-added
//!   entry stays, the custody block policy is deleted once no owner is left, a rewritten policy
//!   gets its rules back); a rollback executed twice sends nothing.
//! - `plan_execute`: `plan execute` end to end over the fake API server: applied as approved,
//!   the actions bundle checked with the standard tools, a second run sending nothing; no
//!   quorum and a stale plan writing nothing; a Secret create with an unknown outcome resumed.
//! - `plans`: plans and approvals in a store: proposed by the collector key or an SSH key,
//!   approved through `custody approve`, `plan status`, `verify --approvers`, and tampering.
//! - `planner_reads`: what the containment planner reads from the cluster (whole lists, every
//!   kind, discovery with and without Cilium, the server's clock), its dry-runs judged like the
//!   API server, and its Role and ClusterRole checked against every request.
//! - `fake_kube_exec`: the fake API server against what containment's execution sends: Secrets
//!   (base64, `stringData`, `immutable`, reads refused), a failed JSON patch `test` answered as
//!   the API server answers it, Deployments' generation and rollout status (lagging, paused,
//!   stalled), `pods/proxy` calls recorded without `Authorization`, and how proxy calls fail.
//! - `signed_journal`: every journal entry signed by the collector key; a signature removed or
//!   changed, or all of a sealed case's removed, is caught.

// Test code unwraps freely: a panic here is a failing test, not a crash on outside input.
#![allow(clippy::unwrap_used)]

mod approval;
mod approval_quorum;
mod cases;
mod cli;
mod compat;
mod daemon;
mod daemon_execute;
mod daemon_expiry;
mod daemon_plans;
mod daemon_propose;
mod daemon_recovery;
mod daemon_replicas;
mod daemon_spool;
mod determinism;
mod fake_kube;
mod fake_kube_exec;
mod formats;
mod integrity_collect;
mod integrity_store;
mod integrity_verify;
mod interop;
mod k8s;
mod layout;
mod plan_execute;
mod plan_expire;
mod plan_propose;
mod plan_rollback;
mod planner_reads;
mod plans;
mod s3;
mod server;
mod shipped;
mod signed_journal;
mod tamper;
mod util;
