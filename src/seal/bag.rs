//! Builds the evidence archive: a BagIt 1.0 bag in a deterministic tar, compressed with zstd.
//!
//! Payload streams are read exactly once: each chunk is hashed (SHA-256 and SHA-512), handed to an
//! observer (the analysis) and compressed into its own zstd frame in a spool file. When every
//! payload file is known, `finish` writes the archive in sorted tar order: small entries (tag
//! files, the analysis, `collection.json`) are compressed where they fall, and each spooled frame
//! is copied between them unchanged. Concatenated zstd frames decompress to the concatenated tar,
//! so `zstd -dc | tar -x` sees one ordinary archive.
//!
//! A spooled frame is hashed as it is written and again when it is copied into the archive: a
//! spool changed in between (by another process, or a failing disk) is found, never sealed
//! under a manifest that names other bytes.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256, Sha512};

use crate::digest::{HashingReader, HashingWriter, Sha256Digest};
use crate::id::BundleId;
use crate::store::{new_staging_file, StagedFile};

/// zstd level for every frame.
const ZSTD_LEVEL: i32 = 3;
/// Compression threads for payload streams.
const ZSTD_WORKERS: u32 = 2;
const CHUNK: usize = 1024 * 1024;
/// Chunks queued for the hashing thread before the reader waits.
const IN_FLIGHT: usize = 8;

/// A chunk of a payload stream, shared by the threads that hash, analyse and compress it.
pub type Chunk = Arc<Vec<u8>>;
/// The longest path inside a bag (relative to the bag root), so every tar name fits ustar.
pub const MAX_BAG_PATH: usize = 90;

#[derive(Debug, thiserror::Error)]
pub enum BagError {
    #[error("cannot stage the archive in {dir}: {source}")]
    Stage { dir: PathBuf, source: io::Error },
    #[error("cannot read {source_name}: {source}")]
    ReadSource {
        source_name: String,
        source: io::Error,
    },
    #[error("cannot write the archive: {0}")]
    WriteArchive(io::Error),
    #[error(
        "invalid path in bag {0:?}: components are [A-Za-z0-9._-], under data/, at most 90 bytes"
    )]
    InvalidPath(String),
    #[error("{0} is in the bag twice")]
    DuplicatePath(String),
    #[error("the collection was interrupted by {} while reading {source_name}", signal.name())]
    Interrupted {
        source_name: String,
        signal: crate::interrupt::Signal,
    },
    #[error("the staged copy of {path} changed while the archive was written (its spooled frame's SHA-256 was {expected} when captured, {found} when copied); nothing was sealed")]
    StagingChanged {
        path: String,
        expected: Sha256Digest,
        found: Sha256Digest,
    },
}

/// A validated path of a payload file relative to the bag root, such as `data/logs/01-access.log`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BagPath(String);

impl BagPath {
    pub fn new(path: impl Into<String>) -> Result<Self, BagError> {
        let path = path.into();
        let ok = path.len() <= MAX_BAG_PATH
            && path.starts_with("data/")
            && path.split('/').all(|c| {
                !c.is_empty()
                    && c != "."
                    && c != ".."
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            });
        if ok {
            Ok(Self(path))
        } else {
            Err(BagError::InvalidPath(path))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What was captured of one payload file.
#[derive(Clone, Debug)]
pub struct Captured {
    pub path: BagPath,
    pub size: u64,
    pub sha256: Sha256Digest,
    pub sha512: String,
}

enum Body {
    Inline(Vec<u8>),
    /// A complete zstd frame in the spool holding the file's bytes and its tar padding, with
    /// the SHA-256 of the frame as it was written.
    Spooled {
        offset: u64,
        len: u64,
        sha256: Sha256Digest,
    },
}

struct Entry {
    captured: Captured,
    body: Body,
}

/// Labels for `bag-info.txt` beyond the ones the builder computes.
pub struct BagInfo {
    pub bagging_date: String,
    pub external_identifier: String,
    /// `Custody-*` labels, in order.
    pub custody_labels: Vec<(String, String)>,
}

/// The sealed archive, staged and fsynced, with what the seal records about it.
pub struct SealedArchive {
    pub staged: StagedFile,
    pub unpacked_size: u64,
    pub payload_oxum: String,
    pub manifest_sha256: Sha256Digest,
    pub tagmanifest_sha256: Sha256Digest,
}

pub struct BagBuilder {
    bundle: BundleId,
    mtime: u64,
    staging_dir: PathBuf,
    spool: File,
    spool_path: PathBuf,
    spool_len: u64,
    entries: Vec<Entry>,
}

impl Drop for BagBuilder {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.spool_path);
    }
}

impl BagBuilder {
    /// A builder staging its spool in `staging_dir`; `mtime` is every tar entry's time.
    pub fn new(staging_dir: PathBuf, bundle: BundleId, mtime: u64) -> Result<Self, BagError> {
        let (spool_path, spool) =
            new_staging_file(&staging_dir).map_err(|source| BagError::Stage {
                dir: staging_dir.clone(),
                source,
            })?;
        Ok(Self {
            bundle,
            mtime,
            staging_dir,
            spool,
            spool_path,
            spool_len: 0,
            entries: Vec::new(),
        })
    }

    fn check_new(&self, path: &BagPath) -> Result<(), BagError> {
        if self.entries.iter().any(|e| e.captured.path == *path) {
            return Err(BagError::DuplicatePath(path.0.clone()));
        }
        Ok(())
    }

    /// Adds a small payload file held in memory.
    pub fn add_bytes(&mut self, path: BagPath, bytes: Vec<u8>) -> Result<Captured, BagError> {
        self.check_new(&path)?;
        let captured = Captured {
            path,
            size: bytes.len() as u64,
            sha256: Sha256Digest::of(&bytes),
            sha512: hex::encode(Sha512::digest(&bytes)),
        };
        self.entries.push(Entry {
            captured: captured.clone(),
            body: Body::Inline(bytes),
        });
        Ok(captured)
    }

    /// Streams `reader` to its end into the bag at `path`, showing every chunk to `observe`.
    /// `first` holds bytes already read from the source (a peek), which come first.
    ///
    /// The input is read once: each chunk is hashed on a thread of its own, shown to `observe`
    /// (which may hand it to another thread) and compressed by zstd's workers, all at once.
    pub fn add_stream(
        &mut self,
        path: BagPath,
        source_name: &str,
        first: &[u8],
        reader: &mut dyn Read,
        observe: &mut dyn FnMut(&Chunk),
    ) -> Result<Captured, BagError> {
        self.check_new(&path)?;
        let offset = self.spool_len;
        let spool = &mut self.spool;
        let (size, sha256, sha512, frame_sha256) = std::thread::scope(|scope| {
            let (to_hasher, chunks) = std::sync::mpsc::sync_channel::<Chunk>(IN_FLIGHT);
            let hasher = scope.spawn(move || {
                let mut sha256 = Sha256::new();
                let mut sha512 = Sha512::new();
                for chunk in chunks {
                    sha256.update(&chunk[..]);
                    sha512.update(&chunk[..]);
                }
                (Sha256Digest::from(sha256), hex::encode(sha512.finalize()))
            });
            let size = compress_stream(spool, source_name, first, reader, &mut |chunk| {
                observe(&chunk);
                // The hasher only stops early if it panicked; the join below reports that.
                let _ = to_hasher.send(chunk);
            });
            drop(to_hasher);
            let (sha256, sha512) = hasher.join().map_err(|_| {
                BagError::WriteArchive(io::Error::other("the hashing thread panicked"))
            })?;
            let (size, frame_sha256) = size?;
            Ok::<_, BagError>((size, sha256, sha512, frame_sha256))
        })?;
        self.spool_len = self
            .spool
            .stream_position()
            .map_err(BagError::WriteArchive)?;
        let captured = Captured {
            path,
            size,
            sha256,
            sha512,
        };
        self.entries.push(Entry {
            captured: captured.clone(),
            body: Body::Spooled {
                offset,
                len: self.spool_len - offset,
                sha256: frame_sha256,
            },
        });
        Ok(captured)
    }

    /// Reads every spooled frame back and compares it with its SHA-256 from the capture. A
    /// frame that changed is taken out of the bag (its bytes are no longer what was read) and
    /// returned with what was found, so the caller records it before the bag's own records are
    /// written; `finish` checks the frames once more as it copies them.
    pub fn check_spool(&mut self) -> Result<Vec<(Captured, String)>, BagError> {
        let mut changed = Vec::new();
        let mut kept = Vec::new();
        for entry in std::mem::take(&mut self.entries) {
            let Body::Spooled {
                offset,
                len,
                sha256,
            } = &entry.body
            else {
                kept.push(entry);
                continue;
            };
            self.spool
                .seek(SeekFrom::Start(*offset))
                .map_err(BagError::WriteArchive)?;
            let (found, n) = HashingReader::new((&mut self.spool).take(*len))
                .finish()
                .map_err(BagError::WriteArchive)?;
            if found == *sha256 && n == *len {
                kept.push(entry);
            } else {
                changed.push((
                    entry.captured.clone(),
                    format!("the staged copy of {} changed after it was captured (its spooled frame's SHA-256 was {sha256}, {n} bytes; now {found}); it is left out of the bag", entry.captured.path.0),
                ));
            }
        }
        self.entries = kept;
        Ok(changed)
    }

    /// Writes the tag files and the whole archive to a staged file, fsynced.
    pub fn finish(mut self, info: &BagInfo) -> Result<SealedArchive, BagError> {
        self.entries
            .sort_by(|a, b| a.captured.path.cmp(&b.captured.path));
        let tags = TagFiles::of(&self.entries, info);
        let manifest_sha256 = Sha256Digest::of(tags.files[2].1.as_bytes());
        let tagmanifest_sha256 = Sha256Digest::of(tags.tagmanifest.as_bytes());
        let order = tar_order(&tags, &self.entries);

        let (path, file) =
            new_staging_file(&self.staging_dir).map_err(|source| BagError::Stage {
                dir: self.staging_dir.clone(),
                source,
            })?;
        let written = write_archive(&order, &self.bundle, self.mtime, &mut self.spool, file);
        let (out, unpacked_size) = match written {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                if let Some(c) = e.get_ref().and_then(|i| i.downcast_ref::<StagingChanged>()) {
                    return Err(BagError::StagingChanged {
                        path: c.path.clone(),
                        expected: c.expected,
                        found: c.found,
                    });
                }
                return Err(BagError::WriteArchive(e));
            }
        };
        let (buf, sha256, size) = out.finish();
        let synced = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all());
        if let Err(e) = synced {
            let _ = std::fs::remove_file(&path);
            return Err(BagError::WriteArchive(e));
        }
        Ok(SealedArchive {
            staged: StagedFile { path, sha256, size },
            unpacked_size,
            payload_oxum: tags.payload_oxum,
            manifest_sha256,
            tagmanifest_sha256,
        })
    }
}

/// The tag files of a bag, computed from its payload (sorted by path) and its labels.
struct TagFiles {
    /// In name order: `bag-info.txt`, `bagit.txt`, `manifest-sha256.txt`, `manifest-sha512.txt`.
    files: [(&'static str, String); 4],
    /// `tagmanifest-sha256.txt`, over the four above.
    tagmanifest: String,
    /// `<payload bytes>.<payload files>`, as in `bag-info.txt`.
    payload_oxum: String,
}

impl TagFiles {
    fn of(entries: &[Entry], info: &BagInfo) -> Self {
        let payload_bytes: u64 = entries.iter().map(|e| e.captured.size).sum();
        let payload_oxum = format!("{payload_bytes}.{}", entries.len());
        let mut manifest256 = String::new();
        let mut manifest512 = String::new();
        for e in entries {
            manifest256.push_str(&format!("{}  {}\n", e.captured.sha256, e.captured.path.0));
            manifest512.push_str(&format!("{}  {}\n", e.captured.sha512, e.captured.path.0));
        }
        let bagit = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n".to_string();
        let mut bag_info = format!(
            "Bagging-Date: {}\nPayload-Oxum: {payload_oxum}\nExternal-Identifier: {}\n",
            info.bagging_date, info.external_identifier
        );
        for (k, v) in &info.custody_labels {
            bag_info.push_str(&format!("Custody-{k}: {v}\n"));
        }
        let files = [
            ("bag-info.txt", bag_info),
            ("bagit.txt", bagit),
            ("manifest-sha256.txt", manifest256),
            ("manifest-sha512.txt", manifest512),
        ];
        let mut tagmanifest = String::new();
        for (name, text) in &files {
            tagmanifest.push_str(&format!("{}  {name}\n", Sha256Digest::of(text.as_bytes())));
        }
        TagFiles {
            files,
            tagmanifest,
            payload_oxum,
        }
    }
}

/// One tar entry to write: its name inside the bag, its inline bytes (empty for a spooled
/// body), the body, and its size.
type TarEntry<'a> = (String, &'a [u8], Option<&'a Body>, u64);

/// Every entry of the tar, in name order: tag files sort around `data/`.
fn tar_order<'a>(tags: &'a TagFiles, entries: &'a [Entry]) -> Vec<TarEntry<'a>> {
    let mut order: Vec<TarEntry<'a>> = Vec::new();
    for (name, text) in &tags.files {
        order.push((name.to_string(), text.as_bytes(), None, text.len() as u64));
    }
    order.push((
        "tagmanifest-sha256.txt".into(),
        tags.tagmanifest.as_bytes(),
        None,
        tags.tagmanifest.len() as u64,
    ));
    for e in entries {
        let inline: &[u8] = match &e.body {
            Body::Inline(b) => b,
            Body::Spooled { .. } => &[],
        };
        order.push((
            e.captured.path.0.clone(),
            inline,
            Some(&e.body),
            e.captured.size,
        ));
    }
    order.sort_by(|a, b| a.0.cmp(&b.0));
    order
}

/// Writes the tar of `order` (under the bag directory `bundle`) to `file`: small entries
/// compressed where they fall, each spooled frame copied from `spool` and checked against the
/// SHA-256 it had when it was written. Returns the writer (to finish and sync) and the tar's
/// unpacked size.
fn write_archive(
    order: &[TarEntry<'_>],
    bundle: &BundleId,
    mtime: u64,
    spool: &mut File,
    file: File,
) -> io::Result<(HashingWriter<BufWriter<File>>, u64)> {
    let mut out = HashingWriter::new(BufWriter::with_capacity(CHUNK, file));
    let mut pending: Vec<u8> = Vec::new();
    let mut unpacked = 0u64;
    for (name, inline, body, size) in order {
        let full = format!("{bundle}/{name}");
        pending.extend_from_slice(&tar_header(&full, *size, mtime)?);
        unpacked += 512;
        match body {
            Some(Body::Spooled {
                offset,
                len,
                sha256,
            }) => {
                write_frame(&mut out, &mut pending)?;
                spool.seek(SeekFrom::Start(*offset))?;
                let mut frame = HashingReader::new((&mut *spool).take(*len));
                let copied = io::copy(&mut frame, &mut out)?;
                let (found, _) = frame.finish()?;
                if copied != *len || found != *sha256 {
                    return Err(io::Error::other(StagingChanged {
                        path: name.clone(),
                        expected: *sha256,
                        found,
                    }));
                }
            }
            _ => {
                pending.extend_from_slice(inline);
                pending.extend_from_slice(&[0u8; 512][..padding(*size)]);
            }
        }
        unpacked += *size + padding(*size) as u64;
    }
    // The end-of-archive marker: two zero blocks.
    pending.extend_from_slice(&[0u8; 1024]);
    unpacked += 1024;
    write_frame(&mut out, &mut pending)?;
    out.flush()?;
    Ok((out, unpacked))
}

/// A spooled frame found changed while it was copied (carried inside an `io::Error`).
#[derive(Debug)]
struct StagingChanged {
    path: String,
    expected: Sha256Digest,
    found: Sha256Digest,
}

impl std::fmt::Display for StagingChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the staged copy of {} changed", self.path)
    }
}

impl std::error::Error for StagingChanged {}

/// Reads `first` then `reader` to its end in chunks, hands each chunk to `take`, and compresses
/// it (with the tar padding) as one zstd frame onto `spool`. Returns the bytes read and the
/// frame's SHA-256.
fn compress_stream(
    spool: &mut File,
    source_name: &str,
    first: &[u8],
    reader: &mut dyn Read,
    take: &mut dyn FnMut(Chunk),
) -> Result<(u64, Sha256Digest), BagError> {
    let mut encoder =
        new_encoder(HashingWriter::new(spool), true).map_err(BagError::WriteArchive)?;
    let mut size = first.len() as u64;
    encoder.write_all(first).map_err(BagError::WriteArchive)?;
    take(Arc::new(first.to_vec()));
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                if let Some(signal) = crate::interrupt::signal_of(&source) {
                    return Err(BagError::Interrupted {
                        source_name: source_name.to_owned(),
                        signal,
                    });
                }
                return Err(BagError::ReadSource {
                    source_name: source_name.to_owned(),
                    source,
                });
            }
        };
        buf.truncate(n);
        size += n as u64;
        encoder.write_all(&buf).map_err(BagError::WriteArchive)?;
        take(Arc::new(buf));
    }
    encoder
        .write_all(&[0u8; 512][..padding(size)])
        .map_err(BagError::WriteArchive)?;
    let (_, frame_sha256, _) = encoder.finish().map_err(BagError::WriteArchive)?.finish();
    Ok((size, frame_sha256))
}

fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

fn new_encoder<W: Write>(w: W, threaded: bool) -> io::Result<zstd::Encoder<'static, W>> {
    let mut encoder = zstd::Encoder::new(w, ZSTD_LEVEL)?;
    encoder.include_checksum(true)?;
    if threaded {
        encoder.multithread(ZSTD_WORKERS)?;
    }
    Ok(encoder)
}

/// Compresses `pending` as one frame onto `out` and empties it.
fn write_frame<W: Write>(out: &mut W, pending: &mut Vec<u8>) -> io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut encoder = new_encoder(out, pending.len() > CHUNK)?;
    encoder.write_all(pending)?;
    encoder.finish()?;
    pending.clear();
    Ok(())
}

/// A ustar header with fixed owner (0:0), mode (0644) and time.
fn tar_header(path: &str, size: u64, mtime: u64) -> io::Result<[u8; 512]> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_username("root")?;
    h.set_groupname("root")?;
    h.set_cksum();
    Ok(*h.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A spool changed after `check_spool` and before the copy (the last moment) still never
    // reaches an archive: the copy is hashed against the capture.
    #[test]
    fn a_spool_changed_just_before_the_copy_stops_the_seal() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = BundleId::new("20261126-145448-0000beef").unwrap();
        let mut bag = BagBuilder::new(dir.path().to_owned(), bundle, 0).unwrap();
        let log =
            b"10.0.0.1 - - [26/Nov/2026:14:54:48 +0000] \"GET / HTTP/1.1\" 200 1\n".repeat(1000);
        bag.add_stream(
            BagPath::new("data/logs/01-a.log").unwrap(),
            "a",
            b"",
            &mut &log[..],
            &mut |_| {},
        )
        .unwrap();
        assert!(bag.check_spool().unwrap().is_empty(), "untouched");
        let mut spool = std::fs::OpenOptions::new()
            .write(true)
            .open(&bag.spool_path)
            .unwrap();
        spool.write_all(&[0u8; 16]).unwrap();
        let info = BagInfo {
            bagging_date: "2026-11-26".into(),
            external_identifier: "x".into(),
            custody_labels: Vec::new(),
        };
        match bag.finish(&info) {
            Err(BagError::StagingChanged { path, .. }) => assert!(path.ends_with("01-a.log")),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("sealed a changed spool"),
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 0, "no archive is left staged");
    }

    #[test]
    fn bag_paths_are_confined() {
        assert!(BagPath::new("data/logs/01-access.log").is_ok());
        for bad in [
            "logs/x",
            "data/../x",
            "data//x",
            "data/./x",
            "/data/x",
            "data/a b",
            "data/é",
        ] {
            assert!(BagPath::new(bad).is_err(), "{bad}");
        }
        assert!(BagPath::new(format!("data/{}", "a".repeat(90))).is_err());
    }
}
