//! The S3 store: evidence in a bucket (AWS S3 or S3-compatible) with Object Lock. Every write is a
//! PutObject with `If-None-Match: *` (never overwrite), the SHA-256 computed before sending as
//! `x-amz-checksum-sha256` (S3 refuses a body that does not match it), and retention from
//! `storage.yaml`. Reads can be pinned to version ids, so verification reads what was written and
//! not what someone put over it.
//!
//! The AWS SDK is asynchronous; this store is used from plain threads, so it owns a small runtime
//! and blocks on each call. Transient failures (timeouts, 5xx, throttling) are retried with
//! exponential backoff by the SDK's standard retry policy.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm, ChecksumMode, ObjectLockEnabled,
    ObjectLockLegalHoldStatus, ObjectLockMode,
};
use aws_sdk_s3::Client;
use tokio::runtime::Runtime;

use super::local::{parse_bundle_file_name, parse_journal_name};
use super::{StagedFile, Store, StoreError, StoreKey, Stored};
use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId};
use crate::policy::storage::{LockMode, ObjectLockPolicy};

/// How attempts are made before a call is given up: the first and four retries, with backoff.
const MAX_ATTEMPTS: u32 = 5;

/// S3's limit for one PutObject; larger files go in parts.
pub const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;

/// Where the store is reached, beyond the standard AWS configuration chain, and how large
/// files are sent.
#[derive(Clone, Debug)]
pub struct S3Options {
    /// An S3-compatible endpoint (`AWS_ENDPOINT_URL` is also honoured).
    pub endpoint: Option<String>,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint`.
    pub path_style: bool,
    /// Files larger than this are sent as a multipart upload.
    pub multipart_threshold: u64,
    /// The part size of a multipart upload (S3: 5 MiB to 5 GiB, at most 10,000 parts).
    pub part_size: u64,
}

impl S3Options {
    /// The endpoint the store is reached at, as far as custody can tell: the one given, else
    /// the one the AWS configuration names in the environment; `None` for AWS itself.
    pub fn endpoint_identity(&self) -> Option<String> {
        self.endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .map(|e| e.trim_end_matches('/').to_owned())
            .filter(|e| !e.is_empty())
    }
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            endpoint: None,
            path_style: false,
            multipart_threshold: MAX_SINGLE_PUT,
            part_size: 256 * 1024 * 1024,
        }
    }
}

/// A bucket and a key prefix (no leading or trailing `/`; may be empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

impl S3Location {
    /// `s3://bucket[/prefix]`.
    pub fn parse(uri: &str) -> Result<Self, StoreError> {
        let bad = |why: &str| StoreError::BadS3Uri {
            uri: uri.to_owned(),
            why: why.to_owned(),
        };
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !bucket_ok {
            return Err(bad("the bucket name is not a valid S3 bucket name"));
        }
        let prefix = prefix.trim_end_matches('/');
        for segment in prefix.split('/').filter(|_| !prefix.is_empty()) {
            let printable = segment.bytes().all(|c| c.is_ascii_graphic());
            if segment.is_empty() || segment == "." || segment == ".." || !printable {
                return Err(bad(
                    "the prefix has an empty, `.` or `..` segment, or unprintable characters",
                ));
            }
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    pub fn uri(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The object key of a store path.
    pub fn key(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_owned()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }
}

/// What S3 reports of one stored version.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectState {
    pub version_id: Option<String>,
    pub size: Option<u64>,
    /// The SHA-256 S3 holds for the object, hex; `None` when it holds none (or, for a multipart
    /// object, only a checksum of part checksums).
    pub sha256: Option<String>,
    /// The SHA-256 checksum exactly as S3 reports it (base64, `-<parts>` for multipart).
    pub s3_checksum: Option<String>,
    pub lock_mode: Option<String>,
    /// Unix seconds.
    pub retain_until: Option<i64>,
    pub legal_hold: bool,
}

/// Every version and delete marker of one key, newest first.
#[derive(Clone, Debug, Default)]
pub struct KeyVersions {
    pub versions: Vec<String>,
    pub delete_markers: Vec<String>,
    /// Whether the newest entry is a delete marker.
    pub deleted: bool,
}

/// The result of storing one object.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PutReceipt {
    pub uri: String,
    pub version_id: Option<String>,
    /// The object's SHA-256.
    pub sha256: Sha256Digest,
    /// The checksum S3 keeps for it, as S3 writes it: the SHA-256 in base64, or for a
    /// multipart upload the SHA-256 of the parts' SHA-256s and the part count (`<base64>-<n>`).
    pub s3_checksum: String,
    pub size: u64,
    pub lock_mode: String,
    /// Unix seconds.
    pub retain_until: i64,
    pub legal_hold: bool,
}

pub struct S3Store {
    client: Client,
    runtime: Arc<Runtime>,
    location: S3Location,
    lock: ObjectLockPolicy,
    staging: PathBuf,
    multipart_threshold: u64,
    part_size: u64,
    /// Versions reads are pinned to, by object key.
    pinned: Mutex<HashMap<String, String>>,
    /// The receipt of every object this store wrote, by object key: what `stored_objects`
    /// records for them, since a multipart archive's SHA-256 cannot be read back from S3.
    written: Mutex<HashMap<String, PutReceipt>>,
}

impl S3Store {
    /// A store at `location`; nothing is sent until the first call. `staging` is a local
    /// directory for files on their way in.
    pub fn connect(
        location: S3Location,
        options: &S3Options,
        lock: ObjectLockPolicy,
        staging: PathBuf,
    ) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| StoreError::Open {
                path: staging.clone(),
                source,
            })?;
        let retry = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(MAX_ATTEMPTS)
            .with_initial_backoff(Duration::from_millis(200));
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .build();
        let shared = runtime.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .retry_config(retry)
                .timeout_config(timeouts)
                .load(),
        );
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(options.path_style)
            // The SHA-256 is always given explicitly; no other checksum is added or demanded.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &options.endpoint {
            config = config.endpoint_url(endpoint);
        }
        if shared.region().is_none() {
            config = config.region(Region::new("us-east-1"));
        }
        Ok(Self {
            client: Client::from_conf(config.build()),
            runtime: Arc::new(runtime),
            location,
            lock,
            staging,
            multipart_threshold: options.multipart_threshold,
            part_size: options.part_size,
            pinned: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        })
    }

    pub fn location(&self) -> &S3Location {
        &self.location
    }

    fn object_key(&self, key: &StoreKey) -> String {
        self.location.key(&key.path())
    }

    fn uri_of(&self, object_key: &str) -> String {
        format!("s3://{}/{object_key}", self.location.bucket)
    }

    /// Reads of the object at store path `path` return `version` from now on.
    pub fn pin_path(&self, path: &str, version: String) {
        if let Ok(mut pinned) = self.pinned.lock() {
            pinned.insert(self.location.key(path), version);
        }
    }

    /// The version a read of `object_key` asks for: the one given, else the pinned one.
    fn version_for(&self, object_key: &str, given: Option<&str>) -> Option<String> {
        given
            .map(str::to_owned)
            .or_else(|| self.pinned_version(object_key))
    }

    fn pinned_version(&self, object_key: &str) -> Option<String> {
        self.pinned.lock().ok()?.get(object_key).cloned()
    }

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
        let output = self.runtime.block_on(request.send()).map_err(|e| {
            if status(&e) == Some(412) {
                StoreError::AlreadyExists { uri: uri.clone() }
            } else {
                remote_error(&uri, &e)
            }
        })?;
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
    fn check_lock_taken(&self, object_key: &str, version: Option<&str>) -> Result<(), StoreError> {
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
    fn written(&self, object_key: &str, receipt: PutReceipt) -> PutReceipt {
        if let Ok(mut written) = self.written.lock() {
            written.insert(object_key.to_owned(), receipt.clone());
        }
        receipt
    }

    /// The receipt of `version` of `object_key` if this store wrote it.
    fn written_receipt(&self, object_key: &str, version: &str) -> Option<PutReceipt> {
        let written = self.written.lock().ok()?;
        written
            .get(object_key)
            .filter(|r| r.version_id.as_deref() == Some(version))
            .cloned()
    }

    /// The multipart checksum (`<base64>-<parts>`) S3 keeps for the file at `path` when this
    /// store uploads it in parts.
    pub fn composite_checksum(&self, path: &Path) -> io::Result<String> {
        let size = std::fs::metadata(path)?.len();
        let part_size = self.part_size.max(5 * 1024 * 1024);
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

    fn lock_object(
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
            .map_err(|e| remote_error(&uri, &e))?;
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
                .map_err(|e| remote_error(&uri, &e))?;
        }
        Ok(())
    }

    fn lock_mode(&self) -> ObjectLockMode {
        match self.lock.mode {
            LockMode::Compliance => ObjectLockMode::Compliance,
            LockMode::Governance => ObjectLockMode::Governance,
        }
    }

    fn retain_until(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp() + i64::from(self.lock.days) * 86_400
    }

    /// A file larger than one PUT allows, in parts, each with its own SHA-256. S3 then keeps a
    /// checksum of the part checksums (`<base64>-<parts>`), not the file's SHA-256: the file's
    /// SHA-256 (`sha256`, from the manifest and the seal) stays the authority, and verification
    /// compares S3's composite with the one computed here.
    fn put_multipart(
        &self,
        key: &StoreKey,
        path: &Path,
        size: u64,
        sha256: Sha256Digest,
    ) -> Result<PutReceipt, StoreError> {
        use aws_sdk_s3::primitives::Length;
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let object_key = self.object_key(key);
        let uri = self.uri_of(&object_key);
        let retain_until = self.retain_until();
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.location.bucket)
            .key(&object_key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .object_lock_mode(self.lock_mode())
            .object_lock_retain_until_date(DateTime::from_secs(retain_until));
        if self.lock.legal_hold {
            create = create.object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On);
        }
        let upload = self
            .runtime
            .block_on(create.send())
            .map_err(|e| remote_error(&uri, &e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let abort = || {
            let _ = self.runtime.block_on(
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.location.bucket)
                    .key(&object_key)
                    .upload_id(&upload_id)
                    .send(),
            );
        };
        let part_size = self.part_size.max(5 * 1024 * 1024);
        let mut parts = Vec::new();
        let mut part_digests = Vec::new();
        let mut offset = 0u64;
        while offset < size {
            let length = part_size.min(size - offset);
            let number = i32::try_from(parts.len() + 1).unwrap_or(i32::MAX);
            let digest = match hash_range(path, offset, length) {
                Ok(d) => d,
                Err(source) => {
                    abort();
                    return Err(StoreError::Read {
                        uri: path.display().to_string(),
                        source,
                    });
                }
            };
            let body = self.runtime.block_on(
                ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(Length::Exact(length))
                    .build(),
            );
            let body = match body {
                Ok(b) => b,
                Err(e) => {
                    abort();
                    return Err(StoreError::Read {
                        uri: path.display().to_string(),
                        source: io::Error::other(e),
                    });
                }
            };
            let checksum = aws_smithy_types::base64::encode(digest.as_bytes());
            let sent = self.runtime.block_on(
                self.client
                    .upload_part()
                    .bucket(&self.location.bucket)
                    .key(&object_key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(body)
                    .content_length(i64::try_from(length).unwrap_or(i64::MAX))
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .checksum_sha256(&checksum)
                    .send(),
            );
            let sent = match sent {
                Ok(s) => s,
                Err(e) => {
                    abort();
                    return Err(remote_error(&uri, &e));
                }
            };
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(sent.e_tag().map(str::to_owned))
                    .checksum_sha256(checksum)
                    .build(),
            );
            part_digests.extend_from_slice(digest.as_bytes());
            offset += length;
        }
        let completed = self.runtime.block_on(
            self.client
                .complete_multipart_upload()
                .bucket(&self.location.bucket)
                .key(&object_key)
                .upload_id(&upload_id)
                .if_none_match("*")
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts.clone()))
                        .build(),
                )
                .send(),
        );
        let completed = match completed {
            Ok(c) => c,
            Err(e) => {
                abort();
                return Err(if status(&e) == Some(412) {
                    StoreError::AlreadyExists { uri }
                } else {
                    remote_error(&uri, &e)
                });
            }
        };
        let version_id = completed.version_id().map(str::to_owned);
        // The lock was asked for when the upload was created; it is set again on the version,
        // with the same date, for stores that do not carry it over from the upload, and then
        // read back: an unlocked archive is never reported as stored.
        self.lock_object(&object_key, version_id.as_deref(), retain_until)?;
        self.check_lock_taken(&object_key, version_id.as_deref())?;
        let composite = format!(
            "{}-{}",
            aws_smithy_types::base64::encode(Sha256Digest::of(&part_digests).as_bytes()),
            parts.len()
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

    /// What S3 holds for `key` (the given or pinned version, else the current one).
    pub fn head(&self, key: &StoreKey, version: Option<&str>) -> Result<ObjectState, StoreError> {
        self.head_object(&self.object_key(key), version)
    }

    /// What S3 holds at store path `path` (the given or pinned version, else the current one).
    pub fn head_path(&self, path: &str, version: Option<&str>) -> Result<ObjectState, StoreError> {
        self.head_object(&self.location.key(path), version)
    }

    /// A small object at store path `path` (the given or pinned version), read whole.
    pub fn get_path(&self, path: &str, version: Option<&str>) -> Result<Vec<u8>, StoreError> {
        read_small(self.open_object(&self.location.key(path), version)?)
    }

    fn head_object(
        &self,
        object_key: &str,
        version: Option<&str>,
    ) -> Result<ObjectState, StoreError> {
        let object_key = object_key.to_owned();
        let uri = self.uri_of(&object_key);
        let version = self.version_for(&object_key, version);
        let request = self
            .client
            .head_object()
            .bucket(&self.location.bucket)
            .key(&object_key)
            .set_version_id(version)
            .checksum_mode(ChecksumMode::Enabled);
        let out = self.runtime.block_on(request.send()).map_err(|e| {
            if status(&e) == Some(404) {
                StoreError::NotFound { uri: uri.clone() }
            } else {
                remote_error(&uri, &e)
            }
        })?;
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
                .map_err(|e| remote_error(&uri, &e))?;
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
    fn list_names(&self, path: &str) -> Result<Vec<String>, StoreError> {
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
        let mut cases = std::collections::BTreeSet::new();
        let mut strays = Vec::new();
        for name in self.list_names("cases")? {
            let id = name.split('/').next().unwrap_or_default();
            match CaseId::new(id) {
                Ok(id) => {
                    cases.insert(id);
                }
                Err(_) => strays.push(format!("cases/{name}")),
            }
        }
        Ok((cases.into_iter().collect(), strays))
    }

    /// The receipt of `version` of the object at store path `path`: the one this store kept
    /// when it wrote the object, else what S3 reports of it. An object whose SHA-256 can be
    /// established neither way is an error, never left out: a record without it would read as
    /// an object added behind custody's back.
    fn receipt_of(&self, path: &str, version: String) -> Result<PutReceipt, StoreError> {
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

    /// The ids of the keys the seals of `case` name.
    fn seal_key_ids(&self, case: &CaseId) -> Result<Vec<crate::id::KeyId>, StoreError> {
        let (bundles, _) = self.list_bundles(case)?;
        let mut ids = Vec::new();
        for bundle in bundles {
            let key = StoreKey::Seal(case.clone(), bundle);
            let bytes = match self.get(&key) {
                Ok(b) => b,
                // A bundle whose seal was never written has no key to record.
                Err(StoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            if let Ok(seal) = serde_json::from_slice::<crate::seal::SealRecord>(&bytes) {
                if !ids.contains(&seal.key_id) {
                    ids.push(seal.key_id);
                }
            }
        }
        Ok(ids)
    }

    /// Whether the bucket can hold evidence: reachable, versioned, Object Lock enabled, and
    /// custody's own calls allowed, proven by making them: a locked create-new PUT of a probe
    /// object (retained for one day), a second PUT of the same key (which must be refused),
    /// HeadObject with checksum, GetObject and ListObjectVersions.
    pub fn check(&self) -> Result<Vec<String>, StoreError> {
        let bucket = &self.location.bucket;
        let uri = self.location.uri();
        let mut done = Vec::new();
        // Versioning: on S3 proper, GetBucketVersioning; every store also shows it on the probe
        // PUT below, which must come back with a version id.
        match self
            .runtime
            .block_on(self.client.get_bucket_versioning().bucket(bucket).send())
        {
            Ok(v) if v.status() == Some(&BucketVersioningStatus::Enabled) => {
                done.push("versioning is enabled".to_owned())
            }
            Ok(_) => {
                return Err(StoreError::BucketNotReady {
                    uri,
                    why: "versioning is not enabled".into(),
                })
            }
            // Some S3-compatible stores answer with a body the SDK cannot read; the probe
            // PUT's version id decides below.
            Err(SdkError::ServiceError(e)) if e.raw().status().is_success() => {}
            Err(e) => return Err(remote_error(&uri, &e)),
        }
        let lock = self
            .runtime
            .block_on(
                self.client
                    .get_object_lock_configuration()
                    .bucket(bucket)
                    .send(),
            )
            .map_err(|e| match e.as_service_error().and_then(|s| s.code()) {
                Some("ObjectLockConfigurationNotFoundError") => StoreError::BucketNotReady {
                    uri: uri.clone(),
                    why: "Object Lock is not enabled".into(),
                },
                _ => remote_error(&uri, &e),
            })?;
        let enabled = lock
            .object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            == Some(&ObjectLockEnabled::Enabled);
        if !enabled {
            return Err(StoreError::BucketNotReady {
                uri,
                why: "Object Lock is not enabled".into(),
            });
        }
        done.push("Object Lock is enabled".to_owned());
        // A fresh time-sortable name (the same form as a case id).
        let probe_name = CaseId::generate(time::OffsetDateTime::now_utc());
        let probe = StoreKey::Probe(format!("{probe_name}.txt"));
        let short = Self {
            lock: ObjectLockPolicy {
                days: 1,
                legal_hold: false,
                ..self.lock
            },
            client: self.client.clone(),
            runtime: self.runtime.clone(),
            location: self.location.clone(),
            staging: self.staging.clone(),
            multipart_threshold: self.multipart_threshold,
            part_size: self.part_size,
            pinned: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        };
        let body = b"custody store check\n";
        let receipt = short.put_bytes(&probe, body)?;
        if receipt.version_id.is_none() {
            return Err(StoreError::BucketNotReady {
                uri,
                why: "versioning is not enabled (a PUT returned no version id)".into(),
            });
        }
        if !done.iter().any(|d| d.starts_with("versioning")) {
            done.push("versioning is enabled (the probe's PUT returned a version id)".to_owned());
        }
        done.push(format!(
            "a locked, checksummed create-new PUT ({}) succeeded",
            self.lock.mode.as_str()
        ));
        match short.put_bytes(&probe, body) {
            Err(StoreError::AlreadyExists { .. }) => {
                done.push("a second PUT of the same key was refused".to_owned())
            }
            Ok(_) => {
                return Err(StoreError::BucketNotReady {
                    uri: receipt.uri,
                    why: "a second PUT with If-None-Match: * was accepted: this store would let evidence be overwritten".into(),
                })
            }
            Err(e) => return Err(e),
        }
        let state = self.head(&probe, receipt.version_id.as_deref())?;
        if state.lock_mode.as_deref() != Some(self.lock.mode.as_str()) {
            return Err(StoreError::BucketNotReady {
                uri: receipt.uri,
                why: format!(
                    "the probe object is not locked in {} mode (HeadObject reports {:?})",
                    self.lock.mode.as_str(),
                    state.lock_mode
                ),
            });
        }
        done.push("HeadObject reports the lock".to_owned());
        let mut read = Vec::new();
        self.open_version(&probe, receipt.version_id.as_deref())?
            .read_to_end(&mut read)
            .map_err(|source| StoreError::Read {
                uri: receipt.uri.clone(),
                source,
            })?;
        if read != body {
            return Err(StoreError::BucketNotReady {
                uri: receipt.uri,
                why: "the probe object read back differs from what was written".into(),
            });
        }
        done.push("GetObject returns what was written".to_owned());
        self.versions("probes")?;
        done.push("ListObjectVersions is allowed".to_owned());
        Ok(done)
    }

    fn open_version(
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
        let version = self.version_for(&object_key, version);
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
            .map_err(|e| match status(&e) {
                Some(404) => StoreError::NotFound { uri: uri.clone() },
                _ => remote_error(&uri, &e),
            })?;
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

/// The SHA-256 of `length` bytes of the file at `path` from `offset`.
fn hash_range(path: &Path, offset: u64, length: u64) -> io::Result<Sha256Digest> {
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

/// An object's body as a blocking reader.
struct BodyReader {
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

type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

/// An error and its causes, each said once, without the SDK's debug dumps.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn remote_error<E>(uri: &str, e: &SdkError<E, HttpResponse>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let message = match e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let status = service.raw().status().as_u16();
            match err.code() {
                Some("NoSuchBucket") => "the bucket does not exist".to_owned(),
                Some("InvalidAccessKeyId" | "SignatureDoesNotMatch") => format!(
                    "the credentials were refused ({}): {}",
                    err.code().unwrap_or_default(),
                    err.message().unwrap_or_default()
                ),
                code if status == 403 => format!(
                    "access denied (HTTP 403 {}): check the credentials and that the bucket policy allows custody's calls",
                    code.unwrap_or("(no code)")
                ),
                code => format!(
                    "S3 answered HTTP {status} {}: {}",
                    code.unwrap_or("(no code)"),
                    err.message()
                        .map(str::to_owned)
                        .unwrap_or_else(|| DisplayErrorContext(e).to_string())
                ),
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
            if causes(e).contains("loading credentials") =>
        {
            format!(
                "no usable AWS credentials (environment, profile, SSO or instance role): {}",
                causes(e)
            )
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => format!(
            "S3 is unreachable (gave up after {MAX_ATTEMPTS} attempts): {}",
            causes(e)
        ),
        _ => causes(e),
    };
    StoreError::Remote {
        uri: uri.to_owned(),
        message,
    }
}

/// An object read whole, refused above `MAX_SMALL_OBJECT` bytes.
fn read_small(mut reader: BodyReader) -> Result<Vec<u8>, StoreError> {
    let uri = reader.uri.clone();

    let limit = super::MAX_SMALL_OBJECT;
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

impl Store for S3Store {
    fn uri(&self) -> String {
        self.location.uri()
    }

    fn object_uri(&self, key: &StoreKey) -> String {
        self.uri_of(&self.object_key(key))
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Stored, StoreError> {
        let receipt = self.put_bytes(key, bytes)?;
        Ok(Stored {
            uri: receipt.uri,
            version_id: receipt.version_id,
        })
    }

    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Stored, StoreError> {
        let receipt = self.put_path(key, &staged.path, staged.size, staged.sha256)?;
        let _ = std::fs::remove_file(&staged.path);
        Ok(Stored {
            uri: receipt.uri,
            version_id: receipt.version_id,
        })
    }

    fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError> {
        read_small(self.open_version(key, None)?)
    }

    fn open(&self, key: &StoreKey) -> Result<Box<dyn Read + Send>, StoreError> {
        Ok(Box::new(self.open_version(key, None)?))
    }

    fn exists(&self, key: &StoreKey) -> Result<bool, StoreError> {
        match self.head(key, None) {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn list_journal(&self, case: &CaseId) -> Result<(Vec<u64>, Vec<String>), StoreError> {
        let mut seqs = Vec::new();
        let mut strays = Vec::new();
        for name in self.list_names(&format!("cases/{case}/journal"))? {
            match parse_journal_name(&name) {
                Some(seq) => seqs.push(seq),
                None => strays.push(name),
            }
        }
        seqs.sort_unstable();
        Ok((seqs, strays))
    }

    fn list_cases(&self) -> Result<Vec<CaseId>, StoreError> {
        Ok(self.list_case_ids()?.0)
    }

    fn stored_objects(&self, case: &CaseId) -> Result<Option<serde_json::Value>, StoreError> {
        // Each object's first version (custody writes each key once): the case's own objects
        // and the public keys its seals name, nothing else of the bucket.
        let prefix = format!("cases/{case}/");
        let mut keys: Vec<(String, String)> = self
            .versions(&prefix)?
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.versions.last()?.clone())))
            .collect();
        let all_keys = self.versions("keys/")?;
        for id in self.seal_key_ids(case)? {
            let path = StoreKey::PublicKey(id).path();
            if let Some(first) = all_keys.get(&path).and_then(|v| v.versions.last()) {
                keys.push((path, first.clone()));
            }
        }
        keys.sort();
        let mut objects = Vec::new();
        for (path, version) in keys {
            objects.push(self.receipt_of(&path, version)?);
        }
        Ok(Some(serde_json::json!({ "objects": objects })))
    }

    fn list_bundles(&self, case: &CaseId) -> Result<(Vec<BundleId>, Vec<String>), StoreError> {
        let mut bundles = std::collections::BTreeSet::new();
        let mut strays = Vec::new();
        for name in self.list_names(&format!("cases/{case}/bundles"))? {
            match parse_bundle_file_name(&name) {
                Some(id) => {
                    bundles.insert(id);
                }
                None => strays.push(name),
            }
        }
        Ok((bundles.into_iter().collect(), strays))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_uris() {
        let l = S3Location::parse("s3://evidence-bucket/custody/prod/").unwrap();
        assert_eq!(l.bucket, "evidence-bucket");
        assert_eq!(l.prefix, "custody/prod");
        assert_eq!(l.key("cases/x/case.json"), "custody/prod/cases/x/case.json");
        assert_eq!(l.uri(), "s3://evidence-bucket/custody/prod");
        let bare = S3Location::parse("s3://evidence-bucket").unwrap();
        assert_eq!(bare.key("keys/a.pub"), "keys/a.pub");
        for bad in [
            "s3://",
            "s3://UPPER",
            "s3://ab",
            "s3://bucket/a//b",
            "s3://bucket/../x",
            "s3://bucket/a b",
            "file:///x",
            "s3://-bucket",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }
}
