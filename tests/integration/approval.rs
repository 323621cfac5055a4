//! Approvals against OpenSSH as the reference: for rosters and keys made here with `ssh-keygen`,
//! custody's roster and SSHSIG verifier answer as `ssh-keygen -Y verify` and `-Y find-principals`
//! do (principals, namespaces, validity windows at `-Overify-time`), and `ssh-keygen -Y verify`
//! accepts every statement custody signs. ssh-keygen missing fails these tests, never skips them.
//! Also the helpers the quorum matrix (`approval_quorum`) builds its keys with.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use custody::approval::roster::Roster;
use custody::approval::statement::{sign_proposal, Statement};
use custody::approval::{sshsig, Decision, KeyFingerprint, Principal};
use custody::approval::{APPROVAL_NAMESPACE, PROPOSAL_NAMESPACE};
use custody::digest::Sha256Digest;
use custody::id::{CaseId, PlanId};
use time::macros::datetime;
use time::OffsetDateTime;

use crate::util::tool;

/// A key pair made by `ssh-keygen` for one test.
pub struct SshKey {
    pub private: PathBuf,
    pub public: PathBuf,
    /// `keytype base64`, as a roster line holds it.
    pub openssh: String,
    pub fingerprint: KeyFingerprint,
}

/// `ssh-keygen -t <kind> -N ''` into `dir/name`.
pub fn ssh_key_of(dir: &Path, name: &str, kind: &[&str]) -> SshKey {
    let private = dir.join(name);
    let out = Command::new(tool("ssh-keygen"))
        .args(["-q", "-N", "", "-C", name, "-f"])
        .arg(&private)
        .args(kind)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public = dir.join(format!("{name}.pub"));
    let text = std::fs::read_to_string(&public).unwrap();
    let openssh = text
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let key = ssh_key::PublicKey::from_openssh(&openssh).unwrap();
    let fingerprint = KeyFingerprint::of(&key);
    // Our fingerprint is the one ssh-keygen prints.
    let printed = Command::new(tool("ssh-keygen"))
        .arg("-lf")
        .arg(&public)
        .output()
        .unwrap();
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(printed.contains(&fingerprint.to_string()), "{printed}");
    SshKey {
        private,
        public,
        openssh,
        fingerprint,
    }
}

pub fn ssh_key(dir: &Path, name: &str) -> SshKey {
    ssh_key_of(dir, name, &["-t", "ed25519"])
}

pub fn principal(name: &str) -> Principal {
    Principal::new(name).unwrap()
}

/// `YYYYMMDDHHMMSSZ`, as `-Overify-time=` and the roster's options take it.
pub fn ssh_time(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Whether `ssh-keygen -Y verify` accepts `sig` over `msg` for `principal` in `namespace`.
fn keygen_verifies(
    roster: &Path,
    principal: &str,
    namespace: &str,
    sig: &Path,
    msg: &[u8],
    at: OffsetDateTime,
) -> bool {
    use std::io::Write;
    let mut child = Command::new(tool("ssh-keygen"))
        .args(["-Y", "verify", "-f"])
        .arg(roster)
        .args(["-I", principal, "-n", namespace, "-s"])
        .arg(sig)
        .arg(format!("-Overify-time={}", ssh_time(at)))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(msg).unwrap();
    child.wait().unwrap().success()
}

/// `ssh-keygen -Y find-principals`: the principals it names for the signature's key at `at`.
fn keygen_principals(roster: &Path, sig: &Path, at: OffsetDateTime) -> Vec<String> {
    let out = Command::new(tool("ssh-keygen"))
        .args(["-Y", "find-principals", "-f"])
        .arg(roster)
        .arg("-s")
        .arg(sig)
        .arg(format!("-Overify-time={}", ssh_time(at)))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn custody_verifies(
    roster: &Roster,
    principal: &str,
    namespace: &str,
    sig: &[u8],
    msg: &[u8],
    at: OffsetDateTime,
) -> bool {
    let Ok(v) = sshsig::verify(sig, namespace, msg) else {
        return false;
    };
    let Ok(p) = Principal::new(principal) else {
        return false;
    };
    roster.check(&v.fingerprint, &p, namespace, at).is_ok()
}

#[test]
fn the_roster_answers_as_ssh_keygen_verify_and_find_principals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = ["alice", "bob", "carol", "dave", "eve"];
    let keys: Vec<SshKey> = names.iter().map(|n| ssh_key(d, n)).collect();
    let ecdsa = ssh_key_of(d, "erin", &["-t", "ecdsa", "-b", "256"]);
    // eve is in no line; erin's key is ECDSA P-256.
    let text = format!(
        "# the security team\n\
         alice@example.org namespaces=\"custody-approval,custody-proposal\",valid-after=\"20260101Z\",valid-before=\"20271231235959Z\" {} alice\n\
         \"bob@example.org\" {}\n\
         carol@example.org valid-before=\"202612011200Z\" {}\n\
         dave@example.org VALID-AFTER=\"20270601Z\",namespaces=\"file\" {}\n\
         erin@example.org {}\n",
        keys[0].openssh, keys[1].openssh, keys[2].openssh, keys[3].openssh, ecdsa.openssh
    );
    let path = d.join("approvers.allowed_signers");
    std::fs::write(&path, &text).unwrap();
    let roster = Roster::read(&path).unwrap();
    let msg = b"{\"plan\":\"p\"}".to_vec();
    let times = [
        datetime!(2025-12-31 23:59:59 UTC),
        datetime!(2026-12-01 12:00:00 UTC),
        datetime!(2026-12-01 12:00:01 UTC),
        datetime!(2027-07-01 00:00:00 UTC),
        datetime!(2028-01-01 00:00:00 UTC),
    ];
    let signers: Vec<&SshKey> = keys.iter().chain([&ecdsa]).collect();
    let principals = [
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
        "dave@example.org",
        "erin@example.org",
        "eve@example.org",
    ];
    let mut checked = 0;
    let mut accepted = 0;
    for (i, key) in signers.iter().enumerate() {
        for ns in [APPROVAL_NAMESPACE, "file"] {
            let sig = sshsig::sign(&key.private, ns, &msg).unwrap();
            let sig_path = d.join(format!("sig-{i}-{ns}"));
            std::fs::write(&sig_path, &sig).unwrap();
            for &at in &times {
                for p in principals {
                    for (namespace, message) in [
                        (APPROVAL_NAMESPACE, &msg[..]),
                        ("file", &msg[..]),
                        (APPROVAL_NAMESPACE, &b"{\"plan\":\"q\"}"[..]),
                    ] {
                        let theirs = keygen_verifies(&path, p, namespace, &sig_path, message, at);
                        let ours = custody_verifies(&roster, p, namespace, &sig, message, at);
                        assert_eq!(
                            ours, theirs,
                            "key {i} signed in {ns}, verified as {p} in {namespace} at {at}"
                        );
                        checked += 1;
                        accepted += usize::from(ours);
                    }
                }
                if ns == APPROVAL_NAMESPACE {
                    let theirs = keygen_principals(&path, &sig_path, at);
                    let ours: Vec<String> = roster
                        .principal_for(&key.fingerprint, at)
                        .map(|p| p.to_string())
                        .into_iter()
                        .collect();
                    assert_eq!(ours, theirs, "find-principals for key {i} at {at}");
                }
            }
        }
    }
    // The matrix exercised both answers, not one of them throughout.
    assert!(
        accepted > 10 && accepted < checked / 4,
        "{accepted} of {checked}"
    );
}

#[test]
fn ssh_keygen_verify_accepts_every_statement_custody_signs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let alice = ssh_key(d, "alice");
    let roster_path = d.join("approvers.allowed_signers");
    std::fs::write(
        &roster_path,
        format!(
            "alice@example.org namespaces=\"custody-approval,custody-proposal\" {}\n",
            alice.openssh
        ),
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    for (decision, reason) in [
        (Decision::Approve, ""),
        (
            Decision::Reject,
            "blocks the office NAT \u{1b}[2J\n\"quoted\"",
        ),
    ] {
        let statement = Statement::new(
            CaseId::new("case-1").unwrap(),
            PlanId::new("plan-1").unwrap(),
            Sha256Digest::of(b"plan.json"),
            decision,
            principal("alice@example.org"),
            alice.fingerprint,
            reason.to_owned(),
            now,
        );
        let (bytes, sig) = statement.sign(&alice.private).unwrap();
        assert_eq!(Statement::parse(&bytes).unwrap(), statement);
        let sig_path = d.join("1.json.sig");
        std::fs::write(&sig_path, &sig).unwrap();
        assert!(keygen_verifies(
            &roster_path,
            "alice@example.org",
            APPROVAL_NAMESPACE,
            &sig_path,
            &bytes,
            now
        ));
        assert_eq!(
            sshsig::verify(&sig, APPROVAL_NAMESPACE, &bytes)
                .unwrap()
                .fingerprint,
            alice.fingerprint
        );
    }
    let plan = b"{\"format\":\"custody-plan/1\"}";
    let sig = sign_proposal(&alice.private, plan).unwrap();
    let sig_path = d.join("plan.json.sshsig");
    std::fs::write(&sig_path, &sig).unwrap();
    assert!(keygen_verifies(
        &roster_path,
        "alice@example.org",
        PROPOSAL_NAMESPACE,
        &sig_path,
        plan,
        now
    ));
    // The public key is found from the .pub, from the .pub beside a private key, and from a
    // private key file alone (its public half is stored in the clear).
    let alone = d.join("moved");
    std::fs::copy(&alice.private, &alone).unwrap();
    // A passphrase-protected key alone too: no passphrase is needed for its public half.
    let out = Command::new(tool("ssh-keygen"))
        .args(["-q", "-t", "ed25519", "-N", "secret", "-C", "locked", "-f"])
        .arg(d.join("locked"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let locked_pub = std::fs::read_to_string(d.join("locked.pub")).unwrap();
    std::fs::remove_file(d.join("locked.pub")).unwrap();
    let locked = sshsig::public_key_of(&d.join("locked")).unwrap();
    assert_eq!(
        locked
            .to_openssh()
            .unwrap()
            .split(' ')
            .take(2)
            .collect::<Vec<_>>(),
        locked_pub.split(' ').take(2).collect::<Vec<_>>()
    );
    for file in [&alice.public, &alice.private, &alone] {
        let key = sshsig::public_key_of(file).unwrap();
        assert_eq!(KeyFingerprint::of(&key), alice.fingerprint, "{file:?}");
    }
}

#[test]
fn custody_refuses_what_ssh_keygen_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let alice = ssh_key(d, "alice");
    let mallory = ssh_key(d, "mallory");
    let roster_path = d.join("approvers.allowed_signers");
    std::fs::write(
        &roster_path,
        format!("alice@example.org {}\n", alice.openssh),
    )
    .unwrap();
    let roster = Roster::read(&roster_path).unwrap();
    let now = OffsetDateTime::now_utc();
    let msg = b"{\"decision\":\"approve\"}";
    let good = sshsig::sign(&alice.private, APPROVAL_NAMESPACE, msg).unwrap();
    let other_ns = sshsig::sign(&alice.private, "file", msg).unwrap();
    let wrong_key = sshsig::sign(&mallory.private, APPROVAL_NAMESPACE, msg).unwrap();
    let mut flipped = good.clone();
    // A changed base64 character in the middle of the armour: the signature itself.
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    let cases: [(&str, &[u8], &[u8], bool); 5] = [
        ("good", &good, msg, true),
        (
            "tampered message",
            &good,
            b"{\"decision\":\"reject\"}",
            false,
        ),
        ("wrong namespace", &other_ns, msg, false),
        ("wrong key", &wrong_key, msg, false),
        ("tampered signature", &flipped, msg, false),
    ];
    for (what, sig, message, expected) in cases {
        let sig_path = d.join("sig");
        std::fs::write(&sig_path, sig).unwrap();
        let theirs = keygen_verifies(
            &roster_path,
            "alice@example.org",
            APPROVAL_NAMESPACE,
            &sig_path,
            message,
            now,
        );
        let ours = custody_verifies(
            &roster,
            "alice@example.org",
            APPROVAL_NAMESPACE,
            sig,
            message,
            now,
        );
        assert_eq!((what, ours, theirs), (what, expected, expected));
    }
}

#[test]
fn lint_refuses_key_types_custody_cannot_verify() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = ssh_key_of(dir.path(), "old", &["-t", "rsa", "-b", "2048"]);
    let err = Roster::parse("r", &format!("old@example.org {}\n", rsa.openssh))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("r:1: key type ssh-rsa is not one custody verifies"),
        "{err}"
    );
}

#[test]
fn the_shipped_roster_is_empty_and_lint_clean() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/approvers.allowed_signers");
    let roster = Roster::read(&path).unwrap();
    assert!(roster.is_empty());
    // Its commented example becomes a clean line once a real key replaces the placeholder.
    let text = std::fs::read_to_string(&path).unwrap();
    let example = text
        .lines()
        .find_map(|l| l.strip_prefix("# alice@example.org "))
        .expect("the shipped roster shows an example line");
    let dir = tempfile::tempdir().unwrap();
    let key = ssh_key(dir.path(), "alice");
    let line = format!("alice@example.org {example}").replace("ssh-ed25519 AAAA…", &key.openssh);
    Roster::parse("example", &line).unwrap();
}

#[test]
fn a_key_held_by_ssh_agent_signs_through_its_public_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let alice = ssh_key(d, "alice");
    let socket = d.join("agent.sock");
    let mut agent = Command::new(tool("ssh-agent"))
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let added = Command::new(tool("ssh-add"))
        .arg(&alice.private)
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    // Only the .pub is left on disk: the agent holds the private key.
    std::fs::remove_file(&alice.private).unwrap();
    // ssh-keygen finds the agent through the environment custody passes on to it.
    std::env::set_var("SSH_AUTH_SOCK", &socket);
    let signed = sshsig::sign(&alice.public, APPROVAL_NAMESPACE, b"statement");
    std::env::remove_var("SSH_AUTH_SOCK");
    agent.kill().unwrap();
    agent.wait().unwrap();
    assert!(added.status.success(), "{added:?}");
    let sig = signed.unwrap();
    let v = sshsig::verify(&sig, APPROVAL_NAMESPACE, b"statement").unwrap();
    assert_eq!(v.fingerprint, alice.fingerprint);
}
