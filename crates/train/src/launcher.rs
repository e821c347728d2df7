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
    /// `--time` per task, `[D-]HH:MM:SS` or minutes (a string, or an integer of minutes).
    #[serde(deserialize_with = "minutes_or_text")]
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
    /// How long before its time limit a task is warned (`--signal=B:USR1@N`, at most half
    /// the limit): the point stops with a checkpoint and the task requeues itself to
    /// continue from it. 0: no warning and no requeue (a time limit's SIGTERM still leaves
    /// a checkpoint).
    pub signal_seconds: u64,
    /// How many times a task may requeue itself at its time limit; past that the point
    /// stays `interrupted` (with its checkpoint) for `sweep --resume`.
    pub max_requeues: u32,
}

/// Default of `launcher.slurm.signal_seconds`: time for a batch and a checkpoint, plus
/// the up-to-60 s by which Slurm may send the warning early.
pub const DEFAULT_SIGNAL_SECONDS: u64 = 300;

/// The largest `--signal` offset Slurm accepts.
pub const MAX_SIGNAL_SECONDS: u64 = 65_535;

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
            signal_seconds: DEFAULT_SIGNAL_SECONDS,
            max_requeues: 10,
        }
    }
}

impl SlurmConfig {
    /// The first invalid key: (key, value, what is allowed).
    #[must_use]
    pub fn check(&self) -> Option<(&'static str, String, &'static str)> {
        let time_ok = time_seconds(&self.time).is_some();
        let mem_ok = self.mem.is_empty() || {
            let digits = self.mem.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
            !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
        };
        let one_line = |s: &str| !s.contains(['\n', '\r']);
        let checks: [(&'static str, String, bool, &'static str); 8] = [
            (
                "launcher.slurm.time",
                format!("\"{}\"", self.time),
                time_ok,
                "use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, e.g. \"04:00:00\"",
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
            (
                "launcher.slurm.signal_seconds",
                self.signal_seconds.to_string(),
                self.signal_seconds <= MAX_SIGNAL_SECONDS,
                "seconds before the time limit, at most 65535 (0: no warning)",
            ),
        ];
        checks.into_iter().find(|c| !c.2).map(|(k, v, _, a)| (k, v, a))
    }

    /// The warning's lead in seconds: `signal_seconds`, at most half the time limit.
    #[must_use]
    pub fn warning_seconds(&self) -> u64 {
        time_seconds(&self.time).map_or(self.signal_seconds, |limit| self.signal_seconds.min(limit / 2))
    }
}

/// `time = 30` (minutes, as sbatch reads a bare number) or `time = "04:00:00"`.
fn minutes_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Time;
    impl serde::de::Visitor<'_> for Time {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("minutes (an integer) or a time such as \"04:00:00\"")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            u64::try_from(v)
                .map(|m| m.to_string())
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(Time)
}

/// A Slurm `--time` in seconds: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M` or `D-H:M:S`
/// (sbatch(1)); `None` if it is none of these or zero.
#[must_use]
pub fn time_seconds(time: &str) -> Option<u64> {
    let num =
        |s: &str| (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())).then(|| s.parse::<u64>().ok()).flatten();
    let (days, rest) = match time.split_once('-') {
        Some((d, rest)) => (Some(num(d)?), rest),
        None => (None, time),
    };
    let parts: Vec<u64> = rest.split(':').map(num).collect::<Option<_>>()?;
    let seconds = match (days, parts.as_slice()) {
        (None, [m]) => m.checked_mul(60)?,
        (None, [m, s]) => m.checked_mul(60)?.checked_add(*s)?,
        (None | Some(_), [h, m, s]) => h.checked_mul(3600)?.checked_add(m.checked_mul(60)?)?.checked_add(*s)?,
        (Some(_), [h]) => h.checked_mul(3600)?,
        (Some(_), [h, m]) => h.checked_mul(3600)?.checked_add(m.checked_mul(60)?)?,
        _ => return None,
    };
    let seconds = seconds.checked_add(days.unwrap_or(0).checked_mul(86_400)?)?;
    (seconds > 0).then_some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_times_read_as_sbatch_reads_them() {
        assert_eq!(time_seconds("30"), Some(1800));
        assert_eq!(time_seconds("1:30"), Some(90));
        assert_eq!(time_seconds("04:00:00"), Some(14_400));
        assert_eq!(time_seconds("2-12"), Some(2 * 86_400 + 12 * 3600));
        assert_eq!(time_seconds("1-0:30"), Some(86_400 + 1800));
        assert_eq!(time_seconds("1-00:00:10"), Some(86_410));
        for bad in ["", "0", "1:2:3:4", "-4", "1-", "a", "1-2-3", "4h", ":30", "99999999999999999999"] {
            assert_eq!(time_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_warning_comes_at_most_half_way_to_the_limit() {
        let cfg =
            |time: &str, signal| SlurmConfig { time: time.into(), signal_seconds: signal, ..SlurmConfig::default() };
        assert_eq!(cfg("04:00:00", 300).warning_seconds(), 300);
        assert_eq!(cfg("1", 15).warning_seconds(), 15);
        assert_eq!(cfg("1", 300).warning_seconds(), 30);
        assert_eq!(cfg("1", 0).warning_seconds(), 0);
        assert_eq!(cfg("1", 300).check(), None);
        assert_eq!(cfg("99-0", 70_000).check().map(|c| c.0), Some("launcher.slurm.signal_seconds"));
        assert_eq!(cfg("1h", 20).check().map(|c| c.0), Some("launcher.slurm.time"));
    }
}
