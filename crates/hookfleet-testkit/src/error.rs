//! What can go wrong finding the binary or starting a worker.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why a helper failed; the messages name the file to look at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot find this executable")]
    CurrentExe(#[source] std::io::Error),
    #[error("the executable has no directory")]
    NoDirectory,
    #[error("cannot create {}", .0.display())]
    CreateLog(PathBuf, #[source] std::io::Error),
    #[error("cannot start {}", .0.display())]
    Start(PathBuf, #[source] std::io::Error),
    #[error("the worker exited at once")]
    ExitedAtOnce,
    #[error("worker exited with {status} before ready; see {}", log.display())]
    ExitedBeforeReady { status: ExitStatus, log: PathBuf },
    #[error("worker not ready after {timeout:?}; see {}", log.display())]
    NotReady { timeout: Duration, log: PathBuf },
    /// Binding a free port, cloning the log handle, polling the child.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
