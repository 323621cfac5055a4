//! File names made from names custody does not choose (a log's file name, a pod's, a
//! container's), safe to use as one component of a bag path: the vocabulary shared by the
//! sources that name payload files and the bag that holds them.

/// A file name safe for a bag path: other bytes become `_`, at most `max` bytes.
pub fn safe_file_name(name: &str, max: usize) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        out = "log".into();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_bytes_and_never_a_dot_name() {
        assert_eq!(safe_file_name("../a b/ç.log", 60), ".._a_b__.log");
        assert_eq!(safe_file_name("..", 60), "log");
        assert_eq!(safe_file_name("", 60), "log");
        assert_eq!(safe_file_name("abcdef", 3), "abc");
    }
}
