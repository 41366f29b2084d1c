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

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use hookfleet_chaos::{Settings, Size, outcome, scenarios};

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
    let exe = std::env::current_exe().context("cannot find the chaos binary itself")?;
    let dir = exe.parent().context("the executable has no directory")?;
    let binary = dir.join("hookfleet");
    let release = dir.file_name().is_some_and(|n| n == "release");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut build = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
    build
        .args(["build", "--bin", "hookfleet"])
        .current_dir(root);
    if release {
        build.arg("--release");
    }
    match build.status() {
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
