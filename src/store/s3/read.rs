//! S3 reads: GetObject and HeadObject of a given version (or the current one), the listing
//! of every version and delete marker under a prefix, and the receipts of objects already
//! stored, rebuilt from what S3 reports.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Arc;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, ObjectLockLegalHoldStatus};
use tokio::runtime::Runtime;

use super::error::store_error;
use super::{KeyVersions, ObjectState, PutReceipt, S3Store};
use crate::digest::Sha256Digest;
use crate::id::CaseId;
use crate::store::{layout, Store, StoreError, StoreKey, StorePrefix};

impl S3Store {
    /// What S3 holds for `key` (the given version, else the current one).
    pub fn head(&self, key: &StoreKey, version: Option<&str>) -> Result<ObjectState, StoreError> {
        self.head_object(&self.object_key(key), version)
    }

    /// What S3 holds at store path `path` (the given version, else the current one).
    pub fn head_path(&self, path: &str, version: Option<&str>) -> Result<ObjectState, StoreError> {
        self.head_object(&self.location.key(path), version)
    }

    /// A small object at store path `path` (the given version, else the current one), read
    /// whole.
    pub fn get_path(&self, path: &str, version: Option<&str>) -> Result<Vec<u8>, StoreError> {
        read_small(self.open_object(&self.location.key(path), version)?)
    }

    /// A small object (the given version, else the current one), read whole.
    pub fn get_version(
        &self,
        key: &StoreKey,
        version: Option<&str>,
    ) -> Result<Vec<u8>, StoreError> {
        read_small(self.open_version(key, version)?)
    }

    /// Whether S3 holds `key` (the given version, else a current one).
    pub fn exists_version(
        &self,
        key: &StoreKey,
        version: Option<&str>,
    ) -> Result<bool, StoreError> {
        match self.head(key, version) {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The receipt of the first version of `key` (custody writes each key once); `None` when
    /// S3 holds no version of it.
    pub fn first_receipt(&self, key: &StoreKey) -> Result<Option<PutReceipt>, StoreError> {
        let path = key.path();
        let versions = self.versions(&path)?;
        match versions.get(&path).and_then(|v| v.versions.last()) {
            Some(first) => Ok(Some(self.receipt_of_version(&path, first.clone())?)),
            None => Ok(None),
        }
    }

    pub(super) fn head_object(
        &self,
        object_key: &str,
        version: Option<&str>,
    ) -> Result<ObjectState, StoreError> {
        let object_key = object_key.to_owned();
        let uri = self.uri_of(&object_key);
        let version = version.map(str::to_owned);
        let request = self
            .client
            .head_object()
            .bucket(&self.location.bucket)
            .key(&object_key)
            .set_version_id(version)
            .checksum_mode(ChecksumMode::Enabled);
        let out = self
            .runtime
            .block_on(request.send())
            .map_err(|e| store_error(&uri, &e))?;
        // A multipart object's ETag ends in `-<parts>`; its checksum is of the parts, even
        // where the store leaves the part count out of the checksum (moto does).
        let multipart = out
            .e_tag()
            .and_then(|t| t.trim_matches('"').rsplit_once('-'))
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
        Ok(ObjectState {
            version_id: out.version_id().map(str::to_owned),
            size: out.content_length().and_then(|n| u64::try_from(n).ok()),
            s3_checksum: out.checksum_sha256().map(str::to_owned),
            sha256: out
                .checksum_sha256()
                .filter(|c| !c.contains('-') && !multipart)
                .and_then(|c| aws_smithy_types::base64::decode(c).ok())
                .map(hex::encode),
            lock_mode: out.object_lock_mode().map(|m| m.as_str().to_owned()),
            retain_until: out.object_lock_retain_until_date().map(|d| d.secs()),
            legal_hold: out.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On),
        })
    }

    /// Every version and delete marker of every key under `path` (a store path), by key
    /// relative to the store's prefix.
    pub fn versions(&self, path: &str) -> Result<HashMap<String, KeyVersions>, StoreError> {
        let prefix = self.location.key(path);
        let uri = self.uri_of(&prefix);
        let mut out: HashMap<String, KeyVersions> = HashMap::new();
        let (mut key_marker, mut version_marker) = (None, None);
        // (key, version, is a delete marker, is latest), newest first within a key.
        loop {
            let page = self
                .runtime
                .block_on(
                    self.client
                        .list_object_versions()
                        .bucket(&self.location.bucket)
                        .prefix(&prefix)
                        .set_key_marker(key_marker.take())
                        .set_version_id_marker(version_marker.take())
                        .send(),
                )
                .map_err(|e| store_error(&uri, &e))?;
            let relative = |k: &str| {
                k.strip_prefix(&self.location.key(""))
                    .unwrap_or(k)
                    .to_owned()
            };
            for v in page.versions() {
                let entry = out
                    .entry(relative(v.key().unwrap_or_default()))
                    .or_default();
                entry
                    .versions
                    .push(v.version_id().unwrap_or("null").to_owned());
            }
            for d in page.delete_markers() {
                let entry = out
                    .entry(relative(d.key().unwrap_or_default()))
                    .or_default();
                entry
                    .delete_markers
                    .push(d.version_id().unwrap_or("null").to_owned());
                if d.is_latest() == Some(true) {
                    entry.deleted = true;
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// The names under `path/` (a store path) of every key that has a version, whether or not
    /// a delete marker hides it: evidence is never legitimately deleted, so verification reads
    /// the locked versions behind any marker (and reports the marker).
    pub(super) fn list_names(&self, path: &str) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{path}/");
        let mut names: Vec<String> = self
            .versions(&prefix)?
            .into_iter()
            .filter(|(_, v)| !v.versions.is_empty())
            .filter_map(|(k, _)| k.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The case ids in the store (each `cases/<id>/…` key), sorted; names that are not case
    /// ids are returned as strays.
    pub fn list_case_ids(&self) -> Result<(Vec<CaseId>, Vec<String>), StoreError> {
        Ok(layout::cases(self.list(&StorePrefix::Cases)?))
    }

    /// The receipt of `version` of the object at store path `path`: the one this store kept
    /// when it wrote the object, else what S3 reports of it. An object whose SHA-256 can be
    /// established neither way is an error, never left out: a record without it would read as
    /// an object added behind custody's back.
    fn receipt_of_version(&self, path: &str, version: String) -> Result<PutReceipt, StoreError> {
        let object_key = self.location.key(path);
        if let Some(receipt) = self.written_receipt(&object_key, &version) {
            return Ok(receipt);
        }
        let uri = self.uri_of(&object_key);
        let state = self.head_path(path, Some(&version))?;
        let sha256 = match &state.sha256 {
            Some(hex) => hex.parse::<Sha256Digest>().map_err(|e| StoreError::Remote {
                uri: uri.clone(),
                message: format!("S3 reports a SHA-256 checksum custody cannot read: {e}"),
            })?,
            None => match self.get_path(path, Some(&version)) {
                Ok(bytes) => Sha256Digest::of(&bytes),
                Err(e) => {
                    return Err(StoreError::Remote {
                        uri,
                        message: format!(
                            "cannot record the object as stored: S3 keeps no SHA-256 of it (a multipart upload) and it cannot be read back ({e})"
                        ),
                    })
                }
            },
        };
        Ok(PutReceipt {
            uri,
            version_id: Some(version),
            sha256,
            s3_checksum: state.s3_checksum.unwrap_or_default(),
            size: state.size.unwrap_or_default(),
            lock_mode: state.lock_mode.unwrap_or_default(),
            retain_until: state.retain_until.unwrap_or_default(),
            legal_hold: state.legal_hold,
        })
    }

    pub(super) fn open_version(
        &self,
        key: &StoreKey,
        version: Option<&str>,
    ) -> Result<BodyReader, StoreError> {
        self.open_object(&self.object_key(key), version)
    }

    fn open_object(
        &self,
        object_key: &str,
        version: Option<&str>,
    ) -> Result<BodyReader, StoreError> {
        let object_key = object_key.to_owned();
        let uri = self.uri_of(&object_key);
        let version = version.map(str::to_owned);
        let out = self
            .runtime
            .block_on(
                self.client
                    .get_object()
                    .bucket(&self.location.bucket)
                    .key(&object_key)
                    .set_version_id(version)
                    .send(),
            )
            .map_err(|e| store_error(&uri, &e))?;
        Ok(BodyReader {
            runtime: self.runtime.clone(),
            size: out.content_length().and_then(|n| u64::try_from(n).ok()),
            body: out.body,
            chunk: bytes::Bytes::new(),
            uri,
        })
    }
}

/// Whether checksum `reported` (as S3 reports it) is `recorded` (as custody recorded it). A
/// multipart checksum is `<base64>-<parts>`; some S3-compatible stores report it without the
/// part count, which is the same digest.
pub fn same_checksum(reported: Option<&str>, recorded: &str) -> bool {
    match reported {
        Some(r) if r == recorded => true,
        Some(r) => recorded.rsplit_once('-').is_some_and(|(digest, parts)| {
            r == digest && parts.bytes().all(|c| c.is_ascii_digit())
        }),
        None => false,
    }
}

/// An object's body as a blocking reader.
pub(super) struct BodyReader {
    runtime: Arc<Runtime>,
    body: ByteStream,
    chunk: bytes::Bytes,
    size: Option<u64>,
    uri: String,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.runtime.block_on(self.body.next()) {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => {
                    return Err(io::Error::other(format!(
                        "reading {}: {}",
                        self.uri,
                        DisplayErrorContext(&e)
                    )))
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

/// An object read whole, refused above `MAX_SMALL_OBJECT` bytes.
fn read_small(mut reader: BodyReader) -> Result<Vec<u8>, StoreError> {
    let uri = reader.uri.clone();

    let limit = crate::store::MAX_SMALL_OBJECT;
    if reader.size.is_some_and(|n| n > limit) {
        return Err(StoreError::TooLarge { uri, limit });
    }
    let mut bytes = Vec::new();
    (&mut reader)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| StoreError::Read {
            uri: uri.clone(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(StoreError::TooLarge { uri, limit });
    }
    Ok(bytes)
}
