//! What a spooled case must be before any of it goes to S3: exactly what was sealed. The spool
//! is a local directory anyone with the account can write, and an upload puts each object under
//! a COMPLIANCE lock nobody can lift, so every object is checked against the seal, the sidecar,
//! the signature and the journal first, and a case that differs is refused whole.
//!
//! Each file is read once: the digests taken here are the ones the upload sends as the S3
//! checksum, so what is checked is what is uploaded.

use std::fs;
use std::path::PathBuf;

use super::SpoolStore;
use crate::case::{self as journal, CaseState, CheckedChain, Details};
use crate::digest::{HashingReader, Sha256Digest};
use crate::id::{BundleId, CaseId, KeyId};
use crate::keys::PublicKey;
use crate::seal::{sidecar_text, SealRecord};
use crate::store::{archive_name, Store, StoreError, StoreKey};

/// A spooled case that matches what was sealed, ready to upload: the evidence first (the header
/// and each bundle's archive, sidecar, seal and signature), then the keys its seals name, then
/// the journal that records them, so that S3 never holds a record of evidence it lacks.
pub struct CheckedCase {
    /// The case header and its bundles' objects, in upload order.
    pub objects: Vec<CheckedObject>,
    /// The public keys its seals name (shared with the store's other cases).
    pub keys: Vec<CheckedObject>,
    /// The journal's entries, in sequence order.
    pub journal: Vec<CheckedObject>,
}

/// One spooled object, read and hashed once.
pub struct CheckedObject {
    pub key: StoreKey,
    pub path: PathBuf,
    pub sha256: Sha256Digest,
    pub size: u64,
}

/// Why a spooled case is refused: the object and what is wrong with it.
#[derive(Debug)]
pub struct Mismatch {
    pub object: String,
    pub why: String,
}

/// Either the spool could not be read, or it does not hold what was sealed.
pub enum CheckError {
    Store(StoreError),
    Mismatch(Mismatch),
}

impl From<StoreError> for CheckError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn mismatch(object: impl Into<String>, why: impl Into<String>) -> CheckError {
    CheckError::Mismatch(Mismatch {
        object: object.into(),
        why: why.into(),
    })
}

/// Reads every object of `case` in the spool once and checks it against what was sealed: the
/// header against journal entry 1, the journal chain, and for each bundle the archive against
/// its sidecar, its seal and its `bundle_sealed` entry, and the seal's signature under the key
/// it names.
pub fn spooled_case(spool: &SpoolStore, case: &CaseId) -> Result<CheckedCase, CheckError> {
    let mut objects = Vec::new();
    let header_key = StoreKey::CaseHeader(case.clone());
    let (header, header_bytes) = read_small(spool, &header_key)?;
    objects.push(header);

    let (seqs, strays) = spool.list_journal(case)?;
    let mut sizes = Vec::new();
    let chain = journal::check_entries(case, seqs, strays, |key| {
        let bytes = read_bytes(spool, key)?;
        sizes.push((key.clone(), bytes.len() as u64));
        Ok(bytes)
    });
    if let Some(problem) = chain.problems.first() {
        return Err(mismatch(
            spool.dir().join(&problem.key).display().to_string(),
            format!("the journal chain is broken: {}", problem.message),
        ));
    }
    let mut journal = Vec::new();
    for (key, size) in sizes {
        let StoreKey::JournalEntry(_, seq) = &key else {
            continue;
        };
        let Some(sha256) = chain.digest_of(*seq) else {
            continue;
        };
        journal.push(CheckedObject {
            path: spool.dir().join(key.path()),
            key,
            sha256,
            size,
        });
    }
    check_header(spool, case, &chain, &header_key, &header_bytes)?;

    let (bundles, _) = spool.list_bundles(case)?;
    check_every_sealed_bundle_is_spooled(spool, case, &chain, &bundles)?;
    let mut keys: Vec<CheckedObject> = Vec::new();
    for bundle in &bundles {
        let key_id = check_bundle(spool, case, bundle, &chain, &mut objects)?;
        if !keys
            .iter()
            .any(|k| k.key == StoreKey::PublicKey(key_id.clone()))
        {
            keys.push(read_small(spool, &StoreKey::PublicKey(key_id))?.0);
        }
    }
    check_entry_signatures(spool, case, &chain, &mut journal, &mut keys)?;
    Ok(CheckedCase {
        objects,
        keys,
        journal,
    })
}

/// `case.json` must be the header journal entry 1 recorded.
fn check_header(
    spool: &SpoolStore,
    case: &CaseId,
    chain: &CheckedChain,
    key: &StoreKey,
    bytes: &[u8],
) -> Result<(), CheckError> {
    let uri = spooled(spool, key);
    let first = chain.entries.first().map(|(e, _)| e);
    let opened = first.filter(|e| e.seq == 1).and_then(|e| match &e.details {
        Details::CaseOpened(d) => Some(d),
        _ => None,
    });
    let Some(opened) = opened else {
        return Err(mismatch(
            spooled(spool, &StoreKey::JournalEntry(case.clone(), 1)),
            "the journal does not open with case_opened",
        ));
    };
    let recorded = opened.case_header_sha256;
    let actual = Sha256Digest::of(bytes);
    if recorded != actual {
        return Err(mismatch(
            uri,
            format!("its SHA-256 is {actual}, journal entry 1 recorded {recorded}"),
        ));
    }
    Ok(())
}

/// A bundle the journal records as sealed must be in the spool: uploading the case without it
/// would lose it.
fn check_every_sealed_bundle_is_spooled(
    spool: &SpoolStore,
    case: &CaseId,
    chain: &CheckedChain,
    bundles: &[BundleId],
) -> Result<(), CheckError> {
    for (seq, _, sealed) in CaseState::of(chain).bundles() {
        if !bundles.contains(&sealed.bundle_id) {
            return Err(mismatch(
                spooled(spool, &StoreKey::JournalEntry(case.clone(), seq)),
                format!(
                    "records bundle {} as sealed, but the spool does not hold it",
                    sealed.bundle_id
                ),
            ));
        }
    }
    Ok(())
}

/// Checks one bundle's four objects and adds them to `objects`; returns the key id its seal
/// names.
fn check_bundle(
    spool: &SpoolStore,
    case: &CaseId,
    bundle: &BundleId,
    chain: &CheckedChain,
    objects: &mut Vec<CheckedObject>,
) -> Result<KeyId, CheckError> {
    let archive_key = StoreKey::Archive(case.clone(), bundle.clone());
    let archive = hash_file(spool, &archive_key)?;
    let sidecar_key = StoreKey::ArchiveSidecar(case.clone(), bundle.clone());
    let (sidecar, sidecar_bytes) = read_small(spool, &sidecar_key)?;
    let seal_key = StoreKey::Seal(case.clone(), bundle.clone());
    let (seal, seal_bytes) = read_small(spool, &seal_key)?;
    let signature_key = StoreKey::SealSignature(case.clone(), bundle.clone());
    let (signature, signature_bytes) = read_small(spool, &signature_key)?;
    let archive_uri = spooled(spool, &archive_key);

    let record: SealRecord = serde_json::from_slice(&seal_bytes)
        .map_err(|e| mismatch(spooled(spool, &seal_key), format!("not a seal record: {e}")))?;
    let seal_uri = spooled(spool, &seal_key);
    if &record.case_id != case || &record.bundle_id != bundle {
        return Err(mismatch(
            seal_uri,
            format!(
                "it seals bundle {} of case {}",
                record.bundle_id, record.case_id
            ),
        ));
    }
    check_signature(spool, &record, &seal_uri, &seal_bytes, &signature_bytes)?;
    if record.archive.name != archive_name(bundle)
        || record.archive.sha256 != archive.sha256
        || record.archive.size != archive.size
    {
        return Err(mismatch(
            archive_uri,
            format!(
                "SHA-256 {} and {} bytes, but the seal says {} and {} bytes",
                archive.sha256, archive.size, record.archive.sha256, record.archive.size
            ),
        ));
    }
    if sidecar_bytes != sidecar_text(&archive.sha256, bundle).as_bytes() {
        return Err(mismatch(
            spooled(spool, &sidecar_key),
            format!(
                "it does not name the sealed archive's SHA-256 {}",
                archive.sha256
            ),
        ));
    }
    if chain.digest_of(record.journal_head.seq) != Some(record.journal_head.sha256) {
        return Err(mismatch(
            seal_uri,
            format!(
                "it pins journal entry {} with SHA-256 {}, which the journal does not hold",
                record.journal_head.seq, record.journal_head.sha256
            ),
        ));
    }
    check_sealed_entry(spool, bundle, chain, &archive, &seal)?;
    let key_id = record.key_id;
    objects.extend([archive, sidecar, seal, signature]);
    Ok(key_id)
}

/// The seal's signature must verify under the key it names, as spooled in `keys/`.
fn check_signature(
    spool: &SpoolStore,
    record: &SealRecord,
    seal_uri: &str,
    seal_bytes: &[u8],
    signature: &[u8],
) -> Result<(), CheckError> {
    let key = StoreKey::PublicKey(record.key_id.clone());
    let key_uri = spooled(spool, &key);
    let pem = read_bytes(spool, &key)?;
    let public = std::str::from_utf8(&pem)
        .map_err(|e| e.to_string())
        .and_then(PublicKey::from_pem)
        .map_err(|e| mismatch(key_uri.clone(), format!("not a public key: {e}")))?;
    if public.id() != &record.key_id {
        return Err(mismatch(
            key_uri,
            format!(
                "it holds key {}, not the key {} it is named after",
                public.id(),
                record.key_id
            ),
        ));
    }
    if !public.verify(seal_bytes, signature) {
        return Err(mismatch(
            seal_uri,
            format!("its signature does not verify under key {}", record.key_id),
        ));
    }
    Ok(())
}

/// The bundle's `bundle_sealed` journal entry must record this archive and this seal.
fn check_sealed_entry(
    spool: &SpoolStore,
    bundle: &BundleId,
    chain: &CheckedChain,
    archive: &CheckedObject,
    seal: &CheckedObject,
) -> Result<(), CheckError> {
    let state = CaseState::of(chain);
    let entry = state.bundles().find(|(_, _, b)| &b.bundle_id == bundle);
    let Some((seq, _, sealed)) = entry else {
        return Err(mismatch(
            spooled(spool, &archive.key),
            "the journal has no bundle_sealed entry for it",
        ));
    };
    for (want, object) in [(sealed.archive.sha256, archive), (sealed.seal.sha256, seal)] {
        if want != object.sha256 {
            return Err(mismatch(
                spooled(spool, &object.key),
                format!(
                    "its SHA-256 is {}, journal entry {seq} recorded {want}",
                    object.sha256,
                ),
            ));
        }
    }
    Ok(())
}

/// Every entry's signature in the spool must verify over the entry's bytes under a key in the
/// spool's `keys/`, and an entry may lack one only as `verify` allows (a legacy entry, before
/// the case's first signed one). Puts each signature right after its entry in `journal`, and
/// the keys that made them in `keys`.
fn check_entry_signatures(
    spool: &SpoolStore,
    case: &CaseId,
    chain: &CheckedChain,
    journal: &mut Vec<CheckedObject>,
    keys: &mut Vec<CheckedObject>,
) -> Result<(), CheckError> {
    let names = spool.list(&crate::store::StorePrefix::Journal(case.clone()))?;
    let signed = crate::store::layout::journal_signatures(&names);
    let strict = signed.contains(&1) || crate::seal::journal_signed(spool, case)?;
    let first_signed = signed.first().copied();
    let published = crate::store::published::published(spool)?;
    let mut with_signatures = Vec::new();
    for entry in std::mem::take(journal) {
        let StoreKey::JournalEntry(_, seq) = entry.key else {
            with_signatures.push(entry);
            continue;
        };
        let digest = chain.digest_of(seq);
        if !signed.contains(&seq) {
            if crate::case::journal::legacy_unsigned(seq, strict, first_signed) {
                with_signatures.push(entry);
                continue;
            }
            return Err(mismatch(
                spooled(spool, &entry.key),
                "the entry is not signed",
            ));
        }
        let bytes = read_bytes(spool, &entry.key)?;
        let sig_key = StoreKey::JournalSignature(case.clone(), seq);
        let (signature, signature_bytes) = read_small(spool, &sig_key)?;
        let signer = crate::keys::signer(&published, &bytes, &signature_bytes);
        let Some(signer) = signer.filter(|_| Some(Sha256Digest::of(&bytes)) == digest) else {
            return Err(mismatch(
                spooled(spool, &sig_key),
                "it does not verify over the entry under any key in the spool's keys/",
            ));
        };
        let signer_key = StoreKey::PublicKey(signer.id().clone());
        if !keys.iter().any(|k| k.key == signer_key) {
            keys.push(read_small(spool, &signer_key)?.0);
        }
        with_signatures.push(entry);
        with_signatures.push(signature);
    }
    *journal = with_signatures;
    Ok(())
}

/// Where the spool holds `key`, for messages: the file an operator would look at.
fn spooled(spool: &SpoolStore, key: &StoreKey) -> String {
    spool.dir().join(key.path()).display().to_string()
}

/// A small object's bytes, read once (at most `MAX_SMALL_OBJECT`), from the spool's own
/// directory (so errors name the spooled file).
fn read_bytes(spool: &SpoolStore, key: &StoreKey) -> Result<Vec<u8>, StoreError> {
    spool.local.get(key)
}

fn read_small(spool: &SpoolStore, key: &StoreKey) -> Result<(CheckedObject, Vec<u8>), StoreError> {
    let bytes = read_bytes(spool, key)?;
    let object = CheckedObject {
        key: key.clone(),
        path: spool.dir().join(key.path()),
        sha256: Sha256Digest::of(&bytes),
        size: bytes.len() as u64,
    };
    Ok((object, bytes))
}

/// A large object, hashed as it streams past, never held whole.
fn hash_file(spool: &SpoolStore, key: &StoreKey) -> Result<CheckedObject, StoreError> {
    let path = spool.dir().join(key.path());
    let err = |source| StoreError::Read {
        uri: path.display().to_string(),
        source,
    };
    let file = fs::File::open(&path).map_err(err)?;
    let (sha256, size) = HashingReader::new(file).finish().map_err(err)?;
    Ok(CheckedObject {
        key: key.clone(),
        path: path.clone(),
        sha256,
        size,
    })
}
