//! The `bottleneck` command line: parses arguments, calls the library crates, prints
//! errors as one chain and exits non-zero.

// The CLI is where printing to stdout belongs.
#![allow(clippy::print_stdout)]
// Doc comments here are clap help text shown in a terminal, not rustdoc.
#![allow(clippy::doc_markdown)]

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod data;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Autoencoder research: data, models, bottleneck sweeps and reports.
#[derive(Debug, Parser)]
#[command(name = "bottleneck", version, about, long_about = None)]
struct Cli {
    /// Log more (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Datasets: list sources, inspect one, fetch one from its mirrors.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let result = match cli.command {
        Command::Data { command } => data::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
