//! Logs go to stderr (stdout carries command output), as JSON lines or human-readable text.

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Logs at `RUST_LOG`'s level, or `default_level` when it is not set.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Pretty => builder.with_target(false).init(),
    }
}
