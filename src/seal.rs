//! Sealing: the archive built by `bag`, stored with its `sha256sum` sidecar, and the signed seal
//! record that binds the archive's digest, the bag's manifests, the collector's key and the
//! journal head together.

pub mod bag;

use serde::{Deserialize, Serialize};

use crate::case::entry::{BundleSealed, SealRef, SealedArchiveRef};
use crate::case::{Details, Head, Journal, JournalError};
use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId, KeyId};
use crate::keys::{KeyError, SigningKey};
use crate::store::{archive_name, Store, StoreError, StoreKey, Stored};

pub use bag::{BagBuilder, BagError, BagInfo, BagPath, Captured, SealedArchive};

/// The seal format this version writes and reads.
pub const SEAL_FORMAT: &str = "custody-seal/1";

/// `<bundle>.seal.json`: what the collector key signs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealRecord {
    /// Always `custody-seal/1` for this layout.
    pub format: String,
    pub case_id: CaseId,
    pub bundle_id: BundleId,
    /// When the bag was sealed (RFC 3339, UTC); also every tar entry's mtime.
    pub created_at: String,
    pub archive: ArchiveRecord,
    pub bag: BagRecord,
    /// The id of the key whose signature is in `<bundle>.seal.json.sig`.
    pub key_id: KeyId,
    pub tool: ToolRecord,
    /// Where the archive was stored.
    pub storage: Stored,
    /// The last journal entry before the seal was made.
    pub journal_head: Head,
    /// True when the case's journal is signed from its first entry on: every entry up to
    /// `journal_head` must then carry a valid signature (`<seq>.json.sig`), so removing the
    /// signatures cannot pass the case off as one written before entries were signed. Absent
    /// in seals of older versions, and of cases opened by one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub journal_signed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveRecord {
    /// The archive's file name, `<bundle>.tar.zst`.
    pub name: String,
    /// SHA-256 of the compressed archive, as in the `.sha256` sidecar.
    pub sha256: Sha256Digest,
    /// Size of the compressed archive in bytes.
    pub size: u64,
    /// Size of the tar inside, in bytes; the cap for decompression when verifying.
    pub unpacked_size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BagRecord {
    /// `<payload bytes>.<payload files>`, as in `bag-info.txt`.
    pub payload_oxum: String,
    /// SHA-256 of `manifest-sha256.txt`.
    pub manifest_sha256: Sha256Digest,
    /// SHA-256 of `tagmanifest-sha256.txt`.
    pub tagmanifest_sha256: Sha256Digest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRecord {
    pub name: String,
    pub version: String,
}

impl ToolRecord {
    pub fn current() -> Self {
        Self {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot store the bundle: {0}")]
    StoreBundle(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot encode the seal: {0}")]
    Encode(serde_json::Error),
    #[error("the journal of case {0} is empty; a seal must pin its head")]
    EmptyJournal(CaseId),
}

/// Where a sealed bundle ended up.
#[derive(Clone, Debug, Serialize)]
pub struct StoredBundle {
    pub bundle_id: BundleId,
    pub archive: Stored,
    pub archive_sha256: Sha256Digest,
    pub archive_size: u64,
    pub seal: Stored,
    pub seal_sha256: Sha256Digest,
}

/// The sidecar's text: `sha256sum -c` format.
pub fn sidecar_text(sha256: &Sha256Digest, bundle: &BundleId) -> String {
    format!("{sha256}  {}\n", archive_name(bundle))
}

/// Stores the archive, its sidecar, the signed seal and the collector's public key, then
/// journals the sealing. Nothing is reported stored before the store has it.
pub fn store_bundle(
    store: &dyn Store,
    key: &SigningKey,
    journal: &mut Journal<'_>,
    bundle: &BundleId,
    created_at: &str,
    sealed: SealedArchive,
) -> Result<StoredBundle, SealError> {
    store_sealed(
        store,
        key,
        journal,
        (bundle, created_at),
        sealed,
        Details::BundleSealed,
    )
}

/// `store_bundle`, the sealing journaled as `journal_record` makes it of the `bundle_sealed` details
/// (an execution's `actions` bundle is journaled as `actions_sealed`).
pub fn store_sealed(
    store: &dyn Store,
    key: &SigningKey,
    journal: &mut Journal<'_>,
    (bundle, created_at): (&BundleId, &str),
    sealed: SealedArchive,
    journal_record: impl FnOnce(BundleSealed) -> Details,
) -> Result<StoredBundle, SealError> {
    let case = journal.case().clone();
    let journal_head = journal
        .head()
        .ok_or_else(|| SealError::EmptyJournal(case.clone()))?;
    let archive = ArchiveRecord {
        name: archive_name(bundle),
        sha256: sealed.staged.sha256,
        size: sealed.staged.size,
        unpacked_size: sealed.unpacked_size,
    };
    // A case opened by this version has a signed first entry; one opened by an older version
    // and sealed by this one (an upgrade mid-case) keeps its older record.
    let journal_signed = store.exists(&StoreKey::JournalSignature(case.clone(), 1))?;
    let stored_archive = store
        .put_new_file(
            &StoreKey::Archive(case.clone(), bundle.clone()),
            sealed.staged,
        )?
        .stored();
    store.put_new(
        &StoreKey::ArchiveSidecar(case.clone(), bundle.clone()),
        sidecar_text(&archive.sha256, bundle).as_bytes(),
    )?;
    let record = SealRecord {
        format: SEAL_FORMAT.into(),
        case_id: case.clone(),
        bundle_id: bundle.clone(),
        created_at: created_at.into(),
        archive: archive.clone(),
        bag: BagRecord {
            payload_oxum: sealed.payload_oxum,
            manifest_sha256: sealed.manifest_sha256,
            tagmanifest_sha256: sealed.tagmanifest_sha256,
        },
        key_id: key.public().id().clone(),
        tool: ToolRecord::current(),
        storage: stored_archive.clone(),
        journal_head,
        journal_signed,
    };
    let mut seal_bytes = serde_json::to_vec_pretty(&record).map_err(SealError::Encode)?;
    seal_bytes.push(b'\n');
    let signature = key.sign(&seal_bytes);
    let stored_seal = store
        .put_new(&StoreKey::Seal(case.clone(), bundle.clone()), &seal_bytes)?
        .stored();
    store.put_new(
        &StoreKey::SealSignature(case.clone(), bundle.clone()),
        &signature,
    )?;
    publish_key(store, key)?;
    let seal_sha256 = Sha256Digest::of(&seal_bytes);
    journal.append(
        "custody",
        journal_record(BundleSealed {
            archive: SealedArchiveRef {
                sha256: archive.sha256,
                size: archive.size,
                uri: stored_archive.uri.clone(),
                version_id: stored_archive.version_id.clone(),
            },
            bundle_id: bundle.clone(),
            key_id: key.public().id().clone(),
            seal: SealRef {
                sha256: seal_sha256,
                uri: stored_seal.uri.clone(),
                version_id: stored_seal.version_id.clone(),
            },
        }),
    )?;
    Ok(StoredBundle {
        bundle_id: bundle.clone(),
        archive: stored_archive,
        archive_sha256: archive.sha256,
        archive_size: archive.size,
        seal: stored_seal,
        seal_sha256,
    })
}

/// Whether one of the case's seals says its journal is signed from the first entry on
/// (`journal_signed`). Seals that cannot be read or parsed count for nothing here: verifying
/// their bundle reports them.
pub fn journal_signed(store: &dyn Store, case: &CaseId) -> Result<bool, StoreError> {
    let bundles = match store.list_bundles(case) {
        Ok((bundles, _)) => bundles,
        Err(StoreError::Symlink(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    for bundle in bundles {
        let Ok(bytes) = store.get(&StoreKey::Seal(case.clone(), bundle)) else {
            continue;
        };
        if serde_json::from_slice::<SealRecord>(&bytes).is_ok_and(|r| r.journal_signed) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Copies the public key into the store's `keys/` (a convenience for verifiers, not trust).
fn publish_key(store: &dyn Store, key: &SigningKey) -> Result<(), SealError> {
    Ok(crate::store::published::publish(store, key.public())?)
}
