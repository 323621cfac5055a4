//! Verification of evidence in S3: what S3 itself says about every object (versions, delete
//! markers, lock, retention, checksum) against what custody recorded when it stored them, then the
//! full verification of each case, reading the versions custody wrote and streaming the archive
//! from S3 without writing it to disk.

use std::collections::{BTreeMap, HashMap};

use super::{verify_case, Options, Report, VerifyError};
use crate::case::{self as journal, Details};
use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId};
use crate::policy::StoragePolicy;
use crate::store::s3::{
    same_checksum, KeyVersions, ObjectState, Pins, PutReceipt, S3Location, S3Options, S3Store,
};
use crate::store::{Store, StoreError};

/// A parsed `verify` target in S3.
struct S3Target {
    location: S3Location,
    case: Option<CaseId>,
    bundle: Option<BundleId>,
}

fn parse_target(uri: &str) -> Result<S3Target, VerifyError> {
    let bad = || VerifyError::UnknownTarget(uri.into());
    let whole = |location| S3Target {
        location,
        case: None,
        bundle: None,
    };
    // The bucket first; then a `cases/<case id>[/bundles/<file>]` tail, if the URI ends in one.
    let store = S3Location::parse(uri)?;
    let segments: Vec<&str> = store.prefix.split('/').filter(|s| !s.is_empty()).collect();
    let tail = segments.iter().rposition(|s| *s == "cases");
    let Some(i) = tail else {
        return Ok(whole(store));
    };
    let rest = &segments[i + 1..];
    let case = match rest.first().map(|c| CaseId::new(*c)) {
        Some(Ok(case)) => case,
        // `…/cases` alone, or a prefix segment that happens to be called `cases`.
        _ if rest.is_empty() => {
            return Ok(whole(S3Location {
                prefix: segments[..i].join("/"),
                ..store
            }))
        }
        _ => return Err(bad()),
    };
    let bundle = match rest.get(1..) {
        Some([]) | None => None,
        Some(["bundles", file]) => {
            Some(crate::store::layout::parse_bundle_file_name(file).ok_or_else(bad)?)
        }
        _ => return Err(bad()),
    };
    Ok(S3Target {
        location: S3Location {
            prefix: segments[..i].join("/"),
            ..store
        },
        case: Some(case),
        bundle,
    })
}

/// Verifies `s3://bucket/prefix`, `…/cases/<case>` or `…/cases/<case>/bundles/<file>`.
pub fn verify_s3(
    uri: &str,
    s3_options: &S3Options,
    options: &Options,
) -> Result<Report, VerifyError> {
    let target = parse_target(uri)?;
    let staging = std::env::temp_dir();
    let store = S3Store::connect(
        target.location.clone(),
        s3_options,
        StoragePolicy::default().object_lock,
        staging,
    )?;
    let mut report = Report {
        target: uri.to_owned(),
        ..Report::default()
    };
    let cases = match &target.case {
        Some(c) => vec![c.clone()],
        None => {
            let (cases, strays) = store.list_case_ids()?;
            for s in strays {
                report.problem("unexpected_file", s, "not part of the evidence layout");
            }
            if cases.is_empty() {
                report.problem("empty_store", store.uri(), "the store holds no cases");
            }
            cases
        }
    };
    // The version of each object that is read back: the first, the one custody wrote.
    let mut pins = Pins::new();
    let keys = store.versions("keys/")?;
    check_versions(&store, &keys, "keys/", &mut pins, &mut report);
    for case in &cases {
        check_case_objects(&store, &mut pins, case, &mut report)?;
        // An S3 store has no staging directory of its own to look at.
        verify_case(
            &store.pinned(&pins),
            None,
            case,
            target.bundle.as_ref(),
            options,
            &mut report,
        )?;
    }
    report.conclude(options);
    Ok(report)
}

/// Flags delete markers and versions written over custody's, and pins the first version of
/// each key (custody writes each key once) for reading it back.
fn check_versions(
    store: &S3Store,
    versions: &HashMap<String, KeyVersions>,
    under: &str,
    pins: &mut Pins,
    report: &mut Report,
) {
    let mut keys: Vec<&String> = versions.keys().collect();
    keys.sort();
    for key in keys {
        let v = &versions[key];
        let uri = format!(
            "s3://{}/{}",
            store.location().bucket,
            store.location().key(key)
        );
        if v.deleted || !v.delete_markers.is_empty() {
            report.problem(
                "s3_deleted",
                uri.clone(),
                format!(
                    "{} delete marker(s){}: someone deleted the object; the locked version is verified",
                    v.delete_markers.len(),
                    if v.deleted { ", the newest one current" } else { "" }
                ),
            );
        }
        if v.versions.len() > 1 {
            report.problem(
                "s3_overwritten",
                uri.clone(),
                format!(
                    "{} versions (newest {}): someone wrote over it; the first version is verified",
                    v.versions.len(),
                    v.versions[0]
                ),
            );
        }
        if let Some(first) = v.versions.last() {
            pins.insert(key.clone(), first.clone());
        } else if !under.is_empty() {
            report.problem("s3_deleted", uri, "no version of the object is left");
        }
    }
}

/// S3's view of one case against the `objects_stored` entries of its journal.
fn check_case_objects(
    store: &S3Store,
    pins: &mut Pins,
    case: &CaseId,
    report: &mut Report,
) -> Result<(), VerifyError> {
    let prefix = format!("cases/{case}/");
    let versions = store.versions(&prefix)?;
    check_versions(store, &versions, &prefix, pins, report);
    let pinned = store.pinned(pins);
    check_layout(&versions, &prefix, report);
    // What custody recorded when it stored the objects.
    let chain = journal::check_chain(&pinned, case)?;
    let recorded = Recorded::of(&chain, &prefix, report);
    if recorded.receipts.is_empty() {
        report.problem(
            "s3_unrecorded",
            format!(
                "s3://{}/{}",
                store.location().bucket,
                store.location().key(&prefix)
            ),
            "no objects_stored journal entry: custody never finished uploading this case",
        );
    }
    let objects = CaseObjects {
        store,
        pinned: &pinned,
        case,
        versions: &versions,
        base: format!("s3://{}/", store.location().bucket),
        own: store.location().key(""),
        now: time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    for (uri, receipt) in &recorded.receipts {
        objects.check_recorded(uri, receipt, report)?;
    }
    // Every object of the case must be one custody recorded as stored (or a journal entry that
    // records them): anything else was added afterwards.
    if !recorded.receipts.is_empty() {
        objects.check_unrecorded(&recorded, &prefix, report);
    }
    Ok(())
}

/// Every object under the case's prefix must have a place in the evidence layout.
fn check_layout(versions: &HashMap<String, KeyVersions>, prefix: &str, report: &mut Report) {
    for key in versions.keys() {
        let name = key.strip_prefix(prefix).unwrap_or(key);
        if !crate::store::layout::is_case_object(name) {
            report.problem(
                "unexpected_file",
                key.clone(),
                "not part of the evidence layout",
            );
        }
    }
}

/// What the case's `objects_stored` entries recorded: one receipt per URI (the first record
/// stands), and the store paths of the journal entries that recorded them.
struct Recorded {
    receipts: BTreeMap<String, PutReceipt>,
    entries: Vec<String>,
}

impl Recorded {
    fn of(chain: &journal::CheckedChain, prefix: &str, report: &mut Report) -> Self {
        let mut receipts: BTreeMap<String, PutReceipt> = BTreeMap::new();
        let mut entries: Vec<String> = Vec::new();
        for (entry, _) in &chain.entries {
            let Details::ObjectsStored(stored) = &entry.details else {
                continue;
            };
            for o in stored.objects.iter().cloned().map(PutReceipt::from) {
                match receipts.get(&o.uri) {
                    // The first record stands; a later one that differs is suspect (an entry's
                    // signature proves its writer held a key, not that the record is right).
                    Some(first) if first != &o => report.problem(
                        "s3_version",
                        o.uri.clone(),
                        format!(
                            "journal entry {} records it differently from an earlier entry",
                            entry.seq
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        receipts.insert(o.uri.clone(), o);
                    }
                }
            }
            entries.push(format!("{prefix}journal/{:010}.json", entry.seq));
        }
        Recorded { receipts, entries }
    }
}

/// One case's objects in S3, to check each recorded receipt against.
struct CaseObjects<'a> {
    store: &'a S3Store,
    /// The store read at the versions custody wrote.
    pinned: &'a dyn Store,
    case: &'a CaseId,
    versions: &'a HashMap<String, KeyVersions>,
    /// `s3://<bucket>/`.
    base: String,
    /// The store's own key prefix inside the bucket.
    own: String,
    /// Unix seconds, for retention that has lapsed.
    now: i64,
}

impl CaseObjects<'_> {
    /// The store path of a recorded URI, when it is one of this store's.
    fn relative_of(&self, uri: &str) -> Option<String> {
        let key = uri.strip_prefix(&self.base)?;
        Some(key.strip_prefix(&self.own)?.to_owned())
    }

    /// One recorded object: its first version, lock, retention, checksum and content.
    fn check_recorded(
        &self,
        uri: &str,
        receipt: &PutReceipt,
        report: &mut Report,
    ) -> Result<(), VerifyError> {
        let Some(rel) = self.relative_of(uri) else {
            report.problem(
                "s3_version",
                uri.to_owned(),
                "recorded for another bucket or prefix",
            );
            return Ok(());
        };
        if !rel.starts_with("keys/") && !self.check_first_version(uri, &rel, receipt, report) {
            return Ok(());
        }
        let state = match self.store.head_path(&rel, receipt.version_id.as_deref()) {
            Ok(s) => s,
            Err(StoreError::NotFound { .. }) => {
                report.problem(
                    "s3_missing",
                    uri.to_owned(),
                    format!("version {:?} is gone", receipt.version_id),
                );
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        check_lock(&state, receipt, uri, self.now, report);
        check_checksum(&state, receipt, uri, report);
        // The bytes themselves, for the small objects; the archive is hashed while it is
        // verified, against the seal.
        if !rel.ends_with(".tar.zst") {
            match self.store.get_path(&rel, receipt.version_id.as_deref()) {
                Ok(bytes) if Sha256Digest::of(&bytes) == receipt.sha256 => {}
                Ok(bytes) => report.problem(
                    "s3_checksum",
                    uri.to_owned(),
                    format!(
                        "the content's SHA-256 is {}, custody stored {}",
                        Sha256Digest::of(&bytes),
                        receipt.sha256
                    ),
                ),
                Err(e) => report.problem("s3_missing", uri.to_owned(), e.to_string()),
            }
        } else {
            check_archive_against_seal(self.pinned, self.case, &rel, receipt, report);
        }
        Ok(())
    }

    /// The first version in S3 must be the one custody stored (keys are shared across cases and
    /// are not checked this way). False when S3 has no version at all: nothing more to check.
    fn check_first_version(
        &self,
        uri: &str,
        rel: &str,
        receipt: &PutReceipt,
        report: &mut Report,
    ) -> bool {
        let first = self.versions.get(rel).and_then(|v| v.versions.last());
        match (first, &receipt.version_id) {
            (None, _) => {
                report.problem(
                    "s3_missing",
                    uri.to_owned(),
                    "recorded as stored, but S3 has no version of it",
                );
                return false;
            }
            (Some(first), Some(recorded)) if first != recorded => report.problem(
                "s3_version",
                uri.to_owned(),
                format!("the first version in S3 is {first}, custody stored {recorded}"),
            ),
            _ => {}
        }
        true
    }

    /// Objects of the case that no `objects_stored` entry records.
    fn check_unrecorded(&self, recorded: &Recorded, prefix: &str, report: &mut Report) {
        let mut keys: Vec<&String> = self.versions.keys().collect();
        keys.sort();
        for key in keys {
            let uri = format!("{}{}{key}", self.base, self.own);
            // Journal entries written after the record (a resolve, say) are held by the chain
            // and checked there; so are plans and approvals, whose digests the journal records
            // (`plan_proposed`, `approval_recorded`) and `check_plans` checks file by file. Their
            // versions are checked above like every object's. Anything else unrecorded was
            // added behind custody's back.
            let later_entry = key.starts_with(&format!("{prefix}journal/"))
                || key.starts_with(&format!("{prefix}plans/"));
            if !recorded.receipts.contains_key(&uri)
                && !recorded.entries.contains(key)
                && !later_entry
            {
                report.problem(
                    "s3_unrecorded",
                    uri,
                    "in the case, but not among the objects custody recorded as stored",
                );
            }
        }
    }
}

/// The object's lock mode, retention and legal hold against what custody stored it with.
fn check_lock(state: &ObjectState, receipt: &PutReceipt, uri: &str, now: i64, report: &mut Report) {
    match state.lock_mode.as_deref() {
        Some(mode) if mode == receipt.lock_mode => {}
        other => report.problem(
            "s3_lock",
            uri.to_owned(),
            format!(
                "lock mode {other:?}, custody stored it {}",
                receipt.lock_mode
            ),
        ),
    }
    match state.retain_until {
        None => report.problem("s3_lock", uri.to_owned(), "no retain-until date"),
        Some(t) if t <= now => report.problem(
            "s3_retention_lapsed",
            uri.to_owned(),
            format!("retention ended at {}", crate::timefmt::unix_rfc3339(t)),
        ),
        Some(t) if t < receipt.retain_until => report.problem(
            "s3_retention_shortened",
            uri.to_owned(),
            format!(
                "retained until {}, custody stored it until {}",
                crate::timefmt::unix_rfc3339(t),
                crate::timefmt::unix_rfc3339(receipt.retain_until)
            ),
        ),
        Some(_) => {}
    }
    if receipt.legal_hold && !state.legal_hold {
        report.problem(
            "s3_lock",
            uri.to_owned(),
            "custody stored it under a legal hold, which has been lifted",
        );
    }
}

/// S3's SHA-256 checksum against the recorded one (which must itself match the recorded digest,
/// unless it is a multipart checksum).
fn check_checksum(state: &ObjectState, receipt: &PutReceipt, uri: &str, report: &mut Report) {
    let single = aws_smithy_types::base64::encode(receipt.sha256.as_bytes());
    let consistent = receipt.s3_checksum == single || receipt.s3_checksum.contains('-');
    if !same_checksum(state.s3_checksum.as_deref(), &receipt.s3_checksum) || !consistent {
        report.problem(
            "s3_checksum",
            uri.to_owned(),
            format!(
                "S3's SHA-256 checksum is {}, custody stored {} (SHA-256 {})",
                state.s3_checksum.as_deref().unwrap_or("absent"),
                receipt.s3_checksum,
                receipt.sha256
            ),
        );
    }
}

/// The archive's recorded SHA-256 must be the seal's (read at its pinned version).
fn check_archive_against_seal(
    store: &dyn Store,
    case: &CaseId,
    rel: &str,
    receipt: &PutReceipt,
    report: &mut Report,
) {
    let Some(bundle) = rel
        .rsplit('/')
        .next()
        .and_then(crate::store::layout::parse_bundle_file_name)
    else {
        return;
    };
    let seal_key = crate::store::StoreKey::Seal(case.clone(), bundle);
    let Ok(bytes) = store.get(&seal_key) else {
        return; // A missing seal is reported by the bundle verification.
    };
    if let Ok(seal) = serde_json::from_slice::<crate::seal::SealRecord>(&bytes) {
        if seal.archive.sha256 != receipt.sha256 {
            report.problem(
                "s3_checksum",
                receipt.uri.clone(),
                format!(
                    "stored with SHA-256 {}, but the seal says {}",
                    receipt.sha256, seal.archive.sha256
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = parse_target("s3://bucket-a/pre/fix").unwrap();
        assert_eq!(t.location.prefix, "pre/fix");
        assert!(t.case.is_none());
        let t = parse_target("s3://bucket-a/pre/cases/20261126-101010-abcdef01").unwrap();
        assert_eq!(t.location.prefix, "pre");
        assert_eq!(t.case.unwrap().as_str(), "20261126-101010-abcdef01");
        let t = parse_target(
            "s3://bucket-a/cases/20261126-101010-abcdef01/bundles/20261126-101010-00000000.tar.zst",
        )
        .unwrap();
        assert_eq!(t.location.prefix, "");
        assert!(t.bundle.is_some());
        for bad in [
            "s3://bucket-a/cases/Not_An_Id",
            "s3://bucket-a/cases/20261126-101010-abcdef01/journal/x",
            "s3://bucket-a/cases/20261126-101010-abcdef01/bundles/evil.txt",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        // A bucket or prefix segment called `cases` is not a case.
        let t = parse_target("s3://cases/x").unwrap();
        assert_eq!(
            (t.location.bucket.as_str(), t.location.prefix.as_str()),
            ("cases", "x")
        );
        let t = parse_target("s3://bucket-a/cases").unwrap();
        assert_eq!(t.location.prefix, "");
        assert!(t.case.is_none());
    }
}
