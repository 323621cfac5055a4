//! Reading a bundle's archive once, as a stream: the compressed bytes hashed, zstd decoded with a
//! window limit and a size cap, and every tar entry checked (no absolute paths, `..`, links,
//! extension headers, duplicates, entries outside the bag, data after the end marker, headers
//! other than the fixed ones custody writes) and hashed.

use std::collections::BTreeSet;
use std::io::{self, BufReader, Read};

use sha2::{Digest, Sha256, Sha512};

use super::bag::REQUIRED_TAGS;
use super::bundle::{Checker, Contents};
use super::Options;
use crate::digest::HashingReader;
use crate::id::{BundleId, CaseId};
use crate::store::{Store, StoreKey};

/// The largest tag file read into memory.
const MAX_TAG_FILE: u64 = 64 * 1024 * 1024;
/// The largest zstd window accepted (128 MiB), so a crafted frame cannot demand huge memory.
pub(super) const MAX_WINDOW_LOG: u32 = 27;
/// How far past the sealed size an archive is read before decompression stops.
pub(super) const CAP_SLACK: u64 = 64 * 1024 * 1024;
/// Without a seal, how many times its compressed size an archive may decompress to.
const FALLBACK_RATIO: u64 = 100;

/// The decompression cap when there is no seal to say the size: a generous ratio of the
/// compressed size, so a small bomb still stops early.
pub(super) fn fallback_cap(
    store: &dyn Store,
    case: &CaseId,
    bundle: &BundleId,
    options: &Options,
) -> u64 {
    let key = StoreKey::Archive(case.clone(), bundle.clone());
    let compressed = store
        .open(&key)
        .ok()
        .map_or(0, |mut r| io::copy(&mut r, &mut io::sink()).unwrap_or(0));
    compressed
        .saturating_mul(FALLBACK_RATIO)
        .saturating_add(CAP_SLACK)
        .min(options.max_unpacked)
}

/// Counts bytes and fails once more than `cap` have been read.
struct CapReader<R> {
    inner: R,
    cap: u64,
    read: u64,
}

impl<R: Read> Read for CapReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.cap {
            return Err(io::Error::other(format!(
                "decompressed data exceeds {} bytes, far more than the seal records; stopped (a decompression bomb or an altered archive)",
                self.cap
            )));
        }
        Ok(n)
    }
}

/// Streams the archive once: hashes the compressed bytes and checks and hashes every entry.
pub(super) fn stream_archive(
    store: &dyn Store,
    case: &CaseId,
    bundle: &BundleId,
    cap: u64,
    c: &mut Checker,
) -> Contents {
    let key = StoreKey::Archive(case.clone(), bundle.clone());
    let subject = key.path();
    let mut contents = Contents::default();
    let raw = match store.open(&key) {
        Ok(r) => r,
        Err(e) => {
            c.add("missing_file", subject, e.to_string());
            return contents;
        }
    };
    let hashing = HashingReader::new(raw);
    let decoder =
        zstd::stream::read::Decoder::with_buffer(BufReader::new(hashing)).and_then(|mut d| {
            d.window_log_max(MAX_WINDOW_LOG)?;
            Ok(d)
        });
    let decoder = match decoder {
        Ok(d) => d,
        Err(e) => {
            c.add("archive_corrupt", subject, e.to_string());
            return contents;
        }
    };
    let mut archive = tar::Archive::new(CapReader {
        inner: decoder,
        cap,
        read: 0,
    });
    let mut corrupt = false;
    if let Err(e) = read_entries(&mut archive, bundle, &subject, &mut contents, c) {
        corrupt = true;
        c.add(
            "archive_corrupt",
            subject.clone(),
            format!("cannot read the archive (truncated or corrupt): {e}"),
        );
    }
    let mut cap_reader = archive.into_inner();
    // After the end-of-archive marker only zero padding may follow: a second tar appended there
    // would be invisible to a reader that stops at the marker.
    if !corrupt {
        match trailing_nonzero(&mut cap_reader) {
            Ok(0) => {}
            Ok(n) => c.add(
                "extra_file",
                subject.clone(),
                format!("{n} bytes of data follow the tar's end-of-archive marker"),
            ),
            Err(e) => c.add(
                "archive_corrupt",
                subject.clone(),
                format!("cannot decompress the end of the archive: {e}"),
            ),
        }
    }
    contents.unpacked = cap_reader.read;
    let hashing = cap_reader.inner.finish().into_inner();
    match hashing.finish() {
        Ok((d, n)) => {
            contents.compressed_sha256 = Some(d);
            contents.compressed_size = n;
        }
        Err(e) => c.add(
            "archive_corrupt",
            subject,
            format!("cannot read the archive: {e}"),
        ),
    }
    contents
}

fn read_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    bundle: &BundleId,
    subject: &str,
    contents: &mut Contents,
    c: &mut Checker,
) -> io::Result<()> {
    let mut names = EntryNames {
        bundle,
        prefix: format!("{bundle}/"),
        subject,
        seen: BTreeSet::new(),
    };
    // Raw entries: custody writes plain ustar, so pax and GNU long-name headers are refused
    // rather than interpreted (a long-name header could otherwise demand any amount of memory).
    for entry in archive.entries()?.raw(true) {
        let mut entry = entry?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(rel) = names.admit(entry.header(), &raw_path, c) else {
            continue;
        };
        read_member(&mut entry, &rel, bundle, subject, contents, c)?;
    }
    Ok(())
}

/// The entries of one archive as they are walked, and the names seen so far.
struct EntryNames<'a> {
    bundle: &'a BundleId,
    /// `<bundle>/`, the bag directory every entry must be under.
    prefix: String,
    subject: &'a str,
    seen: BTreeSet<String>,
}

impl EntryNames<'_> {
    /// The path inside the bag of an entry whose content is to be read; `None` for one that is
    /// not (reported, or a directory of the bag).
    fn admit(&mut self, header: &tar::Header, raw_path: &str, c: &mut Checker) -> Option<String> {
        let (bundle, subject) = (self.bundle, self.subject);
        let kind = header.entry_type();
        if kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
        {
            c.add(
                "unsafe_entry",
                subject,
                format!("tar extension header ({kind:?}) before {raw_path:?}: custody archives are plain ustar"),
            );
            return None;
        }
        if let Some(reason) = unsafe_path(raw_path) {
            c.add(
                "unsafe_entry",
                subject,
                format!("tar entry {raw_path:?}: {reason}"),
            );
            return None;
        }
        let deviations = header_deviations(header, raw_path);
        if !deviations.is_empty() {
            c.add(
                "tar_entry",
                subject,
                format!(
                    "tar entry {raw_path:?} is not as custody writes it: {}; tar -x and bagit.py may read it otherwise",
                    deviations.join(", ")
                ),
            );
        }
        let path = raw_path.trim_end_matches('/').to_owned();
        if !self.seen.insert(path.clone()) {
            c.add(
                "duplicate_entry",
                subject,
                format!("tar entry {path:?} appears more than once"),
            );
            return None;
        }
        let inside = path.strip_prefix(&self.prefix).is_some() || path == bundle.as_str();
        // Reported above; a directory holds nothing to hash, and `tar -x` makes a directory of
        // a regular file named with a final '/', so its bytes are no file's content.
        if inside && (kind.is_dir() || raw_path.ends_with('/')) {
            return None;
        }
        if !(kind.is_file() || kind.is_dir() || kind == tar::EntryType::Continuous) {
            c.add(
                "unsafe_entry",
                subject,
                format!("tar entry {path:?} is a {kind:?}, not a regular file"),
            );
            return None;
        }
        let Some(rel) = path.strip_prefix(&self.prefix) else {
            c.add(
                "extra_file",
                subject,
                format!("tar entry {path:?} is outside the bag directory {bundle}/"),
            );
            return None;
        };
        Some(rel.to_owned())
    }
}

/// One admitted entry, at `rel` inside the bag: a payload file is hashed, a known tag file read
/// (capped), anything else reported unread.
fn read_member(
    entry: &mut dyn Read,
    rel: &str,
    bundle: &BundleId,
    subject: &str,
    contents: &mut Contents,
    c: &mut Checker,
) -> io::Result<()> {
    if rel.starts_with("data/") {
        let digests = hash_entry(entry)?;
        contents.payload.insert(rel.to_owned(), digests);
    } else if !REQUIRED_TAGS.contains(&rel) {
        // Only the known tag files are read into memory; anything else is reported unread.
        c.add(
            "extra_file",
            format!("{bundle}/{rel}"),
            "unexpected tag file in the bag",
        );
    } else {
        let mut bytes = Vec::new();
        entry.take(MAX_TAG_FILE + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_TAG_FILE {
            c.add(
                "tag_file_invalid",
                subject,
                format!("tag file {rel} is larger than 64 MiB"),
            );
            return Ok(());
        }
        contents.tags.insert(rel.to_owned(), bytes);
    }
    Ok(())
}

/// How a header differs from the fixed one custody writes (`tar_header` in `seal/bag.rs`): a
/// ustar header of a regular file (type '0'), mode 0644, owner 0/0 named root/root, no link
/// name. Each difference is one a reader may act on: `tar -x` applies modes and owners, makes a
/// directory of a name ending in '/', and reads the old type '\0' or contiguous files as it likes.
fn header_deviations(header: &tar::Header, raw_path: &str) -> Vec<String> {
    let mut found = Vec::new();
    if header.as_ustar().is_none() {
        found.push("not a ustar header".to_owned());
    }
    let kind = header.entry_type();
    let typeflag = header.as_bytes()[156];
    if kind.is_dir() {
        found.push("a directory (custody archives hold only regular files)".to_owned());
    } else if typeflag == b'\0' || kind == tar::EntryType::Continuous {
        found.push(format!(
            "type {:?} (custody writes type '0')",
            char::from(typeflag)
        ));
    }
    if kind.is_file() && raw_path.ends_with('/') {
        found.push("a regular file whose name ends in '/'".to_owned());
    }
    match header.mode() {
        Ok(0o644) => {}
        Ok(m) => found.push(format!("mode {m:04o} (custody writes 0644)")),
        Err(_) => found.push("an unreadable mode".to_owned()),
    }
    for (what, id) in [("uid", header.uid()), ("gid", header.gid())] {
        match id {
            Ok(0) => {}
            Ok(n) => found.push(format!("{what} {n} (custody writes 0)")),
            Err(_) => found.push(format!("an unreadable {what}")),
        }
    }
    let names = [
        ("user", header.username_bytes()),
        ("group", header.groupname_bytes()),
    ];
    for (what, name) in names {
        if name != Some(&b"root"[..]) {
            let name = name.map_or(String::new(), |n| String::from_utf8_lossy(n).into_owned());
            found.push(format!("{what} name {name:?} (custody writes \"root\")"));
        }
    }
    let link = kind.is_symlink() || kind.is_hard_link();
    if !link && header.link_name_bytes().is_some_and(|l| !l.is_empty()) {
        found.push("a link name".to_owned());
    }
    found
}

/// Size, SHA-256 and SHA-512 of an entry, streamed.
fn hash_entry(entry: &mut dyn Read) -> io::Result<(u64, String, String)> {
    let mut s256 = Sha256::new();
    let mut s512 = Sha512::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = entry.read(&mut buf)?;
        if n == 0 {
            break;
        }
        s256.update(&buf[..n]);
        s512.update(&buf[..n]);
        size += n as u64;
    }
    Ok((
        size,
        hex::encode(s256.finalize()),
        hex::encode(s512.finalize()),
    ))
}

/// Reads to the end, counting bytes that are not zero.
fn trailing_nonzero(reader: &mut dyn Read) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut nonzero = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(nonzero);
        }
        nonzero += buf[..n].iter().filter(|b| **b != 0).count() as u64;
    }
}

/// Why a tar path is unsafe to extract, if it is.
fn unsafe_path(path: &str) -> Option<&'static str> {
    if path.starts_with('/') {
        return Some("absolute path");
    }
    if path.contains('\\') || path.contains('\0') {
        return Some("backslash or NUL in path");
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Some("empty path");
    }
    for part in trimmed.split('/') {
        match part {
            ".." => return Some("'..' in path"),
            "." | "" => return Some("'.' or empty component in path"),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths() {
        assert_eq!(unsafe_path("b/../x"), Some("'..' in path"));
        assert_eq!(unsafe_path("/etc/passwd"), Some("absolute path"));
        assert_eq!(unsafe_path("b/./x"), Some("'.' or empty component in path"));
        assert_eq!(unsafe_path("b/data/"), None);
        assert_eq!(unsafe_path("b/data/x"), None);
    }
}
