//! Reading YAML files (policies, the daemon's configuration) into typed values, with errors that
//! name the field, the line and the column. A leaf module over the YAML parser, so that the
//! parser is chosen in one place.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A YAML text that does not fit the type it is read as.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct YamlError {
    /// The field, as `rules[0].window`; none when the document as a whole is wrong.
    pub field: Option<String>,
    /// The parser's message, ending with the line and column (`at line 2, column 5`).
    pub message: String,
    /// The line, counted from 1.
    pub line: Option<u64>,
}

/// Reads `text` as a `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let mut field = None;
    serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            field = (path != ".").then_some(path);
            e.into_inner()
        })
    })
    .map_err(|e| {
        let line = e.location().map(|l| l.line());
        let mut message = e.without_snippet().to_string();
        if let Some(l) = e.location() {
            if !message.contains(" at line ") {
                message = format!("{message} at line {}, column {}", l.line(), l.column());
            }
        }
        YamlError {
            field,
            message,
            line,
        }
    })
}

/// A value with the line it was written on, for the checks made after a whole file is read (a
/// name used twice, a reference to a name defined elsewhere), whose errors must still name the
/// line: read the text again with `Located<IgnoredAny>` where the lines are needed. (An error
/// inside a `Located` value names its field with an extra `.value`, which is why it is for a
/// second reading.) Read from anything but YAML, the line is 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    /// The line, counted from 1.
    pub line: u64,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Self {
            value: spanned.value,
            line: spanned.referenced.line(),
        })
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u64,
    }

    #[test]
    fn errors_name_the_field_and_the_line() {
        let e = from_str::<Outer>("inner:\n  count: many\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("inner.count"));
        assert_eq!(e.line, Some(2));
        let text = e.to_string();
        assert!(
            text.starts_with("inner.count: ") && text.contains("line 2"),
            "{text}"
        );
        let e = from_str::<Outer>("inner:\n  count: 1\n  size: 2\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `size`"), "{e}");
        assert_eq!(e.line, Some(3));
        let e = from_str::<Outer>("inner: {count: 1}\ninner: {count: 2}\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(from_str::<Outer>("inner: {").is_err());
    }

    #[test]
    fn located_values_know_their_line() {
        let items: Vec<Located<Inner>> = from_str("- count: 1\n-\n  count: 2\n").unwrap();
        assert_eq!(items.iter().map(|i| i.line).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(items[1].value.count, 2);
        let lines: Vec<Located<serde::de::IgnoredAny>> =
            from_str("- {count: 1}\n\n- [a, b]\n- x\n").unwrap();
        assert_eq!(lines.iter().map(|i| i.line).collect::<Vec<_>>(), [1, 3, 4]);
    }
}
