//! Files larger than one PUT allows go in parts, each with its own SHA-256. S3 then keeps a
//! checksum of the part checksums (`<base64>-<parts>`), not the file's SHA-256: the file's
//! SHA-256 (from the manifest and the seal) stays the authority, and verification compares S3's
//! composite with the one computed here. An upload that fails at any step is aborted, so no
//! parts are left behind.

use std::io;
use std::path::Path;

use aws_sdk_s3::primitives::{ByteStream, DateTime, Length};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockLegalHoldStatus,
};

use super::error::store_error;
use super::put::hash_range;
use super::{PutReceipt, S3Store};
use crate::digest::Sha256Digest;
use crate::store::{StoreError, StoreKey};

/// S3's smallest part (but the last).
const MIN_PART: u64 = 5 * 1024 * 1024;

/// One multipart upload under way.
struct Upload<'a> {
    object_key: &'a str,
    uri: &'a str,
    id: String,
}

impl S3Store {
    /// Stores the file at `path` (of `size` bytes whose SHA-256 is `sha256`) under `key` in
    /// parts, create-new and locked.
    pub(super) fn put_multipart(
        &self,
        key: &StoreKey,
        path: &Path,
        size: u64,
        sha256: Sha256Digest,
    ) -> Result<PutReceipt, StoreError> {
        let object_key = self.object_key(key);
        let uri = self.uri_of(&object_key);
        let retain_until = self.retain_until();
        let upload = self.create_upload(&object_key, &uri, retain_until)?;
        let sent = self
            .send_parts(&upload, path, size)
            .and_then(|(parts, digests)| {
                let count = parts.len();
                let version = self.complete_upload(&upload, parts)?;
                Ok((version, digests, count))
            });
        let (version_id, part_digests, count) = match sent {
            Ok(sent) => sent,
            Err(e) => {
                self.abort_upload(&upload);
                return Err(e);
            }
        };
        // The lock was asked for when the upload was created; it is set again on the version,
        // with the same date, for stores that do not carry it over from the upload, and then
        // read back: an unlocked archive is never reported as stored.
        self.lock_object(&object_key, version_id.as_deref(), retain_until)?;
        self.check_lock_taken(&object_key, version_id.as_deref())?;
        let composite = format!(
            "{}-{count}",
            aws_smithy_types::base64::encode(Sha256Digest::of(&part_digests).as_bytes()),
        );
        Ok(self.written(
            &object_key,
            PutReceipt {
                uri,
                version_id,
                sha256,
                s3_checksum: composite,
                size,
                lock_mode: self.lock.mode.as_str().to_owned(),
                retain_until,
                legal_hold: self.lock.legal_hold,
            },
        ))
    }

    /// The multipart checksum (`<base64>-<parts>`) S3 keeps for the file at `path` when this
    /// store uploads it in parts.
    pub fn composite_checksum(&self, path: &Path) -> io::Result<String> {
        let size = std::fs::metadata(path)?.len();
        let part_size = self.part_size.max(MIN_PART);
        let (mut digests, mut offset, mut parts) = (Vec::new(), 0u64, 0usize);
        while offset < size {
            let length = part_size.min(size - offset);
            digests.extend_from_slice(hash_range(path, offset, length)?.as_bytes());
            offset += length;
            parts += 1;
        }
        Ok(format!(
            "{}-{parts}",
            aws_smithy_types::base64::encode(Sha256Digest::of(&digests).as_bytes())
        ))
    }

    fn create_upload<'a>(
        &self,
        object_key: &'a str,
        uri: &'a str,
        retain_until: i64,
    ) -> Result<Upload<'a>, StoreError> {
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.location.bucket)
            .key(object_key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .object_lock_mode(self.lock_mode())
            .object_lock_retain_until_date(DateTime::from_secs(retain_until));
        if self.lock.legal_hold {
            create = create.object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On);
        }
        let upload = self
            .runtime
            .block_on(create.send())
            .map_err(|e| store_error(uri, &e))?;
        Ok(Upload {
            object_key,
            uri,
            id: upload.upload_id().unwrap_or_default().to_owned(),
        })
    }

    /// Sends the file in parts; the parts sent and the concatenation of their SHA-256s.
    fn send_parts(
        &self,
        upload: &Upload<'_>,
        path: &Path,
        size: u64,
    ) -> Result<(Vec<CompletedPart>, Vec<u8>), StoreError> {
        let part_size = self.part_size.max(MIN_PART);
        let mut parts = Vec::new();
        let mut part_digests = Vec::new();
        let mut offset = 0u64;
        while offset < size {
            let length = part_size.min(size - offset);
            let number = i32::try_from(parts.len() + 1).unwrap_or(i32::MAX);
            let (part, digest) = self.send_part(upload, path, number, offset, length)?;
            parts.push(part);
            part_digests.extend_from_slice(digest.as_bytes());
            offset += length;
        }
        Ok((parts, part_digests))
    }

    /// Sends `length` bytes of the file from `offset` as part `number`, with its SHA-256.
    fn send_part(
        &self,
        upload: &Upload<'_>,
        path: &Path,
        number: i32,
        offset: u64,
        length: u64,
    ) -> Result<(CompletedPart, Sha256Digest), StoreError> {
        let read_err = |source| StoreError::Read {
            uri: path.display().to_string(),
            source,
        };
        let digest = hash_range(path, offset, length).map_err(read_err)?;
        let body = self
            .runtime
            .block_on(
                ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(Length::Exact(length))
                    .build(),
            )
            .map_err(|e| read_err(io::Error::other(e)))?;
        let checksum = aws_smithy_types::base64::encode(digest.as_bytes());
        let sent = self
            .runtime
            .block_on(
                self.client
                    .upload_part()
                    .bucket(&self.location.bucket)
                    .key(upload.object_key)
                    .upload_id(&upload.id)
                    .part_number(number)
                    .body(body)
                    .content_length(i64::try_from(length).unwrap_or(i64::MAX))
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .checksum_sha256(&checksum)
                    .send(),
            )
            .map_err(|e| store_error(upload.uri, &e))?;
        let part = CompletedPart::builder()
            .part_number(number)
            .set_e_tag(sent.e_tag().map(str::to_owned))
            .checksum_sha256(checksum)
            .build();
        Ok((part, digest))
    }

    /// Completes the upload, create-new; the version id S3 gives it.
    fn complete_upload(
        &self,
        upload: &Upload<'_>,
        parts: Vec<CompletedPart>,
    ) -> Result<Option<String>, StoreError> {
        let completed = self
            .runtime
            .block_on(
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.location.bucket)
                    .key(upload.object_key)
                    .upload_id(&upload.id)
                    .if_none_match("*")
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send(),
            )
            .map_err(|e| store_error(upload.uri, &e))?;
        Ok(completed.version_id().map(str::to_owned))
    }

    fn abort_upload(&self, upload: &Upload<'_>) {
        let _ = self.runtime.block_on(
            self.client
                .abort_multipart_upload()
                .bucket(&self.location.bucket)
                .key(upload.object_key)
                .upload_id(&upload.id)
                .send(),
        );
    }
}
