//! What can go wrong running the binary, a worker, a receiver or the services' clients.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

/// Why a helper failed; a message about a worker ends with the tail of its log.
#[derive(thiserror::Error)]
pub enum Error {
    #[error("cannot find this executable")]
    CurrentExe(#[source] std::io::Error),
    #[error("the executable has no directory")]
    NoDirectory,
    #[error("cannot start {}", .0.display())]
    Start(PathBuf, #[source] std::io::Error),
    #[error("worker exited with {status} before ready; {}", Tail(.log))]
    ExitedBeforeReady { status: ExitStatus, log: PathBuf },
    #[error("worker not ready after {timeout:?}; {}", Tail(.log))]
    NotReady { timeout: Duration, log: PathBuf },
    #[error("timed out waiting for {what}; {}", Tail(.log))]
    MetricTimeout { what: String, log: PathBuf },
    #[error("worker {pid} ignored SIGTERM and was killed; {}", Tail(.log))]
    IgnoredSigterm { pid: u32, log: PathBuf },
    #[error("`hookfleet {args}` did not finish within {timeout:?}")]
    CommandTimedOut { args: String, timeout: Duration },
    #[error("`hookfleet {args}` failed with {status}: {stderr}")]
    CommandFailed {
        args: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("publish of {id} to {exchange} not confirmed: {confirmation}")]
    NotConfirmed {
        id: String,
        exchange: String,
        confirmation: String,
    },
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Amqp(#[from] hookfleet_amqp::Error),
    #[error(transparent)]
    Lapin(#[from] hookfleet_amqp::lapin::Error),
    #[error(transparent)]
    Core(#[from] hookfleet_core::Error),
    #[error(transparent)]
    Store(#[from] hookfleet_store::Error),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Binding a port, creating a log file, polling a child.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message and its causes, not the variant: what `unwrap()` in a test prints.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Lines at the end of a worker's log quoted in an error.
const TAIL_LINES: usize = 30;

/// Displays the path of a log and its last [`TAIL_LINES`] lines.
struct Tail<'a>(&'a Path);

impl std::fmt::Display for Tail<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = std::fs::read_to_string(self.0).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
        write!(f, "log {}:\n{tail}", self.0.display())
    }
}
