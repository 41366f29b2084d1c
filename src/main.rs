//! `hookfleet`: the one binary of the fleet (docs/contract.md §4).
//!
//! # Layout
//! - [`settings`]: every flag and environment variable, parsed and checked.
//! - [`cli`]: one module per command.
//! - [`logging`]: `tracing` set up as `HOOKFLEET_LOG_FORMAT` and `RUST_LOG` say.
#![forbid(unsafe_code)]

mod cli;
mod logging;
mod settings;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

/// jemalloc instead of glibc's malloc: a delivery allocates and frees many small buffers, and
/// the history writer frees on its own thread what the delivery thread allocated. glibc's
/// malloc and free were 16 % of a saturated worker's CPU samples; jemalloc's are 5 %.
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            eprintln!("{}", settings_error(&e));
            return ExitCode::from(2);
        }
        Err(e) => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    // The demo prints its own story on stdout; its worker's info lines would drown it.
    let quiet = matches!(cli.command, cli::Command::Demo(_));
    logging::init(cli.common.log_format, if quiet { "warn" } else { "info" });
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let cli::Command::Worker(args) = &cli.command {
        runtime.worker_threads(args.worker.threads.into());
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Clap's error as one line that names the setting and its environment variable, as the
/// contract asks of bad settings.
fn settings_error(error: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let rendered = error.render().to_string();
    let line = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("error: invalid arguments")
        .trim()
        .to_owned();
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return line;
    };
    let long = arg
        .trim_start_matches('-')
        .split([' ', '='])
        .next()
        .unwrap_or_default();
    // Clap quotes the refused value; a URL setting's value may carry a password.
    let line = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value))
            if long.ends_with("-url") && value.contains(['@', '?', '#']) =>
        {
            // A RabbitMQ URL may list several nodes: each is redacted on its own.
            let redacted: Vec<String> = (value.split(','))
                .map(|u| hookfleet_core::target::redact_url(u.trim()))
                .collect();
            line.replace(value, &redacted.join(","))
        }
        _ => line,
    };
    match env_of(&cli::Cli::command(), long) {
        Some(env) => format!("{line} (setting {env})"),
        None => line,
    }
}

/// The environment variable of the flag `--long`, in any subcommand.
fn env_of(command: &clap::Command, long: &str) -> Option<String> {
    command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .or_else(|| command.get_subcommands().find_map(|c| env_of(c, long)))
}
