//! A case: its header (`cases/<case>/case.json`, written once when the case is opened), the
//! trigger that opened it, its hash-chained journal of typed entries (`journal`, `entry`), and
//! the case's state folded from that journal (`state`), which the daemon and `verify` read
//! instead of scanning entries themselves.

pub mod entry;
pub mod journal;
pub mod state;
pub mod summary;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use entry::{Details, Entry, EntryKind};
pub use journal::{
    check_chain, check_entries, encode, ChainProblem, CheckedChain, Head, Journal, JournalError,
};
pub use state::{CaseState, Status};

use crate::digest::Sha256Digest;
use crate::id::CaseId;
use crate::keys::SigningKey;
use crate::store::{Store, StoreError, StoreKey};
use crate::timefmt;

/// Who asked, and how; recorded in the case header and `collection.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// `cli` for a command line; `alert` and `api` for the daemon.
    pub kind: String,
    pub requested_by: String,
}

/// `case.json`: the case's fixed facts. (Fields in the order they are stored.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseHeader {
    pub id: CaseId,
    /// When the case was opened (RFC 3339, UTC, seconds).
    pub opened_at: String,
    pub requested_by: String,
    pub trigger: Trigger,
}

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The header could not be written (`AlreadyExists`: the case id is taken).
    #[error("cannot open the case: {0}")]
    WriteHeader(StoreError),
    #[error("cannot encode the case header: {0}")]
    Encode(serde_json::Error),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl CaseHeader {
    pub fn new(id: CaseId, at: OffsetDateTime, trigger: Trigger) -> Self {
        Self {
            id,
            opened_at: timefmt::rfc3339(at),
            requested_by: trigger.requested_by.clone(),
            trigger,
        }
    }

    /// The stored form: pretty JSON and a final line feed.
    pub fn encode(&self) -> Result<Vec<u8>, CaseError> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(CaseError::Encode)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// Opens a case: its header (create-new, so a case id is taken once) and the journal's first
/// entry, which pins the header's digest. `trigger_details` (the daemon's) go into that entry;
/// `key` signs it and every entry the returned journal appends.
pub fn open<'a>(
    store: &'a dyn Store,
    header: &CaseHeader,
    trigger_details: Option<entry::TriggerDetails>,
    key: &'a SigningKey,
) -> Result<Journal<'a>, CaseError> {
    let bytes = header.encode()?;
    store
        .put_new(&StoreKey::CaseHeader(header.id.clone()), &bytes)
        .map_err(CaseError::WriteHeader)?;
    let mut journal = Journal::new_case(store, header.id.clone(), key);
    journal.append(
        &header.trigger.requested_by,
        opened_entry(&header.trigger, &bytes, trigger_details),
    )?;
    Ok(journal)
}

/// The `case_opened` details for a header written as `header_bytes`.
pub fn opened_entry(
    trigger: &Trigger,
    header_bytes: &[u8],
    trigger_details: Option<entry::TriggerDetails>,
) -> Details {
    Details::CaseOpened(entry::CaseOpened {
        case_header_sha256: Sha256Digest::of(header_bytes),
        trigger: trigger.clone(),
        trigger_details,
    })
}
