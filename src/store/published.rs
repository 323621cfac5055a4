//! The public keys a store publishes in its `keys/`: the collector keys of its seals and journal
//! entries, copied there for verifiers' convenience. A copy, never trust: `verify --public-key`
//! names the key that counts.

use crate::keys::PublicKey;
use crate::store::{Store, StoreError, StoreKey, StorePrefix};

/// Copies `key` into the store's `keys/` (a convenience for verifiers, not trust), unless it is
/// there: the key of seals and journal entries alike.
pub fn publish(store: &dyn Store, key: &PublicKey) -> Result<(), StoreError> {
    let k = StoreKey::PublicKey(key.id().clone());
    if store.exists(&k)? {
        return Ok(());
    }
    let pem = key.to_pem().map_err(|e| StoreError::Remote {
        uri: store.object_uri(&k),
        message: e.to_string(),
    })?;
    match store.put_new(&k, pem.as_bytes()) {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The public keys published in a store's `keys/`, each one holding the key its name says
/// (a file that does not is left out here; `verify` reports it). Not trust: a copy anyone with
/// write access to the store could have put there.
pub fn published(store: &dyn Store) -> Result<Vec<PublicKey>, StoreError> {
    let mut keys = Vec::new();
    for name in store.list(&StorePrefix::Keys)? {
        let Some(id) = crate::store::layout::key_file_id(&name) else {
            continue;
        };
        let Ok(bytes) = store.get(&StoreKey::PublicKey(id.clone())) else {
            continue;
        };
        if let Ok(key) = PublicKey::from_pem(&String::from_utf8_lossy(&bytes)) {
            if key.id() == &id {
                keys.push(key);
            }
        }
    }
    Ok(keys)
}
