//! Stopping a collection when the operator asks: SIGINT (Ctrl-C) or SIGTERM sets a flag that the
//! readers check between reads, so a collection stops within a second or so, journals the
//! interruption and cleans its staging instead of reading on (an endless input such as
//! `/dev/zero` never ends on its own). A second signal ends the process at once.
//!
//! The flag is process-wide: the command line installs the watcher for `collect`; the daemon has
//! its own shutdown and never installs it, so its collections are never interrupted this way.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// 0 until a signal arrives; then the signal's number.
static REQUESTED: AtomicU8 = AtomicU8::new(0);

/// How often a reader waiting on a blocking input looks at the flag.
const POLL: Duration = Duration::from_millis(100);

/// The signal that asked the collection to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The conventional exit status of a process stopped by this signal (128 + its number).
    pub fn exit_code(self) -> u8 {
        128 + self.number()
    }

    fn number(self) -> u8 {
        match self {
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
        }
    }
}

/// The signal received, if one was.
pub fn requested() -> Option<Signal> {
    match REQUESTED.load(Ordering::Relaxed) {
        2 => Some(Signal::Interrupt),
        15 => Some(Signal::Terminate),
        _ => None,
    }
}

/// Records `signal` as received (what the watcher does; tests call it directly).
pub fn request(signal: Signal) {
    REQUESTED.store(signal.number(), Ordering::Relaxed);
}

/// Watches for SIGINT and SIGTERM on a thread of its own for the rest of the process. The
/// first sets the flag; a second ends the process with the signal's status.
pub fn install() -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (ready, started) = mpsc::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (mut int, mut term) = match (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) {
                    (Ok(i), Ok(t)) => (i, t),
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                loop {
                    let got = tokio::select! {
                        _ = int.recv() => Signal::Interrupt,
                        _ = term.recv() => Signal::Terminate,
                    };
                    if requested().is_some() {
                        eprintln!("{}: stopping now", got.name());
                        std::process::exit(i32::from(got.exit_code()));
                    }
                    eprintln!(
                        "{}: stopping the collection (send it again to stop at once)",
                        got.name()
                    );
                    request(got);
                }
            })
        })?;
    started
        .recv()
        .map_err(|_| io::Error::other("the signal watcher did not start"))?
}

/// The error a reader returns when a signal asked the collection to stop.
pub fn interrupted_error(signal: Signal) -> io::Error {
    io::Error::other(Interrupted(signal))
}

/// Whether `e` is the error `interrupted_error` makes, and for which signal.
pub fn signal_of(e: &io::Error) -> Option<Signal> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Interrupted>())
        .map(|i| i.0)
}

#[derive(Debug)]
struct Interrupted(Signal);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted by {}", self.0.name())
    }
}

impl std::error::Error for Interrupted {}

/// A reader for inputs whose reads can block without end (standard input, pipes, FIFOs,
/// character devices): the reads happen on a thread of their own, so the caller can stop waiting
/// when a signal arrives. The thread is left to end with the process.
pub struct Watched {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    done: bool,
}

impl Watched {
    pub fn new(mut inner: Box<dyn Read + Send>) -> Self {
        let (tx, chunks) = mpsc::sync_channel(4);
        let _ = std::thread::Builder::new()
            .name("input".into())
            .spawn(move || loop {
                let mut buf = vec![0u8; 256 * 1024];
                let got = match inner.read(&mut buf) {
                    Ok(n) => {
                        buf.truncate(n);
                        Ok(buf)
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let end = !matches!(&got, Ok(b) if !b.is_empty());
                if tx.send(got).is_err() || end {
                    return;
                }
            });
        Self {
            chunks,
            current: Vec::new(),
            at: 0,
            done: false,
        }
    }
}

impl Read for Watched {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.done {
                return Ok(0);
            }
            if let Some(signal) = requested() {
                return Err(interrupted_error(signal));
            }
            match self.chunks.recv_timeout(POLL) {
                Ok(Ok(chunk)) if chunk.is_empty() => self.done = true,
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.done = true;
                    return Err(io::Error::other("the input reader stopped unexpectedly"));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_reader_gives_every_byte_in_order() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = Watched::new(Box::new(io::Cursor::new(data.clone())));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }
}
