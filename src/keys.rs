//! Ed25519 keys: generation, PEM files that `openssl` reads and writes (PKCS#8 private keys, SPKI
//! public keys), key ids, the per-user collector key that `collect` uses when none is given, and
//! the copies of public keys published in a store's `keys/`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer};
use rand_core::OsRng;

use crate::digest::Sha256Digest;
use crate::id::KeyId;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an Ed25519 private key in PKCS#8 PEM form (\"-----BEGIN PRIVATE KEY-----\"): {reason}")]
    ParsePrivateKey { path: PathBuf, reason: String },
    #[error("{path} is not an Ed25519 public key in SPKI PEM form (\"-----BEGIN PUBLIC KEY-----\"): {reason}")]
    ParsePublicKey { path: PathBuf, reason: String },
    #[error("cannot write key file {path}: {source}")]
    WriteKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode key: {0}")]
    Encode(String),
    #[error(
        "no per-user key location: neither XDG_CONFIG_HOME nor HOME is set; pass --signing-key"
    )]
    NoKeyHome,
    #[error("no collector key at {path} to sign journal entries with: pass --signing-key with the key that collected the cases")]
    NoDefaultKey { path: PathBuf },
}

/// A key that signs seals and approvals.
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
    public: PublicKey,
}

/// A key that verifies signatures, with its id.
#[derive(Clone, Debug)]
pub struct PublicKey {
    inner: ed25519_dalek::VerifyingKey,
    id: KeyId,
}

impl SigningKey {
    pub fn generate() -> Self {
        Self::from_inner(ed25519_dalek::SigningKey::generate(&mut OsRng))
    }

    fn from_inner(inner: ed25519_dalek::SigningKey) -> Self {
        let public = PublicKey::from_inner(inner.verifying_key());
        Self { inner, public }
    }

    /// Reads a PKCS#8 PEM private key, as written by `keygen` or `openssl genpkey -algorithm ed25519`.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_key_text(path)?;
        let inner = ed25519_dalek::SigningKey::from_pkcs8_pem(&text).map_err(|e| {
            KeyError::ParsePrivateKey {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self::from_inner(inner))
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.inner.sign(message).to_bytes()
    }

    /// PKCS#8 v1 PEM (no embedded public key), the form `openssl genpkey` writes, for the widest
    /// interoperability.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        let bytes = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.inner.to_bytes(),
            public_key: None,
        };
        bytes
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| KeyError::Encode(e.to_string()))
    }
}

impl PublicKey {
    fn from_inner(inner: ed25519_dalek::VerifyingKey) -> Self {
        let id = key_id(&inner);
        Self { inner, id }
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_key_text(path)?;
        Self::from_pem(&text).map_err(|reason| KeyError::ParsePublicKey {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses an SPKI PEM public key.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        ed25519_dalek::VerifyingKey::from_public_key_pem(text)
            .map(Self::from_inner)
            .map_err(|e| e.to_string())
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.inner
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// Whether `signature` is this key's Ed25519 signature over exactly `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.inner
            .verify_strict(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

/// The first 16 hex digits of the SHA-256 of the key's SPKI DER encoding, so an auditor can
/// compute it with `openssl pkey -pubin -outform DER | sha256sum`.
fn key_id(key: &ed25519_dalek::VerifyingKey) -> KeyId {
    // The SPKI encoding of an Ed25519 key is a fixed 12-byte prefix and the 32 key bytes
    // (RFC 8410), so it is built here rather than through a fallible encoder.
    const SPKI_PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(key.as_bytes());
    let hex = Sha256Digest::of(&der).to_hex();
    KeyId::new(&hex[..16]).expect("16 lowercase hex digits are a valid id")
}

fn read_key_text(path: &Path) -> Result<String, KeyError> {
    use std::io::Read;
    // A PEM key is a few hundred bytes; reading is capped so `/dev/zero` cannot exhaust memory.
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut bytes))
        .map_err(|source| KeyError::ReadKey {
            path: path.to_owned(),
            source,
        })?;
    // A key file is a few hundred bytes; anything that is not text is reported as unparsable.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Writes `PREFIX.key` (PKCS#8 PEM, mode 0600) and `PREFIX.pub` (SPKI PEM); never overwrites.
pub fn write_key_pair(key: &SigningKey, prefix: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    let private_path = with_suffix(prefix, "key");
    let public_path = with_suffix(prefix, "pub");
    for path in [&private_path, &public_path] {
        if path.exists() {
            return Err(KeyError::WriteKey {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "refusing to overwrite an existing key",
                ),
            });
        }
    }
    write_new(&private_path, key.to_pkcs8_pem()?.as_bytes(), 0o600)?;
    write_new(&public_path, key.public().to_pem()?.as_bytes(), 0o644)?;
    Ok((private_path, public_path))
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let err = |source| KeyError::WriteKey {
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    // The umask may have narrowed the mode; set it exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Where the per-user collector key lives: `$XDG_CONFIG_HOME/custody/collector.key`, or
/// `$HOME/.config/custody/collector.key`.
pub fn default_key_prefix() -> Result<PathBuf, KeyError> {
    let base = match (
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    ) {
        (Some(x), _) if !x.is_empty() => PathBuf::from(x),
        (_, Some(h)) if !h.is_empty() => PathBuf::from(h).join(".config"),
        _ => return Err(KeyError::NoKeyHome),
    };
    Ok(base.join("custody").join("collector"))
}

/// Loads the per-user collector key, creating it on first use. Returns the key and, when it was
/// created now, the path of the new private key file.
pub fn load_or_create_default() -> Result<(SigningKey, Option<PathBuf>), KeyError> {
    let prefix = default_key_prefix()?;
    let private_path = with_suffix(&prefix, "key");
    if private_path.exists() {
        return Ok((SigningKey::load(&private_path)?, None));
    }
    if let Some(dir) = prefix.parent() {
        fs::create_dir_all(dir).map_err(|source| KeyError::WriteKey {
            path: dir.to_owned(),
            source,
        })?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    }
    let key = SigningKey::generate();
    let (private_path, _) = write_key_pair(&key, &prefix)?;
    Ok((key, Some(private_path)))
}

/// The key among `keys` under which `signature` is a valid Ed25519 signature over `message`.
pub fn signer<'k>(
    keys: &'k [PublicKey],
    message: &[u8],
    signature: &[u8],
) -> Option<&'k PublicKey> {
    keys.iter().find(|k| k.verify(message, signature))
}

/// Loads the per-user collector key, never creating one: for writers that sign what others
/// collected (`store flush`), where a new key would be an identity nobody knows.
pub fn load_default() -> Result<SigningKey, KeyError> {
    let private_path = with_suffix(&default_key_prefix()?, "key");
    if !private_path.exists() {
        return Err(KeyError::NoDefaultKey { path: private_path });
    }
    SigningKey::load(&private_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_signature() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate();
        let (private, public) = write_key_pair(&key, &dir.path().join("k")).unwrap();
        let mode = fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = SigningKey::load(&private).unwrap();
        let public = PublicKey::load(&public).unwrap();
        assert_eq!(loaded.public().id(), key.public().id());
        assert_eq!(public.id(), key.public().id());
        let sig = loaded.sign(b"seal");
        assert!(public.verify(b"seal", &sig));
        assert!(!public.verify(b"seal!", &sig));
        assert!(!public.verify(b"seal", &sig[..63]));
        assert!(write_key_pair(&key, &dir.path().join("k")).is_err());
    }

    #[test]
    fn corrupt_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        fs::write(
            &path,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = SigningKey::load(&path).err().unwrap().to_string();
        assert!(err.contains("not an Ed25519 private key"), "{err}");
        fs::write(&path, [0xff, 0x00, 0x13]).unwrap();
        assert!(SigningKey::load(&path).is_err());
    }
}
