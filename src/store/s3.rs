//! The S3 store: evidence in a bucket (AWS S3 or S3-compatible) with Object Lock. Every write is a
//! PutObject with `If-None-Match: *` (never overwrite), the SHA-256 computed before sending as
//! `x-amz-checksum-sha256` (S3 refuses a body that does not match it), and retention from
//! `storage.yaml`. Verification reads the versions custody wrote, not what someone put over them,
//! through an explicit view (`S3Store::pinned`).
//!
//! The AWS SDK is asynchronous; this store is used from plain threads, so it owns a small runtime
//! and blocks on each call. Transient failures (timeouts, 5xx, throttling) are retried with
//! exponential backoff by the SDK's standard retry policy, then reported as
//! `StoreError::Transient`.
//!
//! `put` writes and locks, `multipart` sends large files in parts, `read` reads and lists, `check` proves a
//! bucket ready, `error` tells S3's answers apart, `pinned` is the version-pinned view.

mod check;
mod error;
mod multipart;
mod pinned;
mod put;
mod read;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::types::ObjectLockMode;
use aws_sdk_s3::Client;
use tokio::runtime::Runtime;

pub use super::ObjectRecord as PutReceipt;
use super::{Receipt, StagedFile, Store, StoreError, StoreKey, StorePrefix};
use crate::policy::storage::{LockMode, ObjectLockPolicy};
pub use pinned::{PinnedS3, Pins};
pub use read::same_checksum;

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

pub struct S3Store {
    client: Client,
    runtime: Arc<Runtime>,
    location: S3Location,
    lock: ObjectLockPolicy,
    staging: PathBuf,
    multipart_threshold: u64,
    part_size: u64,
    /// The receipt of every object this store wrote, by object key: what `receipt_of`
    /// reports of them, since a multipart archive's SHA-256 cannot be read back from S3.
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

    fn lock_mode(&self) -> ObjectLockMode {
        match self.lock.mode {
            LockMode::Compliance => ObjectLockMode::Compliance,
            LockMode::Governance => ObjectLockMode::Governance,
        }
    }

    fn retain_until(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp() + i64::from(self.lock.days) * 86_400
    }
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

    fn put_new(&self, key: &StoreKey, bytes: &[u8]) -> Result<Receipt, StoreError> {
        Ok(self.put_bytes(key, bytes)?.into())
    }

    fn put_new_file(&self, key: &StoreKey, staged: StagedFile) -> Result<Receipt, StoreError> {
        let receipt = self.put_path(key, &staged.path, staged.size, staged.sha256)?;
        let _ = std::fs::remove_file(&staged.path);
        Ok(receipt.into())
    }

    fn get(&self, key: &StoreKey) -> Result<Vec<u8>, StoreError> {
        self.get_version(key, None)
    }

    fn open(&self, key: &StoreKey) -> Result<Box<dyn Read + Send>, StoreError> {
        Ok(Box::new(self.open_version(key, None)?))
    }

    fn exists(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.exists_version(key, None)
    }

    fn list(&self, prefix: &StorePrefix) -> Result<Vec<String>, StoreError> {
        self.list_names(&prefix.path())
    }

    fn receipt_of(&self, key: &StoreKey) -> Result<Option<Receipt>, StoreError> {
        self.first_receipt(key).map(|r| r.map(Receipt::from))
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
