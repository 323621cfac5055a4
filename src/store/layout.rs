//! The store layout (docs/EVIDENCE_FORMAT.md): the one place that maps a `StoreKey` to its path
//! and a path back to its key, and that reads the listings of a store (cases, a case's journal
//! and bundles) from the names a backend lists. Backends, the spool and `verify` all go through
//! here, so the layout is written once.

use std::collections::BTreeSet;

use crate::id::{BundleId, CaseId, KeyId, PlanId};

/// One object in the store layout (see docs/EVIDENCE_FORMAT.md).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StoreKey {
    CaseHeader(CaseId),
    JournalEntry(CaseId, u64),
    /// The collector key's raw Ed25519 signature over journal entry `seq`'s exact bytes
    /// (`journal/<seq>.json.sig`), written after the entry. Older stores have none.
    JournalSignature(CaseId, u64),
    Archive(CaseId, BundleId),
    ArchiveSidecar(CaseId, BundleId),
    Seal(CaseId, BundleId),
    SealSignature(CaseId, BundleId),
    PublicKey(KeyId),
    /// An object written by `store check` to prove the bucket takes custody's writes.
    Probe(String),
    /// The record that an alert episode was received (`<sha256 hex>.json`), created once: the
    /// conditional create that makes one case per episode, across replicas.
    Episode(String),
    /// Generation `n` of the claim on a case (`leases/<case>/<n, 10 digits>.json`), created
    /// once: the record with the highest generation says which replica works on the case and
    /// until when (`daemon::lease`). Operational, not evidence.
    Lease(CaseId, u64),
    /// A containment plan (`plans/<plan>/plan.json`): canonical JSON; its SHA-256 is the plan
    /// digest.
    Plan(CaseId, PlanId),
    /// `plans/<plan>/plan.json.sha256`, in sha256sum format.
    PlanSidecar(CaseId, PlanId),
    /// `plans/<plan>/plan.json.sig`: the collector key's raw Ed25519 signature (a daemon's
    /// proposal).
    PlanSignature(CaseId, PlanId),
    /// `plans/<plan>/plan.json.sshsig`: a person's SSHSIG, namespace `custody-proposal`.
    PlanSshSignature(CaseId, PlanId),
    /// `plans/<plan>/approvers.allowed_signers`: the roster in force at proposal.
    PlanRoster(CaseId, PlanId),
    /// Approval `n` of a plan (`plans/<plan>/approvals/<n, 10 digits>.json`), from 1.
    Approval(CaseId, PlanId, u64),
    /// Its SSHSIG, namespace `custody-approval` (`approvals/<n>.json.sig`).
    ApprovalSignature(CaseId, PlanId, u64),
}

impl StoreKey {
    /// The object's path relative to the store root, with `/` separators.
    pub fn path(&self) -> String {
        match self {
            Self::CaseHeader(c) => format!("cases/{c}/case.json"),
            Self::JournalEntry(c, seq) => format!("cases/{c}/journal/{}", journal_name(*seq)),
            Self::JournalSignature(c, seq) => {
                format!("cases/{c}/journal/{}.sig", journal_name(*seq))
            }
            Self::Archive(c, b) => format!("cases/{c}/bundles/{}", archive_name(b)),
            Self::ArchiveSidecar(c, b) => format!("cases/{c}/bundles/{}.sha256", archive_name(b)),
            Self::Seal(c, b) => format!("cases/{c}/bundles/{b}.seal.json"),
            Self::SealSignature(c, b) => format!("cases/{c}/bundles/{b}.seal.json.sig"),
            Self::PublicKey(k) => format!("keys/{k}.pub"),
            Self::Probe(name) => format!("probes/{name}"),
            Self::Episode(name) => format!("episodes/{name}"),
            Self::Lease(c, generation) => format!("leases/{c}/{}", journal_name(*generation)),
            Self::Plan(c, p) => format!("cases/{c}/plans/{p}/{PLAN_FILE}"),
            Self::PlanSidecar(c, p) => format!("cases/{c}/plans/{p}/{PLAN_FILE}.sha256"),
            Self::PlanSignature(c, p) => format!("cases/{c}/plans/{p}/{PLAN_FILE}.sig"),
            Self::PlanSshSignature(c, p) => format!("cases/{c}/plans/{p}/{PLAN_FILE}.sshsig"),
            Self::PlanRoster(c, p) => format!("cases/{c}/plans/{p}/{ROSTER_FILE}"),
            Self::Approval(c, p, n) => {
                format!("cases/{c}/plans/{p}/approvals/{}", journal_name(*n))
            }
            Self::ApprovalSignature(c, p, n) => {
                format!("cases/{c}/plans/{p}/approvals/{}.sig", journal_name(*n))
            }
        }
    }

    /// The key of an evidence object (case header, journal entry, bundle file, public key) at
    /// `path`, or of a case's claim record; `None` for any other path. Probes and episodes are
    /// not evidence and never parsed.
    pub fn parse(path: &str) -> Option<Self> {
        if let Some(name) = path.strip_prefix("keys/") {
            return key_file_id(name).map(Self::PublicKey);
        }
        if let Some(rest) = path.strip_prefix("leases/") {
            let (case, name) = rest.split_once('/')?;
            let case = CaseId::new(case).ok()?;
            return parse_journal_name(name).map(|generation| Self::Lease(case, generation));
        }
        let rest = path.strip_prefix("cases/")?;
        let (case, rest) = rest.split_once('/')?;
        let case = CaseId::new(case).ok()?;
        if rest == "case.json" {
            return Some(Self::CaseHeader(case));
        }
        if let Some(name) = rest.strip_prefix("journal/") {
            if let Some(seq) = parse_journal_signature_name(name) {
                return Some(Self::JournalSignature(case, seq));
            }
            return parse_journal_name(name).map(|seq| Self::JournalEntry(case, seq));
        }
        if let Some(rest) = rest.strip_prefix("plans/") {
            return parse_plan_object(case, rest);
        }
        let name = rest.strip_prefix("bundles/")?;
        let bundle = parse_bundle_file_name(name)?;
        let file = name.strip_prefix(bundle.as_str())?;
        Some(match file {
            ".tar.zst" => Self::Archive(case, bundle),
            ".tar.zst.sha256" => Self::ArchiveSidecar(case, bundle),
            ".seal.json" => Self::Seal(case, bundle),
            ".seal.json.sig" => Self::SealSignature(case, bundle),
            _ => return None,
        })
    }

    /// The directory part of the object's path (`cases/<case>/journal`; empty at the root).
    pub fn dir(&self) -> String {
        let path = self.path();
        match path.rsplit_once('/') {
            Some((dir, _)) => dir.to_owned(),
            None => String::new(),
        }
    }
}

/// A place in the layout whose objects can be listed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StorePrefix {
    /// `cases/`: one name per case.
    Cases,
    /// `cases/<case>/journal/`.
    Journal(CaseId),
    /// `cases/<case>/bundles/`.
    Bundles(CaseId),
    /// `keys/`.
    Keys,
    /// `leases/<case>/`: the generations of the claim on a case.
    Leases(CaseId),
    /// `cases/<case>/plans/`: one name per plan (or, from a backend without directories, the
    /// rest of each key: its first segment names the plan).
    Plans(CaseId),
    /// `cases/<case>/plans/<plan>/`: a plan's files.
    Plan(CaseId, PlanId),
    /// `cases/<case>/plans/<plan>/approvals/`.
    Approvals(CaseId, PlanId),
}

impl StorePrefix {
    /// The prefix's path relative to the store root, without a trailing `/`.
    pub fn path(&self) -> String {
        match self {
            Self::Cases => "cases".to_owned(),
            Self::Journal(c) => format!("cases/{c}/journal"),
            Self::Bundles(c) => format!("cases/{c}/bundles"),
            Self::Keys => "keys".to_owned(),
            Self::Leases(c) => format!("leases/{c}"),
            Self::Plans(c) => format!("cases/{c}/plans"),
            Self::Plan(c, p) => format!("cases/{c}/plans/{p}"),
            Self::Approvals(c, p) => format!("cases/{c}/plans/{p}/approvals"),
        }
    }
}

/// The plan document's file name in its plan's directory.
pub const PLAN_FILE: &str = "plan.json";
/// The pinned roster's file name in its plan's directory.
pub const ROSTER_FILE: &str = "approvers.allowed_signers";

/// One of a plan's files, as named relative to `cases/<case>/plans/`.
enum PlanFile {
    Plan,
    Sidecar,
    Signature,
    SshSignature,
    Roster,
    Approval(u64),
    ApprovalSignature(u64),
}

/// The plan and file that `rest` (relative to `cases/<case>/plans/`) names, if it names one.
fn plan_file(rest: &str) -> Option<(PlanId, PlanFile)> {
    let (plan, name) = rest.split_once('/')?;
    let plan = PlanId::new(plan).ok()?;
    let file = if let Some(name) = name.strip_prefix("approvals/") {
        match parse_journal_signature_name(name) {
            Some(n) => PlanFile::ApprovalSignature(n),
            None => PlanFile::Approval(parse_journal_name(name)?),
        }
    } else {
        match name {
            PLAN_FILE => PlanFile::Plan,
            "plan.json.sha256" => PlanFile::Sidecar,
            "plan.json.sig" => PlanFile::Signature,
            "plan.json.sshsig" => PlanFile::SshSignature,
            ROSTER_FILE => PlanFile::Roster,
            _ => return None,
        }
    };
    Some((plan, file))
}

/// The key of a plan's object at `rest` (relative to `cases/<case>/plans/`).
fn parse_plan_object(case: CaseId, rest: &str) -> Option<StoreKey> {
    let (p, file) = plan_file(rest)?;
    Some(match file {
        PlanFile::Plan => StoreKey::Plan(case, p),
        PlanFile::Sidecar => StoreKey::PlanSidecar(case, p),
        PlanFile::Signature => StoreKey::PlanSignature(case, p),
        PlanFile::SshSignature => StoreKey::PlanSshSignature(case, p),
        PlanFile::Roster => StoreKey::PlanRoster(case, p),
        PlanFile::Approval(n) => StoreKey::Approval(case, p, n),
        PlanFile::ApprovalSignature(n) => StoreKey::ApprovalSignature(case, p, n),
    })
}

/// Whether `name` (relative to `cases/<case>/plans/<plan>/`) is one of a plan's files (not an
/// approval).
pub fn is_plan_file(name: &str) -> bool {
    matches!(
        name,
        PLAN_FILE | "plan.json.sha256" | "plan.json.sig" | "plan.json.sshsig" | ROSTER_FILE
    )
}

/// The plans among the names listed under `StorePrefix::Plans`, sorted, and the names that are
/// not plans, as `plans/<name>`. A backend without directories lists the whole rest of each
/// key: its first segment names the plan.
pub fn plans(names: Vec<String>) -> (Vec<PlanId>, Vec<String>) {
    let mut plans = BTreeSet::new();
    let mut strays = Vec::new();
    for name in names {
        let id = name.split('/').next().unwrap_or_default();
        match PlanId::new(id) {
            Ok(id) => {
                plans.insert(id);
            }
            Err(_) => strays.push(format!("plans/{name}")),
        }
    }
    (plans.into_iter().collect(), strays)
}

/// The approval numbers among the names listed under `StorePrefix::Approvals` (a statement or
/// its signature names its number), sorted and once each, and the names that are neither.
pub fn approvals(names: Vec<String>) -> (Vec<u64>, Vec<String>) {
    let mut numbers = BTreeSet::new();
    let mut strays = Vec::new();
    for name in names {
        match parse_journal_name(&name).or_else(|| parse_journal_signature_name(&name)) {
            Some(n) => {
                numbers.insert(n);
            }
            None => strays.push(name),
        }
    }
    (numbers.into_iter().collect(), strays)
}

/// The file name of a bundle's archive.
pub fn archive_name(bundle: &BundleId) -> String {
    format!("{bundle}.tar.zst")
}

/// The file name of journal entry `seq` (`0000000012.json`), and of a claim's generation.
pub fn journal_name(seq: u64) -> String {
    format!("{seq:010}.json")
}

/// `0000000012.json` → 12.
pub fn parse_journal_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 10 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `0000000012.json.sig` → 12.
pub fn parse_journal_signature_name(name: &str) -> Option<u64> {
    name.strip_suffix(".sig").and_then(parse_journal_name)
}

/// The bundle a file in `bundles/` belongs to, if its name is one of a bundle's four files.
pub fn parse_bundle_file_name(name: &str) -> Option<BundleId> {
    let stem = [
        ".tar.zst.sha256",
        ".tar.zst",
        ".seal.json.sig",
        ".seal.json",
    ]
    .iter()
    .find_map(|suffix| name.strip_suffix(suffix))?;
    BundleId::new(stem).ok()
}

/// `<id>.pub` → the key id it names.
pub fn key_file_id(name: &str) -> Option<KeyId> {
    name.strip_suffix(".pub").and_then(|id| KeyId::new(id).ok())
}

/// Whether `name` (relative to `cases/<case>/`) is one of a case's objects in the layout.
pub fn is_case_object(name: &str) -> bool {
    name == "case.json"
        || name.strip_prefix("journal/").is_some_and(|n| {
            parse_journal_name(n).is_some() || parse_journal_signature_name(n).is_some()
        })
        || name
            .strip_prefix("bundles/")
            .is_some_and(|n| !n.contains('/') && parse_bundle_file_name(n).is_some())
        || name
            .strip_prefix("plans/")
            .is_some_and(|rest| plan_file(rest).is_some())
}

/// The sequence numbers among the names listed under `StorePrefix::Journal`, sorted, and the
/// names that are neither journal entries nor their signatures (`journal_signatures` reads
/// those).
pub fn journal_entries(names: Vec<String>) -> (Vec<u64>, Vec<String>) {
    let mut seqs = Vec::new();
    let mut strays = Vec::new();
    for name in names {
        match parse_journal_name(&name) {
            Some(seq) => seqs.push(seq),
            None if parse_journal_signature_name(&name).is_some() => {}
            None => strays.push(name),
        }
    }
    seqs.sort_unstable();
    (seqs, strays)
}

/// The sequence numbers of the entry signatures among the names listed under
/// `StorePrefix::Journal`, sorted.
pub fn journal_signatures(names: &[String]) -> Vec<u64> {
    let mut seqs: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_journal_signature_name(n))
        .collect();
    seqs.sort_unstable();
    seqs
}

/// The generations among the names listed under `StorePrefix::Leases`, sorted; other names are
/// not claim records and are left out.
pub fn lease_generations(names: Vec<String>) -> Vec<u64> {
    journal_entries(names).0
}

/// The bundles among the names listed under `StorePrefix::Bundles`, sorted, and the names that
/// belong to no bundle.
pub fn bundles(names: Vec<String>) -> (Vec<BundleId>, Vec<String>) {
    let mut bundles = BTreeSet::new();
    let mut strays = Vec::new();
    for name in names {
        match parse_bundle_file_name(&name) {
            Some(id) => {
                bundles.insert(id);
            }
            None => strays.push(name),
        }
    }
    (bundles.into_iter().collect(), strays)
}

/// The cases among the names listed under `StorePrefix::Cases`, sorted (oldest first), and the
/// names that are not cases, as `cases/<name>`. A backend without directories lists the whole
/// rest of each key (`<case>/journal/…`): its first segment names the case.
pub fn cases(names: Vec<String>) -> (Vec<CaseId>, Vec<String>) {
    let mut cases = BTreeSet::new();
    let mut strays = Vec::new();
    for name in names {
        let id = name.split('/').next().unwrap_or_default();
        match CaseId::new(id) {
            Ok(id) => {
                cases.insert(id);
            }
            Err(_) => strays.push(format!("cases/{name}")),
        }
    }
    (cases.into_iter().collect(), strays)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case() -> CaseId {
        CaseId::new("20261126-145448-00000001").unwrap()
    }

    #[test]
    fn every_evidence_key_parses_back_from_its_path() {
        let b = BundleId::new("20261126-145448-0000000b").unwrap();
        let k = KeyId::new("0123456789abcdef").unwrap();
        for key in [
            StoreKey::CaseHeader(case()),
            StoreKey::JournalEntry(case(), 12),
            StoreKey::JournalSignature(case(), 12),
            StoreKey::Archive(case(), b.clone()),
            StoreKey::ArchiveSidecar(case(), b.clone()),
            StoreKey::Seal(case(), b.clone()),
            StoreKey::SealSignature(case(), b),
            StoreKey::PublicKey(k),
            StoreKey::Lease(case(), 3),
            StoreKey::Plan(case(), plan()),
            StoreKey::PlanSidecar(case(), plan()),
            StoreKey::PlanSignature(case(), plan()),
            StoreKey::PlanSshSignature(case(), plan()),
            StoreKey::PlanRoster(case(), plan()),
            StoreKey::Approval(case(), plan(), 2),
            StoreKey::ApprovalSignature(case(), plan(), 2),
        ] {
            assert_eq!(StoreKey::parse(&key.path()), Some(key.clone()), "{key:?}");
        }
        assert_eq!(
            StoreKey::JournalEntry(case(), 12).path(),
            format!("cases/{}/journal/0000000012.json", case())
        );
        assert_eq!(
            StoreKey::JournalSignature(case(), 12).path(),
            format!("cases/{}/journal/0000000012.json.sig", case())
        );
        assert_eq!(
            StoreKey::Lease(case(), 3).path(),
            format!("leases/{}/0000000003.json", case())
        );
        assert_eq!(
            lease_generations(vec![
                "0000000002.json".into(),
                "x".into(),
                "0000000001.json".into()
            ]),
            vec![1, 2]
        );
        for other in [
            "probes/x.txt",
            "episodes/a.json",
            "cases/Not_An_Id/case.json",
            "cases/20261126-145448-00000001/journal/12.json",
            "cases/20261126-145448-00000001/journal/12.json.sig",
            "cases/20261126-145448-00000001/journal/0000000012.sig",
            "cases/20261126-145448-00000001/journal/0000000012.json.sig.sig",
            "cases/20261126-145448-00000001/bundles/x.tar",
            "keys/x",
            "leases/20261126-145448-00000001/3.json",
            "leases/Not_An_Id/0000000003.json",
        ] {
            assert_eq!(StoreKey::parse(other), None, "{other}");
        }
    }

    fn plan() -> PlanId {
        PlanId::new("20261126-150000-00000002").unwrap()
    }

    #[test]
    fn plan_objects_have_their_paths_and_nothing_else_parses_as_one() {
        let c = case();
        let p = plan();
        let dir = format!("cases/{c}/plans/{p}");
        for (key, path) in [
            (StoreKey::Plan(c.clone(), p.clone()), "plan.json"),
            (
                StoreKey::PlanSidecar(c.clone(), p.clone()),
                "plan.json.sha256",
            ),
            (
                StoreKey::PlanSignature(c.clone(), p.clone()),
                "plan.json.sig",
            ),
            (
                StoreKey::PlanSshSignature(c.clone(), p.clone()),
                "plan.json.sshsig",
            ),
            (
                StoreKey::PlanRoster(c.clone(), p.clone()),
                "approvers.allowed_signers",
            ),
            (
                StoreKey::Approval(c.clone(), p.clone(), 1),
                "approvals/0000000001.json",
            ),
            (
                StoreKey::ApprovalSignature(c.clone(), p.clone(), 1),
                "approvals/0000000001.json.sig",
            ),
        ] {
            assert_eq!(key.path(), format!("{dir}/{path}"));
            assert!(is_case_object(&format!("plans/{p}/{path}")), "{path}");
        }
        assert_eq!(
            StorePrefix::Approvals(c.clone(), p.clone()).path(),
            format!("{dir}/approvals")
        );
        for other in [
            "plan.json.bak",
            "approvals/1.json",
            "approvals/0000000001.sig",
            "approvals/x/0000000001.json",
            "notes/plan.json",
        ] {
            assert_eq!(StoreKey::parse(&format!("{dir}/{other}")), None, "{other}");
            assert!(!is_case_object(&format!("plans/{p}/{other}")), "{other}");
        }
        assert_eq!(
            StoreKey::parse(&format!("cases/{c}/plans/Bad_Id/plan.json")),
            None
        );
        let (ids, strays) = plans(vec![
            format!("{p}/plan.json"),
            p.to_string(),
            "Bad Id".into(),
        ]);
        assert_eq!(ids, vec![p]);
        assert_eq!(strays, vec!["plans/Bad Id".to_string()]);
        let (numbers, strays) = approvals(vec![
            "0000000002.json".into(),
            "0000000001.json.sig".into(),
            "0000000001.json".into(),
            "x.json".into(),
        ]);
        assert_eq!(numbers, vec![1, 2]);
        assert_eq!(strays, vec!["x.json".to_string()]);
        assert!(is_plan_file("plan.json") && !is_plan_file("approvals"));
    }

    #[test]
    fn listings_separate_evidence_from_strays() {
        let names: Vec<String> = vec![
            "0000000002.json".into(),
            "0000000001.json.sig".into(),
            "0000000001.json".into(),
            "x".into(),
            "x.sig".into(),
        ];
        assert_eq!(journal_signatures(&names), vec![1]);
        let (seqs, strays) = journal_entries(names);
        assert_eq!(seqs, vec![1, 2]);
        assert_eq!(strays, vec!["x".to_string(), "x.sig".to_string()]);
        let (cases, strays) = cases(vec![
            format!("{}/case.json", case()),
            format!("{}/journal/0000000001.json", case()),
            "notes.txt".into(),
        ]);
        assert_eq!(cases, vec![case()]);
        assert_eq!(strays, vec!["cases/notes.txt".to_string()]);
        assert!(is_case_object("journal/0000000001.json"));
        assert!(is_case_object("journal/0000000001.json.sig"));
        assert!(!is_case_object("journal/0000000001.sig"));
        assert!(!is_case_object("journal/x/0000000001.json"));
    }
}
