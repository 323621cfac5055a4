//! `plan.json`: the plan document, exactly as it is stored and signed. Canonical JSON (RFC 8785)
//! with every field known (`deny_unknown_fields`), no floating-point numbers, times as RFC 3339
//! UTC text. Its SHA-256 is the plan digest that approvals sign.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::approval::{KeyFingerprint, Principal};
use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId, KeyId, PlanId};
use crate::policy::containment::StepKind;

/// The `format` of every plan this version writes.
pub const PLAN_FORMAT: &str = "custody-plan/1";

/// The plan document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDoc {
    pub format: String,
    pub case: CaseId,
    pub plan: PlanId,
    pub kind: PlanKind,
    /// The sealed evidence the plan was built from.
    pub evidence: PinnedEvidence,
    pub cluster: ClusterIdentity,
    pub proposer: ProposerClaim,
    /// RFC 3339 UTC, seconds.
    pub created_at: String,
    /// After this the plan can no longer be executed.
    pub not_after: String,
    pub quorum: QuorumNeed,
    /// The SHA-256 of `policies/containment.yaml` as read.
    pub policy_sha256: Sha256Digest,
    /// The SHA-256 of the roster stored beside the plan (`approvers.allowed_signers`).
    pub roster_sha256: Sha256Digest,
    pub addresses: Addresses,
    /// In the order they run: block, rotate, invalidate (a rollback: its releases).
    pub steps: Vec<Step>,
    /// For a rollback or an expiry: the executed plan whose blocks it lifts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolls_back: Option<RolledBack>,
}

/// The plan a rollback lifts, by id and digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolledBack {
    pub plan: PlanId,
    pub plan_sha256: Sha256Digest,
}

/// A containment plan, the rollback of one, or the expiry of its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    Containment,
    Rollback,
    /// Made and executed by custody itself (the daemon, `custody plan expire`): lifts the
    /// addresses of one executed plan whose expiry, by that plan, passed before this plan's
    /// `created_at`. Pre-approved by the plan that set the expiry; it has no quorum of its own.
    Expiry,
}

impl PlanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanKind::Containment => "containment",
            PlanKind::Rollback => "rollback",
            PlanKind::Expiry => "expiry",
        }
    }
    /// Whether plans of this kind lift another plan's blocks (`rolls_back`).
    pub fn lifts(self) -> bool {
        matches!(self, PlanKind::Rollback | PlanKind::Expiry)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedEvidence {
    pub bundles: Vec<PinnedBundle>,
    /// The journal's last entry when the plan was built.
    pub journal_head: JournalHead,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedBundle {
    pub bundle: BundleId,
    pub archive_sha256: Sha256Digest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalHead {
    pub seq: u64,
    pub sha256: Sha256Digest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterIdentity {
    /// The `kube-system` namespace's uid.
    pub kube_system_uid: String,
    /// The API server URL, for information.
    pub server: String,
}

/// Who proposed the plan. Only a verified signature makes it true (`approval::Proposer`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProposerClaim {
    /// The daemon: `plan.json.sig` by this collector key.
    Collector { key_id: KeyId },
    /// A person: `plan.json.sshsig` by this key, speaking for this principal.
    Person {
        principal: Principal,
        key_fingerprint: KeyFingerprint,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuorumNeed {
    /// The approvals the plan needs: the largest among its steps' kinds.
    pub required: u32,
    /// Each step kind's own need, from the policy.
    pub by_kind: BTreeMap<StepKind, u32>,
    /// `any_reject`: one reject ends the plan.
    pub veto: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addresses {
    /// The addresses the plan blocks, with the evidence for each.
    pub block: Vec<BlockedAddress>,
    /// The suspicious addresses the plan does not block, with the reason.
    pub left_out: Vec<LeftOut>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockedAddress {
    /// Normal form (IPv4-mapped IPv6 is IPv4), canonical text.
    pub address: String,
    /// The detection rules that flagged it.
    pub rules: Vec<String>,
    pub requests: u64,
    pub auth_failures: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// The bundles and pods whose logs show it.
    pub sources: Vec<String>,
    /// The address was taken from `X-Forwarded-For`: its packets come from the proxy.
    pub forwarded: bool,
    /// When its block expires (`ttl` after the plan is created).
    pub expires_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeftOut {
    /// As the evidence wrote it (may be any text: escape it when shown).
    pub address: String,
    pub reason: LeftOutReason,
    /// The reason in words.
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftOutReason {
    /// In the policy's `never_block`.
    NeverBlock,
    /// In the detection allowlist.
    Allowlist,
    /// A trusted proxy of `formats.yaml` (`trusted_proxies`): the analysis attributes a request
    /// to the proxy itself when no `X-Forwarded-For` hop is untrusted, and blocking it would
    /// refuse every client behind it.
    TrustedProxy,
    /// A Node's address.
    Node,
    /// Inside the pod network the cluster publishes: a Node's pod CIDR, a Calico IPPool, a
    /// CiliumNode's pod CIDRs.
    PodCidr,
    /// A pod's address.
    Pod,
    /// A Service ClusterIP.
    Service,
    /// A LoadBalancer (Service or Ingress) ingress address.
    LoadBalancer,
    /// Inside the policy's `block_ips.cluster_networks`.
    ClusterNetwork,
    /// A private or shared address while the pod network is not known: it may be a pod of
    /// another namespace (an ingress controller).
    PodNetworkUnknown,
    /// Beyond `max_addresses` (the most failing are kept).
    OverMax,
    /// Not an IP address.
    NotAnAddress,
    /// An address no remote client has (loopback, unspecified, link-local, multicast,
    /// broadcast): the traffic comes through something inside the pod or on its node (a
    /// sidecar proxy), which a NetworkPolicy cannot refuse.
    NotRemote,
}

/// One step of the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// 1, 2, … in the order they run.
    pub number: u32,
    pub kind: StepKind,
    /// The target's name in `containment.yaml`.
    pub target: String,
    pub namespace: String,
    pub status: StepStatus,
    /// Why the step is refused (`status: refused`); never papered over.
    pub refusals: Vec<String>,
    /// What the approver must know: shown before everything else.
    pub warnings: Vec<String>,
    /// Every object the step read, with its `resourceVersion`.
    pub read: Vec<ObjectRef>,
    /// The writes, in order, each with its dry-run outcome.
    pub changes: Vec<ObjectChange>,
    /// What execution checks before it applies anything.
    pub preconditions: Preconditions,
    /// What is particular to the step's kind.
    pub detail: StepDetail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Will run once the plan has quorum.
    Planned,
    /// Cannot run on this cluster: see `refusals`.
    Refused,
    /// Nothing to change (every address already blocked, say).
    NothingToDo,
}

/// An object read or written.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub resource_version: Option<String>,
}

/// One write: the whole object before and after (a human diff is made from these), or the
/// patch, and what the server-side dry-run said.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectChange {
    pub op: ChangeOp,
    pub object: ObjectRef,
    /// The object as read (None for a create). Secret `data` is never present.
    pub before: Option<serde_json::Value>,
    /// The object as it will be (None for a delete). Secret `data` is never present.
    pub after: Option<serde_json::Value>,
    /// For `patch`: the JSON patch (RFC 6902), `test` ops first.
    pub patch: Option<serde_json::Value>,
    pub dry_run: DryRun,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Create,
    Replace,
    Patch,
    Delete,
    /// An HTTP call through `pods/proxy` (no dry-run exists).
    Call,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Create => "create",
            ChangeOp::Replace => "replace",
            ChangeOp::Patch => "patch",
            ChangeOp::Delete => "delete",
            ChangeOp::Call => "call",
        }
    }
}

/// The server-side dry-run (`dryRun=All`) of one change: defined beside the code that runs it.
pub use crate::containment::cluster::DryRun;

/// What execution checks again before it applies the step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preconditions {
    /// NetworkPolicies of the namespace: name → `resourceVersion`.
    pub network_policies: BTreeMap<String, String>,
    /// The NetworkPolicies selecting any target pod: a new or removed one makes the plan stale.
    pub selecting: Vec<String>,
    /// Deployments: for each, the reference paths (JSON pointers) and the values they hold.
    pub deployment_refs: BTreeMap<String, BTreeMap<String, String>>,
    /// For a block: the policies of other engines that could admit what it refuses
    /// (AdminNetworkPolicies, Calico, Antrea) or baseline ones that deny,
    /// `<kind> [<namespace>/]<name>` → `resourceVersion`. One added, changed or removed makes
    /// the plan stale. Left out when there are none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other_engine_policies: BTreeMap<String, String>,
}

/// What is particular to each kind of step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepDetail {
    BlockIps {
        /// `networkpolicy` or `cilium`.
        method: String,
        /// The addresses of `addresses.block` this step refuses.
        addresses: Vec<String>,
        /// The custody block policy's owners once the step applies: address → owners.
        owners: BTreeMap<String, Vec<crate::containment::netpol::Owner>>,
    },
    /// A rollback's or an expiry's: lifts what the block step `step` of plan `plan` (of the
    /// same case) did — all of it (a rollback), or the addresses whose expiry passed (an
    /// expiry).
    ReleaseIps {
        /// `networkpolicy` (the only method a rollback lifts).
        method: String,
        plan: PlanId,
        plan_sha256: Sha256Digest,
        step: u32,
        /// The plan's addresses no longer refused once the step applies: no other owner holds
        /// them.
        released: Vec<String>,
        /// The plan's addresses that stay refused: another case's or plan's block holds them.
        kept: Vec<String>,
        /// The custody block policy's owners once the step applies: address → owners.
        owners: BTreeMap<String, Vec<crate::containment::netpol::Owner>>,
    },
    RotateSecrets {
        /// The Secret being replaced.
        secret: String,
        /// The new Secret's name is `<secret>-<plan>-<random>`; the random part is chosen and
        /// journaled at execution.
        new_name_prefix: String,
        /// Every key of the new Secret and where its value comes from (never the value).
        keys: BTreeMap<String, KeyPlan>,
        /// Every Deployment repointed, with the references changed.
        deployments: Vec<Repoint>,
    },
    InvalidateSessions {
        call: AdminCall,
        /// `per_pod` or `once`.
        scope: String,
        idempotent: bool,
        timeout_seconds: u64,
        /// The pods as read (the step calls the pods running when it runs).
        pods: Vec<PodState>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyPlan {
    /// `bytes` from a CSPRNG, encoded.
    Generate { bytes: u16, encoding: String },
    /// Given at execution with `--secret-values`.
    Provided,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repoint {
    pub deployment: String,
    /// Each reference: its JSON pointer in the Deployment and the Secret name it holds now.
    pub references: Vec<Reference>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// JSON pointer, e.g. `/spec/template/spec/containers/0/env/2/valueFrom/secretKeyRef/name`.
    pub path: String,
    pub value: String,
    /// The Secret key it reads, when it reads one (`secretKeyRef`).
    pub key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminCall {
    pub method: String,
    pub port: u16,
    pub path: String,
    /// The body with the blocked addresses filled in, if the policy has a template.
    pub body: Option<String>,
    /// The header the token is sent in.
    pub header: String,
    /// Where the token is read at execution: `<secret>/<key>` (never the value).
    pub token_secret: String,
    pub token_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodState {
    pub name: String,
    pub ready: bool,
    pub resource_version: Option<String>,
}
