//! The `[launcher]` section: where a sweep's points run.

use serde::{Deserialize, Serialize};

/// `[launcher]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LauncherConfig {
    /// How many times in a row a point's process may die without a new checkpoint
    /// (killed, out of memory, node lost) before `sweep --resume` and the Slurm summary
    /// job stop retrying it and report it failed as lost.
    pub max_retries: u32,
    /// `[launcher.slurm]`: resources of each array task.
    pub slurm: SlurmConfig,
}

/// Default of `launcher.max_retries`.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

impl Default for LauncherConfig {
    fn default() -> Self {
        Self { max_retries: DEFAULT_MAX_RETRIES, slurm: SlurmConfig::default() }
    }
}

/// `[launcher.slurm]`: the `#SBATCH` lines of a sweep's job array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmConfig {
    /// `--partition` (empty: the cluster's default).
    pub partition: String,
    /// `--time` per task, `[D-]HH:MM:SS` or minutes.
    pub time: String,
    /// `--cpus-per-task`; each point trains with this many threads.
    pub cpus_per_task: usize,
    /// `--mem` per task (`4G`, `8000M`; empty: the cluster's default).
    pub mem: String,
    /// `--gres` (`gpu:1`; empty: none).
    pub gres: String,
    /// `%P` in `--array=0-N%P`: tasks running at once (0: no cap).
    pub max_parallel: usize,
    /// Further `#SBATCH` lines, e.g. `["--account=proj42", "--qos=short"]`.
    pub extra: Vec<String>,
    /// Seconds between `squeue` polls while waiting.
    pub poll_seconds: u64,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        Self {
            partition: String::new(),
            time: "04:00:00".into(),
            cpus_per_task: 2,
            mem: "8G".into(),
            gres: String::new(),
            max_parallel: 0,
            extra: Vec::new(),
            poll_seconds: 2,
        }
    }
}

impl SlurmConfig {
    /// The first invalid key: (key, value, what is allowed).
    #[must_use]
    pub fn check(&self) -> Option<(&'static str, String, &'static str)> {
        let time_ok = !self.time.is_empty()
            && self.time.chars().all(|c| c.is_ascii_digit() || c == ':' || c == '-')
            && self.time.chars().next().is_some_and(|c| c.is_ascii_digit());
        let mem_ok = self.mem.is_empty() || {
            let digits = self.mem.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
            !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
        };
        let one_line = |s: &str| !s.contains(['\n', '\r']);
        let checks: [(&'static str, String, bool, &'static str); 7] = [
            (
                "launcher.slurm.time",
                format!("\"{}\"", self.time),
                time_ok,
                "use [D-]HH:MM:SS, MM:SS or minutes, e.g. \"04:00:00\"",
            ),
            (
                "launcher.slurm.cpus_per_task",
                self.cpus_per_task.to_string(),
                self.cpus_per_task >= 1,
                "must be at least 1",
            ),
            (
                "launcher.slurm.mem",
                format!("\"{}\"", self.mem),
                mem_ok,
                "a size such as \"4G\" or \"8000M\" (empty: the cluster's default)",
            ),
            (
                "launcher.slurm.poll_seconds",
                self.poll_seconds.to_string(),
                self.poll_seconds >= 1,
                "must be at least 1",
            ),
            (
                "launcher.slurm.partition",
                format!("\"{}\"", self.partition),
                !self.partition.contains(char::is_whitespace),
                "a partition name without spaces",
            ),
            (
                "launcher.slurm.gres",
                format!("\"{}\"", self.gres),
                !self.gres.contains(char::is_whitespace),
                "e.g. \"gpu:1\", no spaces",
            ),
            (
                "launcher.slurm.extra",
                format!("{:?}", self.extra),
                self.extra.iter().all(|l| one_line(l) && l.trim_start().starts_with('-')),
                "a list of sbatch options, one per item, each starting with `-` (\"--qos=short\")",
            ),
        ];
        checks.into_iter().find(|c| !c.2).map(|(k, v, _, a)| (k, v, a))
    }
}
