//! Text for a terminal. Request paths, file names, addresses and reasons come from logs and
//! stores an attacker may have written; printed raw, an escape sequence in them can retitle the
//! window, clear the screen or overwrite a `PROBLEM` line. Everything outside-controlled that the
//! human output prints goes through [`escape`]; JSON output needs nothing, as serde escapes it.

use std::borrow::Cow;
use std::fmt::Write;
use std::path::Path;

/// Whether `c` must not reach a terminal as it is: C0 controls (including tab, CR and LF), DEL,
/// C1 controls (U+0080–U+009F, which some terminals read as CSI and OSC), the line and
/// paragraph separators, and the bidirectional marks, embeddings, overrides and isolates that
/// reorder what is shown (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069). A backslash
/// is escaped too, so that an escaped string cannot be mistaken for one that held the escape's
/// text.
fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{061c}'
        | '\u{200e}' | '\u{200f}'
        | '\u{2028}' | '\u{2029}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\\')
}

/// `s` with every character a terminal would act on written as an escape: `\x1b` for ASCII
/// controls, `\u{202e}` for the others, `\\` for a backslash. Borrows when nothing needs escaping,
/// which is nearly always.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if !needs_escape(c) => out.push(c),
            // Writing to a String cannot fail.
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// `s` in double quotes for a terminal, escaped as [`escape`] does and with `"` written `\"`,
/// so that where a quoted value ends is never in doubt (an object's field, a request body).
pub fn quote(s: &str) -> String {
    let escaped = escape(s);
    let mut out = String::with_capacity(escaped.len() + 2);
    out.push('"');
    for c in escaped.chars() {
        if c == '"' {
            out.push_str("\\\"");
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// A path for a terminal: lossily decoded, then escaped.
pub fn escape_path(path: &Path) -> String {
    escape(&path.to_string_lossy()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_terminal_sequences_and_borrows_plain_text() {
        assert_eq!(
            escape("/api\u{1b}]0;pwned\u{7}\u{1b}[2J"),
            "/api\\x1b]0;pwned\\x07\\x1b[2J"
        );
        assert_eq!(escape("a\rb\nc\td\u{7f}"), "a\\x0db\\x0ac\\x09d\\x7f");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(escape("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        assert_eq!(escape("C:\\x1b"), "C:\\\\x1b");
        assert!(matches!(
            escape("/api/v1/login 203.0.113.9 é ü 日本"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn quoted_text_shows_where_it_ends() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(quote("x\u{1b}[2J\u{202e}"), "\"x\\x1b[2J\\u{202e}\"");
    }

    proptest! {
        // Whatever an attacker writes, nothing a terminal acts on comes out.
        #[test]
        fn escaped_text_holds_no_control_character(s in any::<String>()) {
            let escaped = escape(&s);
            prop_assert!(!escaped.chars().any(|c| needs_escape(c) && c != '\\'));
            prop_assert!(!escaped.chars().any(|c| c.is_control()));
        }

        // Escaping loses nothing: text without backslashes or controls comes back as it was.
        #[test]
        fn plain_text_is_unchanged(s in "[^\\\\\\p{Cc}\u{202a}-\u{202e}\u{2066}-\u{2069}\u{200e}\u{200f}\u{2028}\u{2029}\u{61c}]*") {
            let escaped = escape(&s);
            prop_assert_eq!(escaped.as_ref(), s.as_str());
        }
    }
}
