//! One bundle, checked: the sidecar, the seal's signature, the archive streamed through zstd (with
//! a size cap) and tar (no unsafe entries), every payload file against both manifests, the bag's
//! tag files, the seal's fields against what was read, and the seal against the journal.

use std::collections::BTreeMap;

use serde::Serialize;

use super::archive::{fallback_cap, stream_archive, CAP_SLACK};
use super::bag::{check_bag, payload_oxum};
use super::{Options, Problem};
use crate::case::entry::BundleSealed;
use crate::case::{CheckedChain, Details, EntryKind};
use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId, KeyId};
use crate::keys::PublicKey;
use crate::seal::{SealRecord, SEAL_FORMAT};
use crate::store::{archive_name, Store, StoreKey};

#[derive(Debug, Serialize)]
pub struct BundleReport {
    pub bundle_id: BundleId,
    pub ok: bool,
    pub archive_sha256: Option<Sha256Digest>,
    pub signature_valid: bool,
    pub key_id: Option<KeyId>,
    /// Whether the verifying key was given by the auditor rather than taken from the store.
    pub key_trusted: bool,
    pub payload_files: u64,
    pub payload_bytes: u64,
}

pub(super) struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    pub(super) fn add(
        &mut self,
        code: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            code,
            subject: subject.into(),
            message: message.into(),
        });
    }
}

/// What streaming the archive found.
#[derive(Default)]
pub(super) struct Contents {
    /// Payload files (`data/…`): size, SHA-256 and SHA-512 hex.
    pub(super) payload: BTreeMap<String, (u64, String, String)>,
    /// Tag files, whole.
    pub(super) tags: BTreeMap<String, Vec<u8>>,
    pub(super) unpacked: u64,
    pub(super) compressed_sha256: Option<Sha256Digest>,
    pub(super) compressed_size: u64,
}

pub fn verify_bundle(
    store: &dyn Store,
    case: &CaseId,
    bundle: &BundleId,
    chain: &CheckedChain,
    options: &Options,
) -> (BundleReport, Vec<Problem>, Vec<String>) {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let mut warnings = Vec::new();
    let seal_key = StoreKey::Seal(case.clone(), bundle.clone());

    let sidecar = read_sidecar(store, case, bundle, &mut c);
    let (seal_bytes, seal) = read_seal(store, &seal_key, &mut c);
    let signature = check_signature(
        store,
        case,
        bundle,
        seal_bytes.as_deref(),
        seal.as_ref(),
        options,
        &mut c,
        &mut warnings,
    );

    // The sealed size plus slack: enough to read an altered archive far enough to report what is
    // in it, while a decompression bomb still stops early.
    let cap = seal.as_ref().map_or_else(
        || fallback_cap(store, case, bundle, options),
        |s| {
            s.archive
                .unpacked_size
                .saturating_add(CAP_SLACK)
                .min(options.max_unpacked)
        },
    );
    let contents = stream_archive(store, case, bundle, cap, &mut c);
    let archive_path = StoreKey::Archive(case.clone(), bundle.clone()).path();
    if let (Some(got), Some(want)) = (contents.compressed_sha256, sidecar) {
        if got != want {
            c.add(
                "archive_hash_mismatch",
                archive_path,
                format!("SHA-256 is {got}, the sidecar says {want}"),
            );
        }
    }
    check_bag(bundle, case, &contents, &mut c);
    if let (Some(seal), Some(bytes)) = (&seal, &seal_bytes) {
        check_seal_fields(seal, case, bundle, &contents, &mut c);
        check_journal(seal, bytes, bundle, chain, &contents, &seal_key, &mut c);
    }
    let report = BundleReport {
        bundle_id: bundle.clone(),
        ok: c.problems.is_empty(),
        archive_sha256: contents.compressed_sha256,
        signature_valid: signature.valid,
        key_id: signature.key_id,
        key_trusted: signature.trusted,
        payload_files: contents.payload.len() as u64,
        payload_bytes: contents.payload.values().map(|p| p.0).sum(),
    };
    (report, c.problems, warnings)
}

/// The seal's bytes (as signed) and the seal record they hold, each reported when it cannot be
/// had.
fn read_seal(
    store: &dyn Store,
    seal_key: &StoreKey,
    c: &mut Checker,
) -> (Option<Vec<u8>>, Option<SealRecord>) {
    let seal_bytes = match store.get(seal_key) {
        Ok(b) => Some(b),
        Err(e) => {
            c.add("missing_file", seal_key.path(), e.to_string());
            None
        }
    };
    let seal: Option<SealRecord> =
        seal_bytes
            .as_ref()
            .and_then(|b| match serde_json::from_slice(b) {
                Ok(s) => Some(s),
                Err(e) => {
                    c.add(
                        "seal_invalid",
                        seal_key.path(),
                        format!("not a seal record: {e}"),
                    );
                    None
                }
            });
    (seal_bytes, seal)
}

fn read_sidecar(
    store: &dyn Store,
    case: &CaseId,
    bundle: &BundleId,
    c: &mut Checker,
) -> Option<Sha256Digest> {
    let key = StoreKey::ArchiveSidecar(case.clone(), bundle.clone());
    let bytes = match store.get(&key) {
        Ok(b) => b,
        Err(e) => {
            c.add("missing_file", key.path(), e.to_string());
            return None;
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let line = text.strip_suffix('\n').unwrap_or(&text);
    match line.split_once("  ") {
        Some((hex, name)) if name == archive_name(bundle) && !line.contains('\n') => {
            match hex.parse() {
                Ok(d) => Some(d),
                Err(e) => {
                    c.add("sidecar_invalid", key.path(), e.to_string());
                    None
                }
            }
        }
        _ => {
            c.add(
                "sidecar_invalid",
                key.path(),
                format!("expected one line \"<sha256>  {}\"", archive_name(bundle)),
            );
            None
        }
    }
}

struct SignatureCheck {
    valid: bool,
    key_id: Option<KeyId>,
    trusted: bool,
}

#[allow(clippy::too_many_arguments)]
fn check_signature(
    store: &dyn Store,
    case: &CaseId,
    bundle: &BundleId,
    seal_bytes: Option<&[u8]>,
    seal: Option<&SealRecord>,
    options: &Options,
    c: &mut Checker,
    warnings: &mut Vec<String>,
) -> SignatureCheck {
    let none = SignatureCheck {
        valid: false,
        key_id: None,
        trusted: false,
    };
    let sig_key = StoreKey::SealSignature(case.clone(), bundle.clone());
    let signature = match store.get(&sig_key) {
        Ok(s) => s,
        Err(e) => {
            c.add("missing_file", sig_key.path(), e.to_string());
            return none;
        }
    };
    let Some(seal_bytes) = seal_bytes else {
        return none;
    };
    let Some((key, trusted)) = signing_key(store, case, bundle, seal, options, c, warnings) else {
        return none;
    };
    let valid = key.verify(seal_bytes, &signature);
    if !valid {
        let named = seal.map_or_else(|| "no key".to_string(), |s| format!("key {}", s.key_id));
        c.add(
            "signature_invalid",
            sig_key.path(),
            format!(
                "the seal's signature does not verify with key {} (the seal names {named}): the seal was altered or signed by another key",
                key.id()
            ),
        );
    }
    SignatureCheck {
        valid,
        key_id: Some(key.id().clone()),
        trusted,
    }
}

/// The key to check the seal's signature with, and whether it is trusted: the one given to
/// `verify` (which the seal must name), else the store's own copy of the key the seal names
/// (untrusted, with a warning). `None` when there is none to check with.
fn signing_key(
    store: &dyn Store,
    case: &CaseId,
    bundle: &BundleId,
    seal: Option<&SealRecord>,
    options: &Options,
    c: &mut Checker,
    warnings: &mut Vec<String>,
) -> Option<(PublicKey, bool)> {
    match (&options.public_key, seal) {
        (Some(k), seal) => {
            if let Some(seal) = seal.filter(|s| &s.key_id != k.id()) {
                c.add(
                    "key_mismatch",
                    StoreKey::Seal(case.clone(), bundle.clone()).path(),
                    format!(
                        "the seal names key {}, but the key given to verify it (--public-key) is key {}: the seal was signed by another key, or the wrong key was given",
                        seal.key_id,
                        k.id()
                    ),
                );
            }
            Some((k.clone(), true))
        }
        (None, Some(seal)) => match load_store_key(store, &seal.key_id) {
            Ok(key) => {
                warnings.push(format!(
                    "signatures were checked against the store's own copy of key {id} (keys/{id}.pub), which was not independently trusted: pass --public-key with the collector's key from a trusted source",
                    id = seal.key_id
                ));
                Some((key, false))
            }
            Err(KeyFileProblem::Missing(e)) => {
                c.add(
                    "key_missing",
                    StoreKey::PublicKey(seal.key_id.clone()).path(),
                    format!("cannot load the seal's key: {e}"),
                );
                None
            }
            Err(KeyFileProblem::Mismatch(key, message)) => {
                c.add(
                    "key_mismatch",
                    StoreKey::PublicKey(seal.key_id.clone()).path(),
                    message,
                );
                Some((*key, false))
            }
        },
        (None, None) => None,
    }
}

/// Why a store's `keys/<id>.pub` cannot stand for key `<id>`.
pub(super) enum KeyFileProblem {
    /// It cannot be read or is not a public key.
    Missing(String),
    /// It holds another key (given), whose id is not the one in its name.
    Mismatch(Box<PublicKey>, String),
}

/// Loads `keys/<id>.pub` and checks that the key in it is key `id`, so that a key planted under
/// another key's name cannot vouch for a seal that names that other key.
pub(super) fn load_store_key(store: &dyn Store, id: &KeyId) -> Result<PublicKey, KeyFileProblem> {
    let k = StoreKey::PublicKey(id.clone());
    let key = store
        .get(&k)
        .map_err(|e| e.to_string())
        .and_then(|b| PublicKey::from_pem(&String::from_utf8_lossy(&b)))
        .map_err(KeyFileProblem::Missing)?;
    if key.id() != id {
        let message = format!(
            "{} holds key {} (the first 16 hex digits of the SHA-256 of its SPKI DER), not key {id}: the store's copy of the key was replaced",
            k.path(),
            key.id()
        );
        return Err(KeyFileProblem::Mismatch(Box::new(key), message));
    }
    Ok(key)
}

fn check_seal_fields(
    seal: &SealRecord,
    case: &CaseId,
    bundle: &BundleId,
    contents: &Contents,
    c: &mut Checker,
) {
    let subject = StoreKey::Seal(case.clone(), bundle.clone()).path();
    let mut differ = |what: &str, sealed: String, found: String| {
        if sealed != found {
            c.add(
                "seal_mismatch",
                subject.clone(),
                format!("the seal records {what} {sealed}, but found {found}"),
            );
        }
    };
    differ("format", seal.format.clone(), SEAL_FORMAT.into());
    differ("case id", seal.case_id.to_string(), case.to_string());
    differ("bundle id", seal.bundle_id.to_string(), bundle.to_string());
    differ(
        "archive name",
        seal.archive.name.clone(),
        archive_name(bundle),
    );
    if let Some(d) = contents.compressed_sha256 {
        differ("archive SHA-256", seal.archive.sha256.to_hex(), d.to_hex());
        differ(
            "archive size",
            seal.archive.size.to_string(),
            contents.compressed_size.to_string(),
        );
        differ(
            "unpacked size",
            seal.archive.unpacked_size.to_string(),
            contents.unpacked.to_string(),
        );
    }
    differ(
        "Payload-Oxum",
        seal.bag.payload_oxum.clone(),
        payload_oxum(contents),
    );
    if let Some(m) = contents.tags.get("manifest-sha256.txt") {
        differ(
            "manifest-sha256.txt SHA-256",
            seal.bag.manifest_sha256.to_hex(),
            Sha256Digest::of(m).to_hex(),
        );
    }
    if let Some(m) = contents.tags.get("tagmanifest-sha256.txt") {
        differ(
            "tagmanifest-sha256.txt SHA-256",
            seal.bag.tagmanifest_sha256.to_hex(),
            Sha256Digest::of(m).to_hex(),
        );
    }
}

/// The seal pins the journal head at sealing time, and a later entry records the sealing.
fn check_journal(
    seal: &SealRecord,
    seal_bytes: &[u8],
    bundle: &BundleId,
    chain: &CheckedChain,
    contents: &Contents,
    seal_key: &StoreKey,
    c: &mut Checker,
) {
    let head = seal.journal_head;
    check_captured_sources(head.seq, chain, contents, bundle, c);
    let subject = seal_key.path();
    check_pinned_head(seal, chain, &subject, c);
    let recorded = super::sealings(chain)
        .into_iter()
        .find(|(_, b)| &b.bundle_id == bundle);
    let Some((seq, sealed)) = recorded else {
        c.add(
            "journal",
            subject,
            "no journal entry records this bundle's sealing",
        );
        return;
    };
    check_sealing_entry(seq, &sealed, seal, seal_bytes, &subject, c);
}

/// The journal entry the seal pins as the head must be there, with the digest the seal names.
fn check_pinned_head(seal: &SealRecord, chain: &CheckedChain, subject: &str, c: &mut Checker) {
    let head = seal.journal_head;
    match chain.digest_of(head.seq) {
        Some(d) if d == head.sha256 => {}
        Some(d) => c.add(
            "journal",
            subject,
            format!(
                "the seal pins journal entry {} with SHA-256 {}, but that entry's SHA-256 is {d}",
                head.seq, head.sha256
            ),
        ),
        None => c.add(
            "journal",
            subject,
            format!(
                "the seal pins journal entry {}, which is missing (journal truncated?)",
                head.seq
            ),
        ),
    }
}

/// The `bundle_sealed` entry (at `seq`) must directly follow the pinned head and record this
/// seal: its key, its archive's size and digest, and the seal's own digest.
fn check_sealing_entry(
    seq: u64,
    sealed: &BundleSealed,
    seal: &SealRecord,
    seal_bytes: &[u8],
    subject: &str,
    c: &mut Checker,
) {
    let head = seal.journal_head;
    let seal_sha = Sha256Digest::of(seal_bytes).to_hex();
    if seq != head.seq + 1 {
        c.add(
            "journal",
            subject,
            format!(
                "journal entry {seq} records the sealing, but it must directly follow entry {}, the head the seal pins",
                head.seq
            ),
        );
    }
    if sealed.key_id != seal.key_id {
        c.add(
            "journal",
            subject,
            format!(
                "journal entry {seq} records key {}, the seal names key {}",
                sealed.key_id, seal.key_id
            ),
        );
    }
    if sealed.archive.size != seal.archive.size {
        c.add(
            "journal",
            subject,
            format!(
                "journal entry {seq} records another archive size ({}), the seal says {}",
                sealed.archive.size, seal.archive.size
            ),
        );
    }
    if sealed.seal.sha256.to_hex() != seal_sha {
        c.add(
            "journal",
            subject,
            format!(
                "journal entry {seq} records another seal (SHA-256 {}), this seal's is {seal_sha}",
                sealed.seal.sha256
            ),
        );
    }
    if sealed.archive.sha256 != seal.archive.sha256 {
        c.add(
            "journal",
            subject,
            format!(
                "journal entry {seq} records another archive (SHA-256 {})",
                sealed.archive.sha256
            ),
        );
    }
}

/// Every source the journal says was captured before the seal must be in the bag, byte for byte.
fn check_captured_sources(
    head: u64,
    chain: &CheckedChain,
    contents: &Contents,
    bundle: &BundleId,
    c: &mut Checker,
) {
    // This bundle's sources: those after any earlier bundle and any interrupted attempt.
    let start = chain
        .entries
        .iter()
        .filter(|(e, _)| {
            e.seq <= head
                && matches!(
                    e.kind(),
                    EntryKind::BundleSealed
                        | EntryKind::ActionsSealed
                        | EntryKind::CollectionRestarted
                )
        })
        .map(|(e, _)| e.seq)
        .max()
        .unwrap_or(0);
    let this_bundle = chain
        .entries
        .iter()
        .map(|(e, _)| e)
        .filter(|e| e.seq > start && e.seq <= head);
    let captured = this_bundle.clone().filter_map(|e| match &e.details {
        Details::SourceCaptured(d) => Some((e.seq, d)),
        _ => None,
    });
    // A source whose staged copy changed after its capture was left out of the bag, as a later
    // entry records; the report lists it as incomplete.
    let left_out: Vec<&str> = this_bundle
        .filter_map(|e| match &e.details {
            Details::SourceFailed(f) if f.sealed == Some(false) => f.bag_path.as_deref(),
            _ => None,
        })
        .collect();
    for (seq, entry) in captured {
        let path = entry.bag_path.as_str();
        if left_out.contains(&path) && !contents.payload.contains_key(path) {
            continue;
        }
        let sha = entry.sha256.to_hex();
        match contents.payload.get(path) {
            None => c.add(
                "journal",
                format!("{bundle}/{path}"),
                format!("journal entry {seq} records this source as captured, but it is not in the bag"),
            ),
            Some((size, s256, _)) if s256.as_str() != sha || *size != entry.bytes => c.add(
                "journal",
                format!("{bundle}/{path}"),
                format!(
                    "journal entry {seq} records {} bytes with SHA-256 {sha}, the bag holds {size} bytes with SHA-256 {s256}",
                    entry.bytes,
                ),
            ),
            Some(_) => {}
        }
    }
}
