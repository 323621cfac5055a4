//! SSHSIG signatures (OpenSSH's PROTOCOL.sshsig, `-----BEGIN SSH SIGNATURE-----`): verified in
//! Rust, so `verify` needs no tool; made by running `ssh-keygen -Y sign`, so whatever key an
//! approver has works — a key file, a key in `ssh-agent` (give the `.pub`), a FIDO key — and a
//! passphrase or a touch is asked by ssh-keygen itself on the terminal. custody never sees a
//! private key or a passphrase.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ssh_key::{Algorithm, EcdsaCurve, SshSig};

use super::KeyFingerprint;

/// The largest armored signature read (an ed25519 one is about 300 bytes).
pub const MAX_SIGNATURE_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SigError {
    #[error("the signature is larger than {MAX_SIGNATURE_BYTES} bytes")]
    TooLarge,
    #[error("not an SSH signature (-----BEGIN SSH SIGNATURE-----): {0}")]
    Armor(String),
    #[error("the signature is for namespace {found:?}, not {expected:?}")]
    Namespace { expected: String, found: String },
    #[error("the signature's key type {0} is not one custody verifies (ssh-ed25519, ecdsa-sha2-nistp256, or their FIDO forms)")]
    KeyType(String),
    #[error("the FIDO key's signature does not assert user presence (no touch)")]
    NoUserPresence,
    #[error("the signature does not verify over the message with key {0}")]
    BadSignature(KeyFingerprint),
}

/// A signature that verified: the key that made it.
#[derive(Clone, Debug)]
pub struct Verified {
    pub key: ssh_key::PublicKey,
    pub fingerprint: KeyFingerprint,
}

/// Verifies the armored SSHSIG `armored` over `message` in `namespace`, as `ssh-keygen -Y
/// check-novalidate -n namespace` does; whether the key may speak for anyone is the roster's
/// question.
pub fn verify(armored: &[u8], namespace: &str, message: &[u8]) -> Result<Verified, SigError> {
    if armored.len() > MAX_SIGNATURE_BYTES {
        return Err(SigError::TooLarge);
    }
    let text = std::str::from_utf8(armored).map_err(|_| SigError::Armor("not text".into()))?;
    let sig = SshSig::from_pem(text).map_err(|e| SigError::Armor(e.to_string()))?;
    if sig.namespace() != namespace {
        return Err(SigError::Namespace {
            expected: namespace.to_owned(),
            found: sig.namespace().chars().take(80).collect(),
        });
    }
    let key = ssh_key::PublicKey::new(sig.public_key().clone(), "");
    let fingerprint = KeyFingerprint::of(&key);
    let sk = match key.algorithm() {
        Algorithm::Ed25519
        | Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        } => false,
        Algorithm::SkEd25519 | Algorithm::SkEcdsaSha2NistP256 => true,
        other => return Err(SigError::KeyType(other.to_string())),
    };
    key.verify(namespace, message, &sig)
        .map_err(|_| SigError::BadSignature(fingerprint))?;
    // ssh-keygen refuses a FIDO signature made without a touch unless the roster says
    // no-touch-required, which custody's roster does not allow: the flags byte precedes the
    // 4-byte counter at the end of the signature.
    if sk {
        let bytes = sig.signature_bytes();
        let flags = bytes.len().checked_sub(5).and_then(|i| bytes.get(i));
        if flags.is_none_or(|f| f & 0x01 == 0) {
            return Err(SigError::NoUserPresence);
        }
    }
    Ok(Verified { key, fingerprint })
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read the public key of {path}: {reason}; give --key the .pub file (its private key in ssh-agent), or create it with ssh-keygen -y -f {path} > {path}.pub")]
    PublicKey { path: PathBuf, reason: String },
    #[error("cannot prepare the message for ssh-keygen: {0}")]
    Stage(std::io::Error),
    #[error("cannot run ssh-keygen (install openssh-client): {0}")]
    Run(std::io::Error),
    #[error("ssh-keygen -Y sign failed ({0}); its messages are above")]
    Failed(std::process::ExitStatus),
    #[error("cannot read the signature ssh-keygen wrote: {0}")]
    ReadSignature(std::io::Error),
    #[error("ssh-keygen's signature does not verify: {0}")]
    Verify(SigError),
    #[error("ssh-keygen signed with the key {signed}, not the key of {path} ({expected})")]
    OtherKey {
        path: PathBuf,
        expected: KeyFingerprint,
        signed: KeyFingerprint,
    },
}

/// The public key of the key file an approver names: a `.pub` file, the `.pub` beside a private
/// key, or the public part of an OpenSSH private key (stored unencrypted, so no passphrase).
pub fn public_key_of(key_file: &Path) -> Result<ssh_key::PublicKey, SignError> {
    let err = |reason: String| SignError::PublicKey {
        path: key_file.to_owned(),
        reason,
    };
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| err(e.to_string()));
    let text = read(key_file)?;
    if let Ok(key) = ssh_key::PublicKey::from_openssh(text.trim()) {
        return Ok(key);
    }
    let mut beside = key_file.as_os_str().to_owned();
    beside.push(".pub");
    if let Ok(pub_text) = std::fs::read_to_string(&beside) {
        return ssh_key::PublicKey::from_openssh(pub_text.trim()).map_err(|e| err(e.to_string()));
    }
    ssh_key::PrivateKey::from_openssh(text.as_bytes())
        .map(|k| k.public_key().clone())
        .map_err(|e| err(e.to_string()))
}

/// Signs `message` in `namespace` with `ssh-keygen -Y sign -f key_file -n namespace`, and
/// returns the armored signature once it verifies in Rust with the key of `key_file`.
///
/// The message goes to ssh-keygen as a file in a private directory, never on its stdin: the
/// terminal (stdin, stderr) stays ssh-keygen's, for its passphrase prompt and FIDO touch
/// request; its stdout goes to our stderr so it cannot mix into custody's output.
pub fn sign(key_file: &Path, namespace: &str, message: &[u8]) -> Result<Vec<u8>, SignError> {
    let expected = KeyFingerprint::of(&public_key_of(key_file)?);
    let dir = PrivateDir::create().map_err(SignError::Stage)?;
    let msg = dir.0.join("message");
    std::fs::write(&msg, message).map_err(SignError::Stage)?;
    let status = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", namespace, "-f"])
        .arg(key_file)
        .arg(&msg)
        .stdin(Stdio::inherit())
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .map_err(SignError::Run)?;
    if !status.success() {
        return Err(SignError::Failed(status));
    }
    let armored = std::fs::read(dir.0.join("message.sig")).map_err(SignError::ReadSignature)?;
    let verified = verify(&armored, namespace, message).map_err(SignError::Verify)?;
    if verified.fingerprint != expected {
        return Err(SignError::OtherKey {
            path: key_file.to_owned(),
            expected,
            signed: verified.fingerprint,
        });
    }
    Ok(armored)
}

/// A fresh directory only this user can read, removed when dropped.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create() -> std::io::Result<Self> {
        use rand_core::RngCore;
        use std::os::unix::fs::DirBuilderExt;
        let mut random = [0u8; 8];
        rand_core::OsRng.fill_bytes(&mut random);
        let path = std::env::temp_dir().join(format!("custody-sign-{}", hex::encode(random)));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self(path))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_an_armored_signature() {
        assert!(matches!(
            verify(b"hello", "n", b"m"),
            Err(SigError::Armor(_))
        ));
        assert!(matches!(
            verify(&vec![b'a'; MAX_SIGNATURE_BYTES + 1], "n", b"m"),
            Err(SigError::TooLarge)
        ));
        let truncated = b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n";
        assert!(matches!(
            verify(truncated, "n", b"m"),
            Err(SigError::Armor(_))
        ));
    }
}
