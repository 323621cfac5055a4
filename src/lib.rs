//! custody preserves an API gateway's logs when a breach is suspected, analyses them, seals them
//! into signed BagIt archives in an evidence store, and verifies them for auditors.
//!
//! The modules follow the data: `source` (where evidence comes from) → `analysis` (how logs are
//! read) → `seal` (how a bag is built and signed) → `store` (where it goes) → `verify` (how it is
//! checked), with `journal` recording every step of a case.

pub mod analysis;
pub mod collect;
pub mod daemon;
pub mod digest;
pub mod id;
pub mod interrupt;
pub mod journal;
pub mod keys;
pub mod policy;
pub mod progress;
pub mod seal;
pub mod server;
pub mod source;
pub mod store;
pub mod terminal;
pub mod timefmt;
pub mod verify;
