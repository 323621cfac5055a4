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
    same_checksum, KeyVersions, Pins, PutReceipt, S3Location, S3Options, S3Store,
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
    for key in versions.keys() {
        let name = key.strip_prefix(&prefix).unwrap_or(key);
        if !crate::store::layout::is_case_object(name) {
            report.problem(
                "unexpected_file",
                key.clone(),
                "not part of the evidence layout",
            );
        }
    }
    // What custody recorded when it stored the objects.
    let chain = journal::check_chain(&pinned, case)?;
    let mut recorded: BTreeMap<String, PutReceipt> = BTreeMap::new();
    let mut recording_entries: Vec<String> = Vec::new();
    for (entry, _) in &chain.entries {
        let Details::ObjectsStored(stored) = &entry.details else {
            continue;
        };
        for o in stored.objects.iter().cloned().map(PutReceipt::from) {
            match recorded.get(&o.uri) {
                // The first record stands; a later one that differs is suspect (journal
                // entries are chained, not signed).
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
                    recorded.insert(o.uri.clone(), o);
                }
            }
        }
        recording_entries.push(format!("{prefix}journal/{:010}.json", entry.seq));
    }
    if recorded.is_empty() {
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
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let base = format!("s3://{}/", store.location().bucket);
    let own = store.location().key("");
    let relative_of = |uri: &str| -> Option<String> {
        let key = uri.strip_prefix(&base)?;
        Some(key.strip_prefix(&own)?.to_owned())
    };
    for (uri, receipt) in &recorded {
        let Some(rel) = relative_of(uri) else {
            report.problem(
                "s3_version",
                uri.clone(),
                "recorded for another bucket or prefix",
            );
            continue;
        };
        let first = versions.get(&rel).and_then(|v| v.versions.last());
        let in_keys = rel.starts_with("keys/");
        if !in_keys {
            match (first, &receipt.version_id) {
                (None, _) => {
                    report.problem(
                        "s3_missing",
                        uri.clone(),
                        "recorded as stored, but S3 has no version of it",
                    );
                    continue;
                }
                (Some(first), Some(recorded)) if first != recorded => report.problem(
                    "s3_version",
                    uri.clone(),
                    format!("the first version in S3 is {first}, custody stored {recorded}"),
                ),
                _ => {}
            }
        }
        let state = match store.head_path(&rel, receipt.version_id.as_deref()) {
            Ok(s) => s,
            Err(StoreError::NotFound { .. }) => {
                report.problem(
                    "s3_missing",
                    uri.clone(),
                    format!("version {:?} is gone", receipt.version_id),
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match state.lock_mode.as_deref() {
            Some(mode) if mode == receipt.lock_mode => {}
            other => report.problem(
                "s3_lock",
                uri.clone(),
                format!(
                    "lock mode {other:?}, custody stored it {}",
                    receipt.lock_mode
                ),
            ),
        }
        match state.retain_until {
            None => report.problem("s3_lock", uri.clone(), "no retain-until date"),
            Some(t) if t <= now => report.problem(
                "s3_retention_lapsed",
                uri.clone(),
                format!("retention ended at {}", crate::timefmt::unix_rfc3339(t)),
            ),
            Some(t) if t < receipt.retain_until => report.problem(
                "s3_retention_shortened",
                uri.clone(),
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
                uri.clone(),
                "custody stored it under a legal hold, which has been lifted",
            );
        }
        let single = aws_smithy_types::base64::encode(receipt.sha256.as_bytes());
        let consistent = receipt.s3_checksum == single || receipt.s3_checksum.contains('-');
        if !same_checksum(state.s3_checksum.as_deref(), &receipt.s3_checksum) || !consistent {
            report.problem(
                "s3_checksum",
                uri.clone(),
                format!(
                    "S3's SHA-256 checksum is {}, custody stored {} (SHA-256 {})",
                    state.s3_checksum.as_deref().unwrap_or("absent"),
                    receipt.s3_checksum,
                    receipt.sha256
                ),
            );
        }
        // The bytes themselves, for the small objects; the archive is hashed while it is
        // verified, against the seal.
        if !rel.ends_with(".tar.zst") {
            match store.get_path(&rel, receipt.version_id.as_deref()) {
                Ok(bytes) if Sha256Digest::of(&bytes) == receipt.sha256 => {}
                Ok(bytes) => report.problem(
                    "s3_checksum",
                    uri.clone(),
                    format!(
                        "the content's SHA-256 is {}, custody stored {}",
                        Sha256Digest::of(&bytes),
                        receipt.sha256
                    ),
                ),
                Err(e) => report.problem("s3_missing", uri.clone(), e.to_string()),
            }
        } else {
            check_archive_against_seal(&pinned, case, &rel, receipt, report);
        }
    }
    // Every object of the case must be one custody recorded as stored (or a journal entry that
    // records them): anything else was added afterwards.
    if !recorded.is_empty() {
        let mut keys: Vec<&String> = versions.keys().collect();
        keys.sort();
        for key in keys {
            let uri = format!("{base}{own}{key}");
            // Journal entries written after the record (a resolve, say) are held by the chain
            // and checked there; anything else unrecorded was added behind custody's back.
            let later_entry = key.starts_with(&format!("{prefix}journal/"));
            if !recorded.contains_key(&uri) && !recording_entries.contains(key) && !later_entry {
                report.problem(
                    "s3_unrecorded",
                    uri,
                    "in the case, but not among the objects custody recorded as stored",
                );
            }
        }
    }
    Ok(())
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
