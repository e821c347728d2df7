//! The Slurm launcher: a sweep as one job array (a task per point, `--array=…%P`,
//! `%A_%a` logs, resources from `[launcher.slurm]`) and a dependent job (`afterany`)
//! that writes the summary once every task has ended. Each task trains its point with
//! `bottleneck resume --threads $SLURM_CPUS_PER_TASK <point dir>` and records its own
//! status in the point's `manifest.json`. Warned `launcher.slurm.signal_seconds` before
//! its time limit, a task stops its point with a checkpoint and requeues itself
//! (`scontrol requeue`, at most `launcher.slurm.max_requeues` times), so a point longer
//! than the limit finishes on its own; the dependent job waits for the requeued task. A
//! task killed before it recorded an outcome (out of memory, node failure) is recorded as
//! lost by the summary job and keeps its checkpoint.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::error::{Result, TrainError};
use crate::launcher::SlurmConfig;
use crate::rundir::now;
use crate::sweep::{SlurmJobs, Sweep};

/// The reason given to a point whose task ended without recording an outcome.
pub const LOST: &str = "its Slurm task ended without recording an outcome (killed for memory or time, or the node failed); see the task's log in slurm/";

/// Quotes text for bash.
#[must_use]
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `--array` for these points: ranges where they are consecutive, `%P` when capped.
#[must_use]
pub fn array_spec(points: &[usize], max_parallel: usize) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < points.len() {
        let start = points[i];
        let mut end = start;
        while i + 1 < points.len() && points[i + 1] == end + 1 {
            i += 1;
            end = points[i];
        }
        parts.push(if end == start { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    let mut spec = parts.join(",");
    if max_parallel > 0 {
        let _ = write!(spec, "%{max_parallel}");
    }
    spec
}

fn common_lines(out: &mut String, cfg: &SlurmConfig, cwd: &Path) {
    let _ = writeln!(out, "#SBATCH --chdir={}", cwd.display());
    if !cfg.partition.is_empty() {
        let _ = writeln!(out, "#SBATCH --partition={}", cfg.partition);
    }
    for line in &cfg.extra {
        let _ = writeln!(out, "#SBATCH {}", line.trim());
    }
}

/// `export BOTTLENECK_NO_REPORT=1` when the sweep was started with `--no-report` (not
/// left to sbatch's environment export, which a cluster may turn off).
fn no_report_line(out: &mut String) {
    if crate::run::no_report() {
        let _ = writeln!(out, "export {}=1", crate::run::NO_REPORT_ENV);
    }
}

/// The array job's script for `points` of `sweep`.
#[must_use]
pub fn array_script(sweep: &Sweep, points: &[usize], cfg: &SlurmConfig, program: &Path) -> String {
    let spec = &sweep.spec;
    let logs = sweep.path.join("slurm");
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(s, "# bottleneck sweep `{}`: one array task per point. Written by `bottleneck sweep`.", spec.name);
    let _ = writeln!(s, "#SBATCH --job-name=bottleneck-{}", spec.name);
    let _ = writeln!(s, "#SBATCH --array={}", array_spec(points, cfg.max_parallel));
    let _ = writeln!(s, "#SBATCH --output={}/%A_%a.out", logs.display());
    let _ = writeln!(s, "#SBATCH --cpus-per-task={}", cfg.cpus_per_task);
    let _ = writeln!(s, "#SBATCH --time={}", cfg.time);
    if !cfg.mem.is_empty() {
        let _ = writeln!(s, "#SBATCH --mem={}", cfg.mem);
    }
    if !cfg.gres.is_empty() {
        let _ = writeln!(s, "#SBATCH --gres={}", cfg.gres);
    }
    let warning = cfg.warning_seconds();
    if warning > 0 {
        // Warned before the time limit, the task checkpoints and requeues itself; the log
        // of every start goes on one file.
        let _ = writeln!(s, "#SBATCH --signal=B:USR1@{warning}");
        let _ = writeln!(s, "#SBATCH --requeue");
        let _ = writeln!(s, "#SBATCH --open-mode=append");
    }
    common_lines(&mut s, cfg, &spec.cwd);
    let _ = writeln!(s, "set -euo pipefail");
    no_report_line(&mut s);
    let _ = writeln!(s, "# Point index -> run directory.");
    let dirs: Vec<String> = points.iter().map(|&i| format!("[{i}]={}", spec.points[i].dir)).collect();
    let _ = writeln!(s, "DIRS=({})", dirs.join(" "));
    let _ = writeln!(s, "DIR={}/\"${{DIRS[$SLURM_ARRAY_TASK_ID]}}\"", quote(&sweep.path.display().to_string()));
    let _ = writeln!(
        s,
        "echo \"point $SLURM_ARRAY_TASK_ID on $(hostname), start $((${{SLURM_RESTART_COUNT:-0}} + 1)): $DIR\""
    );
    let _ = writeln!(s, "{}", TASK_BODY.trim_end());
    let program = quote(&program.display().to_string());
    let threads = format!("\"${{SLURM_CPUS_PER_TASK:-{}}}\"", cfg.cpus_per_task);
    // A task given GPUs (`gres`) sees its allocation's, numbered from 0: it trains on the
    // first whatever `device` the config names.
    let device = if crate::device::gres_has_gpu(&cfg.gres) {
        format!(" --device {}", crate::sweep::POINT_DEVICE)
    } else {
        String::new()
    };
    let _ = writeln!(s, "{program} resume --quiet --threads {threads}{device} \"$DIR\" &");
    let _ = writeln!(s, "{}", TASK_WAIT.trim_end());
    if warning > 0 {
        let _ = writeln!(s, "{}", TASK_REQUEUE.trim_end().replace("MAX_REQUEUES", &cfg.max_requeues.to_string()));
    }
    let _ = writeln!(s, "exit \"$status\"");
    s
}

/// Signals of an array task. The point trains as a child of the shell (not `exec`), so
/// that the shell can hear Slurm's time-limit warning (`--signal=B:USR1@N` goes to the
/// shell alone) and pass it on as SIGTERM: the point stops after its batch with a
/// checkpoint. A cancel or the time limit itself signals every process of the task, the
/// point included, so the shell then only waits for it (passing SIGTERM on too would be a
/// second interrupt, which exits without a checkpoint). A batch job has no terminal to
/// hang up: SIGHUP is ignored.
const TASK_BODY: &str = r#"near_limit=0
child=
trap 'near_limit=1; echo "time limit near: stopping the point with a checkpoint"; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true' USR1
trap 'echo "SIGTERM: the point stops with a checkpoint"' TERM
trap 'echo "SIGHUP ignored: the point goes on"' HUP
"#;

/// Waits for the point through any trapped signal (`wait` returns early on one).
const TASK_WAIT: &str = r#"child=$!
while :; do
  if wait "$child"; then status=0; else status=$?; fi
  kill -0 "$child" 2>/dev/null || break
done
"#;

/// After the warning, an interrupted point (exit 130) requeues its own task: the same
/// task starts again (after Slurm's requeue delay) and continues from the checkpoint.
const TASK_REQUEUE: &str = r#"if [ "$near_limit" = 1 ] && [ "$status" = 130 ]; then
  restarts=${SLURM_RESTART_COUNT:-0}
  if [ "$restarts" -lt MAX_REQUEUES ]; then
    echo "requeueing task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} to continue from the checkpoint (requeue $((restarts + 1)) of at most MAX_REQUEUES, launcher.slurm.max_requeues)"
    scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
    exit 0
  fi
  echo "not requeued: MAX_REQUEUES requeues used (launcher.slurm.max_requeues); the point is interrupted with its checkpoint, for bottleneck sweep --resume"
fi
"#;

/// The dependent job's script: marks points whose task recorded nothing as failed and
/// writes `summary.csv` / `summary.parquet`.
#[must_use]
pub fn summary_script(sweep: &Sweep, cfg: &SlurmConfig, program: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(s, "# Runs after every task of the array (afterany): the sweep's summary and report");
    let _ = writeln!(s, "# (the report loads the dataset for the PCA baseline, hence the memory).");
    let _ = writeln!(s, "#SBATCH --job-name=bottleneck-{}-summary", sweep.spec.name);
    let _ = writeln!(s, "#SBATCH --output={}/%j-summary.out", sweep.path.join("slurm").display());
    let _ = writeln!(s, "#SBATCH --cpus-per-task=1");
    let _ = writeln!(s, "#SBATCH --time=00:15:00");
    let _ = writeln!(s, "#SBATCH --mem=4G");
    common_lines(&mut s, cfg, &sweep.spec.cwd);
    let _ = writeln!(s, "set -euo pipefail");
    no_report_line(&mut s);
    let _ = writeln!(
        s,
        "exec {} sweep --collect {} --mark-lost",
        quote(&program.display().to_string()),
        quote(&sweep.path.display().to_string())
    );
    s
}

fn slurm_command(name: &str) -> Command {
    Command::new(name)
}

fn run_tool(mut cmd: Command, what: &str) -> Result<(bool, String, String)> {
    let out = cmd.output().map_err(|e| {
        TrainError::Config(format!(
            "{what}: {e}; is Slurm installed and SLURM_CONF set? (`scripts/slurm-local.sh start` brings up a one-machine cluster)"
        ))
    })?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}

fn sbatch(script: &Path, extra: &[&str]) -> Result<String> {
    let mut cmd = slurm_command("sbatch");
    cmd.arg("--parsable").args(extra).arg(script);
    let (ok, out, err) = run_tool(cmd, "running sbatch")?;
    if !ok {
        return Err(TrainError::Run { path: script.into(), reason: format!("sbatch refused the script: {err}") });
    }
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let id = out.lines().last().unwrap_or_default().split(';').next().unwrap_or_default().trim().to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(TrainError::Run { path: script.into(), reason: format!("sbatch printed no job id: {out} {err}") });
    }
    Ok(id)
}

/// Writes the scripts into `<sweep>/slurm/`, submits the array and the dependent summary
/// job, and records both in `sweep.toml`.
pub fn submit(sweep: &mut Sweep, points: &[usize], cfg: &SlurmConfig, program: &Path) -> Result<SlurmJobs> {
    let dir = sweep.path.join("slurm");
    fs_err::create_dir_all(&dir)?;
    let k = sweep.spec.slurm_jobs.len();
    let array_file = dir.join(format!("array-{k}.sbatch"));
    let summary_file = dir.join(format!("summary-{k}.sbatch"));
    bottleneck_data::atomic::write_atomic(&array_file, array_script(sweep, points, cfg, program).as_bytes())?;
    bottleneck_data::atomic::write_atomic(&summary_file, summary_script(sweep, cfg, program).as_bytes())?;
    let array = sbatch(&array_file, &[])?;
    let summary = sbatch(&summary_file, &[&format!("--dependency=afterany:{array}"), "--kill-on-invalid-dep=yes"])?;
    let jobs = SlurmJobs { array, summary, submitted: now(), points: points.to_vec() };
    sweep.spec.launcher = "slurm".into();
    sweep.spec.slurm_jobs.push(jobs.clone());
    sweep.save()?;
    Ok(jobs)
}

/// Job states still in the queue for these jobs (`PENDING`, `RUNNING`, ...), one per
/// task; empty once everything has ended.
pub fn queued(jobs: &SlurmJobs) -> Result<Vec<String>> {
    let mut cmd = slurm_command("squeue");
    cmd.args(["--noheader", "--array", "--format=%i %T", &format!("--jobs={},{}", jobs.array, jobs.summary)]);
    let (ok, out, err) = run_tool(cmd, "running squeue")?;
    if !ok {
        // Jobs the controller no longer knows have ended.
        if err.contains("Invalid job id") {
            return Ok(Vec::new());
        }
        return Err(TrainError::Config(format!("squeue failed: {err}")));
    }
    Ok(out.lines().filter_map(|l| l.split_whitespace().nth(1).map(str::to_string)).collect())
}

/// The tasks of array job `array` still in the queue: array index → state (`PENDING`,
/// `RUNNING`, `REQUEUED`, ...). Empty once the array has ended (or Slurm has forgotten it).
pub fn queued_tasks(array: &str) -> Result<std::collections::BTreeMap<usize, String>> {
    let mut cmd = slurm_command("squeue");
    cmd.args(["--noheader", "--array", "--format=%i %T", &format!("--jobs={array}")]);
    let (ok, out, err) = run_tool(cmd, "running squeue")?;
    if !ok {
        if err.contains("Invalid job id") {
            return Ok(std::collections::BTreeMap::new());
        }
        return Err(TrainError::Config(format!("squeue failed: {err}")));
    }
    Ok(parse_tasks(&out))
}

/// `squeue --array --format="%i %T"` lines → array index → state.
fn parse_tasks(out: &str) -> std::collections::BTreeMap<usize, String> {
    out.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let id = parts.next()?;
            let state = parts.next()?;
            let index = id.split_once('_')?.1.parse().ok()?;
            Some((index, state.to_string()))
        })
        .collect()
}

/// Cancels the jobs: running tasks get SIGTERM (they checkpoint and stop), pending ones
/// never start.
pub fn cancel(jobs: &SlurmJobs) -> Result<()> {
    let mut cmd = slurm_command("scancel");
    cmd.args([&jobs.summary, &jobs.array]);
    let (ok, _, err) = run_tool(cmd, "running scancel")?;
    if ok {
        Ok(())
    } else {
        Err(TrainError::Config(format!("scancel failed: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_compress_to_ranges() {
        assert_eq!(array_spec(&[0, 1, 2, 3, 4, 5], 0), "0-5");
        assert_eq!(array_spec(&[0, 1, 2, 3, 4, 5], 2), "0-5%2");
        assert_eq!(array_spec(&[2, 3, 5], 0), "2-3,5");
        assert_eq!(array_spec(&[4], 1), "4%1");
    }

    #[test]
    fn queued_tasks_parse_by_array_index() {
        let t = parse_tasks("812_0 RUNNING\n812_3 PENDING\n812_[4-5%2] PENDING\n813 PENDING\n");
        assert_eq!(t.len(), 2);
        assert_eq!(t[&0], "RUNNING");
        assert_eq!(t[&3], "PENDING");
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }
}
