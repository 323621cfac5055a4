//! One replica at a time works on a case. A replica claims a case before it collects it, by a
//! conditional create in the store — the mechanism that makes one case per alert episode — of
//! `leases/<case>/<generation, 10 digits>.json`: the record with the highest generation says who
//! holds the case and until when. Whoever creates the next generation first wins it; the holder
//! keeps its claim by creating the next one before its record expires, and gives it up by
//! creating one that has already expired. A replica that died holding a case loses it when its
//! record expires, and another replica takes over; the same replica restarted under the same
//! name takes it back at once.
//!
//! So no replica journals `collection_restarted` in the middle of another's collection, and a
//! sealed bundle gets its `bundle_sealed` entry. Expiry is in Unix seconds, so the replicas'
//! clocks must agree to well within the claim's lifetime (`TTL`).
//!
//! This file owns the claim records; `lease/held.rs` holds a claim over a collection (renewing
//! it, and refusing the case's writes once it is lost) and retries a case another replica holds.

mod held;
#[cfg(test)]
mod tests;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::id::CaseId;
use crate::store::{layout, Store, StoreError, StoreKey, StorePrefix};

pub(super) use held::{retry_later, since, Retry, Since};
pub(crate) use held::{Held, Leases};

/// How long a claim lasts unless renewed; the holder renews it every third of this.
pub const TTL: Duration = Duration::from_secs(60);

/// One generation of the claim on a case, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub case: CaseId,
    pub generation: u64,
    /// Who holds the case: the replica's name (`replica:` in the daemon's configuration).
    pub holder: String,
    /// Until when, in Unix seconds; a record already expired gives the case up.
    pub expires_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("case {case} is being collected by {holder} until {expires_at} (Unix seconds)")]
    Busy {
        case: CaseId,
        holder: String,
        expires_at: u64,
    },
    #[error("the claim on case {case} was lost to {holder}; that replica collects it")]
    Lost { case: CaseId, holder: String },
    #[error("the claim record {uri} is not one: {why}")]
    Corrupt { uri: String, why: String },
    #[error("cannot read or write the claim on the case: {0}")]
    Store(#[from] StoreError),
}

/// A claim this replica holds on a case: the generation it created last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub case: CaseId,
    pub holder: String,
    pub generation: u64,
    pub expires_at: u64,
}

/// Now, in Unix seconds.
pub(super) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The record with the highest generation, if the case was ever claimed.
pub fn latest(store: &dyn Store, case: &CaseId) -> Result<Option<Record>, LeaseError> {
    let names = store.list(&StorePrefix::Leases(case.clone()))?;
    let Some(generation) = layout::lease_generations(names).into_iter().max() else {
        return Ok(None);
    };
    let key = StoreKey::Lease(case.clone(), generation);
    let bytes = store.get(&key)?;
    let corrupt = |why: String| LeaseError::Corrupt {
        uri: store.object_uri(&key),
        why,
    };
    let record: Record = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if record.generation != generation || &record.case != case {
        return Err(corrupt(format!(
            "it names case {} generation {}",
            record.case, record.generation
        )));
    }
    Ok(Some(record))
}

/// Creates generation `generation` of the claim for `holder`; `Ok(false)` if another replica
/// created it first.
fn create(store: &dyn Store, record: &Record) -> Result<bool, LeaseError> {
    let key = StoreKey::Lease(record.case.clone(), record.generation);
    let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| LeaseError::Corrupt {
        uri: store.object_uri(&key),
        why: e.to_string(),
    })?;
    bytes.push(b'\n');
    // The same record there is this create's own, stored by a try whose answer was lost.
    match crate::store::put_new_or_same(store, &key, &bytes) {
        Ok(()) => Ok(true),
        Err(StoreError::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The replica named in the record that won a generation this one lost, for the error.
fn winner(store: &dyn Store, case: &CaseId) -> Record {
    latest(store, case).ok().flatten().unwrap_or(Record {
        case: case.clone(),
        generation: 0,
        holder: "another replica".into(),
        expires_at: 0,
    })
}

impl Claim {
    /// Claims `case` for `holder` for `ttl`: when nobody holds it, its holder's record expired or
    /// gave it up, or `holder` itself holds it (a replica restarted under the same name takes its
    /// own case back at once; the daemon never lets two of its own workers take one case).
    pub fn take(
        store: &dyn Store,
        case: &CaseId,
        holder: &str,
        ttl: Duration,
    ) -> Result<Claim, LeaseError> {
        Self::take_at(store, case, holder, ttl.as_secs(), now())
    }

    pub(super) fn take_at(
        store: &dyn Store,
        case: &CaseId,
        holder: &str,
        ttl: u64,
        now: u64,
    ) -> Result<Claim, LeaseError> {
        let generation = match latest(store, case)? {
            None => 1,
            Some(r) if r.holder == holder || r.expires_at <= now => r.generation + 1,
            Some(r) => {
                return Err(LeaseError::Busy {
                    case: case.clone(),
                    holder: r.holder,
                    expires_at: r.expires_at,
                })
            }
        };
        let claim = Claim {
            case: case.clone(),
            holder: holder.to_owned(),
            generation,
            expires_at: now + ttl,
        };
        if !create(store, &claim.record())? {
            // Another replica claimed it between this one's read and its create.
            let w = winner(store, case);
            return Err(LeaseError::Busy {
                case: case.clone(),
                holder: w.holder,
                expires_at: w.expires_at,
            });
        }
        Ok(claim)
    }

    fn record(&self) -> Record {
        Record {
            case: self.case.clone(),
            generation: self.generation,
            holder: self.holder.clone(),
            expires_at: self.expires_at,
        }
    }

    /// Extends the claim to `ttl` from now, by creating the next generation: if that succeeds
    /// nobody took the case in between. `Lost` if another replica did.
    pub fn renew(&mut self, store: &dyn Store, ttl: Duration) -> Result<(), LeaseError> {
        self.renew_at(store, ttl.as_secs(), now())
    }

    pub(super) fn renew_at(
        &mut self,
        store: &dyn Store,
        ttl: u64,
        now: u64,
    ) -> Result<(), LeaseError> {
        let next = Claim {
            generation: self.generation + 1,
            expires_at: now + ttl,
            ..self.clone()
        };
        if !create(store, &next.record())? {
            return Err(LeaseError::Lost {
                case: self.case.clone(),
                holder: winner(store, &self.case).holder,
            });
        }
        *self = next;
        Ok(())
    }

    /// Gives the case up, so that another replica may take it at once: the next generation,
    /// already expired. If another replica took the case meanwhile, there is nothing to give up.
    pub fn release(self, store: &dyn Store) -> Result<(), LeaseError> {
        let released = Claim {
            generation: self.generation + 1,
            expires_at: 0,
            ..self
        };
        create(store, &released.record()).map(|_| ())
    }
}
