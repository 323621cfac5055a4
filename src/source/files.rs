//! Local log files, devices and standard input.
//!
//! Each input is read once, to its end or to the policy's cap. What a file does while it is
//! read is watched: one that shrinks (logrotate's `copytruncate`, or another writer) or is
//! replaced at its path is recorded as captured in part, never passed off as whole. Inputs whose
//! reads can block without end (standard input, pipes, devices) are read on a thread of their
//! own, so a signal stops the collection at once.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{failure, Failure, Provenance, Source, SourceError, Stream};
use crate::digest::Sha256Digest;
use crate::filename::safe_file_name;
use crate::interrupt;
use crate::timefmt;

/// How much of each input is read before the case opens, to refuse empty input early.
const PEEK: usize = 64 * 1024;

/// Log files given on the command line; `-` is standard input.
pub struct FileSource {
    paths: Vec<PathBuf>,
    limit: u64,
}

impl FileSource {
    /// The inputs at `paths`, each read up to `limit` bytes.
    pub fn new(paths: Vec<PathBuf>, limit: u64) -> Self {
        Self { paths, limit }
    }
}

pub(super) fn peek(reader: &mut dyn Read, name: &str) -> Result<Vec<u8>, SourceError> {
    let mut first = Vec::with_capacity(PEEK);
    let mut taken = reader.take(PEEK as u64);
    loop {
        match taken.read_to_end(&mut first) {
            Ok(_) => return Ok(first),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(SourceError::OpenLog {
                    path: name.to_owned(),
                    source,
                })
            }
        }
    }
}

/// What the reader saw of its input, for the check after the capture.
#[derive(Default)]
struct Watch {
    /// Bytes given out, the peek included.
    read: u64,
    /// More was on offer when the cap was reached.
    capped: bool,
    /// The smallest size the open file had when looked at after a read, below what was read.
    shrank_to: Option<u64>,
}

/// The offset of the file's first hole (its size when it has none), or `None` where the
/// filesystem cannot say. Moves the file's offset.
fn first_hole(file: &File) -> Option<u64> {
    rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(0)).ok()
}

/// Reads an input up to the cap, checking after each read of a regular file that the file has
/// not shrunk below what was read (a truncation under the reader).
struct Capped {
    inner: Box<dyn Read + Send>,
    file: Option<File>,
    limit: u64,
    watch: Arc<Mutex<Watch>>,
}

impl Read for Capped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(signal) = interrupt::requested() {
            return Err(interrupt::interrupted_error(signal));
        }
        let mut watch = self
            .watch
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        let room = self.limit.saturating_sub(watch.read);
        if room == 0 {
            if !watch.capped {
                // One byte past the cap tells a cut input from one of exactly the cap's size.
                let mut probe = [0u8; 1];
                watch.capped = read_retrying(&mut self.inner, &mut probe)? > 0;
            }
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = read_retrying(&mut self.inner, &mut buf[..want])?;
        watch.read += n as u64;
        if let Some(file) = &self.file {
            let meta = file.metadata()?;
            let size = meta.len();
            if size < watch.read {
                watch.shrank_to = Some(watch.shrank_to.map_or(size, |s| s.min(size)));
            }
        }
        Ok(n)
    }
}

fn read_retrying(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// What a file was when it was opened, to compare with what it is once read.
struct Opened {
    path: PathBuf,
    meta: Metadata,
    /// Where the file's first hole was (see `first_hole`).
    hole: Option<u64>,
}

/// The check once an input has been read: cut at the cap, shrunk or replaced while read.
fn check(
    name: String,
    limit: u64,
    watch: Arc<Mutex<Watch>>,
    opened: Option<(Opened, File)>,
) -> super::Check {
    Box::new(move |bytes: u64, _sha256: &Sha256Digest| {
        let mut failures: Vec<Failure> = Vec::new();
        let Ok(watch) = watch.lock() else {
            return vec![failure("read_failed", &name, "the input's reader failed")];
        };
        if watch.capped {
            let mut f = failure(
                "truncated",
                &name,
                format!("the input has more than the cap of {limit} bytes (files.limit_bytes); the first {bytes} bytes are sealed, the rest is not"),
            );
            f.set("limit_bytes", limit);
            failures.push(f);
        }
        let Some((opened, file)) = opened else {
            return failures;
        };
        let at_open = opened.meta.len();
        let now = file.metadata().ok();
        let size_now = now.as_ref().map(|m| m.len());
        // A truncation followed by a write at the old offset (copytruncate with a writer that
        // does not append) puts the size back and leaves a hole that reads as zeros: a hole
        // within what was read that was not there at open. (The reader is done: the offset
        // may move.)
        let hole = first_hole(&file)
            .filter(|h| *h < bytes.min(at_open) && opened.hole.is_none_or(|was| *h < was));
        let cut = bytes < at_open.min(limit) || watch.shrank_to.is_some();
        if let Some(hole) = hole.filter(|_| !cut) {
            let mut f = failure(
                "shrank",
                &name,
                format!(
                    "the file was truncated while it was read and written again at its old offsets (as logrotate's copytruncate does when the writer does not append): it has a hole from byte {hole} that it did not have at open, so the {bytes} bytes sealed hold zero bytes there, not the log"
                ),
            );
            f.set("size_at_open", at_open);
            f.set("bytes_read", bytes);
            f.set("size_now", size_now);
            f.set("hole_at", hole);
            failures.push(f);
        }
        if cut {
            let mut f = failure(
                "shrank",
                &name,
                format!(
                    "the file shrank while it was read (truncated by another process, as logrotate's copytruncate does): {at_open} bytes at open, {bytes} read and sealed, {} now; the bytes past what was read are not in this bundle",
                    size_now.map_or("unknown".into(), |s| s.to_string())
                ),
            );
            f.set("size_at_open", at_open);
            f.set("bytes_read", bytes);
            f.set("size_now", size_now);
            failures.push(f);
        }
        match std::fs::metadata(&opened.path) {
            Ok(m) if m.dev() == opened.meta.dev() && m.ino() == opened.meta.ino() => {}
            Ok(_) => failures.push(failure(
                "replaced",
                &name,
                "the path names another file now (rotated or replaced while it was read); the file that was opened is sealed, the new one is not",
            )),
            Err(e) => failures.push(failure(
                "replaced",
                &name,
                format!("the path is gone now ({e}): the file was moved or removed while it was read; the file that was opened is sealed"),
            )),
        }
        failures
    })
}

fn open_file(path: &Path, index: usize, limit: u64) -> Result<Stream, SourceError> {
    let name = path.display().to_string();
    let err = |source| SourceError::OpenLog {
        path: name.clone(),
        source,
    };
    let mut file = File::open(path).map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    if meta.is_dir() {
        return Err(SourceError::IsDirectory(name));
    }
    let regular = meta.is_file();
    let hole = if regular {
        let hole = first_hole(&file);
        io::Seek::seek(&mut file, io::SeekFrom::Start(0)).map_err(err)?;
        hole
    } else {
        None
    };
    let watch = Arc::new(Mutex::new(Watch::default()));
    let inner: Box<dyn Read + Send> = if regular {
        Box::new(file.try_clone().map_err(err)?)
    } else {
        // Pipes, FIFOs and devices can block on a read for ever.
        Box::new(interrupt::Watched::new(Box::new(
            file.try_clone().map_err(err)?,
        )))
    };
    let mut reader = Capped {
        inner,
        file: regular.then(|| file.try_clone()).transpose().map_err(err)?,
        limit,
        watch: watch.clone(),
    };
    let first = peek(&mut reader, &name)?;
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let modified = meta
        .modified()
        .ok()
        .map(|t| timefmt::rfc3339(time::OffsetDateTime::from(t)));
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let opened = regular.then(|| {
        (
            Opened {
                path: path.to_owned(),
                meta: meta.clone(),
                hole,
            },
            file,
        )
    });
    Ok(Stream {
        bag_name: format!("{index:02}-{}", safe_file_name(&base, 60)),
        provenance: Provenance::from_json(serde_json::json!({
            "kind": if regular { "file" } else { "device" },
            "path": name,
            "absolute_path": absolute.display().to_string(),
            "size_at_open": regular.then_some(meta.len()),
            "modified": modified,
            "limit_bytes": limit,
        })),
        check: Some(check(name.clone(), limit, watch, opened)),
        name,
        first,
        reader: Box::new(reader),
    })
}

impl Source for FileSource {
    fn request(&self) -> serde_json::Value {
        let paths: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        serde_json::json!({ "kind": "files", "logs": paths, "limit_bytes": self.limit })
    }

    fn open(&mut self) -> Result<Vec<Stream>, SourceError> {
        if self.paths.is_empty() {
            return Err(SourceError::NoInput);
        }
        let mut streams = Vec::new();
        let mut stdin_seen = false;
        for (i, path) in self.paths.iter().enumerate() {
            if path.as_os_str() == "-" {
                if stdin_seen {
                    return Err(SourceError::StdinTwice);
                }
                stdin_seen = true;
                let watch = Arc::new(Mutex::new(Watch::default()));
                let mut reader = Capped {
                    inner: Box::new(interrupt::Watched::new(Box::new(io::stdin()))),
                    file: None,
                    limit: self.limit,
                    watch: watch.clone(),
                };
                let first = peek(&mut reader, "standard input")?;
                streams.push(Stream {
                    name: "-".into(),
                    bag_name: format!("{:02}-stdin.log", i + 1),
                    provenance: Provenance::from_json(
                        serde_json::json!({ "kind": "stdin", "path": "-", "limit_bytes": self.limit }),
                    ),
                    first,
                    reader: Box::new(reader),
                    check: Some(check("-".into(), self.limit, watch, None)),
                });
            } else {
                streams.push(open_file(path, i + 1, self.limit)?);
            }
        }
        if streams.iter().all(|s| s.first.is_empty()) {
            let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
            return Err(SourceError::EmptyInput(names.join(", ")));
        }
        Ok(streams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_missing_directories_and_empty_input_before_capture() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.log");
        std::fs::write(&empty, b"").unwrap();
        let missing = dir.path().join("missing.log");
        let cases: [(Vec<PathBuf>, &str); 4] = [
            (vec![missing], "cannot read log file"),
            (vec![dir.path().to_owned()], "is a directory"),
            (vec![empty], "the input is empty"),
            (vec![], "no log files"),
        ];
        for (paths, want) in cases {
            let err = FileSource::new(paths, 1 << 30)
                .open()
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn names_in_the_bag_are_numbered_and_safe() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access log (1).txt");
        std::fs::write(&p, b"x\n").unwrap();
        let streams = FileSource::new(vec![p.clone(), p], 1 << 30).open().unwrap();
        assert_eq!(streams[0].bag_name, "01-access_log__1_.txt");
        assert_eq!(streams[1].bag_name, "02-access_log__1_.txt");
    }
}
