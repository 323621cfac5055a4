//! `detection.yaml`: the rules that name suspicious clients, validated before anything runs.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::PolicyError;
use crate::duration::Duration;
use crate::net::Cidr;

/// The statuses the runbook calls authentication failures: unauthorised, forbidden, page expired
/// (Laravel's CSRF failure) and too many requests. The analysis keeps per-client counts of these
/// only, so they are the codes a rule may count.
pub const AUTH_FAILURE_CODES: [u16; 4] = [401, 403, 419, 429];

/// Which clients the analysis reports as suspicious.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionPolicy {
    /// Rules in order; a client is reported by the first rule it meets.
    pub rules: Vec<Rule>,
    /// Addresses or CIDR ranges never reported (health checkers, internal ranges).
    #[serde(default)]
    pub allowlist: Vec<Cidr>,
}

/// One detection rule.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "WrittenRule")]
pub enum Rule {
    /// At least `min_count` responses with one of `codes` over the whole input.
    Count {
        /// A short name, shown in findings: lowercase letters, digits and `-`.
        name: String,
        /// What the rule detects, for people reading the policy.
        #[serde(default)]
        description: String,
        /// Status codes counted: any of 401, 403, 419 and 429.
        codes: Vec<u16>,
        /// The count at which a client is reported (at least 1).
        min_count: u64,
    },
    /// At least `min_count` responses with one of `codes` within `window` (whole minutes).
    Window {
        name: String,
        #[serde(default)]
        description: String,
        codes: Vec<u16>,
        min_count: u64,
        /// The window, such as `5m` or `1h`; whole minutes, at least `1m`, at most `24h`.
        window: Window,
    },
    /// At least `min_requests` requests, of which at least `min_ratio` had one of `codes`.
    Ratio {
        name: String,
        #[serde(default)]
        description: String,
        codes: Vec<u16>,
        /// The share of requests, above 0 and at most 1.
        min_ratio: f64,
        /// The fewest requests a client must have made (at least 1).
        min_requests: u64,
    },
}

/// A rule as written: one flat map, read field by field so that an error names the field and
/// its line (serde buffers an internally tagged enum first, which loses both), then checked
/// against its kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenRule {
    name: String,
    kind: RuleKind,
    #[serde(default)]
    description: String,
    codes: Vec<u16>,
    min_count: Option<u64>,
    window: Option<Window>,
    min_ratio: Option<f64>,
    min_requests: Option<u64>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RuleKind {
    Count,
    Window,
    Ratio,
}

impl TryFrom<WrittenRule> for Rule {
    type Error = String;

    fn try_from(w: WrittenRule) -> Result<Self, String> {
        let (kind, fields): (&str, &[&str]) = match w.kind {
            RuleKind::Count => ("count", &["min_count"]),
            RuleKind::Window => ("window", &["min_count", "window"]),
            RuleKind::Ratio => ("ratio", &["min_ratio", "min_requests"]),
        };
        let given = [
            ("min_count", w.min_count.is_some()),
            ("window", w.window.is_some()),
            ("min_ratio", w.min_ratio.is_some()),
            ("min_requests", w.min_requests.is_some()),
        ];
        if let Some((field, _)) = given.iter().find(|(f, g)| *g && !fields.contains(f)) {
            return Err(format!(
                "unknown field `{field}` in a {kind} rule, expected {}",
                fields.join(", ")
            ));
        }
        let missing = |field: &str| format!("missing field `{field}` in a {kind} rule");
        let (name, description, codes) = (w.name, w.description, w.codes);
        Ok(match w.kind {
            RuleKind::Count => Rule::Count {
                name,
                description,
                codes,
                min_count: w.min_count.ok_or_else(|| missing("min_count"))?,
            },
            RuleKind::Window => Rule::Window {
                name,
                description,
                codes,
                min_count: w.min_count.ok_or_else(|| missing("min_count"))?,
                window: w.window.ok_or_else(|| missing("window"))?,
            },
            RuleKind::Ratio => Rule::Ratio {
                name,
                description,
                codes,
                min_ratio: w.min_ratio.ok_or_else(|| missing("min_ratio"))?,
                min_requests: w.min_requests.ok_or_else(|| missing("min_requests"))?,
            },
        })
    }
}

impl Rule {
    pub fn name(&self) -> &str {
        match self {
            Rule::Count { name, .. } | Rule::Window { name, .. } | Rule::Ratio { name, .. } => name,
        }
    }

    pub fn codes(&self) -> &[u16] {
        match self {
            Rule::Count { codes, .. } | Rule::Window { codes, .. } | Rule::Ratio { codes, .. } => {
                codes
            }
        }
    }

    /// A window rule's length in whole minutes.
    pub fn window_minutes(&self) -> Option<u32> {
        match self {
            Rule::Window { window, .. } => Some(window.minutes),
            _ => None,
        }
    }
}

/// A window rule's window: a duration of whole minutes, from `1m` to `24h`, kept as written
/// (findings quote it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    duration: Duration,
    minutes: u32,
}

impl Window {
    /// The most a window may span: one day.
    const MAX_MINUTES: u32 = 24 * 60;

    pub fn parse(text: &str) -> Option<Self> {
        let duration = Duration::parse(text).ok()?;
        let minutes = u32::try_from(duration.whole_minutes()?).ok()?;
        (1..=Self::MAX_MINUTES)
            .contains(&minutes)
            .then_some(Self { duration, minutes })
    }

    pub fn minutes(&self) -> u32 {
        self.minutes
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.duration.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Window::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "window {text:?}: give whole minutes or hours, such as 5m or 1h, from 1m to 24h"
            ))
        })
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.duration.serialize(serializer)
    }
}

impl Default for DetectionPolicy {
    fn default() -> Self {
        // The shipped file is parsed by a test, so this cannot fail at run time.
        DetectionPolicy::parse("built-in detection.yaml", super::DEFAULT_DETECTION)
            .expect("the built-in detection policy is valid")
    }
}

impl DetectionPolicy {
    pub fn parse(path: &str, text: &str) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError::ParsePolicy {
            path: path.to_owned(),
            message,
        };
        let policy: DetectionPolicy = super::from_yaml(path, text)?;
        if policy.rules.is_empty() {
            return Err(err("rules: at least one rule is needed".into()));
        }
        let mut names = std::collections::HashSet::new();
        for (i, rule) in policy.rules.iter().enumerate() {
            validate_rule(rule).map_err(|m| err(format!("rules[{i}] ({}): {m}", rule.name())))?;
            if !names.insert(rule.name().to_owned()) {
                return Err(err(format!(
                    "rules[{i}].name {:?} is used twice",
                    rule.name()
                )));
            }
        }
        Ok(policy)
    }

    /// Whether `ip` is allowlisted.
    pub fn is_allowed(&self, ip: &IpAddr) -> bool {
        self.allowlist.iter().any(|c| c.contains(ip))
    }
}

fn validate_rule(rule: &Rule) -> Result<(), String> {
    if crate::id::CaseId::new(rule.name()).is_err() {
        return Err("name: use 1 to 64 lowercase letters, digits and '-'".into());
    }
    let codes = rule.codes();
    if codes.is_empty() || codes.iter().any(|c| !AUTH_FAILURE_CODES.contains(c)) {
        // Per-client counts are kept for these codes only; a rule on another code could never fire.
        return Err("codes: give one or more of the counted codes 401, 403, 419, 429".into());
    }
    match rule {
        Rule::Count { min_count, .. } | Rule::Window { min_count, .. } if *min_count == 0 => {
            Err("min_count must be at least 1".into())
        }
        Rule::Ratio { min_ratio, .. } if !(*min_ratio > 0.0 && *min_ratio <= 1.0) => {
            Err("min_ratio must be above 0 and at most 1".into())
        }
        Rule::Ratio { min_requests, .. } if *min_requests == 0 => {
            Err("min_requests must be at least 1".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_policies_name_the_problem() {
        let ok = "name: a\n    kind: count\n    codes: [401]\n    min_count: 1";
        let cases = [
            ("rules: []", "at least one rule"),
            ("rules:\n  - name: a\n    kind: count\n    codes: [401]\n    min_count: 1\n    extra: 1", "unknown field"),
            ("rules:\n  - name: A\n    kind: count\n    codes: [401]\n    min_count: 1", "name"),
            ("rules:\n  - name: a\n    kind: count\n    codes: [999]\n    min_count: 1", "codes"),
            // Per-client counts are kept for the auth-failure codes only, so a rule on 404 could
            // never fire; it is refused rather than accepted and silently inert.
            ("rules:\n  - name: a\n    kind: count\n    codes: [404]\n    min_count: 1", "401, 403, 419, 429"),
            ("rules:\n  - name: a\n    kind: count\n    codes: [401]\n    min_count: 0", "min_count"),
            ("rules:\n  - name: a\n    kind: window\n    codes: [401]\n    min_count: 3\n    window: 90s", "window"),
            ("rules:\n  - name: a\n    kind: window\n    codes: [401]\n    min_count: 3", "window"),
            ("rules:\n  - name: a\n    kind: window\n    codes: [401]\n    min_count: 3\n    window: 5x", "rules[0].window"),
            ("rules:\n  - name: a\n    kind: count\n    codes: [401]\n    min_count: 3\n    window: 5m", "unknown field `window`"),
            ("rules:\n  - name: a\n    kind: ratio\n    codes: [401]\n    min_ratio: 0.5", "missing field `min_requests`"),
            ("rules:\n  - name: a\n    kind: ratio\n    codes: [401]\n    min_ratio: 1.5\n    min_requests: 3", "min_ratio"),
            ("rules:\n  - name: a\n    kind: sometimes\n    codes: [401]", "unknown variant"),
            ("rules:\n  - name: a\n    kind: count\n    codes: [401]\n    min_count: 1\n  - name: a\n    kind: count\n    codes: [401]\n    min_count: 1", "twice"),
            ("rules:\n  - name: a\n    kind: count\n    codes: [401]\n    min_count: 1\nallowlist: [10.0.0.0/33]", "allowlist[0]"),
            ("rules: {", "detection.yaml"),
        ];
        for (text, want) in cases {
            let err = DetectionPolicy::parse("detection.yaml", text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        let fine = format!("rules:\n  - {ok}\n");
        assert!(DetectionPolicy::parse("d", &fine).is_ok());
    }

    #[test]
    fn windows_are_whole_minutes() {
        let minutes = |text| Window::parse(text).map(|w| w.minutes());
        assert_eq!(minutes("5m"), Some(5));
        assert_eq!(minutes("2h"), Some(120));
        // One grammar for every duration: whole minutes written in seconds or days are windows too.
        assert_eq!(minutes("120s"), Some(2));
        assert_eq!(minutes("1d"), Some(24 * 60));
        assert_eq!(Window::parse("5m").unwrap().to_string(), "5m");
        // A multi-byte unit once split a character in two.
        for bad in [
            "", "m", "0m", "25h", "5", "5s", "-1m", "1.5h", "5µ", "µ", "2d", "90s",
        ] {
            assert_eq!(minutes(bad), None, "{bad}");
        }
    }
}
