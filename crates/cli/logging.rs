//! One tracing subscriber: stderr, plus the run's `train.log` once a run directory exists.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Result;
use tracing_subscriber::fmt::MakeWriter;

static LOG_FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Writes each event to stderr and, when attached, to the log file.
#[derive(Clone, Copy)]
struct Tee;

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut f) = LOG_FILE.lock() {
            if let Some(f) = f.as_mut() {
                f.write_all(buf)?;
            }
        }
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for Tee {
    type Writer = Tee;
    fn make_writer(&'a self) -> Self::Writer {
        Tee
    }
}

/// Installs the subscriber: `-v`/`-vv` or `RUST_LOG` pick the level (default: info for
/// bottleneck's own crates, warnings from the rest).
pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "warn,bottleneck=info,bottleneck_train=info,bottleneck_data=info",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(Tee).with_ansi(false).with_target(false).init();
}

/// Appends log output to `path` from now on.
pub fn attach_file(path: &Path) -> Result<()> {
    let f = fs_err::OpenOptions::new().create(true).append(true).open(path)?;
    if let Ok(mut slot) = LOG_FILE.lock() {
        *slot = Some(f.into_parts().0);
    }
    Ok(())
}

/// Writes a line to the log file only (for `--quiet` runs).
pub fn to_file_only(line: &str) {
    if let Ok(mut f) = LOG_FILE.lock() {
        if let Some(f) = f.as_mut() {
            let _ = writeln!(f, "{} {line}", bottleneck_train::rundir::now());
        }
    }
}
