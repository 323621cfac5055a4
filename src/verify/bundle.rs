//! One bundle, checked: the sidecar, the seal's signature, the archive streamed through zstd (with
//! a size cap) and tar (no unsafe entries), every payload file against both manifests, the bag's
//! tag files, the seal's fields against what was read, and the seal against the journal.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufReader, Read};

use serde::Serialize;
use sha2::{Digest, Sha256, Sha512};

use super::{Options, Problem};
use crate::digest::{HashingReader, Sha256Digest};
use crate::id::{BundleId, CaseId, KeyId};
use crate::journal::{CheckedChain, EntryKind};
use crate::keys::PublicKey;
use crate::seal::{SealRecord, SEAL_FORMAT};
use crate::store::{archive_name, Store, StoreKey};

/// The largest tag file read into memory.
const MAX_TAG_FILE: u64 = 64 * 1024 * 1024;
/// The largest zstd window accepted (128 MiB), so a crafted frame cannot demand huge memory.
const MAX_WINDOW_LOG: u32 = 27;
/// How far past the sealed size an archive is read before decompression stops.
const CAP_SLACK: u64 = 64 * 1024 * 1024;
/// Without a seal, how many times its compressed size an archive may decompress to.
const FALLBACK_RATIO: u64 = 100;

#[derive(Debug, Serialize)]
pub struct BundleReport {
    pub bundle_id: BundleId,
    pub ok: bool,
    pub archive_sha256: Option<Sha256Digest>,
    pub signature_valid: bool,
    pub key_id: Option<KeyId>,
    /// Whether the verifying key was given by the auditor rather than taken from the store.
    pub key_trusted: bool,
    pub payload_files: u64,
    pub payload_bytes: u64,
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn add(&mut self, code: &'static str, subject: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            code,
            subject: subject.into(),
            message: message.into(),
        });
    }
}

/// What streaming the archive found.
#[derive(Default)]
struct Contents {
    /// Payload files (`data/…`): size, SHA-256 and SHA-512 hex.
    payload: BTreeMap<String, (u64, String, String)>,
    /// Tag files, whole.
    tags: BTreeMap<String, Vec<u8>>,
    unpacked: u64,
    compressed_sha256: Option<Sha256Digest>,
    compressed_size: u64,
}

pub fn verify_bundle(
    store: &dyn Store,
    case: &CaseId,
    bundle: &BundleId,
    chain: &CheckedChain,
    options: &Options,
) -> (BundleReport, Vec<Problem>, Vec<String>) {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let mut warnings = Vec::new();
    let seal_key = StoreKey::Seal(case.clone(), bundle.clone());

    let sidecar = read_sidecar(store, case, bundle, &mut c);
    let seal_bytes = match store.get(&seal_key) {
        Ok(b) => Some(b),
        Err(e) => {
            c.add("missing_file", seal_key.path(), e.to_string());
            None
        }
    };
    let seal: Option<SealRecord> =
        seal_bytes
            .as_ref()
            .and_then(|b| match serde_json::from_slice(b) {
                Ok(s) => Some(s),
                Err(e) => {
                    c.add(
                        "seal_invalid",
                        seal_key.path(),
                        format!("not a seal record: {e}"),
                    );
                    None
                }
            });
    let signature = check_signature(
        store,
        case,
        bundle,
        seal_bytes.as_deref(),
        seal.as_ref(),
        options,
        &mut c,
        &mut warnings,
    );

    // The sealed size plus slack: enough to read an altered archive far enough to report what is
    // in it, while a decompression bomb still stops early.
    let cap = seal
        .as_ref()
        .map_or(fallback_cap(store, case, bundle, options), |s| {
            s.archive
                .unpacked_size
                .saturating_add(CAP_SLACK)
                .min(options.max_unpacked)
        });
    let contents = stream_archive(store, case, bundle, cap, &mut c);
    let archive_path = StoreKey::Archive(case.clone(), bundle.clone()).path();
    if let (Some(got), Some(want)) = (contents.compressed_sha256, sidecar) {
        if got != want {
            c.add(
                "archive_hash_mismatch",
                archive_path,
                format!("SHA-256 is {got}, the sidecar says {want}"),
            );
        }
    }
    check_bag(bundle, case, &contents, &mut c);
    if let (Some(seal), Some(bytes)) = (&seal, &seal_bytes) {
        check_seal_fields(seal, case, bundle, &contents, &mut c);
        check_journal(seal, bytes, bundle, chain, &contents, &seal_key, &mut c);
    }
    let report = BundleReport {
        bundle_id: bundle.clone(),
        ok: c.problems.is_empty(),
        archive_sha256: contents.compressed_sha256,
        signature_valid: signature.valid,
        key_id: signature.key_id,
        key_trusted: signature.trusted,
        payload_files: contents.payload.len() as u64,
        payload_bytes: contents.payload.values().map(|p| p.0).sum(),
    };
    (report, c.problems, warnings)
}

fn read_sidecar(
    store: &dyn Store,
    case: &CaseId,
    bundle: &BundleId,
    c: &mut Checker,
) -> Option<Sha256Digest> {
    let key = StoreKey::ArchiveSidecar(case.clone(), bundle.clone());
    let bytes = match store.get(&key) {
        Ok(b) => b,
        Err(e) => {
            c.add("missing_file", key.path(), e.to_string());
            return None;
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let line = text.strip_suffix('\n').unwrap_or(&text);
    match line.split_once("  ") {
        Some((hex, name)) if name == archive_name(bundle) && !line.contains('\n') => {
            match hex.parse() {
                Ok(d) => Some(d),
                Err(e) => {
                    c.add("sidecar_invalid", key.path(), e.to_string());
                    None
                }
            }
        }
        _ => {
            c.add(
                "sidecar_invalid",
                key.path(),
                format!("expected one line \"<sha256>  {}\"", archive_name(bundle)),
            );
            None
        }
    }
}

struct SignatureCheck {
    valid: bool,
    key_id: Option<KeyId>,
    trusted: bool,
}

#[allow(clippy::too_many_arguments)]
fn check_signature(
    store: &dyn Store,
    case: &CaseId,
    bundle: &BundleId,
    seal_bytes: Option<&[u8]>,
    seal: Option<&SealRecord>,
    options: &Options,
    c: &mut Checker,
    warnings: &mut Vec<String>,
) -> SignatureCheck {
    let none = SignatureCheck {
        valid: false,
        key_id: None,
        trusted: false,
    };
    let sig_key = StoreKey::SealSignature(case.clone(), bundle.clone());
    let signature = match store.get(&sig_key) {
        Ok(s) => s,
        Err(e) => {
            c.add("missing_file", sig_key.path(), e.to_string());
            return none;
        }
    };
    let Some(seal_bytes) = seal_bytes else {
        return none;
    };
    let (key, trusted) = match (&options.public_key, seal) {
        (Some(k), _) => (k.clone(), true),
        (None, Some(seal)) => {
            let k = StoreKey::PublicKey(seal.key_id.clone());
            let loaded = store
                .get(&k)
                .map_err(|e| e.to_string())
                .and_then(|b| PublicKey::from_pem(&String::from_utf8_lossy(&b)));
            match loaded {
                Ok(key) => {
                    warnings.push(format!(
                        "signatures were checked against the store's own copy of key {id} (keys/{id}.pub), which was not independently trusted: pass --public-key with the collector's key from a trusted source",
                        id = seal.key_id
                    ));
                    (key, false)
                }
                Err(e) => {
                    c.add(
                        "key_missing",
                        k.path(),
                        format!("cannot load the seal's key: {e}"),
                    );
                    return none;
                }
            }
        }
        (None, None) => return none,
    };
    let valid = key.verify(seal_bytes, &signature);
    if !valid {
        let named = seal.map_or_else(|| "no key".to_string(), |s| format!("key {}", s.key_id));
        c.add(
            "signature_invalid",
            sig_key.path(),
            format!(
                "the seal's signature does not verify with key {} (the seal names {named}): the seal was altered or signed by another key",
                key.id()
            ),
        );
    }
    SignatureCheck {
        valid,
        key_id: Some(key.id().clone()),
        trusted,
    }
}

/// The decompression cap when there is no seal to say the size: a generous ratio of the
/// compressed size, so a small bomb still stops early.
fn fallback_cap(store: &dyn Store, case: &CaseId, bundle: &BundleId, options: &Options) -> u64 {
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
fn stream_archive(
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
    let prefix = format!("{bundle}/");
    let mut seen = BTreeSet::new();
    // Raw entries: custody writes plain ustar, so pax and GNU long-name headers are refused
    // rather than interpreted (a long-name header could otherwise demand any amount of memory).
    for entry in archive.entries()?.raw(true) {
        let mut entry = entry?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
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
            continue;
        }
        if let Some(reason) = unsafe_path(&raw_path) {
            c.add(
                "unsafe_entry",
                subject,
                format!("tar entry {raw_path:?}: {reason}"),
            );
            continue;
        }
        let path = raw_path.trim_end_matches('/').to_owned();
        if !seen.insert(path.clone()) {
            c.add(
                "duplicate_entry",
                subject,
                format!("tar entry {path:?} appears more than once"),
            );
            continue;
        }
        let inside = path.strip_prefix(&prefix).is_some() || path == bundle.as_str();
        if kind.is_dir() && inside {
            continue;
        }
        if !(kind.is_file() || kind.is_dir() || kind == tar::EntryType::Continuous) {
            c.add(
                "unsafe_entry",
                subject,
                format!("tar entry {path:?} is a {kind:?}, not a regular file"),
            );
            continue;
        }
        let Some(rel) = path.strip_prefix(&prefix) else {
            c.add(
                "extra_file",
                subject,
                format!("tar entry {path:?} is outside the bag directory {bundle}/"),
            );
            continue;
        };
        if rel.starts_with("data/") {
            let digests = hash_entry(&mut entry)?;
            contents.payload.insert(rel.to_owned(), digests);
        } else {
            let mut bytes = Vec::new();
            (&mut entry)
                .take(MAX_TAG_FILE + 1)
                .read_to_end(&mut bytes)?;
            if bytes.len() as u64 > MAX_TAG_FILE {
                c.add(
                    "tag_file_invalid",
                    subject,
                    format!("tag file {rel} is larger than 64 MiB"),
                );
                continue;
            }
            contents.tags.insert(rel.to_owned(), bytes);
        }
    }
    Ok(())
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

/// Parses a BagIt manifest: `<hex>  <path>` lines, paths percent-decoded for CR, LF and `%`.
fn parse_manifest(
    text: &[u8],
    name: &str,
    hex_len: usize,
    c: &mut Checker,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (i, line) in String::from_utf8_lossy(text).lines().enumerate() {
        let parsed = line.split_once(char::is_whitespace).and_then(|(h, p)| {
            let p = p.trim_start();
            let valid =
                h.len() == hex_len && h.bytes().all(|b| b.is_ascii_hexdigit()) && !p.is_empty();
            valid.then(|| {
                let path = p
                    .replace("%0A", "\n")
                    .replace("%0D", "\r")
                    .replace("%25", "%");
                (h.to_ascii_lowercase(), path)
            })
        });
        match parsed {
            Some((h, p)) => {
                if out.insert(p.clone(), h).is_some() {
                    c.add("manifest_invalid", name, format!("{p} is listed twice"));
                }
            }
            None => c.add(
                "manifest_invalid",
                name,
                format!("line {} is not \"<digest>  <path>\"", i + 1),
            ),
        }
    }
    out
}

fn labels(text: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

const REQUIRED_TAGS: [&str; 5] = [
    "bagit.txt",
    "bag-info.txt",
    "manifest-sha256.txt",
    "manifest-sha512.txt",
    "tagmanifest-sha256.txt",
];

fn payload_oxum(contents: &Contents) -> String {
    let bytes: u64 = contents.payload.values().map(|p| p.0).sum();
    format!("{bytes}.{}", contents.payload.len())
}

fn check_bag(bundle: &BundleId, case: &CaseId, contents: &Contents, c: &mut Checker) {
    let at = |name: &str| format!("{bundle}/{name}");
    for name in REQUIRED_TAGS {
        if !contents.tags.contains_key(name) {
            c.add(
                "missing_file",
                at(name),
                "required tag file is missing from the bag",
            );
        }
    }
    for name in contents.tags.keys() {
        if !REQUIRED_TAGS.contains(&name.as_str()) {
            c.add("extra_file", at(name), "unexpected tag file in the bag");
        }
    }
    if let Some(bagit) = contents.tags.get("bagit.txt") {
        let l = labels(bagit);
        if l.get("BagIt-Version").map(String::as_str) != Some("1.0")
            || l.get("Tag-File-Character-Encoding").map(String::as_str) != Some("UTF-8")
        {
            c.add(
                "tag_file_invalid",
                at("bagit.txt"),
                "must declare BagIt-Version: 1.0 and Tag-File-Character-Encoding: UTF-8",
            );
        }
    }
    if let Some(info) = contents.tags.get("bag-info.txt") {
        check_bag_info(
            &labels(info),
            case,
            &payload_oxum(contents),
            &at("bag-info.txt"),
            c,
        );
    }
    for (name, hex_len, sha512) in [
        ("manifest-sha256.txt", 64, false),
        ("manifest-sha512.txt", 128, true),
    ] {
        let Some(text) = contents.tags.get(name) else {
            continue;
        };
        let manifest = parse_manifest(text, &at(name), hex_len, c);
        for (path, digest) in &manifest {
            match contents.payload.get(path) {
                None => c.add(
                    "missing_file",
                    at(path),
                    format!("listed in {name} but not in the bag"),
                ),
                Some((_, s256, s512)) => {
                    let got = if sha512 { s512 } else { s256 };
                    if got != digest {
                        c.add(
                            "payload_hash_mismatch",
                            at(path),
                            format!("{name} says {digest}, the file's digest is {got}"),
                        );
                    }
                }
            }
        }
        for path in contents.payload.keys() {
            if !manifest.contains_key(path) {
                c.add(
                    "extra_file",
                    at(path),
                    format!("in the bag but not listed in {name}"),
                );
            }
        }
    }
    if let Some(text) = contents.tags.get("tagmanifest-sha256.txt") {
        check_tag_manifest(text, contents, &at, c);
    }
}

fn check_bag_info(
    l: &BTreeMap<String, String>,
    case: &CaseId,
    oxum: &str,
    subject: &str,
    c: &mut Checker,
) {
    match l.get("Payload-Oxum") {
        Some(v) if v == oxum => {}
        Some(v) => c.add(
            "payload_oxum_mismatch",
            subject,
            format!("Payload-Oxum is {v}, the payload is {oxum}"),
        ),
        None => c.add("tag_file_invalid", subject, "no Payload-Oxum"),
    }
    if l.get("External-Identifier").map(String::as_str) != Some(case.as_str()) {
        c.add(
            "tag_file_invalid",
            subject,
            format!("External-Identifier is not the case id {case}"),
        );
    }
    if !l.contains_key("Bagging-Date") {
        c.add("tag_file_invalid", subject, "no Bagging-Date");
    }
}

fn check_tag_manifest(
    text: &[u8],
    contents: &Contents,
    at: &dyn Fn(&str) -> String,
    c: &mut Checker,
) {
    let manifest = parse_manifest(text, &at("tagmanifest-sha256.txt"), 64, c);
    for (name, digest) in &manifest {
        match contents.tags.get(name) {
            None => c.add(
                "missing_file",
                at(name),
                "listed in tagmanifest-sha256.txt but not in the bag",
            ),
            Some(bytes) => {
                let got = Sha256Digest::of(bytes).to_hex();
                if got != *digest {
                    c.add(
                        "tag_hash_mismatch",
                        at(name),
                        format!("tagmanifest-sha256.txt says {digest}, the file's digest is {got}"),
                    );
                }
            }
        }
    }
    for name in contents.tags.keys() {
        if name != "tagmanifest-sha256.txt" && !manifest.contains_key(name) {
            c.add(
                "extra_file",
                at(name),
                "tag file not listed in tagmanifest-sha256.txt",
            );
        }
    }
}

fn check_seal_fields(
    seal: &SealRecord,
    case: &CaseId,
    bundle: &BundleId,
    contents: &Contents,
    c: &mut Checker,
) {
    let subject = StoreKey::Seal(case.clone(), bundle.clone()).path();
    let mut differ = |what: &str, sealed: String, found: String| {
        if sealed != found {
            c.add(
                "seal_mismatch",
                subject.clone(),
                format!("the seal records {what} {sealed}, but found {found}"),
            );
        }
    };
    differ("format", seal.format.clone(), SEAL_FORMAT.into());
    differ("case id", seal.case_id.to_string(), case.to_string());
    differ("bundle id", seal.bundle_id.to_string(), bundle.to_string());
    differ(
        "archive name",
        seal.archive.name.clone(),
        archive_name(bundle),
    );
    if let Some(d) = contents.compressed_sha256 {
        differ("archive SHA-256", seal.archive.sha256.to_hex(), d.to_hex());
        differ(
            "archive size",
            seal.archive.size.to_string(),
            contents.compressed_size.to_string(),
        );
        differ(
            "unpacked size",
            seal.archive.unpacked_size.to_string(),
            contents.unpacked.to_string(),
        );
    }
    differ(
        "Payload-Oxum",
        seal.bag.payload_oxum.clone(),
        payload_oxum(contents),
    );
    if let Some(m) = contents.tags.get("manifest-sha256.txt") {
        differ(
            "manifest-sha256.txt SHA-256",
            seal.bag.manifest_sha256.to_hex(),
            Sha256Digest::of(m).to_hex(),
        );
    }
    if let Some(m) = contents.tags.get("tagmanifest-sha256.txt") {
        differ(
            "tagmanifest-sha256.txt SHA-256",
            seal.bag.tagmanifest_sha256.to_hex(),
            Sha256Digest::of(m).to_hex(),
        );
    }
}

/// The seal pins the journal head at sealing time, and a later entry records the sealing.
fn check_journal(
    seal: &SealRecord,
    seal_bytes: &[u8],
    bundle: &BundleId,
    chain: &CheckedChain,
    contents: &Contents,
    seal_key: &StoreKey,
    c: &mut Checker,
) {
    let head = seal.journal_head;
    check_captured_sources(head.seq, chain, contents, bundle, c);
    let subject = seal_key.path();
    match chain.digest_of(head.seq) {
        Some(d) if d == head.sha256 => {}
        Some(d) => c.add(
            "journal",
            subject.clone(),
            format!(
                "the seal pins journal entry {} with SHA-256 {}, but that entry's SHA-256 is {d}",
                head.seq, head.sha256
            ),
        ),
        None => c.add(
            "journal",
            subject.clone(),
            format!(
                "the seal pins journal entry {}, which is missing (journal truncated?)",
                head.seq
            ),
        ),
    }
    let seal_sha = Sha256Digest::of(seal_bytes).to_hex();
    let recorded = chain.entries.iter().find(|(e, _)| {
        e.kind == EntryKind::BundleSealed
            && e.details.get("bundle_id").and_then(|v| v.as_str()) == Some(bundle.as_str())
    });
    let Some((entry, _)) = recorded else {
        c.add(
            "journal",
            subject,
            "no journal entry records this bundle's sealing",
        );
        return;
    };
    if entry.seq != head.seq + 1 {
        c.add(
            "journal",
            subject.clone(),
            format!(
                "journal entry {} records the sealing, but it must directly follow entry {}, the head the seal pins",
                entry.seq, head.seq
            ),
        );
    }
    let recorded_key = entry.details.get("key_id").and_then(|v| v.as_str());
    if recorded_key != Some(seal.key_id.as_str()) {
        c.add(
            "journal",
            subject.clone(),
            format!(
                "journal entry {} records key {}, the seal names key {}",
                entry.seq,
                recorded_key.unwrap_or("none"),
                seal.key_id
            ),
        );
    }
    let recorded_size = entry
        .details
        .pointer("/archive/size")
        .and_then(|v| v.as_u64());
    if recorded_size != Some(seal.archive.size) {
        c.add(
            "journal",
            subject.clone(),
            format!(
                "journal entry {} records another archive size ({}), the seal says {}",
                entry.seq,
                recorded_size.map_or("none".into(), |n| n.to_string()),
                seal.archive.size
            ),
        );
    }
    let recorded_seal = entry
        .details
        .pointer("/seal/sha256")
        .and_then(|v| v.as_str());
    if recorded_seal != Some(seal_sha.as_str()) {
        c.add(
            "journal",
            subject.clone(),
            format!(
                "journal entry {} records another seal (SHA-256 {}), this seal's is {seal_sha}",
                entry.seq,
                recorded_seal.unwrap_or("none")
            ),
        );
    }
    let recorded_archive = entry
        .details
        .pointer("/archive/sha256")
        .and_then(|v| v.as_str());
    if recorded_archive != Some(seal.archive.sha256.to_hex().as_str()) {
        c.add(
            "journal",
            subject,
            format!(
                "journal entry {} records another archive (SHA-256 {})",
                entry.seq,
                recorded_archive.unwrap_or("none")
            ),
        );
    }
}

/// Every source the journal says was captured before the seal must be in the bag, byte for byte.
fn check_captured_sources(
    head: u64,
    chain: &CheckedChain,
    contents: &Contents,
    bundle: &BundleId,
    c: &mut Checker,
) {
    let captured = chain
        .entries
        .iter()
        .filter(|(e, _)| e.seq <= head && e.kind == EntryKind::SourceCaptured);
    for (entry, _) in captured {
        let path = entry
            .details
            .get("bag_path")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let sha = entry.details.get("sha256").and_then(|v| v.as_str());
        let bytes = entry.details.get("bytes").and_then(|v| v.as_u64());
        match contents.payload.get(path) {
            None => c.add(
                "journal",
                format!("{bundle}/{path}"),
                format!("journal entry {} records this source as captured, but it is not in the bag", entry.seq),
            ),
            Some((size, s256, _)) if Some(s256.as_str()) != sha || Some(*size) != bytes => c.add(
                "journal",
                format!("{bundle}/{path}"),
                format!(
                    "journal entry {} records {} bytes with SHA-256 {}, the bag holds {size} bytes with SHA-256 {s256}",
                    entry.seq,
                    bytes.map_or("?".into(), |n| n.to_string()),
                    sha.unwrap_or("none")
                ),
            ),
            Some(_) => {}
        }
    }
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
