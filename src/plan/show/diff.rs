//! The human diff of a change, like `kubectl diff`: each object written out as YAML-like lines
//! (keys sorted, every string quoted and escaped for a terminal, the fields the server owns
//! stripped), then a unified diff of the lines, computed here by longest common subsequence.
//! Objects in a plan are small; a pair too large for the quadratic table is shown as removed
//! whole and added whole, which is still exact.

use serde_json::Value;

use crate::terminal;

/// The `metadata` fields the server sets, which would only clutter the diff.
const STRIPPED_METADATA: [&str; 5] = [
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
];

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// The largest `before × after` line table computed; beyond it the diff is whole.
const MAX_TABLE: usize = 4_000_000;

/// `object` without the fields the server owns (`status`, and `metadata`'s `managedFields`,
/// `resourceVersion`, `uid`, `creationTimestamp`, `generation`), as lines. A Secret's `data`
/// and `stringData` never reach a plan; should one arrive all the same, its keys are shown and
/// its values are not.
pub fn object_lines(object: &Value) -> Vec<String> {
    let mut shown = object.clone();
    if let Value::Object(map) = &mut shown {
        map.remove("status");
        if map.get("kind").and_then(Value::as_str) == Some("Secret") {
            for field in ["data", "stringData"] {
                if let Some(Value::Object(values)) = map.get_mut(field) {
                    for v in values.values_mut() {
                        *v = Value::String("(redacted)".into());
                    }
                } else if map.contains_key(field) {
                    map.insert(field.into(), Value::String("(redacted)".into()));
                }
            }
        }
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for field in STRIPPED_METADATA {
                meta.remove(field);
            }
        }
    }
    let mut lines = Vec::new();
    write_value(&shown, 0, &mut lines);
    lines
}

/// A key as shown: bare when it is plain (`metadata`, `app.kubernetes.io/name`), else quoted.
fn key_text(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-' | '_'));
    if plain {
        key.to_owned()
    } else {
        terminal::quote(key)
    }
}

/// A scalar as shown: strings quoted and escaped, the rest as JSON writes them.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => terminal::quote(s),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        // Numbers, booleans and null hold nothing to escape; a compound value shown inline
        // (a JSON patch's `value`) is JSON, escaped.
        other => terminal::escape(&other.to_string()).into_owned(),
    }
}

fn is_compound(value: &Value) -> bool {
    match value {
        Value::Object(o) => !o.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

/// Appends `value`'s lines at `indent` spaces. A list item is its lines at `indent + 2` with
/// the first one's indentation ending in `- `.
fn write_value(value: &Value, indent: usize, lines: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            // serde_json's map may keep insertion order (a feature another crate can turn
            // on): sort, so the same object always gives the same lines.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                let child = &map[key];
                if is_compound(child) {
                    lines.push(format!("{pad}{}:", key_text(key)));
                    write_value(child, indent + 2, lines);
                } else {
                    lines.push(format!("{pad}{}: {}", key_text(key), scalar_text(child)));
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                if is_compound(item) {
                    let first = lines.len();
                    write_value(item, indent + 2, lines);
                    if let Some(line) = lines.get_mut(first) {
                        line.replace_range(indent..indent + 2, "- ");
                    }
                } else {
                    lines.push(format!("{pad}- {}", scalar_text(item)));
                }
            }
        }
        scalar => lines.push(format!("{pad}{}", scalar_text(scalar))),
    }
}

/// One line of a diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Edit {
    Same(usize, usize),
    Removed(usize),
    Added(usize),
}

/// The edits turning `a` into `b`, by longest common subsequence (ties prefer removals first,
/// as `diff -u` shows them).
fn edits(a: &[String], b: &[String]) -> Vec<Edit> {
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > MAX_TABLE {
        let mut out: Vec<Edit> = (0..n).map(Edit::Removed).collect();
        out.extend((0..m).map(Edit::Added));
        return out;
    }
    // lcs[i][j]: the common subsequence's length of a[i..] and b[j..].
    let width = m + 1;
    let mut lcs = vec![0u32; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * width + j] = if a[i] == b[j] {
                lcs[(i + 1) * width + j + 1] + 1
            } else {
                lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(n + m);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(Edit::Same(i, j));
            i += 1;
            j += 1;
        } else if j == m || (i < n && lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
            out.push(Edit::Removed(i));
            i += 1;
        } else {
            out.push(Edit::Added(j));
            j += 1;
        }
    }
    out
}

/// A unified diff of `a` and `b` (`@@ -l,n +l,n @@` hunks, [`CONTEXT`] lines of context),
/// without the `---`/`+++` header; empty when they are equal.
pub fn unified(a: &[String], b: &[String]) -> Vec<String> {
    let edits = edits(a, b);
    let changed: Vec<usize> = edits
        .iter()
        .enumerate()
        .filter(|(_, e)| !matches!(e, Edit::Same(..)))
        .map(|(k, _)| k)
        .collect();
    let mut out = Vec::new();
    let mut k = 0;
    while k < changed.len() {
        // A hunk: changes closer than twice the context share one.
        let start = changed[k].saturating_sub(CONTEXT);
        let mut last = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= last + 2 * CONTEXT + 1 {
            k += 1;
            last = changed[k];
        }
        let end = (last + CONTEXT + 1).min(edits.len());
        out.push(hunk_header(&edits, start, end, a.len(), b.len()));
        for e in &edits[start..end] {
            out.push(match *e {
                Edit::Same(i, _) => format!(" {}", a[i]),
                Edit::Removed(i) => format!("-{}", a[i]),
                Edit::Added(j) => format!("+{}", b[j]),
            });
        }
        k += 1;
    }
    out
}

/// `@@ -from,count +from,count @@` for `edits[start..end]`, numbered from 1 as `diff -u` does
/// (an empty side starts at the line before it).
fn hunk_header(edits: &[Edit], start: usize, end: usize, a_len: usize, b_len: usize) -> String {
    // Lines of a and b before the hunk.
    let before_a = edits[..start]
        .iter()
        .filter(|e| !matches!(e, Edit::Added(_)))
        .count();
    let before_b = edits[..start]
        .iter()
        .filter(|e| !matches!(e, Edit::Removed(_)))
        .count();
    let in_a = edits[start..end]
        .iter()
        .filter(|e| !matches!(e, Edit::Added(_)))
        .count();
    let in_b = edits[start..end]
        .iter()
        .filter(|e| !matches!(e, Edit::Removed(_)))
        .count();
    let from = |before: usize, count: usize, len: usize| {
        if count == 0 {
            before.min(len)
        } else {
            before + 1
        }
    };
    format!(
        "@@ -{},{} +{},{} @@",
        from(before_a, in_a, a_len),
        in_a,
        from(before_b, in_b, b_len),
        in_b
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_owned).collect()
    }

    #[test]
    fn objects_are_shown_sorted_quoted_and_without_server_fields() {
        let object = json!({
            "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["203.0.113.9/32"]}}], "ports": [{"port": 8080}]}]},
            "metadata": {"name": "allow-web", "uid": "u", "resourceVersion": "7", "generation": 2,
                "creationTimestamp": "t", "managedFields": [{"manager": "helm"}],
                "annotations": {"a b": "x\u{1b}[2J"}},
            "status": {"phase": "x"},
            "kind": "NetworkPolicy",
        });
        assert_eq!(
            object_lines(&object),
            lines(
                r#"kind: "NetworkPolicy"
metadata:
  annotations:
    "a b": "x\x1b[2J"
  name: "allow-web"
spec:
  ingress:
    - from:
        - ipBlock:
            cidr: "0.0.0.0/0"
            except:
              - "203.0.113.9/32"
      ports:
        - port: 8080
  podSelector: {}"#
            )
        );
    }

    #[test]
    fn a_secret_shows_its_keys_never_its_values() {
        let secret = json!({"kind": "Secret", "data": {"API_KEY": "c2VjcmV0"}, "stringData": "x"});
        let text = object_lines(&secret).join("\n");
        assert!(text.contains("API_KEY: \"(redacted)\""), "{text}");
        assert!(text.contains("stringData: \"(redacted)\""), "{text}");
        assert!(!text.contains("c2VjcmV0"));
    }

    proptest::proptest! {
        // The edits are a true diff: the kept and removed lines are `a`, the kept and added `b`.
        #[test]
        fn edits_rebuild_both_sides(
            a in proptest::collection::vec("[abc]", 0..12),
            b in proptest::collection::vec("[abc]", 0..12),
        ) {
            let e = edits(&a, &b);
            let left: Vec<&String> = e.iter().filter_map(|e| match *e {
                Edit::Same(i, _) | Edit::Removed(i) => Some(&a[i]),
                Edit::Added(_) => None,
            }).collect();
            let right: Vec<&String> = e.iter().filter_map(|e| match *e {
                Edit::Same(_, j) | Edit::Added(j) => Some(&b[j]),
                Edit::Removed(_) => None,
            }).collect();
            proptest::prop_assert_eq!(left, a.iter().collect::<Vec<_>>());
            proptest::prop_assert_eq!(right, b.iter().collect::<Vec<_>>());
            // A hunk's lines, without their marks, are lines of a and b in order.
            for line in unified(&a, &b) {
                proptest::prop_assert!(line.starts_with(['@', ' ', '-', '+']));
            }
        }
    }

    #[test]
    fn a_diff_shows_each_change_with_context_in_hunks() {
        let a: Vec<String> = (1..=20).map(|n| format!("line {n}")).collect();
        let mut b = a.clone();
        b[1] = "changed 2".into();
        b.insert(15, "new".into());
        assert_eq!(
            unified(&a, &b),
            lines(
                "@@ -1,5 +1,5 @@
 line 1
-line 2
+changed 2
 line 3
 line 4
 line 5
@@ -13,6 +13,7 @@
 line 13
 line 14
 line 15
+new
 line 16
 line 17
 line 18"
            )
        );
        assert!(unified(&a, &a).is_empty());
    }

    #[test]
    fn a_create_is_all_added_and_a_delete_all_removed() {
        let a = lines("x\ny");
        assert_eq!(unified(&[], &a), lines("@@ -0,0 +1,2 @@\n+x\n+y"));
        assert_eq!(unified(&a, &[]), lines("@@ -1,2 +0,0 @@\n-x\n-y"));
    }

    #[test]
    fn near_changes_share_a_hunk() {
        let a: Vec<String> = (1..=12).map(|n| n.to_string()).collect();
        let mut b = a.clone();
        b[2] = "x".into();
        b[9] = "y".into();
        let d = unified(&a, &b);
        assert_eq!(d.iter().filter(|l| l.starts_with("@@")).count(), 1, "{d:?}");
    }
}
