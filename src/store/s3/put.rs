//! S3 writes: a create-new PutObject (`If-None-Match: *`) carrying the SHA-256 (files past one
//! PUT's limit go to `multipart`), and the Object Lock put on every version written, read back
//! before the object is reported stored.

use std::io::{self, Read};
use std::path::Path;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectLockLegalHoldStatus};

use super::error::store_error;
use super::{ObjectState, PutReceipt, S3Store};
use crate::digest::Sha256Digest;
use crate::policy::storage::LockMode;
use crate::store::{Store, StoreError, StoreKey};

impl S3Store {
    /// Stores `body` (of `size` bytes whose SHA-256 is `sha256`) under `key`, create-new and
    /// locked.
    fn put(
        &self,
        key: &StoreKey,
        body: ByteStream,
        size: u64,
        sha256: Sha256Digest,
    ) -> Result<PutReceipt, StoreError> {
        let object_key = self.object_key(key);
        let uri = self.uri_of(&object_key);
        let retain_until = self.retain_until();
        let mut request = self
            .client
            .put_object()
            .bucket(&self.location.bucket)
            .key(&object_key)
            .body(body)
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(aws_smithy_types::base64::encode(sha256.as_bytes()))
            .if_none_match("*")
            .object_lock_mode(self.lock_mode())
            .object_lock_retain_until_date(DateTime::from_secs(retain_until));
        if self.lock.legal_hold {
            request = request.object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On);
        }
        let output = self
            .runtime
            .block_on(request.send())
            .map_err(|e| store_error(&uri, &e))?;
        let version_id = output.version_id().map(str::to_owned);
        self.check_lock_taken(&object_key, version_id.as_deref())?;
        Ok(self.written(
            &object_key,
            PutReceipt {
                uri,
                version_id,
                sha256,
                s3_checksum: aws_smithy_types::base64::encode(sha256.as_bytes()),
                size,
                lock_mode: self.lock.mode.as_str().to_owned(),
                retain_until,
                legal_hold: self.lock.legal_hold,
            },
        ))
    }

    /// Reads the lock of a version just written back: an object is reported stored only once
    /// S3 shows it locked as asked, in mode, retain-until date and legal hold. One check for
    /// single PUTs and multipart uploads alike.
    pub(super) fn check_lock_taken(
        &self,
        object_key: &str,
        version: Option<&str>,
    ) -> Result<(), StoreError> {
        let state = self.head_object(object_key, version)?;
        if self.is_locked(&state) {
            return Ok(());
        }
        Err(StoreError::BucketNotReady {
            uri: self.uri_of(object_key),
            why: format!(
                "the object was stored but is not locked as asked ({} until {}{}); HeadObject reports {:?} until {:?}, legal hold {}",
                self.lock.mode.as_str(),
                crate::timefmt::unix_rfc3339(self.retain_until()),
                if self.lock.legal_hold { ", legal hold on" } else { "" },
                state.lock_mode,
                state.retain_until.map(crate::timefmt::unix_rfc3339),
                if state.legal_hold { "on" } else { "off" },
            ),
        })
    }

    /// Remembers the receipt of an object this store wrote, and returns it.
    pub(super) fn written(&self, object_key: &str, receipt: PutReceipt) -> PutReceipt {
        if let Ok(mut written) = self.written.lock() {
            written.insert(object_key.to_owned(), receipt.clone());
        }
        receipt
    }

    /// The receipt of `version` of `object_key` if this store wrote it.
    pub(super) fn written_receipt(&self, object_key: &str, version: &str) -> Option<PutReceipt> {
        let written = self.written.lock().ok()?;
        written
            .get(object_key)
            .filter(|r| r.version_id.as_deref() == Some(version))
            .cloned()
    }

    /// Whether `state` carries this store's lock: the mode, a date at least as far as a lock
    /// made now would give less a day, and the legal hold when the policy asks for one.
    pub fn is_locked(&self, state: &ObjectState) -> bool {
        let minimum = self.retain_until() - 86_400;
        state.lock_mode.as_deref() == Some(self.lock.mode.as_str())
            && state
                .retain_until
                .is_some_and(|t| t >= minimum.min(self.retain_until()))
            && (!self.lock.legal_hold || state.legal_hold)
    }

    /// Puts this store's retention (and legal hold) on `version` of `key`.
    pub fn lock_version(&self, key: &StoreKey, version: Option<&str>) -> Result<(), StoreError> {
        let object_key = self.object_key(key);
        self.lock_object(&object_key, version, self.retain_until())
    }

    pub(super) fn lock_object(
        &self,
        object_key: &str,
        version: Option<&str>,
        retain_until: i64,
    ) -> Result<(), StoreError> {
        let uri = self.uri_of(object_key);
        let retention = aws_sdk_s3::types::ObjectLockRetention::builder()
            .mode(match self.lock.mode {
                LockMode::Compliance => aws_sdk_s3::types::ObjectLockRetentionMode::Compliance,
                LockMode::Governance => aws_sdk_s3::types::ObjectLockRetentionMode::Governance,
            })
            .retain_until_date(DateTime::from_secs(retain_until))
            .build();
        self.runtime
            .block_on(
                self.client
                    .put_object_retention()
                    .bucket(&self.location.bucket)
                    .key(object_key)
                    .set_version_id(version.map(str::to_owned))
                    .retention(retention)
                    .send(),
            )
            .map_err(|e| store_error(&uri, &e))?;
        if self.lock.legal_hold {
            let hold = aws_sdk_s3::types::ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::On)
                .build();
            self.runtime
                .block_on(
                    self.client
                        .put_object_legal_hold()
                        .bucket(&self.location.bucket)
                        .key(object_key)
                        .set_version_id(version.map(str::to_owned))
                        .legal_hold(hold)
                        .send(),
                )
                .map_err(|e| store_error(&uri, &e))?;
        }
        Ok(())
    }

    /// Stores `bytes` under `key` and reports the version and lock.
    pub fn put_bytes(&self, key: &StoreKey, bytes: &[u8]) -> Result<PutReceipt, StoreError> {
        let sha256 = Sha256Digest::of(bytes);
        self.put(
            key,
            ByteStream::from(bytes.to_vec()),
            bytes.len() as u64,
            sha256,
        )
    }

    /// Streams the file at `path` (whose SHA-256 is `sha256`) to `key`; the file is read from
    /// disk as it is sent, never held whole.
    pub fn put_path(
        &self,
        key: &StoreKey,
        path: &Path,
        size: u64,
        sha256: Sha256Digest,
    ) -> Result<PutReceipt, StoreError> {
        if size > self.multipart_threshold {
            return self.put_multipart(key, path, size, sha256);
        }
        let uri = self.object_uri(key);
        let body = self
            .runtime
            .block_on(ByteStream::from_path(path))
            .map_err(|e| StoreError::Read {
                uri: path.display().to_string(),
                source: io::Error::other(e),
            })?;
        let receipt = self.put(key, body, size, sha256)?;
        debug_assert_eq!(receipt.uri, uri);
        Ok(receipt)
    }
}

/// The SHA-256 of `length` bytes of the file at `path` from `offset`.
pub(super) fn hash_range(path: &Path, offset: u64, length: u64) -> io::Result<Sha256Digest> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let (digest, read) = crate::digest::HashingReader::new(file.take(length)).finish()?;
    if read != length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file shrank while it was uploaded",
        ));
    }
    Ok(digest)
}
