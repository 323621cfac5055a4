//! `containment.yaml`: what a containment plan may touch and who must approve it — the targets
//! (namespace and pod selector), how addresses are blocked, which Secrets are rotated and which
//! Deployments repointed, the admin call that ends sessions, the quorum per kind of step, and
//! how long a plan stays valid.
//!
//! Targets come **only** from this file, never from an alert's labels: an alert is outside input
//! (anyone who can reach the webhook can write its labels), so letting it name what is blocked or
//! rotated would let it aim containment at anything. The file's SHA-256 (of its exact bytes) is
//! pinned in every plan and checked again at execution.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

use super::PolicyError;
use crate::digest::Sha256Digest;
use crate::duration::Duration;
use crate::net::Cidr;
use crate::yaml::Located;

pub mod names;
pub mod secrets;
pub mod selector;
pub mod sessions;

pub use names::{DnsLabel, DnsSubdomain, HeaderName, SecretKey};
pub use secrets::{Encoding, KeySource, RotateSecret};
pub use selector::{LabelKey, LabelValue, Operator, PodSelector, Requirement};
pub use sessions::{AdminPath, BodyTemplate, HttpMethod, InvalidateSessions, Scope, TokenRef};

/// The containment policy, checked whole when read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainmentPolicy {
    /// The SHA-256 of the file's exact bytes (for the built-in policy, of the shipped text):
    /// what plans pin.
    pub digest: Sha256Digest,
    /// What containment may touch. Empty: nothing is contained.
    pub targets: Vec<Target>,
    /// How the suspicious addresses are blocked on every target; absent: they are not.
    pub block_ips: Option<BlockIps>,
    /// The Secrets rotated, and the Deployments repointed to the new ones.
    pub rotate_secrets: Vec<RotateSecret>,
    /// The gateways' admin calls that end their sessions.
    pub invalidate_sessions: Vec<InvalidateSessions>,
    /// The approvals each kind of step needs.
    pub quorum: Quorum,
    /// How long a plan stays valid, and how it is ended.
    pub plan: PlanPolicy,
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    targets: Vec<Target>,
    #[serde(default)]
    block_ips: Option<BlockIps>,
    #[serde(default)]
    rotate_secrets: Vec<RotateSecret>,
    #[serde(default)]
    invalidate_sessions: Vec<InvalidateSessions>,
    #[serde(default)]
    quorum: Quorum,
    #[serde(default)]
    plan: PlanPolicy,
}

/// A workload containment may touch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The target's name, a DNS-1123 label: steps name it, and the custody block policy is
    /// `custody-block-<name>`.
    pub name: DnsLabel,
    /// The namespace of its pods.
    pub namespace: DnsLabel,
    /// Which pods of the namespace it is (a Kubernetes LabelSelector; never empty).
    pub pod_selector: PodSelector,
}

impl Target {
    /// The name of the one NetworkPolicy (or CiliumNetworkPolicy) custody owns for this target.
    pub fn block_policy_name(&self) -> String {
        format!("custody-block-{}", self.name)
    }
}

/// How addresses are blocked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockIps {
    pub method: BlockMethod,
    /// Addresses and ranges never blocked, whatever the evidence says; the detection policy's
    /// allowlist is always added (see `never_block_with`).
    #[serde(default)]
    pub never_block: Vec<Cidr>,
    /// The cluster's pod and service networks as the operator knows them: never blocked (an
    /// address there may be a pod of another namespace, such as an ingress controller). Needed
    /// where the CNI publishes its pod network neither in Node `spec.podCIDRs` nor in
    /// Calico IPPools or CiliumNodes.
    #[serde(default)]
    pub cluster_networks: Vec<Cidr>,
    /// The addresses of the load balancers in front of the targets that report themselves only
    /// by hostname (an AWS ALB or NLB: their subnets), as the operator knows them: never blocked.
    /// While such a balancer exists and this is empty, no private or IPv6 address is blocked,
    /// since every client behind it arrives from one of the balancer's unknown addresses.
    #[serde(default)]
    pub load_balancer_addresses: Vec<Cidr>,
    /// The most addresses one plan blocks, 1 to 10000; the rest are left out, with the reason.
    #[serde(default = "default_max_addresses", deserialize_with = "max_addresses")]
    pub max_addresses: u32,
    /// How long a block lasts before it expires, 1m to 90d.
    #[serde(default = "default_ttl", deserialize_with = "ttl")]
    pub ttl: Duration,
}

/// How a block is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockMethod {
    /// Kubernetes NetworkPolicies: `except` entries in the policies that admit the address, or
    /// one custody block policy per target.
    Networkpolicy,
    /// One `CiliumNetworkPolicy` per target with `ingressDeny`.
    Cilium,
}

impl BlockIps {
    /// Every range never blocked: the policy's `never_block` and the detection policy's
    /// `allowlist`, which is always included (an address the analysis would never report must
    /// not be blocked either), without repeats.
    pub fn never_block_with(&self, detection_allowlist: &[Cidr]) -> Vec<Cidr> {
        let mut all: Vec<Cidr> = Vec::new();
        for cidr in self.never_block.iter().chain(detection_allowlist) {
            if !all.contains(cidr) {
                all.push(*cidr);
            }
        }
        all
    }

    /// Whether `ip` (normalised first) is in `never_block` or the detection allowlist.
    pub fn is_never_blocked(&self, ip: &IpAddr, detection_allowlist: &[Cidr]) -> bool {
        let ip = crate::net::normalise_ip(*ip);
        self.never_block
            .iter()
            .chain(detection_allowlist)
            .any(|c| c.contains(&ip))
    }
}

const MAX_ADDRESSES: u32 = 10_000;

fn default_max_addresses() -> u32 {
    100
}

fn max_addresses<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let n = i64::deserialize(deserializer)?;
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_ADDRESSES).contains(n))
        .ok_or_else(|| {
            serde::de::Error::custom(format!("{n} is out of range: give 1 to {MAX_ADDRESSES}"))
        })
}

fn duration(text: &str) -> Duration {
    Duration::parse(text).unwrap_or_else(|_| unreachable!("{text} is a duration"))
}

fn default_ttl() -> Duration {
    duration("24h")
}

fn ttl<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    bounded_duration(deserializer, 60, 90 * 86_400, "1m to 90d")
}

/// Reads a duration of `min..=max` seconds; the error gives the range as `range`.
fn bounded_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
    min: u64,
    max: u64,
    range: &str,
) -> Result<Duration, D::Error> {
    let d = Duration::deserialize(deserializer)?;
    if (min..=max).contains(&d.as_secs()) {
        Ok(d)
    } else {
        Err(serde::de::Error::custom(format!(
            "{d} is out of range: give {range}"
        )))
    }
}

/// The kinds of step a plan holds, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    BlockIps,
    RotateSecrets,
    InvalidateSessions,
    /// A rollback's: lifts an executed block, removing only the addresses its plan owns.
    ReleaseIps,
}

impl StepKind {
    /// The name a plan and the journal give the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::BlockIps => "block_ips",
            StepKind::RotateSecrets => "rotate_secrets",
            StepKind::InvalidateSessions => "invalidate_sessions",
            StepKind::ReleaseIps => "release_ips",
        }
    }
}

/// The approvals each kind of step needs, 1 to 20 each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quorum {
    #[serde(default = "default_quorum", deserialize_with = "quorum")]
    pub block_ips: u32,
    #[serde(default = "default_quorum", deserialize_with = "quorum")]
    pub rotate_secrets: u32,
    #[serde(default = "default_quorum", deserialize_with = "quorum")]
    pub invalidate_sessions: u32,
    /// A rollback plan's (`custody plan rollback`): lifting a block reopens the target to the
    /// addresses it refused.
    #[serde(default = "default_quorum", deserialize_with = "quorum")]
    pub rollback: u32,
}

impl Default for Quorum {
    fn default() -> Self {
        Self {
            block_ips: default_quorum(),
            rotate_secrets: default_quorum(),
            invalidate_sessions: default_quorum(),
            rollback: default_quorum(),
        }
    }
}

const MAX_QUORUM: u32 = 20;

fn default_quorum() -> u32 {
    2
}

fn quorum<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let n = i64::deserialize(deserializer)?;
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_QUORUM).contains(n))
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{n} approvals is out of range: give 1 to {MAX_QUORUM}"
            ))
        })
}

impl Quorum {
    /// The approvals a step of `kind` needs.
    pub fn for_kind(&self, kind: StepKind) -> u32 {
        match kind {
            StepKind::BlockIps => self.block_ips,
            StepKind::RotateSecrets => self.rotate_secrets,
            StepKind::InvalidateSessions => self.invalidate_sessions,
            StepKind::ReleaseIps => self.rollback,
        }
    }

    /// The approvals a plan with steps of `kinds` needs: the largest among them. A containment
    /// plan with no steps needs the largest of its kinds, so the answer is never below any
    /// kind's.
    pub fn required_for(&self, kinds: &[StepKind]) -> u32 {
        let all = [
            StepKind::BlockIps,
            StepKind::RotateSecrets,
            StepKind::InvalidateSessions,
        ];
        let kinds = if kinds.is_empty() { &all[..] } else { kinds };
        kinds
            .iter()
            .map(|k| self.for_kind(*k))
            .max()
            .unwrap_or(MAX_QUORUM)
    }
}

/// A plan's lifetime and how approvers end it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanPolicy {
    /// How long after it is proposed a plan may still start, 5m to 7d.
    #[serde(default = "default_not_after", deserialize_with = "not_after")]
    pub not_after: Duration,
    /// How rejections count: `any_reject`, one rejection ends the plan.
    #[serde(default)]
    pub veto: Veto,
    /// Whether the daemon proposes a plan by itself when an alert's case is sealed.
    #[serde(default)]
    pub propose_on_alert: bool,
    /// When the daemon executes an approved plan: when asked (`manual`), or as soon as an
    /// approval brings it to its quorum (`on_quorum`).
    #[serde(default)]
    pub execute: ExecuteWhen,
}

/// When the daemon executes an approved plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecuteWhen {
    /// Only when asked (`plan execute`, or `POST …/execute`).
    #[default]
    Manual,
    /// As soon as quorum is reached, by the daemon that recorded the approval.
    OnQuorum,
}

impl Default for PlanPolicy {
    fn default() -> Self {
        Self {
            not_after: default_not_after(),
            veto: Veto::default(),
            propose_on_alert: false,
            execute: ExecuteWhen::Manual,
        }
    }
}

fn default_not_after() -> Duration {
    duration("2h")
}

fn not_after<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    bounded_duration(deserializer, 5 * 60, 7 * 86_400, "5m to 7d")
}

/// How rejections count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Veto {
    /// One rejection by a counted approver ends the plan.
    #[default]
    AnyReject,
}

impl Default for ContainmentPolicy {
    fn default() -> Self {
        // The shipped file is parsed by a test, so this cannot fail at run time.
        ContainmentPolicy::parse("built-in containment.yaml", super::DEFAULT_CONTAINMENT)
            .expect("the built-in containment policy is valid")
    }
}

impl ContainmentPolicy {
    /// Reads `text`, the file at `path`; its digest is the SHA-256 of `text`'s bytes.
    pub fn parse(path: &str, text: &str) -> Result<Self, PolicyError> {
        let written: Written = super::from_yaml(path, text)?;
        if let Some(problem) = check_references(&written) {
            return Err(PolicyError::ParsePolicy {
                path: path.to_owned(),
                message: problem.message(text),
            });
        }
        Ok(Self {
            digest: Sha256Digest::of(text.as_bytes()),
            targets: written.targets,
            block_ips: written.block_ips,
            rotate_secrets: written.rotate_secrets,
            invalidate_sessions: written.invalidate_sessions,
            quorum: written.quorum,
            plan: written.plan,
        })
    }

    /// The SHA-256 of the policy file's exact bytes.
    pub fn sha256(&self) -> Sha256Digest {
        self.digest
    }

    /// The target named `name`.
    pub fn target(&self, name: &DnsLabel) -> Option<&Target> {
        self.targets.iter().find(|t| &t.name == name)
    }

    /// The kinds of step this policy configures (for targets it names), in the order they run.
    pub fn step_kinds(&self) -> Vec<StepKind> {
        let configured = [
            (
                StepKind::BlockIps,
                self.block_ips.is_some() && !self.targets.is_empty(),
            ),
            (StepKind::RotateSecrets, !self.rotate_secrets.is_empty()),
            (
                StepKind::InvalidateSessions,
                !self.invalidate_sessions.is_empty(),
            ),
        ];
        configured
            .into_iter()
            .filter_map(|(kind, yes)| yes.then_some(kind))
            .collect()
    }
}

/// A check that needs the whole file failed: on the entry `index` of the list `list`.
struct Problem {
    list: &'static str,
    index: usize,
    field: &'static str,
    message: String,
    /// The entry of the same list this one repeats.
    first: Option<usize>,
}

/// The lines the entries of each list start on, read again from a text already read whole (so
/// nothing in it can fail but the YAML itself).
#[derive(Deserialize)]
struct EntryLines {
    #[serde(default)]
    targets: Vec<Located<serde::de::IgnoredAny>>,
    #[serde(default)]
    rotate_secrets: Vec<Located<serde::de::IgnoredAny>>,
    #[serde(default)]
    invalidate_sessions: Vec<Located<serde::de::IgnoredAny>>,
}

impl Problem {
    /// The message, as `list[i].field: message at line N`.
    fn message(&self, text: &str) -> String {
        let lines: Option<EntryLines> = crate::yaml::from_str(text).ok();
        let line = |i: usize| {
            let list = lines.as_ref().map(|l| match self.list {
                "targets" => &l.targets,
                "rotate_secrets" => &l.rotate_secrets,
                _ => &l.invalidate_sessions,
            });
            list.and_then(|l| l.get(i)).map(|e| e.line)
        };
        let mut out = format!(
            "{}[{}].{}: {}",
            self.list, self.index, self.field, self.message
        );
        if let Some(first) = self.first {
            if let Some(l) = line(first) {
                out.push_str(&format!(" (first at line {l})"));
            }
        }
        if let Some(l) = line(self.index) {
            out.push_str(&format!(" at line {l}"));
        }
        out
    }
}

/// The checks that need the whole file: target names are unique, every step names a target,
/// and no Secret is rotated twice.
fn check_references(w: &Written) -> Option<Problem> {
    for (i, t) in w.targets.iter().enumerate() {
        if let Some(first) = w.targets[..i].iter().position(|o| o.name == t.name) {
            return Some(Problem {
                list: "targets",
                index: i,
                field: "name",
                message: format!("{:?} is used twice", t.name.as_str()),
                first: Some(first),
            });
        }
    }
    let namespace = |name: &DnsLabel| {
        w.targets
            .iter()
            .find(|t| &t.name == name)
            .map(|t| &t.namespace)
    };
    let no_target = |list, index, name: &DnsLabel| {
        let names: Vec<&str> = w.targets.iter().map(|t| t.name.as_str()).collect();
        let known = if names.is_empty() {
            "`targets` is empty".to_owned()
        } else {
            format!("targets: {}", names.join(", "))
        };
        Some(Problem {
            list,
            index,
            field: "target",
            message: format!("{:?} names no target ({known})", name.as_str()),
            first: None,
        })
    };
    for (i, r) in w.rotate_secrets.iter().enumerate() {
        let Some(ns) = namespace(&r.target) else {
            return no_target("rotate_secrets", i, &r.target);
        };
        let first = w.rotate_secrets[..i]
            .iter()
            .position(|o| o.secret == r.secret && namespace(&o.target) == Some(ns));
        if first.is_some() {
            return Some(Problem {
                list: "rotate_secrets",
                index: i,
                field: "secret",
                message: format!("Secret {ns}/{} is rotated twice", r.secret),
                first,
            });
        }
    }
    for (i, s) in w.invalidate_sessions.iter().enumerate() {
        if namespace(&s.target).is_none() {
            return no_target("invalidate_sessions", i, &s.target);
        }
    }
    None
}

/// Reads `text` as one entry of a list, so that errors found with the entry as a whole carry
/// its line as they do in the file (a document's top level has none).
#[cfg(test)]
fn parse_entry<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let listed = format!("- {}", text.trim_end().replace('\n', "\n  "));
    crate::yaml::from_str::<Vec<T>>(&listed)
        .map(|mut v| v.remove(0))
        .map_err(|e| {
            let e = e.to_string();
            e.strip_prefix("[0].")
                .or_else(|| e.strip_prefix("[0]: "))
                .unwrap_or(&e)
                .to_owned()
        })
}

#[cfg(test)]
mod tests;
