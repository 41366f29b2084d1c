//! `hookfleet-chaos`: runs every fault-injection scenario at report size against the local
//! RabbitMQ and Redis and prints the reliability table (markdown) on stdout.
//!
//! ```sh
//! cargo run --release -p hookfleet-chaos
//! ```
//!
//! It stops and restarts RabbitMQ and Redis: run it on a development machine or CI runner,
//! never next to anything else that uses them. The services are left running, even when a
//! scenario fails.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use hookfleet_chaos::{Settings, Size, outcome, scenarios};
use hookfleet_testkit::binary;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let binary = hookfleet_binary()?;
    let settings = Settings::new(binary, Size::Report);
    eprintln!(
        "chaos: workers are {}; logs in {}",
        settings.binary.display(),
        settings.log_dir.display()
    );
    let outcomes = scenarios::run_all(&settings).await;
    hookfleet_chaos::services::ensure()?;
    println!("{}", outcome::table(&outcomes));
    Ok(if outcomes.iter().all(|o| o.holds()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The `hookfleet` binary of this build's profile (next to this executable), built first so
/// that the workers run the current code.
fn hookfleet_binary() -> anyhow::Result<PathBuf> {
    let binary = binary::beside_current_exe()?;
    match binary::cargo_build(binary::is_release(&binary)) {
        Ok(status) if status.success() => {}
        _ if binary.exists() => {
            eprintln!(
                "chaos: could not build hookfleet; using {}",
                binary.display()
            )
        }
        _ => bail!("{} is missing and could not be built", binary.display()),
    }
    Ok(binary)
}
