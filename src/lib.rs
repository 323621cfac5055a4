//! custody preserves an API gateway's logs when a breach is suspected, analyses them, seals them
//! into signed BagIt archives in an evidence store, and verifies them for auditors.
//!
//! The modules follow the data: `source` (where evidence comes from) → `analysis` (how logs are
//! read) → `seal` (how a bag is built and signed) → `store` (where it goes) → `verify` (how it is
//! checked), with `case` (its header, its typed journal, its state folded from the journal)
//! recording every step of a case.

pub mod analysis;
pub mod approval;
pub mod canonical;
pub mod case;
pub mod cli;
pub mod collect;
pub mod containment;
pub mod daemon;
pub mod digest;
pub mod duration;
pub mod execute;
pub mod filename;
pub mod id;
pub mod interrupt;
pub mod journal_signatures;
pub mod keys;
pub mod kube;
pub mod net;
pub mod plan;
pub mod policy;
pub mod progress;
pub mod propose;
pub mod seal;
pub mod server;
pub mod source;
pub mod spool;
pub mod store;
pub mod terminal;
pub mod timefmt;
pub mod verify;
pub mod yaml;
