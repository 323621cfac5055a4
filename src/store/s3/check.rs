//! `custody store check`: proves that a bucket can hold evidence by making custody's own calls
//! on a probe object.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{BucketVersioningStatus, ObjectLockEnabled};

use super::error::store_error;
use super::S3Store;
use crate::id::CaseId;
use crate::policy::storage::ObjectLockPolicy;
use crate::store::{StoreError, StoreKey};

impl S3Store {
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
            Err(e) => return Err(store_error(&uri, &e)),
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
                _ => store_error(&uri, &e),
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
        self.check_probe(&mut done)?;
        Ok(done)
    }

    /// The probe: a locked create-new PUT (retained for one day), a second PUT of the same key
    /// (which must be refused), HeadObject with checksum, GetObject and ListObjectVersions.
    fn check_probe(&self, done: &mut Vec<String>) -> Result<(), StoreError> {
        let uri = self.location.uri();
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
        Ok(())
    }
}
