//! Durations as people write them in policies, on the command line and in the case API: a whole
//! number and one unit, `90s`, `15m`, `2h`, `7d`. The one grammar for all of them; a leaf module.
//! A `Duration` keeps the text it was written as, since that text is what findings quote.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A positive duration in whole seconds, with the text it was written as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duration {
    text: String,
    secs: u64,
}

/// Why a text is not a duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration like 90s, 15m, 2h or 7d")]
    Syntax(String),
    #[error("{0:?} is out of range")]
    OutOfRange(String),
}

impl Duration {
    /// Parses `<digits><unit>`, the unit one of `s`, `m`, `h`, `d`; zero and durations past
    /// `u64::MAX` seconds are out of range.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        // The unit is the last character, which may be several bytes long in bad input.
        let split = text.char_indices().last().map_or(0, |(i, _)| i);
        let (digits, unit) = text.split_at(split);
        let syntax = || DurationError::Syntax(text.to_owned());
        // `u64::from_str` also takes a leading `+`, which every earlier parser accepted.
        let n: u64 = digits.parse().map_err(|_| syntax())?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(syntax()),
        };
        let secs = n
            .checked_mul(scale)
            .filter(|s| *s > 0)
            .ok_or_else(|| DurationError::OutOfRange(text.to_owned()))?;
        Ok(Self {
            text: text.to_owned(),
            secs,
        })
    }

    pub fn as_secs(&self) -> u64 {
        self.secs
    }

    /// The length in whole minutes, when it is a whole number of minutes.
    pub fn whole_minutes(&self) -> Option<u64> {
        self.secs.is_multiple_of(60).then_some(self.secs / 60)
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl From<&Duration> for std::time::Duration {
    fn from(d: &Duration) -> Self {
        std::time::Duration::from_secs(d.secs)
    }
}

/// Parses a duration into seconds, with the error as a message: for `--since` and the case
/// API's `since`, which report the message as it is.
pub fn seconds(text: &str) -> Result<u64, String> {
    Duration::parse(text)
        .map(|d| d.as_secs())
        .map_err(|e| e.to_string())
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `--since`'s grammar before there was one parser, kept to prove nothing it took is refused.
    fn old_since(text: &str) -> Result<u64, ()> {
        let split = text.char_indices().last().map_or(0, |(i, _)| i);
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits.parse().map_err(|_| ())?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(()),
        };
        n.checked_mul(scale).filter(|s| *s > 0).ok_or(())
    }

    /// Detection windows' grammar before there was one parser (whole minutes or hours).
    fn old_window_minutes(text: &str) -> Option<u32> {
        let minutes = if let Some(digits) = text.strip_suffix('m') {
            digits.parse::<u32>().ok()?
        } else if let Some(digits) = text.strip_suffix('h') {
            digits.parse::<u32>().ok()?.checked_mul(60)?
        } else {
            return None;
        };
        (1..=24 * 60).contains(&minutes).then_some(minutes)
    }

    #[test]
    fn durations_and_their_errors() {
        assert_eq!(seconds("90s"), Ok(90));
        assert_eq!(seconds("2h"), Ok(7200));
        assert_eq!(seconds("7d"), Ok(604_800));
        assert_eq!(seconds("15m"), Ok(900));
        for bad in ["", "h", "5", "-5m", "1w", "5µ", "µ", "1.5h", " 5m", "5m "] {
            assert_eq!(
                seconds(bad),
                Err(format!("{bad:?} is not a duration like 90s, 15m, 2h or 7d")),
                "{bad}"
            );
        }
        for bad in ["0s", "0m", "99999999999999999999d", "999999999999999999d"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(seconds("0s"), Err("\"0s\" is out of range".into()));
        let d = Duration::parse("5m").unwrap();
        assert_eq!((d.as_str(), d.whole_minutes()), ("5m", Some(5)));
        assert_eq!(Duration::parse("90s").unwrap().whole_minutes(), None);
        assert_eq!(
            std::time::Duration::from(&d),
            std::time::Duration::from_secs(300)
        );
    }

    proptest! {
        #[test]
        fn written_durations_parse(n in 1u64..1_000_000, unit in "[smhd]") {
            let scale = match unit.as_str() { "s" => 1, "m" => 60, "h" => 3600, _ => 86_400 };
            let d = Duration::parse(&format!("{n}{unit}")).unwrap();
            prop_assert_eq!(d.as_secs(), n * scale);
            prop_assert_eq!(d.to_string(), format!("{n}{unit}"));
        }

        #[test]
        fn the_grammar_is_the_union_of_the_old_ones(text in "[+-]?[0-9]{0,21}[smhdwµ.]?|\\PC{0,6}") {
            let new = Duration::parse(&text).map(|d| d.as_secs());
            prop_assert_eq!(new.clone().ok(), old_since(&text).ok(), "{}", text);
            if let Some(minutes) = old_window_minutes(&text) {
                prop_assert_eq!(new.ok(), Some(u64::from(minutes) * 60), "{}", text);
            }
        }
    }
}
