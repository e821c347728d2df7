//! The local launcher: a sweep's points as `bottleneck resume` processes on this machine.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{PointSpec, Sweep, PARENT_ENV};
use crate::error::{Result, TrainError};
use crate::lock::holder;
use crate::run::record_lost;
use crate::rundir::{Manifest, RunDir, Status};

/// How many points run at once and with how many threads each, so that
/// `jobs × threads ≤ cores` (jobs are capped at the cores and the points). Without
/// `--jobs`: one thread per point, as many points as cores (measured fastest for these
/// models; see the README's performance table).
#[must_use]
pub fn local_budget(jobs: Option<usize>, points: usize, cores: usize) -> (usize, usize) {
    let cores = cores.max(1);
    let jobs = jobs.unwrap_or(cores).clamp(1, cores).min(points.max(1));
    (jobs, (cores / jobs).max(1))
}

/// What the local launcher reports.
pub trait SweepObserver {
    /// A point's process started.
    fn started(&self, sweep: &Sweep, p: &PointSpec, threads: usize) {
        let _ = (sweep, p, threads);
    }
    /// A point ended (its manifest says how).
    fn finished(&self, sweep: &Sweep, p: &PointSpec, m: Option<&Manifest>) {
        let _ = (sweep, p, m);
    }
    /// A point's process died without an outcome; it is queued again from its checkpoint.
    fn retried(&self, sweep: &Sweep, p: &PointSpec, m: Option<&Manifest>) {
        let _ = (sweep, p, m);
    }
    /// About once a second while points run: (point, epochs written so far, epochs).
    fn tick(&self, sweep: &Sweep, running: &[(usize, usize, usize)]) {
        let _ = (sweep, running);
    }
}

/// Stop levels for [`run_local`]: 0 run on, 1 stop cleanly (points checkpoint), 2 now.
pub type StopLevel = AtomicUsize;

/// Epochs written to a point's `metrics.csv` so far.
fn epochs_written(dir: &RunDir) -> usize {
    fs_err::read_to_string(dir.file("metrics.csv")).map_or(0, |t| t.lines().count().saturating_sub(1))
}

/// Sends SIGTERM to a process (the `kill` command: no unsafe code for one signal).
fn terminate(child: &Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
}

/// Runs the points `todo` on this machine, `jobs` at a time with `threads` threads each
/// (or the point's `train.threads` when that is smaller), each as a `program resume`
/// process in its own process group. A point that fails does not stop the others; a
/// point whose process dies without an outcome is recorded as lost and queued again from
/// its checkpoint (until `launcher.max_retries` deaths without progress). On a stop
/// request every running point is sent SIGTERM (it checkpoints and is marked
/// interrupted) and no new point starts; at level 2 they are killed. If the launcher
/// itself fails, its running points are stopped the same way before the error returns:
/// no point outlives it unsupervised.
pub fn run_local(
    sweep: &Sweep,
    todo: &[usize],
    jobs: usize,
    threads: usize,
    program: &Path,
    stop: &StopLevel,
    obs: &dyn SweepObserver,
) -> Result<()> {
    let mut running: Vec<(usize, Child)> = Vec::new();
    let result = drive(sweep, todo, jobs, threads, program, stop, obs, &mut running);
    if result.is_err() {
        for (_, child) in &running {
            terminate(child);
        }
        let t0 = Instant::now();
        for (i, child) in &mut running {
            while child.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(100));
            }
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = settle(sweep, *i, true);
        }
    }
    result
}

/// After a point's process ended: a manifest still `running` (and no longer owned)
/// means the process died without an outcome. Returns whether to run the point again.
fn settle(sweep: &Sweep, i: usize, stopping: bool) -> Result<bool> {
    let dir = sweep.run_dir(&sweep.spec.points[i]);
    let Ok(mut m) = dir.read_manifest() else { return Ok(false) };
    if m.status != Status::Running || holder(&dir, Some(&m)).is_some() {
        return Ok(false);
    }
    if stopping {
        m.set_status(
            Status::Interrupted,
            Some(format!("stopped by the sweep before it recorded an outcome; {DIED_HINT}")),
        );
        dir.write_manifest(&m)?;
        return Ok(false);
    }
    record_lost(&dir, &mut m, "its process exited without recording an outcome (see task.log)")?;
    Ok(m.status == Status::Interrupted)
}

const DIED_HINT: &str = "`bottleneck sweep --resume` continues it from its last checkpoint";

#[allow(clippy::too_many_arguments)]
fn drive(
    sweep: &Sweep,
    todo: &[usize],
    jobs: usize,
    threads: usize,
    program: &Path,
    stop: &StopLevel,
    obs: &dyn SweepObserver,
    running: &mut Vec<(usize, Child)>,
) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let mut queue: std::collections::VecDeque<usize> = todo.iter().copied().collect();
    let mut signalled = 0;
    let mut last_tick = Instant::now();
    while !running.is_empty() || (!queue.is_empty() && stop.load(Ordering::SeqCst) == 0) {
        let level = stop.load(Ordering::SeqCst);
        if level > signalled {
            for (_, child) in running.iter_mut() {
                if level >= 2 {
                    let _ = child.kill();
                } else {
                    terminate(child);
                }
            }
            signalled = level;
        }
        while level == 0 && running.len() < jobs {
            let Some(i) = queue.pop_front() else { break };
            let p = &sweep.spec.points[i];
            let dir = sweep.run_dir(p);
            let cfg = dir.read_config()?;
            let t = if cfg.train.threads == 0 { threads } else { cfg.train.threads.min(threads) };
            let log = fs_err::OpenOptions::new().create(true).append(true).open(dir.file("task.log"))?;
            let child = Command::new(program)
                .args(["resume", "--quiet", "--threads", &t.to_string()])
                .arg(&dir.path)
                .current_dir(&sweep.spec.cwd)
                .env(PARENT_ENV, std::process::id().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log.into_parts().0))
                .process_group(0)
                .spawn()
                .map_err(|e| TrainError::Run { path: program.into(), reason: format!("starting a point: {e}") })?;
            obs.started(sweep, p, t);
            running.push((i, child));
        }
        let mut k = 0;
        while k < running.len() {
            if running[k].1.try_wait()?.is_some() {
                let (i, _) = running.remove(k);
                let p = &sweep.spec.points[i];
                let again = settle(sweep, i, stop.load(Ordering::SeqCst) > 0)?;
                let m = sweep.run_dir(p).read_manifest().ok();
                if again {
                    obs.retried(sweep, p, m.as_ref());
                    queue.push_back(i);
                } else {
                    obs.finished(sweep, p, m.as_ref());
                }
            } else {
                k += 1;
            }
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            let rows: Vec<(usize, usize, usize)> = running
                .iter()
                .map(|(i, _)| {
                    let dir = sweep.run_dir(&sweep.spec.points[*i]);
                    let epochs = dir.read_config().map_or(0, |c| c.train.epochs);
                    (*i, epochs_written(&dir), epochs)
                })
                .collect();
            obs.tick(sweep, &rows);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_jobs_times_threads_within_the_cores() {
        assert_eq!(local_budget(None, 6, 2), (2, 1));
        assert_eq!(local_budget(Some(1), 6, 2), (1, 2));
        assert_eq!(local_budget(Some(4), 6, 2), (2, 1), "no more jobs than cores");
        assert_eq!(local_budget(None, 1, 16), (1, 16));
        assert_eq!(local_budget(Some(3), 6, 16), (3, 5));
    }
}
