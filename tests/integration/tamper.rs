//! An attacker with write access to the store: every alteration is caught by `verify`, which exits
//! 1 and names what is wrong, and reports every problem rather than stopping at the first.

use std::io::{Read, Write};
use std::path::Path;

use custody::keys::SigningKey;

use crate::util::*;

/// A sealed case with a suspicious client, verified clean, to be tampered with.
pub(crate) struct Tampered {
    pub(crate) sb: Sandbox,
    pub(crate) files: BundleFiles,
}

pub(crate) fn sealed() -> Tampered {
    let sb = Sandbox::new();
    let mut text = std::fs::read_to_string(data("apache-combined-2000.log")).unwrap();
    for _ in 0..25 {
        text.push_str(&line("203.0.113.66", 401, "/api/v1/login"));
    }
    let log = sb.path("gateway.log");
    std::fs::write(&log, text).unwrap();
    let result = sb.collect(&[&log]);
    let files = BundleFiles::of(&result);
    assert_success(&sb.run(&["verify", files.case_dir.to_str().unwrap()]));
    Tampered { sb, files }
}

/// `verify --json TARGET`, which must fail with exit 1; returns the problems.
fn problems(t: &Tampered, extra: &[&str]) -> Vec<(String, String, String)> {
    let mut args = vec!["--json", "verify", t.files.case_dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = t.sb.run(&args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify should fail: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap().to_owned();
            (s("code"), s("subject"), s("message"))
        })
        .collect()
}

/// Whether a problem with `code` names `text` in its subject or message.
pub(crate) fn has(problems: &[(String, String, String)], code: &str, text: &str) -> bool {
    problems
        .iter()
        .any(|(c, s, m)| c == code && (s.contains(text) || m.contains(text)))
}

/// One tar entry as the tests rebuild archives.
struct Entry {
    path: String,
    kind: tar::EntryType,
    data: Vec<u8>,
}

fn read_entries(archive: &Path) -> Vec<Entry> {
    let tar_bytes = zstd::decode_all(std::fs::File::open(archive).unwrap()).unwrap();
    let mut out = Vec::new();
    let mut a = tar::Archive::new(&tar_bytes[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let kind = e.header().entry_type();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(Entry { path, kind, data });
    }
    out
}

/// A tar written by hand, so paths a careful library refuses (`..`) can be written.
fn write_tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let name = e.path.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_size(if e.kind == tar::EntryType::Symlink {
            0
        } else {
            e.data.len() as u64
        });
        h.set_mode(0o644);
        h.set_entry_type(e.kind);
        if e.kind == tar::EntryType::Symlink {
            h.set_link_name("/etc/passwd").unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        if e.kind != tar::EntryType::Symlink {
            out.extend_from_slice(&e.data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Replaces the archive and fixes up its sidecar, as an attacker covering their tracks would.
fn replace_archive(files: &BundleFiles, compressed: &[u8]) {
    make_writable(&files.archive);
    std::fs::write(&files.archive, compressed).unwrap();
    let digest = custody::digest::Sha256Digest::of(compressed);
    make_writable(&files.sidecar);
    std::fs::write(
        &files.sidecar,
        format!("{digest}  {}.tar.zst\n", files.bundle_id),
    )
    .unwrap();
}

fn repack(files: &BundleFiles, mutate: impl FnOnce(&mut Vec<Entry>)) {
    let mut entries = read_entries(&files.archive);
    mutate(&mut entries);
    let compressed = zstd::encode_all(&write_tar(&entries)[..], 3).unwrap();
    replace_archive(files, &compressed);
}

fn entry<'a>(entries: &'a mut [Entry], suffix: &str) -> &'a mut Entry {
    entries
        .iter_mut()
        .find(|e| e.path.ends_with(suffix))
        .expect("entry")
}

#[test]
fn a_flipped_byte_in_the_archive() {
    let t = sealed();
    make_writable(&t.files.archive);
    let mut bytes = std::fs::read(&t.files.archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&t.files.archive, bytes).unwrap();
    let p = problems(&t, &[]);
    assert!(
        has(&p, "archive_hash_mismatch", "the sidecar says"),
        "{p:?}"
    );
}

#[test]
fn a_payload_byte_changed_and_the_archive_repacked_with_a_fixed_sidecar() {
    let t = sealed();
    repack(&t.files, |entries| {
        let log = entry(entries, "data/logs/01-gateway.log");
        log.data[0] = b'9';
    });
    let p = problems(&t, &[]);
    assert!(
        has(&p, "payload_hash_mismatch", "data/logs/01-gateway.log"),
        "{p:?}"
    );
    assert!(has(&p, "seal_mismatch", "archive SHA-256"), "{p:?}");
    assert!(
        !has(&p, "archive_hash_mismatch", ""),
        "the sidecar was fixed up: {p:?}"
    );
}

#[test]
fn a_manifest_line_removed() {
    let t = sealed();
    repack(&t.files, |entries| {
        let m = entry(entries, "/manifest-sha256.txt");
        let text = String::from_utf8(m.data.clone()).unwrap();
        m.data = text
            .lines()
            .filter(|l| !l.contains("data/logs/"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes();
    });
    let p = problems(&t, &[]);
    assert!(
        has(&p, "extra_file", "not listed in manifest-sha256.txt"),
        "{p:?}"
    );
    assert!(has(&p, "tag_hash_mismatch", "manifest-sha256.txt"), "{p:?}");
    assert!(
        has(&p, "seal_mismatch", "manifest-sha256.txt SHA-256"),
        "{p:?}"
    );
}

#[test]
fn an_extra_file_added() {
    let t = sealed();
    let bundle = t.files.bundle_id.clone();
    repack(&t.files, |entries| {
        entries.push(Entry {
            path: format!("{bundle}/data/logs/99-planted.log"),
            kind: tar::EntryType::Regular,
            data: b"planted\n".to_vec(),
        });
        // A tag file BagIt does not know is reported without being read into memory.
        entries.push(Entry {
            path: format!("{bundle}/notes.txt"),
            kind: tar::EntryType::Regular,
            data: vec![b'x'; 1 << 20],
        });
    });
    let p = problems(&t, &[]);
    assert!(has(&p, "extra_file", "99-planted.log"), "{p:?}");
    assert!(has(&p, "extra_file", "notes.txt"), "{p:?}");
    assert!(has(&p, "payload_oxum_mismatch", "Payload-Oxum"), "{p:?}");
}

#[test]
fn a_seal_signed_by_another_key() {
    let t = sealed();
    // The attacker edits the seal, signs it with their own key, plants that key in the store
    // under the id the seal now names, and fixes the sidecar and archive digest to match.
    let attacker = SigningKey::generate();
    let text = std::fs::read_to_string(&t.files.seal).unwrap();
    let mut seal: serde_json::Value = serde_json::from_str(&text).unwrap();
    seal["key_id"] = attacker.public().id().as_str().into();
    seal["created_at"] = "2020-01-01T00:00:00Z".into();
    let bytes = format!("{}\n", serde_json::to_string_pretty(&seal).unwrap()).into_bytes();
    make_writable(&t.files.seal);
    std::fs::write(&t.files.seal, &bytes).unwrap();
    make_writable(&t.files.sig);
    std::fs::write(&t.files.sig, attacker.sign(&bytes)).unwrap();
    let keys = t.sb.store().join("keys");
    std::fs::write(
        keys.join(format!("{}.pub", attacker.public().id())),
        attacker.public().to_pem().unwrap(),
    )
    .unwrap();

    // Against the collector's key from a trusted source, the signature fails.
    let trusted = t.sb.path("home/.config/custody/collector.pub");
    let p = problems(&t, &["--public-key", trusted.to_str().unwrap()]);
    assert!(
        has(&p, "signature_invalid", "signed by another key"),
        "{p:?}"
    );
    // Without it, the unsigned sealing entry in the journal still names the original seal. (An
    // attacker who rewrites that entry too is reported only as `key_trusted: false`: the reason
    // to pass --public-key.)
    let p = problems(&t, &[]);
    assert!(has(&p, "journal", "records another seal"), "{p:?}");
}

#[test]
fn a_truncated_archive() {
    let t = sealed();
    make_writable(&t.files.archive);
    let bytes = std::fs::read(&t.files.archive).unwrap();
    std::fs::write(&t.files.archive, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let p = problems(&t, &[]);
    assert!(has(&p, "archive_corrupt", "truncated or corrupt"), "{p:?}");
    assert!(has(&p, "archive_hash_mismatch", ""), "{p:?}");
}

#[test]
fn a_tar_entry_with_dot_dot_and_a_symlink() {
    let t = sealed();
    let bundle = t.files.bundle_id.clone();
    repack(&t.files, |entries| {
        entries.push(Entry {
            path: format!("{bundle}/../../escaped.txt"),
            kind: tar::EntryType::Regular,
            data: b"x".to_vec(),
        });
        entries.push(Entry {
            path: format!("{bundle}/data/link"),
            kind: tar::EntryType::Symlink,
            data: Vec::new(),
        });
    });
    let p = problems(&t, &[]);
    assert!(has(&p, "unsafe_entry", "'..' in path"), "{p:?}");
    assert!(has(&p, "unsafe_entry", "not a regular file"), "{p:?}");
}

#[test]
fn a_decompression_bomb_is_stopped_at_the_sealed_size() {
    let t = sealed();
    let bundle = t.files.bundle_id.clone();
    // A tar claiming a 1 GiB file of zeros, compressed to a few tens of KiB.
    let mut h = tar::Header::new_gnu();
    h.set_path(format!("{bundle}/data/logs/01-gateway.log"))
        .unwrap();
    h.set_size(1 << 30);
    h.set_mode(0o644);
    h.set_cksum();
    let mut enc = zstd::Encoder::new(Vec::new(), 19).unwrap();
    enc.write_all(h.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(1 << 10) {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    replace_archive(&t.files, &bomb);
    let p = problems(&t, &[]);
    assert!(has(&p, "archive_corrupt", "decompression bomb"), "{p:?}");
}

#[test]
fn an_altered_or_truncated_journal() {
    let t = sealed();
    let journal = t.files.case_dir.join("journal");
    let second = journal.join("0000000002.json");
    make_writable(&second);
    let text = std::fs::read_to_string(&second)
        .unwrap()
        .replace("\"bytes\": ", "\"bytes\": 1");
    std::fs::write(&second, text).unwrap();
    let p = problems(&t, &[]);
    assert!(has(&p, "journal", "chain broken"), "{p:?}");
    assert!(has(&p, "journal", "the seal pins journal entry 2"), "{p:?}");

    let t = sealed();
    let journal = t.files.case_dir.join("journal");
    let entries = crate::util::journal_entry_paths(&journal);
    std::fs::remove_file(entries.last().unwrap()).unwrap();
    let p = problems(&t, &[]);
    assert!(
        has(
            &p,
            "journal",
            "no journal entry records this bundle's sealing"
        ),
        "{p:?}"
    );
}

#[test]
fn a_missing_signature_and_a_garbled_sidecar_are_both_reported() {
    let t = sealed();
    std::fs::remove_file(&t.files.sig).unwrap();
    make_writable(&t.files.sidecar);
    std::fs::write(&t.files.sidecar, "not a digest\n").unwrap();
    let p = problems(&t, &[]);
    assert!(has(&p, "missing_file", ".seal.json.sig"), "{p:?}");
    assert!(has(&p, "sidecar_invalid", ".tar.zst.sha256"), "{p:?}");
}

#[test]
fn files_planted_beside_the_evidence() {
    let t = sealed();
    std::fs::write(t.files.case_dir.join("notes.txt"), b"x").unwrap();
    std::fs::write(t.sb.store().join("keys/readme"), b"x").unwrap();
    let out =
        t.sb.run(&["--json", "verify", t.sb.store().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let subjects: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["code"] == "unexpected_file")
        .map(|p| p["subject"].as_str().unwrap())
        .collect();
    assert!(
        subjects.iter().any(|s| s.ends_with("/notes.txt")),
        "{subjects:?}"
    );
    assert!(subjects.contains(&"keys/readme"), "{subjects:?}");
}

#[test]
fn a_rewritten_case_header() {
    let t = sealed();
    let header = t.files.case_dir.join("case.json");
    make_writable(&header);
    let text = std::fs::read_to_string(&header).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let requested_by = v["requested_by"].as_str().unwrap().to_owned();
    std::fs::write(
        &header,
        text.replace(&format!("\"{requested_by}\""), "\"somebody-else\""),
    )
    .unwrap();
    let p = problems(&t, &[]);
    assert!(has(&p, "case_header", "journal entry 1 recorded"), "{p:?}");
}

#[test]
fn journal_entries_after_the_seal_edited_or_removed() {
    // The sealing entry rewritten (another key id) and a forged entry appended after it.
    let t = sealed();
    let journal = t.files.case_dir.join("journal");
    let third = journal.join("0000000003.json");
    make_writable(&third);
    let text = std::fs::read_to_string(&third).unwrap();
    let mut entry: serde_json::Value = serde_json::from_str(&text).unwrap();
    entry["details"]["key_id"] = "0000000000000000".into();
    entry["details"]["archive"]["size"] = 1.into();
    std::fs::write(
        &third,
        format!("{}\n", serde_json::to_string_pretty(&entry).unwrap()),
    )
    .unwrap();
    let p = problems(&t, &[]);
    assert!(has(&p, "journal", "records key 0000000000000000"), "{p:?}");
    assert!(has(&p, "journal", "another archive size"), "{p:?}");

    // The bundle and its sealing entry removed: the journal ends at a captured source.
    let t = sealed();
    let bundles = t.files.archive.parent().unwrap().to_owned();
    std::fs::remove_dir_all(&bundles).unwrap();
    std::fs::remove_file(t.files.case_dir.join("journal/0000000003.json")).unwrap();
    let p = problems(&t, &[]);
    assert!(has(&p, "journal", "no bundle sealed"), "{p:?}");
}

#[test]
fn a_directory_outside_the_bag_and_a_second_tar_after_the_end_marker() {
    let t = sealed();
    let bundle = t.files.bundle_id.clone();
    let mut entries = read_entries(&t.files.archive);
    entries.push(Entry {
        path: "outside-the-bag/".into(),
        kind: tar::EntryType::Directory,
        data: Vec::new(),
    });
    let mut tar_bytes = write_tar(&entries);
    // A reader that stops at the end marker never sees this.
    tar_bytes.extend_from_slice(&write_tar(&[Entry {
        path: format!("{bundle}/data/logs/hidden.log"),
        kind: tar::EntryType::Regular,
        data: b"hidden\n".to_vec(),
    }]));
    replace_archive(&t.files, &zstd::encode_all(&tar_bytes[..], 3).unwrap());
    let p = problems(&t, &[]);
    assert!(has(&p, "extra_file", "outside the bag directory"), "{p:?}");
    assert!(
        has(&p, "extra_file", "follow the tar's end-of-archive marker"),
        "{p:?}"
    );
}

#[test]
fn a_bomb_with_the_seal_removed_is_still_stopped() {
    let t = sealed();
    std::fs::remove_file(&t.files.seal).unwrap();
    // A GNU long-name header claiming 1 GiB, which a permissive reader would hold in memory.
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(1 << 30);
    h.set_cksum();
    let mut enc = zstd::Encoder::new(Vec::new(), 19).unwrap();
    enc.write_all(h.as_bytes()).unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..(1 << 10) {
        enc.write_all(&chunk).unwrap();
    }
    replace_archive(&t.files, &enc.finish().unwrap());
    let p = problems(&t, &[]);
    assert!(has(&p, "missing_file", ".seal.json"), "{p:?}");
    assert!(
        has(&p, "unsafe_entry", "extension header")
            || has(&p, "archive_corrupt", "decompression bomb"),
        "{p:?}"
    );
}
