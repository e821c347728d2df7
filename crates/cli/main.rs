//! The `bottleneck` command line: parses arguments, calls the library crates, prints
//! errors as one chain and exits non-zero.

// The CLI is where printing to stdout belongs.
#![allow(clippy::print_stdout)]
// Doc comments here are clap help text shown in a terminal, not rustdoc.
#![allow(clippy::doc_markdown)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod data;
mod logging;
mod train;

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
    /// Train one run of an experiment: `bottleneck run experiments/fashion-dense.toml model.latent_dim=8`.
    Run {
        /// The experiment file (experiments/NAME.toml).
        experiment: PathBuf,
        /// Overrides: key=value, group=option (model=conv), +key=value.
        overrides: Vec<String>,
        /// Root of the run directories (default: BOTTLENECK_RUNS_DIR, then runs/).
        #[arg(long)]
        runs: Option<PathBuf>,
        /// No progress output (logs still go to train.log).
        #[arg(short, long)]
        quiet: bool,
    },
    /// Continue an interrupted run from its last checkpoint.
    Resume {
        /// The run directory (runs/NAME/TIMESTAMP).
        run_dir: PathBuf,
        /// No progress output.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print the resolved config and where each value came from.
    Config {
        /// The experiment file.
        experiment: PathBuf,
        /// Overrides, as for `run`.
        overrides: Vec<String>,
    },
    /// Datasets: list sources, inspect one, fetch one from its mirrors.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
}

/// Writes to stdout; a closed pipe (`bottleneck config ... | head`) is not an error.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Run { quiet: true, .. } | Command::Resume { quiet: true, .. });
    logging::init(cli.verbose, quiet);
    let result = match cli.command {
        Command::Data { command } => data::run(command),
        Command::Run { experiment, overrides, runs, quiet } => train::run(&experiment, &overrides, runs, quiet),
        Command::Resume { run_dir, quiet } => train::resume(&run_dir, quiet),
        Command::Config { experiment, overrides } => train::config(&experiment, &overrides),
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
