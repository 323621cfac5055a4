//! The journal's entries, typed: one struct per kind of step, tagged on disk by `kind` with the
//! struct under `details`. The stored bytes are those the earlier untyped writer produced: its
//! details were JSON objects with their keys sorted, so every struct here declares its fields in
//! alphabetical order, and an absent option is `null` or left out exactly as it was written.

use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::approval::ApprovalRecorded;
use crate::case::Trigger;
use crate::digest::Sha256Digest;
use crate::id::{BundleId, KeyId, PlanId};
use crate::source::Failure;

/// What a journal entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The case was opened; details: the trigger and who asked.
    CaseOpened,
    /// One source was captured whole; details: its name, bag path, bytes and SHA-256.
    SourceCaptured,
    /// A source could not be captured; details: what and why.
    SourceFailed,
    /// A bundle was sealed and stored; details: archive and seal digests and URIs.
    BundleSealed,
    /// The case's objects were uploaded to S3; details: `objects`, each with its URI, version
    /// id, SHA-256, size, lock mode, retain-until (Unix seconds) and legal hold.
    ObjectsStored,
    /// A bundle's findings, for the case API: suspicious clients and counts.
    Findings,
    /// The collection could not be done; details: the error. Nothing was sealed by it.
    CollectionFailed,
    /// A collection interrupted (the daemon stopped or died) is done again from the start;
    /// source entries before this one belong to the interrupted attempt.
    CollectionRestarted,
    /// The alert that opened the case was resolved.
    AlertResolved,
    /// The operator stopped the collection (SIGINT or SIGTERM); details: the signal and the
    /// source being read. Nothing was sealed by it; what was staged was removed.
    CollectionInterrupted,
    /// An approval of a containment plan was stored; details: the plan, the approval's number,
    /// principal, key fingerprint, decision and the statement's SHA-256.
    ApprovalRecorded,
    /// A containment plan was stored; details: the plan, its digest, who proposed it, the
    /// approvals it needs and its `not_after`.
    PlanProposed,
    /// A plan passed its `not_after` without being executed (the daemon noticed); details: the
    /// plan, its digest and `not_after`, the approvals it needed and counted, and whether it had
    /// reached its quorum.
    PlanExpired,
    /// An approved plan was refused before anything was applied: the cluster changed since it
    /// was made; details: the plan, its digest, and each stale step with what changed.
    PlanStale,
    /// An approved plan's execution began (or resumed) after its quorum, clock, policy,
    /// evidence and preconditions were checked and every step that can be was dry-run; details:
    /// the plan, its digest, the approvals that counted, the API server's `Date`, the steps an
    /// earlier run finished.
    ExecutionStarted,
    /// A step is about to be applied; details: its number, kind, target and intended state.
    StepStarted,
    /// One write or call of a step, journaled before it is sent (`sending`) and after
    /// (`answered`, with its outcome): a `sending` with no `answered` has an unknown outcome.
    StepWrite,
    /// A step was applied; details: its number and what it did (Secret values as SHA-256 only).
    StepDone,
    /// A step failed; details: its number, the error, and what it applied before failing.
    StepFailed,
    /// The execution ended (done, failed or stale) and its `actions` bundle was sealed and
    /// stored; details: the plan, the outcome, and the archive and seal, as `bundle_sealed`.
    ActionsSealed,
}

/// What one step recorded: the `details` of an entry, by its `kind`.
#[derive(Clone, Debug, PartialEq)]
pub enum Details {
    CaseOpened(CaseOpened),
    SourceCaptured(SourceCaptured),
    SourceFailed(Failure),
    BundleSealed(BundleSealed),
    ObjectsStored(ObjectsStored),
    Findings(Findings),
    CollectionFailed(CollectionFailed),
    CollectionRestarted(CollectionRestarted),
    AlertResolved(AlertResolved),
    CollectionInterrupted(CollectionInterrupted),
    ApprovalRecorded(ApprovalRecorded),
    PlanProposed(PlanProposed),
    PlanExpired(PlanExpired),
    PlanStale(PlanStale),
    ExecutionStarted(ExecutionStarted),
    StepStarted(StepStarted),
    StepWrite(StepWrite),
    StepDone(StepDone),
    StepFailed(StepFailed),
    ActionsSealed(ActionsSealed),
}

/// `case_opened`: entry 1 of every journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseOpened {
    /// The SHA-256 of `case.json` as it was written.
    pub case_header_sha256: Sha256Digest,
    pub trigger: Trigger,
    /// What the daemon needs to collect the case again after a restart (absent from the CLI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_details: Option<TriggerDetails>,
}

/// The daemon's record of what opened a case and what it collects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerDetails {
    /// The alert as Alertmanager sent it (an alert-triggered case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<serde_json::Value>,
    /// The alert episode the case belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The daemon replica that wrote this first entry. Two replicas finishing one opening at
    /// once thereby write different bytes, so exactly one of them finds its entry stored and
    /// collects the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// What the collection reads from the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<CollectionTarget>,
}

/// The Kubernetes workload a daemon collection reads; one of `deployment` and `selector`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionTarget {
    pub container: Option<String>,
    pub deployment: Option<String>,
    pub namespace: String,
    pub selector: Option<String>,
    pub since_seconds: Option<u64>,
    pub since_time: Option<String>,
}

/// `source_captured`: one stream read into the bag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCaptured {
    pub bag_path: String,
    pub bytes: u64,
    pub sha256: Sha256Digest,
    /// SHA-512 in hex, as in the bag's `manifest-sha512.txt`.
    pub sha512: String,
    /// How the user named the source (a path, `-`, a pod's log).
    pub source: String,
}

/// `bundle_sealed`: the archive and seal stored, and the key that signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleSealed {
    pub archive: SealedArchiveRef,
    pub bundle_id: BundleId,
    pub key_id: KeyId,
    pub seal: SealRef,
}

/// Where the sealed archive was stored, and its digest and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedArchiveRef {
    pub sha256: Sha256Digest,
    pub size: u64,
    pub uri: String,
    pub version_id: Option<String>,
}

/// Where the seal record was stored, and its digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealRef {
    pub sha256: Sha256Digest,
    pub uri: String,
    pub version_id: Option<String>,
}

/// `objects_stored`: the receipt of every object of the case in S3.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectsStored {
    pub objects: Vec<ObjectReceipt>,
}

/// One object's receipt, as S3 answered its upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectReceipt {
    pub legal_hold: bool,
    pub lock_mode: String,
    /// Unix seconds.
    pub retain_until: i64,
    /// The checksum S3 keeps (see `store::s3::PutReceipt`).
    pub s3_checksum: String,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub uri: String,
    pub version_id: Option<String>,
}

impl From<&crate::store::s3::PutReceipt> for ObjectReceipt {
    fn from(r: &crate::store::s3::PutReceipt) -> Self {
        Self {
            legal_hold: r.legal_hold,
            lock_mode: r.lock_mode.clone(),
            retain_until: r.retain_until,
            s3_checksum: r.s3_checksum.clone(),
            sha256: r.sha256,
            size: r.size,
            uri: r.uri.clone(),
            version_id: r.version_id.clone(),
        }
    }
}

impl From<ObjectReceipt> for crate::store::s3::PutReceipt {
    fn from(r: ObjectReceipt) -> Self {
        Self {
            uri: r.uri,
            version_id: r.version_id,
            sha256: r.sha256,
            s3_checksum: r.s3_checksum,
            size: r.size,
            lock_mode: r.lock_mode,
            retain_until: r.retain_until,
            legal_hold: r.legal_hold,
        }
    }
}

/// `findings`: what the daemon's analysis of a sealed bundle found, for the case API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// Authentication failures by status class, as in the summary.
    pub auth_failures: std::collections::BTreeMap<String, u64>,
    pub bundle_id: BundleId,
    /// Whether nothing is known to be missing from the bundle.
    pub complete: bool,
    pub failures: Vec<Failure>,
    pub lines: u64,
    pub suspicious: Vec<SuspiciousClient>,
}

/// A client the detection rules flagged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspiciousClient {
    pub auth_failures: u64,
    pub ip: String,
    /// The pods whose logs saw it fail.
    pub pods: Vec<String>,
    pub rule: String,
}

/// `collection_failed`: nothing was sealed by this collection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionFailed {
    pub error: String,
}

/// `collection_restarted`: the daemon collects the case again from the start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionRestarted {
    pub reason: String,
}

/// `alert_resolved`: the record the daemon kept of the resolve.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertResolved {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// `collection_interrupted`: stopped by a signal, or found dead by the next collection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionInterrupted {
    /// The bundle the dead collection was building (found by the next collection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<BundleId>,
    pub error: String,
    /// The dead collection's process id (found by the next collection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `SIGINT` or `SIGTERM`; `null` when the process died without one.
    pub signal: Option<String>,
}

/// `plan_proposed`: the plan `plans/<plan>/plan.json` with these bytes was stored, signed by its
/// proposer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanProposed {
    /// RFC 3339 UTC, as in the plan.
    pub not_after: String,
    pub plan: PlanId,
    /// The SHA-256 of `plan.json`: the plan digest.
    pub plan_sha256: Sha256Digest,
    pub proposer: ProposedBy,
    /// The approvals the plan needs.
    pub required: u32,
    /// For a rollback or an expiry plan: what it is, and the plan whose blocks it lifts
    /// (absent for a containment plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifts: Option<Lifts>,
}

/// What a rollback or an expiry plan lifts: its kind and the plan whose blocks it lifts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifts {
    pub kind: LiftKind,
    pub plan: PlanId,
}

/// The kind of a plan that lifts another's blocks (as the plan document names it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiftKind {
    Rollback,
    Expiry,
}

impl LiftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LiftKind::Rollback => "rollback",
            LiftKind::Expiry => "expiry",
        }
    }
}

/// `plan_expired`: plan `plan` with digest `plan_sha256` passed its `not_after` unexecuted. The
/// quorum is as it stood at `not_after`, judged with the roster in force of the daemon that
/// noticed (the plan's own roster without one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanExpired {
    /// The approvals that counted.
    pub counted: u32,
    /// RFC 3339 UTC, as in the plan.
    pub not_after: String,
    pub plan: PlanId,
    /// The SHA-256 of `plan.json`: the plan digest.
    pub plan_sha256: Sha256Digest,
    /// Whether the plan had reached its quorum (it was approved, and not executed in time).
    pub quorum_reached: bool,
    /// The approvals the plan needed.
    pub required: u32,
}

/// `plan_stale`: plan `plan` with digest `plan_sha256` was not executed: made again on the
/// cluster as it is, these steps would not run as approved. Nothing was applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStale {
    pub plan: PlanId,
    pub plan_sha256: Sha256Digest,
    pub steps: Vec<StaleStepRecord>,
}

/// One stale step of a `plan_stale` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaleStepRecord {
    /// Each thing that changed, one line a person can act on.
    pub changes: Vec<String>,
    /// `block_ips`, `rotate_secrets` or `invalidate_sessions`.
    pub kind: crate::policy::containment::StepKind,
    /// The step's number in the plan.
    pub number: u32,
    /// The target's name in `containment.yaml`.
    pub target: String,
}

/// `execution_started`: plan `plan` (digest `plan_sha256`) had quorum when its execution began:
/// these approvals counted, by the roster pinned and the roster in force, at `api_server_date`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionStarted {
    /// The `approval_recorded` entries that counted towards the quorum.
    pub approvals: Vec<CountedApproval>,
    /// The API server's `Date` when the quorum and the clock were checked (RFC 3339 UTC).
    pub api_server_date: String,
    /// The steps an earlier execution of this plan finished, by number (a resumed run).
    pub done_before: Vec<u32>,
    pub plan: PlanId,
    pub plan_sha256: Sha256Digest,
    /// The approvals the plan needed.
    pub required: u32,
}

/// One approval that counted, as the journal recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountedApproval {
    /// The approval's number in the plan (`approvals/<n>.json`).
    pub approval: u64,
    pub key_fingerprint: crate::approval::KeyFingerprint,
    pub principal: crate::approval::Principal,
}

/// `step_started`: step `number` of plan `plan` is about to be applied, to reach `intended`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepStarted {
    /// What the step will leave behind, for a resumed run to recognise (never a Secret value):
    /// for a block, each object and the SHA-256 of its intended `spec`; for a rotation, the new
    /// Secret's name and each Deployment reference it repoints; for an invalidation, the pods
    /// to call.
    pub intended: Vec<Intended>,
    pub kind: crate::policy::containment::StepKind,
    pub number: u32,
    pub plan: PlanId,
    pub plan_sha256: Sha256Digest,
    pub target: String,
}

/// One object's intended state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intended {
    /// `<Kind> <namespace>/<name>`.
    pub object: String,
    /// For a NetworkPolicy or CiliumNetworkPolicy: the SHA-256 of its intended `spec` (RFC
    /// 8785); for a Deployment: the new Secret's name at each reference path, as
    /// `<path>=<name>`; for a pod: `call`; for the new Secret: `create`.
    pub state: String,
}

/// Whether a write is about to be sent or was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WritePhase {
    Sending,
    Answered,
}

/// `step_write`: one write (or admin call) of step `number`, before it is sent and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepWrite {
    /// The SHA-256 of the answer's exact bytes (an admin call's, a write's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_sha256: Option<Sha256Digest>,
    /// The API server's or the endpoint's message (escaped; withheld when it repeats a value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub number: u32,
    /// `<Kind> <namespace>/<name>`.
    pub object: String,
    /// `create`, `replace`, `patch`, `delete` or `call`.
    pub op: String,
    /// How it ended (`answered`): `applied`, `conflict`, `refused`, `not_sent`, `unknown`,
    /// `name_taken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    pub phase: WritePhase,
    pub plan: PlanId,
    pub plan_sha256: Sha256Digest,
    /// The object's `resourceVersion` after the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// The HTTP status answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// A created Secret's values, by key: their SHA-256 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_sha256: Option<std::collections::BTreeMap<String, Sha256Digest>>,
}

/// `step_done`: step `number` of plan `plan` was applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDone {
    pub kind: crate::policy::containment::StepKind,
    pub number: u32,
    pub plan: PlanId,
    pub plan_sha256: Sha256Digest,
    /// What the step did: for a block, the addresses with their owners and expiry and each
    /// object's `resourceVersion`; for a rotation, the new Secret, each value's SHA-256 and the
    /// Deployments rolled out; for an invalidation, each pod's status and answer SHA-256.
    pub result: serde_json::Value,
    /// What the operator must know (a pod not Ready whose call failed, say).
    pub warnings: Vec<String>,
}

/// `step_failed`: step `number` of plan `plan` failed; what it applied before failing is listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepFailed {
    /// The writes that were applied before the failure, `<op> <Kind> <namespace>/<name>`.
    pub applied: Vec<String>,
    pub error: String,
    pub kind: crate::policy::containment::StepKind,
    pub number: u32,
    pub plan: PlanId,
    pub plan_sha256: Sha256Digest,
}

/// How an execution ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionOutcome {
    /// Every planned step was applied.
    Done,
    /// A step failed: the steps after it were not applied.
    Failed,
}

/// `actions_sealed`: the `actions` bundle of an execution of plan `plan` was sealed and stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsSealed {
    pub archive: SealedArchiveRef,
    pub bundle_id: BundleId,
    pub key_id: KeyId,
    pub outcome: ExecutionOutcome,
    pub plan: PlanId,
    pub plan_sha256: Sha256Digest,
    pub seal: SealRef,
}

impl ActionsSealed {
    /// The sealing, as a `bundle_sealed` entry records it.
    pub fn sealed(&self) -> BundleSealed {
        BundleSealed {
            archive: self.archive.clone(),
            bundle_id: self.bundle_id.clone(),
            key_id: self.key_id.clone(),
            seal: self.seal.clone(),
        }
    }
}

/// Who signed a proposal, as the plan names them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProposedBy {
    /// The collector key (`plan.json.sig`).
    Collector { key_id: KeyId },
    /// A person's SSH key (`plan.json.sshsig`).
    Person {
        key_fingerprint: crate::approval::KeyFingerprint,
        principal: crate::approval::Principal,
    },
}

impl Details {
    pub fn kind(&self) -> EntryKind {
        match self {
            Details::CaseOpened(_) => EntryKind::CaseOpened,
            Details::SourceCaptured(_) => EntryKind::SourceCaptured,
            Details::SourceFailed(_) => EntryKind::SourceFailed,
            Details::BundleSealed(_) => EntryKind::BundleSealed,
            Details::ObjectsStored(_) => EntryKind::ObjectsStored,
            Details::Findings(_) => EntryKind::Findings,
            Details::CollectionFailed(_) => EntryKind::CollectionFailed,
            Details::CollectionRestarted(_) => EntryKind::CollectionRestarted,
            Details::AlertResolved(_) => EntryKind::AlertResolved,
            Details::CollectionInterrupted(_) => EntryKind::CollectionInterrupted,
            Details::ApprovalRecorded(_) => EntryKind::ApprovalRecorded,
            Details::PlanProposed(_) => EntryKind::PlanProposed,
            Details::PlanExpired(_) => EntryKind::PlanExpired,
            Details::PlanStale(_) => EntryKind::PlanStale,
            Details::ExecutionStarted(_) => EntryKind::ExecutionStarted,
            Details::StepStarted(_) => EntryKind::StepStarted,
            Details::StepWrite(_) => EntryKind::StepWrite,
            Details::StepDone(_) => EntryKind::StepDone,
            Details::StepFailed(_) => EntryKind::StepFailed,
            Details::ActionsSealed(_) => EntryKind::ActionsSealed,
        }
    }

    /// The details of a `kind` entry, decoded from their JSON.
    pub fn from_json(kind: EntryKind, value: serde_json::Value) -> serde_json::Result<Self> {
        use serde_json::from_value as v;
        Ok(match kind {
            EntryKind::CaseOpened => Details::CaseOpened(v(value)?),
            EntryKind::SourceCaptured => Details::SourceCaptured(v(value)?),
            EntryKind::SourceFailed => Details::SourceFailed(v(value)?),
            EntryKind::BundleSealed => Details::BundleSealed(v(value)?),
            EntryKind::ObjectsStored => Details::ObjectsStored(v(value)?),
            EntryKind::Findings => Details::Findings(v(value)?),
            EntryKind::CollectionFailed => Details::CollectionFailed(v(value)?),
            EntryKind::CollectionRestarted => Details::CollectionRestarted(v(value)?),
            EntryKind::AlertResolved => Details::AlertResolved(v(value)?),
            EntryKind::CollectionInterrupted => Details::CollectionInterrupted(v(value)?),
            EntryKind::ApprovalRecorded => Details::ApprovalRecorded(v(value)?),
            EntryKind::PlanProposed => Details::PlanProposed(v(value)?),
            EntryKind::PlanExpired => Details::PlanExpired(v(value)?),
            EntryKind::PlanStale => Details::PlanStale(v(value)?),
            EntryKind::ExecutionStarted => Details::ExecutionStarted(v(value)?),
            EntryKind::StepStarted => Details::StepStarted(v(value)?),
            EntryKind::StepWrite => Details::StepWrite(v(value)?),
            EntryKind::StepDone => Details::StepDone(v(value)?),
            EntryKind::StepFailed => Details::StepFailed(v(value)?),
            EntryKind::ActionsSealed => Details::ActionsSealed(v(value)?),
        })
    }
}

/// Serializes the struct inside, untagged (the tag is the entry's `kind`).
struct Inner<'a>(&'a Details);

impl Serialize for Inner<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Details::CaseOpened(d) => d.serialize(s),
            Details::SourceCaptured(d) => d.serialize(s),
            Details::SourceFailed(d) => d.serialize(s),
            Details::BundleSealed(d) => d.serialize(s),
            Details::ObjectsStored(d) => d.serialize(s),
            Details::Findings(d) => d.serialize(s),
            Details::CollectionFailed(d) => d.serialize(s),
            Details::CollectionRestarted(d) => d.serialize(s),
            Details::AlertResolved(d) => d.serialize(s),
            Details::CollectionInterrupted(d) => d.serialize(s),
            Details::ApprovalRecorded(d) => d.serialize(s),
            Details::PlanProposed(d) => d.serialize(s),
            Details::PlanExpired(d) => d.serialize(s),
            Details::PlanStale(d) => d.serialize(s),
            Details::ExecutionStarted(d) => d.serialize(s),
            Details::StepStarted(d) => d.serialize(s),
            Details::StepWrite(d) => d.serialize(s),
            Details::StepDone(d) => d.serialize(s),
            Details::StepFailed(d) => d.serialize(s),
            Details::ActionsSealed(d) => d.serialize(s),
        }
    }
}

/// One journal entry, stored as `cases/<case>/journal/<seq>.json`:
/// `{seq, prev_sha256, at, actor, kind, details}` in that order.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// 1 for the first entry, then one more for each.
    pub seq: u64,
    /// The SHA-256 of the previous entry's exact bytes; `null` for the first.
    pub prev_sha256: Option<Sha256Digest>,
    /// When the step happened (RFC 3339, UTC).
    pub at: String,
    /// Who did it: a user, or `custody` for the tool itself.
    pub actor: String,
    /// What the step recorded; its kind is the entry's `kind`.
    pub details: Details,
}

impl Entry {
    pub fn kind(&self) -> EntryKind {
        self.details.kind()
    }
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Entry", 6)?;
        st.serialize_field("seq", &self.seq)?;
        st.serialize_field("prev_sha256", &self.prev_sha256)?;
        st.serialize_field("at", &self.at)?;
        st.serialize_field("actor", &self.actor)?;
        st.serialize_field("kind", &self.kind())?;
        st.serialize_field("details", &Inner(&self.details))?;
        st.end()
    }
}

/// The stored shape, before the details are read by their kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    seq: u64,
    prev_sha256: Option<Sha256Digest>,
    at: String,
    actor: String,
    kind: EntryKind,
    details: serde_json::Value,
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawEntry::deserialize(d)?;
        let details = Details::from_json(raw.kind, raw.details)
            .map_err(|e| D::Error::custom(format!("its {:?} details: {e}", raw.kind)))?;
        Ok(Entry {
            seq: raw.seq,
            prev_sha256: raw.prev_sha256,
            at: raw.at,
            actor: raw.actor,
            details,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The approval record's bytes are what the quorum matches statements against: it must read
    // back exactly as written, with its fields in alphabetical order like every entry's.
    #[test]
    fn approval_recorded_round_trips_byte_for_byte() {
        let text = r#"{"seq":7,"prev_sha256":null,"at":"2026-12-02T01:02:03.000Z","actor":"alice","kind":"approval_recorded","details":{"approval":1,"decision":"approve","key_fingerprint":"SHA256:0kqsQLaOGyL8rNQCsJ2iVsqstud4kQMLQgJlYu/usAE","plan":"plan-1","principal":"alice@example.org","statement_sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}}"#;
        let entry: Entry = serde_json::from_str(text).unwrap();
        assert_eq!(entry.kind(), EntryKind::ApprovalRecorded);
        assert_eq!(serde_json::to_string(&entry).unwrap(), text);
        let unknown = text.replace(r#""approval":1,"#, r#""approval":1,"extra":2,"#);
        assert!(serde_json::from_str::<Entry>(&unknown).is_err());
    }

    #[test]
    fn plan_expired_round_trips_byte_for_byte_and_refuses_unknown_fields() {
        let text = r#"{"seq":9,"prev_sha256":null,"at":"2026-12-02T03:00:01.000Z","actor":"custody","kind":"plan_expired","details":{"counted":1,"not_after":"2026-12-02T03:00:00Z","plan":"plan-1","plan_sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","quorum_reached":false,"required":2}}"#;
        let entry: Entry = serde_json::from_str(text).unwrap();
        assert_eq!(entry.kind(), EntryKind::PlanExpired);
        let Details::PlanExpired(d) = &entry.details else {
            panic!("{entry:?}");
        };
        assert_eq!((d.counted, d.required, d.quorum_reached), (1, 2, false));
        assert_eq!(serde_json::to_string(&entry).unwrap(), text);
        let unknown = text.replace(r#""counted":1,"#, r#""counted":1,"extra":2,"#);
        assert!(serde_json::from_str::<Entry>(&unknown).is_err());
        let missing = text.replace(r#""quorum_reached":false,"#, "");
        assert!(serde_json::from_str::<Entry>(&missing).is_err());
    }
}
