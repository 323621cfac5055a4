//! The access-log line parser: NCSA common and combined format (nginx, Apache), optionally behind
//! the RFC 3339 timestamp that `kubectl logs --timestamps` prepends. Lines are arbitrary bytes;
//! the parser never panics and never allocates. The status is read from the status field, never
//! found by searching the line, since byte counts, paths and user agents contain numbers too.

use std::net::IpAddr;

use crate::net::normalise_ip;

/// The fields of one parsed request line that the analysis counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub ip: IpAddr,
    /// Unix seconds of the request, from the log's own time field (or the kubectl prefix).
    pub time: Option<i64>,
    pub status: u16,
    pub method: &'a [u8],
    pub path: &'a [u8],
}

/// The raw fields of one access-log line, before the IP and time are interpreted; the analysis
/// interprets each distinct IP field and time field once, not once per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields<'a> {
    pub ip: &'a [u8],
    /// The request time from the bracketed Common Log Format field, when it is a valid time.
    pub time: Option<i64>,
    pub status: u16,
    /// The request line as logged (`METHOD PATH PROTOCOL`, or anything a client sent).
    pub request: &'a [u8],
    /// What follows the byte count: referer, user agent and, in some formats, X-Forwarded-For.
    pub tail: &'a [u8],
}

/// The last Common Log Format time parsed: consecutive lines mostly share a second, so most
/// lines cost a 26-byte comparison instead of a parse.
#[derive(Default)]
pub struct TimeCache {
    last: [u8; 26],
    value: Option<i64>,
}

impl TimeCache {
    /// The time in `field` (the bracketed field without brackets), `None` when it is not a
    /// valid Common Log Format time.
    pub fn clf(&mut self, field: &[u8]) -> Option<i64> {
        let Ok(field) = <[u8; 26]>::try_from(field) else {
            return None;
        };
        if self.last != field {
            self.last = field;
            self.value = parse_clf_time(&field);
        }
        self.value
    }
}

/// Splits one line (without its line feed or any prefix) into fields. `None` when it is not an
/// access-log line.
pub fn parse_fields<'a>(line: &'a [u8], times: &mut TimeCache) -> Option<Fields<'a>> {
    let (ip, rest) = split_short(line, b' ')?;
    if ip.is_empty() || ip.len() > 45 {
        return None;
    }
    // ident and authuser, then the bracketed time. The user name is the client's and may hold
    // `[`: the time is the first bracket that holds a well-formed 26-byte time.
    let (close, time) = time_bracket(rest, times)?;
    let rest = rest[close + 1..].strip_prefix(b" \"")?;
    let (request, rest) = split_quoted(rest)?;
    let rest = rest.strip_prefix(b" ")?;
    let (status_field, rest) = split_short(rest, b' ').unwrap_or((rest, &[]));
    let status = parse_status(status_field)?;
    let (bytes_field, tail) = split_short(rest, b' ').unwrap_or((rest, &[]));
    if !(bytes_field == b"-"
        || (!bytes_field.is_empty() && bytes_field.iter().all(u8::is_ascii_digit)))
    {
        return None;
    }
    Some(Fields {
        ip,
        time,
        status,
        request,
        tail,
    })
}

/// The `]` that closes the request time, and the time: the first bracket pair holding a valid
/// Common Log Format time, else the first `[` and the `]` after it (with no time).
fn time_bracket(rest: &[u8], times: &mut TimeCache) -> Option<(usize, Option<i64>)> {
    let first = rest.iter().position(|b| *b == b'[')?;
    let mut open = first;
    loop {
        if rest.get(open + 27) == Some(&b']') {
            if let Some(time) = times.clf(&rest[open + 1..open + 27]) {
                return Some((open + 27, Some(time)));
            }
        }
        match rest[open + 1..].iter().position(|b| *b == b'[') {
            // Past the quote that opens the request, no bracket belongs to the prefix.
            Some(next) if !rest[open..open + 1 + next].contains(&b'"') => open += 1 + next,
            _ => break,
        }
    }
    let close = first + rest[first..].iter().position(|b| *b == b']')?;
    Some((close, None))
}

/// `split_once` for the short fields at the start of a line, where a plain scan beats `memchr`'s
/// set-up.
fn split_short(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|b| *b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

/// The third quoted field after the byte count (after referer and user agent), where nginx's
/// `main` format and many gateways write `$http_x_forwarded_for`.
pub fn trailing_xff(tail: &[u8]) -> Option<&[u8]> {
    let mut rest = tail;
    let mut field = None;
    for _ in 0..3 {
        rest = rest.trim_ascii_start().strip_prefix(b"\"")?;
        let (f, r) = split_quoted(rest)?;
        field = Some(f);
        rest = r;
    }
    field.filter(|f| *f != b"-")
}

/// Parses one combined-format line (without its line feed), with or without a CRI or kubectl
/// prefix. `None` when it is not an access-log line.
pub fn parse_line(line: &[u8]) -> Option<Record<'_>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (prefix_time, line) = super::format::strip_prefix(line);
    let f = parse_fields(line, &mut TimeCache::default())?;
    let (method, path) = split_request(f.request);
    Some(Record {
        ip: parse_ip(f.ip)?,
        time: f.time.or(prefix_time),
        status: f.status,
        method,
        path,
    })
}

/// Splits at the closing quote of a quoted field whose opening quote was already consumed;
/// a backslash escapes the next byte (nginx and Apache escape `"` as `\"`).
fn split_quoted(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut from = 0;
    while let Some(j) = memchr::memchr(b'"', s.get(from..)?) {
        let i = from + j;
        // The quote is escaped if an odd number of backslashes precede it.
        let backslashes = s[..i].iter().rev().take_while(|b| **b == b'\\').count();
        if backslashes % 2 == 0 {
            return Some((&s[..i], &s[i + 1..]));
        }
        from = i + 1;
    }
    None
}

/// `METHOD PATH PROTOCOL`; anything else (a TLS handshake sent to a plain port, `-`) has neither.
pub fn split_request(request: &[u8]) -> (&[u8], &[u8]) {
    let mut parts = request.split(|&c| c == b' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(p), Some(proto), None)
            if !m.is_empty()
                && m.iter().all(u8::is_ascii_uppercase)
                && proto.starts_with(b"HTTP/") =>
        {
            (m, p)
        }
        _ => (&[], &[]),
    }
}

fn parse_status(field: &[u8]) -> Option<u16> {
    match field {
        [a @ b'1'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9'] => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// Parses an IPv4 or IPv6 address; IPv4-mapped IPv6 (`::ffff:1.2.3.4`) becomes IPv4.
pub fn parse_ip(field: &[u8]) -> Option<IpAddr> {
    if field.is_empty() || field.len() > 45 {
        return None;
    }
    if let Some(v4) = parse_ipv4(field) {
        return Some(IpAddr::V4(v4));
    }
    if field.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
        // Digits and dots that are not a valid IPv4 address are not an IPv6 address either.
        return None;
    }
    let ip = match parse_ipv6_hex(field) {
        Some(v6) => IpAddr::V6(v6),
        // Embedded IPv4, zone ids and anything invalid: the standard library decides.
        None => std::str::from_utf8(field).ok()?.parse().ok()?,
    };
    Some(normalise_ip(ip))
}

/// IPv6 written as hex groups with at most one `::` (what logs hold), without the generic
/// parser. `None` for any other text; it then goes to the standard parser, which has the last
/// word, so this accepts only what that parser accepts, with the same value.
fn parse_ipv6_hex(field: &[u8]) -> Option<std::net::Ipv6Addr> {
    if field == b"::" {
        return Some(std::net::Ipv6Addr::UNSPECIFIED);
    }
    let (mut head, mut tail) = ([0u16; 8], [0u16; 8]);
    let (mut heads, mut tails, mut gap) = (0usize, 0usize, false);
    let mut i = 0;
    if field.starts_with(b"::") {
        (gap, i) = (true, 2);
    }
    loop {
        let start = i;
        let mut group = 0u16;
        while i - start < 4 {
            let Some(d) = field.get(i).and_then(|c| (*c as char).to_digit(16)) else {
                break;
            };
            group = group << 4 | d as u16;
            i += 1;
        }
        if i == start {
            return None;
        }
        let slot = if gap {
            tails += 1;
            tail.get_mut(tails - 1)?
        } else {
            heads += 1;
            head.get_mut(heads - 1)?
        };
        *slot = group;
        match field.get(i..i + 2) {
            None if i == field.len() => break,
            Some(b"::") if !gap => {
                (gap, i) = (true, i + 2);
                if i == field.len() {
                    break;
                }
            }
            Some([b':', next]) if *next != b':' => i += 1,
            _ => return None,
        }
    }
    if (gap && heads + tails > 7) || (!gap && heads != 8) {
        return None;
    }
    let mut groups = [0u16; 8];
    groups[..heads].copy_from_slice(&head[..heads]);
    groups[8 - tails..].copy_from_slice(&tail[..tails]);
    Some(std::net::Ipv6Addr::from(groups))
}

/// Dotted-quad IPv4 with the standard library's rules (four parts, each 0-255, no leading zeros),
/// without the UTF-8 check and generic parser, since most lines carry one.
fn parse_ipv4(field: &[u8]) -> Option<std::net::Ipv4Addr> {
    let digit = |i: usize| {
        field
            .get(i)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|d| *d <= 9)
    };
    let (mut i, mut address) = (0usize, 0u32);
    for part in 0..4 {
        if part > 0 {
            if field.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let first = digit(i)?;
        let mut value = u32::from(first);
        i += 1;
        if let Some(d) = digit(i) {
            if first == 0 {
                return None; // A leading zero.
            }
            value = value * 10 + u32::from(d);
            i += 1;
            if let Some(d) = digit(i) {
                value = value * 10 + u32::from(d);
                i += 1;
                if value > 255 {
                    return None;
                }
            }
        }
        address = address << 8 | value;
    }
    (i == field.len()).then(|| std::net::Ipv4Addr::from(address))
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
}

/// RFC 3339 (`2026-11-26T14:54:48Z`, fractional seconds and offsets allowed) → Unix seconds.
pub fn parse_rfc3339(s: &[u8]) -> Option<i64> {
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b'T' | b't')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (digits(&s[..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    let (h, mi, sec) = (
        digits(&s[11..13])?,
        digits(&s[14..16])?,
        digits(&s[17..19])?,
    );
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), oh @ .., b':', m1, m2] if oh.len() == 2 => {
            let (hours, minutes) = (digits(oh)?, digits(&[*m1, *m2])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let off = hours * 3600 + minutes * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    to_unix(y, mo, d, h, mi, sec).map(|t| t - offset)
}

/// Common Log Format time, `17/May/2015:10:05:03 +0000` → Unix seconds.
pub fn parse_clf_time(s: &[u8]) -> Option<i64> {
    if s.len() != 26
        || s[2] != b'/'
        || s[6] != b'/'
        || s[11] != b':'
        || s[14] != b':'
        || s[17] != b':'
        || s[20] != b' '
    {
        return None;
    }
    let d = digits(&s[..2])?;
    let mo = month(&s[3..6])?;
    let y = digits(&s[7..11])?;
    let (h, mi, sec) = (
        digits(&s[12..14])?,
        digits(&s[15..17])?,
        digits(&s[18..20])?,
    );
    let off = digits(&s[22..24])? * 3600 + digits(&s[24..26])? * 60;
    let off = match s[21] {
        b'+' => off,
        b'-' => -off,
        _ => return None,
    };
    to_unix(y, mo, d, h, mi, sec).map(|t| t - off)
}

fn month(m: &[u8]) -> Option<i64> {
    const NAMES: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    NAMES.iter().position(|n| n == &m).map(|i| i as i64 + 1)
}

/// Civil date and time → Unix seconds (proleptic Gregorian; H. Hinnant's days_from_civil).
fn to_unix(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in_month = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=days_in_month).contains(&d)
        || h > 23
        || mi > 59
        || s > 60
    {
        return None;
    }
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LINE: &[u8] = br#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1)""#;

    #[test]
    fn parses_a_combined_line() {
        let r = parse_line(LINE).unwrap();
        assert_eq!(r.ip.to_string(), "83.149.9.216");
        assert_eq!(r.status, 200);
        assert_eq!(r.method, b"GET");
        assert_eq!(r.time, Some(1_431_857_103));
        assert!(r.path.starts_with(b"/presentations/"));
    }

    #[test]
    fn status_comes_from_the_status_field_not_from_numbers_elsewhere() {
        // A 200 whose byte count, path and agent all contain 401/403/429.
        let line = br#"10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET /api/401/403 HTTP/1.1" 200 4290 "-" "agent/419""#;
        assert_eq!(parse_line(line).unwrap().status, 200);
    }

    #[test]
    fn common_format_dash_bytes_and_escaped_binary_request() {
        let line =
            br#"2001:db8::1 - frank [10/Oct/2000:13:55:36 -0700] "\x16\x03\x01\x00\xa5\x01" 400 -"#;
        let r = parse_line(line).unwrap();
        assert_eq!(r.ip.to_string(), "2001:db8::1");
        assert_eq!(r.status, 400);
        assert_eq!(r.method, b"");
        assert_eq!(r.time, Some(971_211_336));
    }

    #[test]
    fn a_bracket_in_the_user_name_does_not_hide_the_time() {
        let line =
            br#"1.2.3.4 - al[ice [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 401 0 "-" "-""#;
        let r = parse_line(line).unwrap();
        assert_eq!((r.status, r.time), (401, Some(1_431_857_103)));
    }

    #[test]
    fn impossible_dates_and_offsets_are_not_times() {
        assert_eq!(parse_rfc3339(b"2026-02-31T00:00:00Z"), None);
        assert_eq!(parse_rfc3339(b"2026-11-26T00:00:00-99:59"), None);
        assert_eq!(parse_rfc3339(b"2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse_clf_time(b"31/Feb/2015:10:05:03 +0000"), None);
    }

    #[test]
    fn escaped_quote_inside_request() {
        let line =
            br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /a\"b HTTP/1.1" 401 12 "-" "x""#;
        assert_eq!(parse_line(line).unwrap().status, 401);
    }

    #[test]
    fn kubectl_timestamp_prefix_and_mapped_ipv6() {
        let line = br#"2026-11-26T14:54:48.123456789Z ::ffff:192.0.2.7 - - [26/Nov/2026:14:54:48 +0000] "POST /login HTTP/1.1" 429 0 "-" "-""#;
        let r = parse_line(line).unwrap();
        assert_eq!(r.ip.to_string(), "192.0.2.7");
        assert_eq!(r.status, 429);
        assert_eq!(parse_rfc3339(b"2026-11-26T14:54:48Z"), Some(1_795_704_888));
        assert_eq!(
            parse_rfc3339(b"2026-11-26T16:54:48+02:00"),
            Some(1_795_704_888)
        );
    }

    #[test]
    fn forwarded_for_after_the_user_agent() {
        let line = br#"10.0.0.9 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 401 5 "-" "ua \"x\"" "203.0.113.4, 10.0.0.2""#;
        let f = parse_fields(line, &mut TimeCache::default()).unwrap();
        assert_eq!(trailing_xff(f.tail), Some(&b"203.0.113.4, 10.0.0.2"[..]));
        let plain = parse_fields(LINE, &mut TimeCache::default()).unwrap();
        assert_eq!(trailing_xff(plain.tail), None);
    }

    #[test]
    fn rejects_non_access_lines() {
        for line in [
            &b""[..],
            b"hello world",
            b"1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 2000 1",
            b"1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 1x",
            b"999.2.3.4 - - [x] \"GET / HTTP/1.1\" 200 1",
            b"1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1",
        ] {
            assert!(
                parse_line(line).is_none(),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    proptest! {
        #[test]
        fn quoted_fields_split_like_a_scan(body in "[a-z\\\\\" ]{0,30}") {
            // Reference: a byte-by-byte scan where a backslash escapes the next byte.
            let b = body.as_bytes();
            let mut i = 0;
            let mut want = None;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 2,
                    b'"' => { want = Some((&b[..i], &b[i + 1..])); break; }
                    _ => i += 1,
                }
            }
            prop_assert_eq!(split_quoted(b), want);
        }

        #[test]
        fn fast_ipv4_agrees_with_the_standard_library(text in "[0-9.]{0,16}") {
            let std_parse = text.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4);
            prop_assert_eq!(parse_ip(text.as_bytes()), std_parse);
        }

        #[test]
        fn fast_ipv6_agrees_with_the_standard_library(
            text in "[0-9a-fA-F:.]{0,41}|([0-9a-f]{1,4}:){0,8}(:[0-9a-f]{1,4}){0,8}|([0-9a-f]{0,4}:){1,7}:?([0-9a-f]{0,4})"
        ) {
            let std_parse = text.parse::<IpAddr>().ok().map(normalise_ip);
            prop_assert_eq!(parse_ip(text.as_bytes()), std_parse, "{}", text);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(line in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_line(&line);
        }

        #[test]
        fn never_panics_on_mutated_lines(pos in 0usize..LINE.len(), byte in any::<u8>(), cut in 0usize..LINE.len()) {
            let mut line = LINE.to_vec();
            line[pos] = byte;
            let _ = parse_line(&line);
            let _ = parse_line(&line[..cut]);
        }
    }
}
