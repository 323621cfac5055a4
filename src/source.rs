//! Where evidence comes from. A `Source` opens every stream it will capture before a case is
//! opened, so bad input is refused with nothing written; each stream carries its provenance for
//! `collection.json`.

pub mod failure;
pub mod files;
pub mod k8s;
pub mod provenance;

use std::io::Read;

use crate::digest::Sha256Digest;

pub use failure::{failure, Failure};
pub use files::FileSource;
pub use provenance::Provenance;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read log file {path}: {source}")]
    OpenLog {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is a directory; give log files")]
    IsDirectory(String),
    #[error("standard input (-) can be given only once")]
    StdinTwice,
    #[error("no log files given")]
    NoInput,
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    #[error("the input is empty: {0} held no bytes, so there is nothing to preserve")]
    EmptyInput(String),
    #[error("Kubernetes: {0}")]
    Kubernetes(String),
}

/// One stream of evidence, opened and ready to capture.
pub struct Stream {
    /// How the user named it (a path, `-`), for messages and the journal.
    pub name: String,
    /// The file name it gets under `data/logs/` in the bag.
    pub bag_name: String,
    /// Where it came from, for `collection.json`.
    pub provenance: Provenance,
    /// Bytes already read while opening (to refuse empty input early); they come first.
    pub first: Vec<u8>,
    pub reader: Box<dyn Read + Send>,
    /// The source's own check once the stream has been read to its end, given the bytes read
    /// and their SHA-256: what it knows made the capture incomplete or wrong (a file that shrank
    /// or was replaced while it was read, input cut at the cap, bytes that changed after they
    /// arrived). Each failure is recorded; the bytes read are still sealed.
    pub check: Option<Check>,
}

/// See `Stream::check`.
pub type Check = Box<dyn FnOnce(u64, &Sha256Digest) -> Vec<Failure> + Send>;

/// A kind of evidence source.
pub trait Source {
    /// What was asked of this source, for `collection.json`.
    fn request(&self) -> serde_json::Value;

    /// Opens every stream, failing before anything is captured if any cannot be read (or, for
    /// a source that records partial failures, if nothing at all can be).
    fn open(&mut self) -> Result<Vec<Stream>, SourceError>;

    /// Files for `data/k8s/` (name, bytes exactly as served), after `open`.
    fn snapshots(&self) -> Vec<(String, Vec<u8>)> {
        Vec::new()
    }

    /// What could not be captured, after `open`: each is journaled and listed in
    /// `collection.json`.
    fn failures(&self) -> Vec<Failure> {
        Vec::new()
    }

    /// The collection is sealed (or abandoned): temporary files can go.
    fn finished(&mut self) {}
}
