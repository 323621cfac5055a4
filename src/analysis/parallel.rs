//! Analysis of whole files on every core: a large regular file is cut into ranges at line
//! boundaries, each range is analysed by its own thread with `pread`, and the counts are merged in
//! file order. Standard input and small files are read by one thread.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::sync::Arc;

use super::format::{self, Format, FormatChoice};
use super::Analyzer;
use crate::policy::FormatsPolicy;
use crate::progress::Progress;
use crate::source::SourceError;

const CHUNK: usize = 1024 * 1024;
/// Files smaller than this are read by one thread.
const SPLIT_ABOVE: u64 = 64 * 1024 * 1024;

/// The number of threads the analysis uses: one per core.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How many bytes of a file decide its format.
const SNIFF: usize = 64 * 1024;

/// What to analyse and how.
pub struct Job<'a> {
    /// Files; `-` is standard input.
    pub paths: &'a [PathBuf],
    pub format: FormatChoice,
    pub formats: Arc<FormatsPolicy>,
    pub threads: usize,
    pub progress: bool,
    /// The memory the analysis's tables may take, in bytes (shared by the threads of a file
    /// read in parts).
    pub memory_budget: u64,
}

impl Job<'_> {
    fn analyzer(&self, budget: u64) -> Analyzer {
        let mut a = Analyzer::new(self.formats.clone());
        a.set_memory_budget(budget);
        a
    }
}

/// Analyses every file of `job` with up to `job.threads` threads.
pub fn analyze_paths(job: &Job<'_>) -> Result<Analyzer, SourceError> {
    let (paths, threads) = (job.paths, job.threads);
    if paths.is_empty() {
        return Err(SourceError::NoInput);
    }
    if paths.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        return Err(SourceError::StdinTwice);
    }
    let inputs = open_inputs(paths)?;
    let done = AtomicU64::new(0);
    let mut total = Analyzer::new(job.formats.clone());
    let mut bytes = 0u64;
    let mut progress = Progress::new("analyze", job.progress);
    for (name, input) in inputs {
        let read_err = |source| SourceError::OpenLog {
            path: name.clone(),
            source,
        };
        let part = match input {
            None => analyze_stdin(job, &name, &done)?,
            Some((mut file, size)) => {
                let mut first = vec![0u8; SNIFF];
                let n = read_at_most(&file, &mut first).map_err(read_err)?;
                let format = resolve(job, &first[..n], &name)?;
                match size {
                    Some(size) if size > SPLIT_ABOVE && threads > 1 => read_ranges(
                        &file,
                        &name,
                        size,
                        (threads, format, job),
                        &done,
                        &mut progress,
                    )?,
                    _ => {
                        let mut a = job.analyzer(job.memory_budget);
                        a.begin_source(&name, format);
                        read_stream(a, &mut file, &name, &done)?
                    }
                }
            }
        };
        bytes += done.swap(0, Ordering::Relaxed);
        total.merge(part);
    }
    progress.finish();
    if bytes == 0 {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(SourceError::EmptyInput(names.join(", ")));
    }
    Ok(total)
}

/// An input to analyse: its name, and the file with its size (when it is a regular file), or
/// `None` for standard input.
type Input = (String, Option<(File, Option<u64>)>);

/// Opens every input first, so that a missing file fails before any work.
fn open_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, SourceError> {
    let mut inputs = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        if path.as_os_str() == "-" {
            inputs.push((name, None));
            continue;
        }
        let err = |source| SourceError::OpenLog {
            path: name.clone(),
            source,
        };
        let file = File::open(path).map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        if meta.is_dir() {
            return Err(SourceError::IsDirectory(name));
        }
        let size = meta.is_file().then_some(meta.len());
        inputs.push((name, Some((file, size))));
    }
    Ok(inputs)
}

/// Standard input, read as one stream after its first bytes have chosen the format.
fn analyze_stdin(job: &Job<'_>, name: &str, done: &AtomicU64) -> Result<Analyzer, SourceError> {
    let mut stdin = io::stdin();
    let mut first = Vec::new();
    (&mut stdin)
        .take(SNIFF as u64)
        .read_to_end(&mut first)
        .map_err(|source| SourceError::OpenLog {
            path: name.to_owned(),
            source,
        })?;
    let format = resolve(job, &first, name)?;
    let mut a = job.analyzer(job.memory_budget);
    a.begin_source(name, format);
    a.feed(&first);
    done.fetch_add(first.len() as u64, Ordering::Relaxed);
    read_stream(a, &mut stdin, name, done)
}

fn resolve(job: &Job<'_>, sample: &[u8], name: &str) -> Result<Format, SourceError> {
    format::resolve(&job.format, sample, &job.formats).map_err(|message| SourceError::Format {
        path: name.to_owned(),
        message,
    })
}

/// Reads from the start of `file` into `buf` (positional, so the file's cursor stays put).
fn read_at_most(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn read_stream(
    mut analyzer: Analyzer,
    reader: &mut dyn Read,
    name: &str,
    done: &AtomicU64,
) -> Result<Analyzer, SourceError> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(SourceError::OpenLog {
                    path: name.to_owned(),
                    source,
                })
            }
        };
        analyzer.feed(&buf[..n]);
        done.fetch_add(n as u64, Ordering::Relaxed);
    }
    analyzer.finish_source();
    Ok(analyzer)
}

/// Cuts `[0, size)` into `parts` ranges that each start at the beginning of a line.
fn line_ranges(file: &File, size: u64, parts: usize) -> io::Result<Vec<(u64, u64)>> {
    let mut starts = vec![0u64];
    let mut buf = vec![0u8; 64 * 1024];
    for k in 1..parts as u64 {
        let mut pos = (size * k / parts as u64).max(*starts.last().unwrap_or(&0));
        // The next range starts after the first line feed at or after `pos - 1`.
        pos = pos.saturating_sub(1);
        let start = loop {
            let n = file.read_at(&mut buf, pos)?;
            if n == 0 {
                break size;
            }
            if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
                break pos + i as u64 + 1;
            }
            pos += n as u64;
        };
        starts.push(start);
    }
    starts.push(size);
    Ok(starts
        .windows(2)
        .filter(|w| w[0] < w[1])
        .map(|w| (w[0], w[1]))
        .collect())
}

fn read_range(
    file: &File,
    name: &str,
    (start, end): (u64, u64),
    mut analyzer: Analyzer,
    format: Format,
    done: &AtomicU64,
) -> io::Result<Analyzer> {
    analyzer.begin_source_at(name, start, format);
    let mut buf = vec![0u8; CHUNK];
    let mut pos = start;
    while pos < end {
        let want = (end - pos).min(CHUNK as u64) as usize;
        let n = file.read_at(&mut buf[..want], pos)?;
        if n == 0 {
            break; // The file shrank while being read; what was there is counted.
        }
        analyzer.feed(&buf[..n]);
        pos += n as u64;
        done.fetch_add(n as u64, Ordering::Relaxed);
    }
    analyzer.finish_source();
    Ok(analyzer)
}

fn read_ranges(
    file: &File,
    name: &str,
    size: u64,
    (threads, format, job): (usize, Format, &Job<'_>),
    done: &AtomicU64,
    progress: &mut Progress,
) -> Result<Analyzer, SourceError> {
    let err = |source| SourceError::OpenLog {
        path: name.to_owned(),
        source,
    };
    let ranges = line_ranges(file, size, threads).map_err(err)?;
    let mut results = std::thread::scope(|scope| {
        let (finished, finishing) = std::sync::mpsc::channel();
        for (i, r) in ranges.iter().enumerate() {
            let share = job.memory_budget / ranges.len().max(1) as u64;
            let (analyzer, format) = (job.analyzer(share), format.clone());
            let finished = finished.clone();
            scope.spawn(move || {
                // A panic drops the sender without a result; that is reported below.
                let result = read_range(file, name, *r, analyzer, format, done);
                let _ = finished.send((i, result));
            });
        }
        drop(finished);
        let (mut results, mut shown) = (Vec::new(), 0);
        loop {
            match finishing.recv_timeout(Duration::from_millis(50)) {
                Ok(result) => results.push(result),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            let now = done.load(Ordering::Relaxed);
            progress.advance(now - shown);
            shown = now;
        }
        results
    });
    if results.len() != ranges.len() {
        return Err(err(io::Error::other("an analysis thread panicked")));
    }
    // In file order, so that the first samples and evidence lines are the file's first.
    results.sort_unstable_by_key(|(i, _)| *i);
    let mut parts = results.into_iter().map(|(_, result)| result);
    let mut merged = match parts.next() {
        Some(first) => first.map_err(err)?,
        None => job.analyzer(job.memory_budget),
    };
    for part in parts {
        merged.merge(part.map_err(err)?);
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DetectionPolicy;

    #[test]
    fn ranges_start_at_lines_and_cover_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let text: String = (0..1000)
            .map(|i| format!("line {i} {}\n", "x".repeat(i % 37)))
            .collect();
        std::fs::write(&path, &text).unwrap();
        let file = File::open(&path).unwrap();
        for parts in 1..6 {
            let ranges = line_ranges(&file, text.len() as u64, parts).unwrap();
            assert_eq!(ranges.first().unwrap().0, 0);
            assert_eq!(ranges.last().unwrap().1, text.len() as u64);
            for w in ranges.windows(2) {
                assert_eq!(w[0].1, w[1].0);
                assert_eq!(text.as_bytes()[w[1].0 as usize - 1], b'\n');
            }
        }
    }

    #[test]
    fn split_analysis_equals_one_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut text = String::new();
        for i in 0..5000 {
            let status = [200, 401, 403, 419, 429][i % 5];
            text.push_str(&format!(
                "10.0.{}.{} - - [17/May/2015:10:05:{:02} +0000] \"GET / HTTP/1.1\" {status} 1 \"-\" \"-\"\n",
                i % 7, i % 11, i % 60
            ));
            if i % 1000 == 0 {
                text.push_str("junk \u{1} line\n");
            }
        }
        std::fs::write(&path, &text).unwrap();
        let policy = DetectionPolicy::default();
        let file = File::open(&path).unwrap();
        let done = AtomicU64::new(0);
        let formats = Arc::new(FormatsPolicy::default());
        let mut a = Analyzer::new(formats.clone());
        a.begin_source("x", Format::Combined);
        let one = read_stream(a, &mut File::open(&path).unwrap(), "x", &done)
            .unwrap()
            .summary(&policy, 50);
        for parts in [2, 3, 7] {
            let mut merged = Analyzer::new(formats.clone());
            for r in line_ranges(&file, text.len() as u64, parts).unwrap() {
                let part = Analyzer::new(formats.clone());
                merged.merge(read_range(&file, "x", r, part, Format::Combined, &done).unwrap());
            }
            assert_eq!(merged.summary(&policy, 50), one, "{parts} parts");
        }
    }
}
