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
mod runs;
mod sweep;
mod train;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 2's and 3's `mimalloc.h` (`enum mi_option_e`): how
/// many milliseconds freed memory stays mapped before it goes back to the OS; −1: never.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps memory that mimalloc has freed mapped, for the process's lifetime. A training
/// step frees and allocates the same megabytes of activations and gradients every few
/// milliseconds; with mimalloc 3's default (purge after 1 s) a 60-step conv profile took
/// 7,674 page faults, each a huge page the kernel zeroes again, against 275 (start-up
/// only) without purging: a `fashion-conv` epoch 6–7% faster, a dense one about 3%. The
/// resident size stays at its peak instead of falling between steps.
/// `MIMALLOC_PURGE_DELAY` in the environment still wins.
#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: called at the start of `main`, before any other thread exists (the function
    // is not thread-safe); it stores one integer option.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, -1) }
}

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
        /// Skip the figures and report.html (`bottleneck report DIR` draws them later).
        #[arg(long)]
        no_report: bool,
    },
    /// Train a grid of runs: `bottleneck sweep experiments/fashion-bottleneck-sweep.toml`.
    ///
    /// The grid is the experiment's [sweep] table times the command line's lists:
    /// model.latent_dim=2,4,8  'model.latent_dim=range(2,34,8)'  model=dense,conv
    /// 'model.activation=choice(relu,gelu)'. Points run as `bottleneck resume` processes,
    /// locally (--jobs at a time) or as a Slurm job array (--launcher slurm, resources from
    /// [launcher.slurm]). Results: runs/NAME/TIMESTAMP/ with a run directory per point and
    /// summary.csv/.parquet. Exit status 1 when a point failed, 130 when interrupted.
    Sweep(sweep::SweepArgs),
    /// (Re)draw the figures and report.html of a run or a sweep directory.
    Report {
        /// runs/NAME/TIMESTAMP (a run or a sweep).
        dir: PathBuf,
    },
    /// Several runs and sweeps in one offline report: metrics side by side, loss curves
    /// overlaid, the sweeps' curves on one plot: `bottleneck compare runs/a/T1 runs/b/T2 --out cmp`.
    Compare {
        /// Run or sweep directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where to write report.html and plots/.
        #[arg(long)]
        out: PathBuf,
    },
    /// One table of every run and sweep point under runs/ (or DIR): name, status, the
    /// overrides that made it, epochs, test metrics, path.
    Runs(runs::RunsArgs),
    /// A trained encoder as a feature extractor: the codes of a split of the run's data, or
    /// of other data (data.* overrides), with labels and known factors, as Parquet:
    /// `bottleneck encode runs/fashion-dense/T --split all --out codes.parquet [data.name=mnist]`.
    Encode {
        /// The run directory (runs/NAME/TIMESTAMP).
        run_dir: PathBuf,
        /// train, val, test or all.
        #[arg(long, default_value = "test")]
        split: String,
        /// The Parquet file to write.
        #[arg(long)]
        out: PathBuf,
        /// data.KEY=VALUE overrides: encode other data of the same sample shape, normalised
        /// as the run's training data was (from the run's data.safetensors; the run's own
        /// data is not loaded).
        overrides: Vec<String>,
    },
    /// Continue an interrupted run from its last checkpoint.
    Resume {
        /// The run directory (runs/NAME/TIMESTAMP).
        run_dir: PathBuf,
        /// Worker threads (default: train.threads of the run's config; 0 there = all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Train on to this many epochs (a finished run too): train.epochs is set to N in
        /// its config.toml and the schedule recomputed for N.
        #[arg(long)]
        epochs: Option<usize>,
        /// Train on this device instead of the config's (cpu, cuda:N, auto): a run
        /// started on a GPU goes on on the CPU and the other way round.
        #[arg(long)]
        device: Option<String>,
        /// No progress output.
        #[arg(short, long)]
        quiet: bool,
        /// Skip the figures and report.html (`bottleneck report DIR` draws them later).
        #[arg(long)]
        no_report: bool,
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

/// Set while a command draws figures and reports after its results are saved: an
/// interrupt then exits at once with 130 (every file is written atomically, and
/// `bottleneck report DIR` draws them again).
pub static REPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For the interrupt handlers: exits if the command is only drawing its report.
pub fn exit_if_reporting() {
    if REPORTING.load(std::sync::atomic::Ordering::SeqCst) {
        eprintln!("interrupt: the results are saved; skipping the report (`bottleneck report DIR` draws it)");
        std::process::exit(130);
    }
}

/// Writes to stdout; a closed pipe (`bottleneck config ... | head`) is not an error.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let quiet = match &cli.command {
        Command::Run { quiet, .. } | Command::Resume { quiet, .. } => *quiet,
        Command::Sweep(args) => args.quiet,
        _ => false,
    };
    logging::init(cli.verbose, quiet);
    let result = match cli.command {
        Command::Data { command } => data::run(command),
        Command::Run { experiment, overrides, runs, quiet, no_report } => {
            train::skip_report(no_report);
            train::run(&experiment, &overrides, runs, quiet)
        }
        Command::Resume { run_dir, threads, epochs, device, quiet, no_report } => {
            train::skip_report(no_report);
            train::resume(&run_dir, threads, epochs, device.as_deref(), quiet)
        }
        Command::Sweep(args) => sweep::run(args),
        Command::Report { dir } => train::report(&dir),
        Command::Compare { dirs, out } => train::compare(&dirs, &out),
        Command::Runs(args) => runs::run(&args),
        Command::Encode { run_dir, split, out, overrides } => train::encode(&run_dir, &split, &overrides, &out),
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

#[cfg(test)]
mod tests {
    use super::MI_OPTION_PURGE_DELAY;

    /// The option index is the purge delay's: the linked library is mimalloc 2 or 3, and
    /// the option at that index has the purge delay's default (10 ms in 2, 1 s in 3).
    #[test]
    #[allow(unsafe_code)]
    fn the_option_set_is_mimallocs_purge_delay() {
        // SAFETY: reads the linked library's version and one option's value.
        let version = unsafe { libmimalloc_sys::mi_version() };
        let default = match version / 10000 {
            2 => 10,
            3 => 1000,
            _ => panic!("mimalloc {version}: MI_OPTION_PURGE_DELAY is the index in mimalloc 2 and 3"),
        };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() && std::env::var_os("MIMALLOC_RESET_DELAY").is_none() {
            // SAFETY: as above.
            assert_eq!(unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }, default);
        }
    }
}
