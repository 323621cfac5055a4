//! One line of an `allowed_signers` file, split the way OpenSSH's sshsig.c splits it (principals,
//! optionally quoted; then options if the next word is not a key type; then the key; the rest is
//! a comment), with every lint problem of the line collected rather than the first.

use time::{Date, Month, PrimitiveDateTime, Time};

use crate::approval::Principal;

/// A line that lints clean.
pub(super) struct Parsed {
    pub principal: Principal,
    pub key: ssh_key::PublicKey,
    pub namespaces: Option<Vec<String>>,
    pub valid_after: Option<i64>,
    pub valid_before: Option<i64>,
}

#[derive(Default)]
struct Options {
    namespaces: Option<Vec<String>>,
    valid_after: Option<i64>,
    valid_before: Option<i64>,
}

/// The key types OpenSSH reads in the key position; any other word there is the options.
const KEY_TYPES: [&str; 16] = [
    "ssh-ed25519",
    "sk-ssh-ed25519@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
    "ssh-dss",
    "ssh-ed25519-cert-v01@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ssh-rsa-cert-v01@openssh.com",
    "ssh-dss-cert-v01@openssh.com",
];

/// `Ok(None)` for a blank or comment line; `Err` with every problem of the line.
pub(super) fn parse(raw: &str) -> Result<Option<Parsed>, Vec<String>> {
    let s = raw.trim_end_matches('\r').trim_start_matches([' ', '\t']);
    if s.is_empty() || s.starts_with('#') {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let (principals, rest) = match split_principals(s) {
        Ok(split) => split,
        Err(p) => return Err(vec![p]),
    };
    let principal = lint_principal(principals)
        .map_err(|p| problems.push(p))
        .ok();
    let (word, mut rest) = token(rest);
    let mut options = Options::default();
    let key_type = if KEY_TYPES.contains(&word) {
        word
    } else {
        options = parse_options(word, &mut problems);
        let (kt, r) = token(rest);
        rest = r;
        kt
    };
    let (base64, _comment) = token(rest);
    let key = parse_key(key_type, base64)
        .map_err(|p| problems.push(p))
        .ok();
    match (principal, key) {
        (Some(principal), Some(key)) if problems.is_empty() => Ok(Some(Parsed {
            principal,
            key,
            namespaces: options.namespaces,
            valid_after: options.valid_after,
            valid_before: options.valid_before,
        })),
        _ => Err(problems),
    }
}

/// The principals field (without its quotes) and the rest of the line.
fn split_principals(s: &str) -> Result<(&str, &str), String> {
    if let Some(quoted) = s.strip_prefix('"') {
        let end = quoted
            .find('"')
            .ok_or("the principal's opening quote is never closed")?;
        return Ok((&quoted[..end], &quoted[end + 1..]));
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    Ok((&s[..end], &s[end..]))
}

fn lint_principal(p: &str) -> Result<Principal, String> {
    let shown: String = p.escape_debug().take(120).collect();
    if p.contains(',') {
        return Err(format!(
            "\"{shown}\" is a comma list of principals: it lets one key speak for several people; \
             give each person their own line"
        ));
    }
    if p.contains(['*', '?']) {
        return Err(format!(
            "\"{shown}\" has a wildcard: it lets one key speak for everyone it matches; \
             principals are literal names"
        ));
    }
    if p.starts_with('!') {
        return Err(format!(
            "\"{shown}\" is a negation: principals are literal names"
        ));
    }
    Principal::new(p).map_err(|e| e.to_string())
}

/// The next whitespace-separated word (double quotes protect whitespace) and what follows it.
fn token(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches([' ', '\t']);
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return (&s[..i], &s[i..]),
            _ => {}
        }
    }
    (s, "")
}

/// Splits `a,b="x,y",c` at the commas outside quotes.
fn split_options(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_options(word: &str, problems: &mut Vec<String>) -> Options {
    let mut o = Options::default();
    for opt in split_options(word) {
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n.to_ascii_lowercase(), Some(v)),
            None => (opt.to_ascii_lowercase(), None),
        };
        let quoted = |v: Option<&str>| -> Result<String, String> {
            let v = v.unwrap_or_default();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_owned)
                .ok_or_else(|| format!("{name}= needs a quoted value, like {name}=\"…\" (ssh-keygen refuses it unquoted)"))
        };
        let result = match name.as_str() {
            "cert-authority" => Err("cert-authority lets every certificate of a CA speak for the principal; list each person's own key".to_owned()),
            "namespaces" if o.namespaces.is_some() => Err("namespaces= given twice".to_owned()),
            "namespaces" => quoted(value).and_then(|v| parse_namespaces(&v)).map(|n| o.namespaces = Some(n)),
            "valid-after" if o.valid_after.is_some() => Err("valid-after= given twice".to_owned()),
            "valid-after" => quoted(value).and_then(|v| parse_time(&v)).map(|t| o.valid_after = Some(t)),
            "valid-before" if o.valid_before.is_some() => Err("valid-before= given twice".to_owned()),
            "valid-before" => quoted(value).and_then(|v| parse_time(&v)).map(|t| o.valid_before = Some(t)),
            _ => Err(format!(
                "unknown option \"{}\": the options are namespaces=\"…\", valid-after=\"…\" and valid-before=\"…\" (or a key type was expected here)",
                opt.escape_debug().take(80).collect::<String>()
            )),
        };
        if let Err(p) = result {
            problems.push(p);
        }
    }
    if let (Some(a), Some(b)) = (o.valid_after, o.valid_before) {
        if a > b {
            problems.push("valid-after is later than valid-before: the key is never valid".into());
        }
    }
    o
}

fn parse_namespaces(v: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = v.split(',').map(str::to_owned).collect();
    for n in &names {
        if n.is_empty() || n.contains(['*', '?', '!', ' ', '"']) {
            return Err(format!(
                "namespace \"{}\" is not a literal name: namespaces are literal, like custody-approval",
                n.escape_debug()
            ));
        }
    }
    Ok(names)
}

/// `YYYYMMDD[Z]` or `YYYYMMDDHHMM[SS][Z]` → Unix seconds; only the `Z` (UTC) forms are accepted.
pub(super) fn parse_time(v: &str) -> Result<i64, String> {
    let form = "a time is YYYYMMDDZ, YYYYMMDDHHMMZ or YYYYMMDDHHMMSSZ";
    let Some(digits) = v.strip_suffix('Z') else {
        return Err(format!(
            "\"{}\" has no Z: ssh-keygen reads it in the local time zone of whoever runs it, so \
             two verifiers can disagree on when the key is valid; write the time in UTC with a Z \
             ({form})",
            v.escape_debug()
        ));
    };
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("\"{}\" is not a time: {form}", v.escape_debug()));
    }
    let num = |r: std::ops::Range<usize>| digits.get(r).and_then(|d| d.parse::<u32>().ok());
    let at = (|| {
        let year = i32::try_from(num(0..4)?).ok()?;
        let month = Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
        let date = Date::from_calendar_date(year, month, u8::try_from(num(6..8)?).ok()?).ok()?;
        let field = |r| num(r).map_or(Some(0), |n| u8::try_from(n).ok());
        let time = match digits.len() {
            8 => Time::MIDNIGHT,
            _ => Time::from_hms(field(8..10)?, field(10..12)?, field(12..14)?).ok()?,
        };
        Some(
            PrimitiveDateTime::new(date, time)
                .assume_utc()
                .unix_timestamp(),
        )
    })();
    at.ok_or_else(|| {
        format!(
            "\"{}\" is not a valid date or time: {form}",
            v.escape_debug()
        )
    })
}

fn parse_key(key_type: &str, base64: &str) -> Result<ssh_key::PublicKey, String> {
    use ssh_key::Algorithm;
    if key_type.is_empty() {
        return Err("no key: a line is `principal [options] keytype base64 [comment]`".into());
    }
    let key = ssh_key::PublicKey::from_openssh(&format!("{key_type} {base64}")).map_err(|e| {
        format!(
            "not a public key (\"{}\"): {e}",
            key_type.escape_debug().take(60).collect::<String>()
        )
    })?;
    let supported = match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::SkEd25519 | Algorithm::SkEcdsaSha2NistP256 => true,
        Algorithm::Ecdsa { curve } => curve == ssh_key::EcdsaCurve::NistP256,
        _ => false,
    };
    if !supported {
        return Err(format!(
            "key type {} is not one custody verifies: use ssh-ed25519, ecdsa-sha2-nistp256, or their FIDO (sk-) forms",
            key.algorithm()
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_forms_only() {
        assert_eq!(parse_time("20260101Z"), Ok(1767225600));
        assert_eq!(parse_time("202601010001Z"), Ok(1767225660));
        assert_eq!(parse_time("20260101000001Z"), Ok(1767225601));
        for bad in [
            "20260101",
            "2026010100Z",
            "20261301Z",
            "20260230Z",
            "20260101246000Z",
            "Z",
            "2026-01-01Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_split_outside_quotes() {
        assert_eq!(
            split_options("namespaces=\"a,b\",valid-after=\"20260101Z\""),
            ["namespaces=\"a,b\"", "valid-after=\"20260101Z\""]
        );
        assert_eq!(token("  a=\"x y\" rest"), ("a=\"x y\"", " rest"));
    }
}
