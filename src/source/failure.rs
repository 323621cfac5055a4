//! A failure record: something a source (or the analysis) could not capture whole, listed in
//! `collection.json`, in `collect --json` and in a `source_failed` journal entry. The fields
//! other modules read are typed; what else a source says of it (the pod, the sizes seen, the
//! cap) is kept as it wrote it. Stored as one JSON object with its keys sorted, as it always was.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// See the module comment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Failure {
    /// What happened (`truncated`, `shrank`, `staging_changed`, `snapshot`, …).
    pub kind: Option<String>,
    /// The source as the user named it, or `analysis`.
    pub source: Option<String>,
    /// The pod whose log it was (a Kubernetes source).
    pub pod: Option<String>,
    /// What happened, for a person.
    pub error: Option<String>,
    /// Where the source's bytes are in the bag.
    pub bag_path: Option<String>,
    /// `false` when the source's bytes were left out of the bag.
    pub sealed: Option<bool>,
    /// Everything else the source recorded, by name.
    pub context: BTreeMap<String, serde_json::Value>,
}

/// A failure record: `kind` names what happened, `error` says it for a person.
pub fn failure(kind: &str, source: &str, error: impl Into<String>) -> Failure {
    Failure {
        kind: Some(kind.to_owned()),
        source: Some(source.to_owned()),
        error: Some(error.into()),
        ..Failure::default()
    }
}

impl Failure {
    /// Records `value` under `key` beside the typed fields.
    pub fn set(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        let mut map = self.to_map();
        map.insert(key.to_owned(), value.into());
        *self = Self::from_map(map);
    }

    /// A record a source built as a JSON object (anything else is kept whole under `record`).
    pub fn from_json(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Object(map) => Self::from_map(map.into_iter().collect()),
            other => Self::from_map(BTreeMap::from([("record".to_owned(), other)])),
        }
    }

    /// The failure in words: its kind, source (or pod) and error.
    pub fn text(&self) -> String {
        let source = match self.source.as_deref() {
            None | Some("") => self.pod.as_deref().unwrap_or(""),
            Some(s) => s,
        };
        let mut out = String::new();
        for part in [
            self.kind.as_deref().unwrap_or(""),
            source,
            self.error.as_deref().unwrap_or(""),
        ] {
            if !part.is_empty() {
                if !out.is_empty() {
                    out.push_str(": ");
                }
                out.push_str(part);
            }
        }
        out
    }

    fn from_map(mut map: BTreeMap<String, serde_json::Value>) -> Self {
        // A typed field is taken only when it has its type; otherwise it stays as written.
        fn take_str(map: &mut BTreeMap<String, serde_json::Value>, key: &str) -> Option<String> {
            match map.get(key) {
                Some(serde_json::Value::String(_)) => match map.remove(key) {
                    Some(serde_json::Value::String(s)) => Some(s),
                    _ => None,
                },
                _ => None,
            }
        }
        let sealed = match map.get("sealed") {
            Some(serde_json::Value::Bool(b)) => {
                let b = *b;
                map.remove("sealed");
                Some(b)
            }
            _ => None,
        };
        Failure {
            kind: take_str(&mut map, "kind"),
            source: take_str(&mut map, "source"),
            pod: take_str(&mut map, "pod"),
            error: take_str(&mut map, "error"),
            bag_path: take_str(&mut map, "bag_path"),
            sealed,
            context: map,
        }
    }

    fn to_map(&self) -> BTreeMap<String, serde_json::Value> {
        let mut map = self.context.clone();
        let strings = [
            ("kind", &self.kind),
            ("source", &self.source),
            ("pod", &self.pod),
            ("error", &self.error),
            ("bag_path", &self.bag_path),
        ];
        for (key, value) in strings {
            if let Some(v) = value {
                map.insert(key.to_owned(), v.clone().into());
            }
        }
        if let Some(b) = self.sealed {
            map.insert("sealed".to_owned(), b.into());
        }
        map
    }
}

impl Serialize for Failure {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Failure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_map(BTreeMap::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_to_the_same_bytes_whatever_its_fields() {
        let text = r#"{"bag_path":"data/logs/01-x","error":"e","kind":"truncated","limit_bytes":5,"node":null,"pod":7,"sealed":false,"source":"x"}"#;
        let f: Failure = serde_json::from_str(text).unwrap();
        assert_eq!(f.kind.as_deref(), Some("truncated"));
        assert_eq!(f.sealed, Some(false));
        // A field of another type than expected is kept, not dropped.
        assert_eq!(f.pod, None);
        assert_eq!(serde_json::to_string(&f).unwrap(), text);
        assert_eq!(f.text(), "truncated: x: e");
    }
}
