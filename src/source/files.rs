//! Local log files and standard input.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{Source, SourceError, Stream};
use crate::seal::bag::safe_file_name;
use crate::timefmt;

/// How much of each input is read before the case opens, to refuse empty input early.
const PEEK: usize = 64 * 1024;

/// Log files given on the command line; `-` is standard input.
pub struct FileSource {
    paths: Vec<PathBuf>,
}

impl FileSource {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self { paths }
    }
}

pub(super) fn peek(reader: &mut dyn Read, name: &str) -> Result<Vec<u8>, SourceError> {
    let mut first = Vec::with_capacity(PEEK);
    reader
        .take(PEEK as u64)
        .read_to_end(&mut first)
        .map_err(|source| SourceError::OpenLog {
            path: name.to_owned(),
            source,
        })?;
    Ok(first)
}

fn open_file(path: &Path, index: usize) -> Result<Stream, SourceError> {
    let name = path.display().to_string();
    let err = |source| SourceError::OpenLog {
        path: name.clone(),
        source,
    };
    let mut file = File::open(path).map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    if meta.is_dir() {
        return Err(SourceError::IsDirectory(name));
    }
    let first = peek(&mut file, &name)?;
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let modified = meta
        .modified()
        .ok()
        .map(|t| timefmt::rfc3339(time::OffsetDateTime::from(t)));
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    Ok(Stream {
        bag_name: format!("{index:02}-{}", safe_file_name(&base, 60)),
        provenance: serde_json::json!({
            "kind": "file",
            "path": name,
            "absolute_path": absolute.display().to_string(),
            "size_at_open": meta.len(),
            "modified": modified,
        }),
        name,
        first,
        reader: Box::new(file),
    })
}

impl Source for FileSource {
    fn request(&self) -> serde_json::Value {
        let paths: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        serde_json::json!({ "kind": "files", "logs": paths })
    }

    fn open(&mut self) -> Result<Vec<Stream>, SourceError> {
        if self.paths.is_empty() {
            return Err(SourceError::NoInput);
        }
        let mut streams = Vec::new();
        let mut stdin_seen = false;
        for (i, path) in self.paths.iter().enumerate() {
            if path.as_os_str() == "-" {
                if stdin_seen {
                    return Err(SourceError::StdinTwice);
                }
                stdin_seen = true;
                let mut stdin = io::stdin();
                let first = peek(&mut stdin, "standard input")?;
                streams.push(Stream {
                    name: "-".into(),
                    bag_name: format!("{:02}-stdin.log", i + 1),
                    provenance: serde_json::json!({ "kind": "stdin", "path": "-" }),
                    first,
                    reader: Box::new(stdin),
                });
            } else {
                streams.push(open_file(path, i + 1)?);
            }
        }
        if streams.iter().all(|s| s.first.is_empty()) {
            let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
            return Err(SourceError::EmptyInput(names.join(", ")));
        }
        Ok(streams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_missing_directories_and_empty_input_before_capture() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.log");
        std::fs::write(&empty, b"").unwrap();
        let missing = dir.path().join("missing.log");
        let cases: [(Vec<PathBuf>, &str); 4] = [
            (vec![missing], "cannot read log file"),
            (vec![dir.path().to_owned()], "is a directory"),
            (vec![empty], "the input is empty"),
            (vec![], "no log files"),
        ];
        for (paths, want) in cases {
            let err = FileSource::new(paths).open().err().unwrap().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn names_in_the_bag_are_numbered_and_safe() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("access log (1).txt");
        std::fs::write(&p, b"x\n").unwrap();
        let streams = FileSource::new(vec![p.clone(), p]).open().unwrap();
        assert_eq!(streams[0].bag_name, "01-access_log__1_.txt");
        assert_eq!(streams[1].bag_name, "02-access_log__1_.txt");
    }
}
