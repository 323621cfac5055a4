//! Reading one payload file out of a sealed bundle, for those who need what is in it (the
//! `report.html` an analyst opens, the `summary.json` the planner reads) without extracting
//! evidence by hand: the bundle is verified first, as `verify` does (the case's journal, the
//! sidecar, the seal's signature with the auditor's key or the store's published one, every
//! payload file against the manifests), then the archive is streamed once more and the member is
//! handed out only if its SHA-256 is the one the bag's manifest records and the archive read this
//! time is the archive that verified. Nothing is written to disk; the member is capped in size.

use std::io::{self, BufReader, Read};

use super::archive::MAX_WINDOW_LOG;
use super::{verify_case, Options, Problem, Report, VerifyError};
use crate::digest::{HashingReader, Sha256Digest};
use crate::id::{BundleId, CaseId};
use crate::store::{Store, StoreError, StoreKey};

/// Why a member was not handed out. Every variant names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{0:?} is not a payload file of a bag (a relative path under data/, without '.', '..' or empty parts)")]
    BadPath(String),
    #[error("bundle {bundle} of case {case} does not verify ({count} problem(s)): {summary}", count = problems.len(), summary = summary(problems))]
    NotVerified {
        case: CaseId,
        bundle: BundleId,
        problems: Vec<Problem>,
    },
    #[error("cannot verify bundle {bundle}: {source}")]
    Verify {
        bundle: BundleId,
        source: VerifyError,
    },
    #[error("cannot read the archive of bundle {bundle}: {source}")]
    Store {
        bundle: BundleId,
        source: StoreError,
    },
    #[error("cannot read {path} out of bundle {bundle}: {source}")]
    Read {
        bundle: BundleId,
        path: String,
        source: io::Error,
    },
    #[error("bundle {bundle} holds no file {path}")]
    NoSuchMember { bundle: BundleId, path: String },
    #[error("{path} is {size} bytes, more than the {max} bytes allowed")]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("bundle {bundle}'s manifest-sha256.txt does not list {path}")]
    NotInManifest { bundle: BundleId, path: String },
    #[error("{path} in bundle {bundle} has SHA-256 {actual}, but the bag's manifest records {expected}: refused")]
    MemberMismatch {
        bundle: BundleId,
        path: String,
        expected: String,
        actual: Sha256Digest,
    },
    #[error("the archive of bundle {bundle} read now has SHA-256 {actual}, not the verified {expected}: it changed after it was verified; refused")]
    ArchiveChanged {
        bundle: BundleId,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
}

/// The first few problems, for a one-line message (the error keeps them all).
fn summary(problems: &[Problem]) -> String {
    let mut parts: Vec<String> = problems
        .iter()
        .take(3)
        .map(|p| format!("{} {}: {}", p.code, p.subject, p.message))
        .collect();
    if problems.len() > 3 {
        parts.push(format!("and {} more", problems.len() - 3));
    }
    parts.join("; ")
}

/// The member `path` of bundle `bundle` (a path inside the bag, e.g. `data/analysis/report.html`),
/// at most `max` bytes, once the case's journal and the bundle verify with `options` (see the
/// module comment). `store` is the view to read: for S3, the caller's choice of versions.
pub fn read_member(
    store: &dyn Store,
    case: &CaseId,
    bundle: &BundleId,
    path: &str,
    max: u64,
    options: &Options,
) -> Result<Vec<u8>, ExtractError> {
    check_path(path)?;
    let verified = verified_archive(store, case, bundle, options)?;
    let found = stream_member(store, case, bundle, path, max)?;
    if found.archive_sha256 != verified {
        return Err(ExtractError::ArchiveChanged {
            bundle: bundle.clone(),
            expected: verified,
            actual: found.archive_sha256,
        });
    }
    let Some(bytes) = found.member else {
        return Err(ExtractError::NoSuchMember {
            bundle: bundle.clone(),
            path: path.to_owned(),
        });
    };
    let manifest = found.manifest.unwrap_or_default();
    let Some(expected) = manifest_sha256(&manifest, path) else {
        return Err(ExtractError::NotInManifest {
            bundle: bundle.clone(),
            path: path.to_owned(),
        });
    };
    let actual = Sha256Digest::of(&bytes);
    if !actual.to_hex().eq_ignore_ascii_case(&expected) {
        return Err(ExtractError::MemberMismatch {
            bundle: bundle.clone(),
            path: path.to_owned(),
            expected,
            actual,
        });
    }
    Ok(bytes)
}

/// Only payload files, named plainly: they are what the manifest covers.
fn check_path(path: &str) -> Result<(), ExtractError> {
    let bad = || ExtractError::BadPath(path.to_owned());
    let rest = path.strip_prefix("data/").ok_or_else(bad)?;
    let plain = !rest.is_empty()
        && !path.contains(['\\', '\0', '\n', '\r'])
        && rest.split('/').all(|p| !matches!(p, "" | "." | ".."));
    plain.then_some(()).ok_or_else(bad)
}

/// Verifies the case's journal and the bundle, and returns the archive's verified SHA-256.
fn verified_archive(
    store: &dyn Store,
    case: &CaseId,
    bundle: &BundleId,
    options: &Options,
) -> Result<Sha256Digest, ExtractError> {
    let mut report = Report::default();
    verify_case(store, None, case, Some(bundle), options, &mut report).map_err(|source| {
        ExtractError::Verify {
            bundle: bundle.clone(),
            source,
        }
    })?;
    let digest = report
        .cases
        .iter()
        .flat_map(|c| &c.bundles)
        .find(|b| &b.bundle_id == bundle)
        .and_then(|b| b.archive_sha256);
    match digest {
        Some(d) if report.problems.is_empty() => Ok(d),
        _ => {
            let mut problems = report.problems;
            if problems.is_empty() {
                problems.push(Problem::new(
                    "missing_file",
                    StoreKey::Archive(case.clone(), bundle.clone()).path(),
                    "the archive could not be read",
                ));
            }
            Err(ExtractError::NotVerified {
                case: case.clone(),
                bundle: bundle.clone(),
                problems,
            })
        }
    }
}

/// What the second pass over the archive found.
struct Found {
    archive_sha256: Sha256Digest,
    member: Option<Vec<u8>>,
    manifest: Option<Vec<u8>>,
}

/// The largest `manifest-sha256.txt` read (as `verify` caps tag files).
const MAX_MANIFEST: u64 = 64 * 1024 * 1024;

/// Streams the archive: the member and the manifest read (capped), every compressed byte hashed.
fn stream_member(
    store: &dyn Store,
    case: &CaseId,
    bundle: &BundleId,
    path: &str,
    max: u64,
) -> Result<Found, ExtractError> {
    let read_err = |source: io::Error| ExtractError::Read {
        bundle: bundle.clone(),
        path: path.to_owned(),
        source,
    };
    let raw = store
        .open(&StoreKey::Archive(case.clone(), bundle.clone()))
        .map_err(|source| ExtractError::Store {
            bundle: bundle.clone(),
            source,
        })?;
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(BufReader::new(HashingReader::new(raw)))
            .map_err(read_err)?;
    decoder.window_log_max(MAX_WINDOW_LOG).map_err(read_err)?;
    let mut archive = tar::Archive::new(decoder);
    let member_name = format!("{bundle}/{path}");
    let manifest_name = format!("{bundle}/manifest-sha256.txt");
    let (mut member, mut manifest) = (None, None);
    for entry in archive.entries().map_err(read_err)?.raw(true) {
        let mut entry = entry.map_err(read_err)?;
        let name = entry.path_bytes().into_owned();
        let regular = entry.header().entry_type().is_file();
        if regular && name == member_name.as_bytes() && member.is_none() {
            let size = entry.size();
            if size > max {
                return Err(ExtractError::TooLarge {
                    path: path.to_owned(),
                    size,
                    max,
                });
            }
            member = Some(read_capped(&mut entry, max, path).map_err(read_err)?);
        } else if regular && name == manifest_name.as_bytes() && manifest.is_none() {
            manifest = Some(read_capped(&mut entry, MAX_MANIFEST, "manifest").map_err(read_err)?);
        }
    }
    // The rest of the compressed bytes (zstd padding, anything after the tar), so that the
    // digest is the whole object's.
    let hashing = archive.into_inner().finish().into_inner();
    let (archive_sha256, _) = hashing.finish().map_err(read_err)?;
    Ok(Found {
        archive_sha256,
        member,
        manifest,
    })
}

fn read_capped(entry: &mut dyn Read, max: u64, what: &str) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    entry.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::other(format!(
            "{what} is larger than {max} bytes"
        )));
    }
    Ok(bytes)
}

/// The SHA-256 hex the manifest (`<hex>  <path>` lines) records for `path`.
fn manifest_sha256(manifest: &[u8], path: &str) -> Option<String> {
    let text = std::str::from_utf8(manifest).ok()?;
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(_, name)| name.trim_start_matches(' ') == path)
        .map(|(hex, _)| hex.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_payload_paths_are_read() {
        for ok in ["data/analysis/report.html", "data/logs/a.log", "data/x"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "bagit.txt",
            "manifest-sha256.txt",
            "data/",
            "data/../bagit.txt",
            "data/./x",
            "data//x",
            "/data/x",
            "data/a\\b",
            "data/a\nb",
        ] {
            assert!(
                matches!(check_path(bad), Err(ExtractError::BadPath(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_manifest_line_of_exactly_the_path_is_used() {
        let manifest =
            b"aa  data/analysis/report.html.bak\nbb  data/analysis/report.html\ncc  data/x\n";
        assert_eq!(
            manifest_sha256(manifest, "data/analysis/report.html").as_deref(),
            Some("bb")
        );
        assert_eq!(manifest_sha256(manifest, "data/y"), None);
        assert_eq!(manifest_sha256(b"\xff\xfe", "data/x"), None);
    }

    #[test]
    fn a_refusal_names_its_first_problems() {
        let problems: Vec<Problem> = (0..5)
            .map(|i| Problem::new("archive_hash_mismatch", format!("s{i}"), "changed"))
            .collect();
        let e = ExtractError::NotVerified {
            case: CaseId::new("c-1").unwrap(),
            bundle: BundleId::new("b-1").unwrap(),
            problems,
        };
        let text = e.to_string();
        assert!(text.contains("5 problem(s)"), "{text}");
        assert!(text.contains("archive_hash_mismatch s0: changed"), "{text}");
        assert!(text.contains("and 2 more"), "{text}");
    }
}
