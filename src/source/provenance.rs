//! A source's provenance record in `collection.json`: where one stream came from and what was
//! captured of it. The fields other modules read are typed (the pod, the bag path, what arrived
//! and what was sealed); what else a source says of it (the node, the container, the file's
//! size at open) is kept as it wrote it. Stored as one JSON object with its keys sorted, as it
//! always was.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

type Map = BTreeMap<String, serde_json::Value>;

/// See the module comment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Provenance {
    /// `file`, `device`, `stdin`, `kubernetes-log`.
    pub kind: Option<String>,
    /// The pod whose log it is (a Kubernetes source).
    pub pod: Option<String>,
    /// Where the stream's bytes are in the bag, once captured.
    pub bag_path: Option<String>,
    /// The bytes sealed and their SHA-256 (hex), once captured.
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    /// `false` when the stream's bytes were left out of the bag.
    pub sealed: Option<bool>,
    /// What arrived from the cluster before it was staged (a Kubernetes source).
    pub bytes_received: Option<u64>,
    pub sha256_received: Option<String>,
    /// Whether the log was cut at the cap.
    pub truncated: Option<bool>,
    /// Everything else the source recorded, by name.
    pub context: Map,
}

impl Provenance {
    /// A record a source built as a JSON object (anything else is kept whole under `record`).
    pub fn from_json(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Object(map) => Self::from_map(map.into_iter().collect()),
            other => Self::from_map(Map::from([("record".to_owned(), other)])),
        }
    }

    fn from_map(mut map: Map) -> Self {
        Provenance {
            kind: take(&mut map, "kind", |v| v.as_str().map(str::to_owned)),
            pod: take(&mut map, "pod", |v| v.as_str().map(str::to_owned)),
            bag_path: take(&mut map, "bag_path", |v| v.as_str().map(str::to_owned)),
            bytes: take(&mut map, "bytes", serde_json::Value::as_u64),
            sha256: take(&mut map, "sha256", |v| v.as_str().map(str::to_owned)),
            sealed: take(&mut map, "sealed", serde_json::Value::as_bool),
            bytes_received: take(&mut map, "bytes_received", serde_json::Value::as_u64),
            sha256_received: take(&mut map, "sha256_received", |v| {
                v.as_str().map(str::to_owned)
            }),
            truncated: take(&mut map, "truncated", serde_json::Value::as_bool),
            context: map,
        }
    }

    fn to_map(&self) -> Map {
        let mut map = self.context.clone();
        let mut put = |key: &str, value: Option<serde_json::Value>| {
            if let Some(v) = value {
                map.insert(key.to_owned(), v);
            }
        };
        put("kind", self.kind.clone().map(Into::into));
        put("pod", self.pod.clone().map(Into::into));
        put("bag_path", self.bag_path.clone().map(Into::into));
        put("bytes", self.bytes.map(Into::into));
        put("sha256", self.sha256.clone().map(Into::into));
        put("sealed", self.sealed.map(Into::into));
        put("bytes_received", self.bytes_received.map(Into::into));
        put(
            "sha256_received",
            self.sha256_received.clone().map(Into::into),
        );
        put("truncated", self.truncated.map(Into::into));
        map
    }
}

/// Takes `key` out of `map` when `read` gives it its type; otherwise it stays as written.
pub(crate) fn take<T>(
    map: &mut Map,
    key: &str,
    read: impl Fn(&serde_json::Value) -> Option<T>,
) -> Option<T> {
    let value = map.get(key).and_then(read)?;
    map.remove(key);
    Some(value)
}

impl Serialize for Provenance {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Provenance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_map(Map::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_to_the_same_bytes_whatever_its_fields() {
        let text = r#"{"bag_path":"data/logs/0001-p/c.log","bytes":3,"bytes_received":"x","kind":"kubernetes-log","node":null,"pod":"p","sha256_received":"ab","truncated":false}"#;
        let p: Provenance = serde_json::from_str(text).unwrap();
        assert_eq!(p.pod.as_deref(), Some("p"));
        assert_eq!(p.bytes, Some(3));
        // A field of another type than expected is kept, not dropped.
        assert_eq!(p.bytes_received, None);
        assert_eq!(serde_json::to_string(&p).unwrap(), text);
    }
}
