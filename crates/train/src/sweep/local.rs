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

/// With `--gpus`: one point per GPU at a time (capped at the points), the cores shared
/// among them (at least one thread each).
#[must_use]
pub fn gpu_budget(gpus: usize, points: usize, cores: usize) -> (usize, usize) {
    let jobs = gpus.clamp(1, points.max(1));
    (jobs, (cores.max(1) / jobs).max(1))
}

/// How the local launcher spreads points over this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Points at a time (at most the GPUs' number, when there are GPUs).
    pub jobs: usize,
    /// Threads of each point (or its `train.threads`, when that is smaller).
    pub threads: usize,
    /// `CUDA_VISIBLE_DEVICES` entries, one point on each at a time (`--gpus`); empty: the
    /// points train on the device their config names.
    pub gpus: Vec<String>,
}

/// The GPU a point process trains on: it sees only this one (`CUDA_VISIBLE_DEVICES`), as
/// `cuda:0`.
pub const POINT_DEVICE: &str = "cuda:0";

/// What the local launcher reports.
pub trait SweepObserver {
    /// A point's process started (on GPU `gpu`, as `CUDA_VISIBLE_DEVICES` names it).
    fn started(&self, sweep: &Sweep, p: &PointSpec, threads: usize, gpu: Option<&str>) {
        let _ = (sweep, p, threads, gpu);
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

/// Runs the points `todo` on this machine per `budget`, each as a `program resume`
/// process in its own process group. With GPUs in the budget each process gets one no
/// other running point has, sees only it, and trains on it as [`POINT_DEVICE`]. A point
/// that fails does not stop the others; a point whose process dies without an outcome is
/// recorded as lost and queued again from its checkpoint (until `launcher.max_retries`
/// deaths without progress). On a stop
/// request every running point is sent SIGTERM (it checkpoints and is marked
/// interrupted) and no new point starts; at level 2 they are killed. If the launcher
/// itself fails, its running points are stopped the same way before the error returns:
/// no point outlives it unsupervised.
pub fn run_local(
    sweep: &Sweep,
    todo: &[usize],
    budget: &Budget,
    program: &Path,
    stop: &StopLevel,
    obs: &dyn SweepObserver,
) -> Result<()> {
    let mut running: Vec<Running> = Vec::new();
    let result = drive(sweep, todo, budget, program, stop, obs, &mut running);
    if result.is_err() {
        for r in &running {
            terminate(&r.child);
        }
        let t0 = Instant::now();
        for Running { index: i, child, .. } in &mut running {
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

/// A point's process.
struct Running {
    index: usize,
    child: Child,
    /// The GPU it holds.
    gpu: Option<String>,
}

fn drive(
    sweep: &Sweep,
    todo: &[usize],
    budget: &Budget,
    program: &Path,
    stop: &StopLevel,
    obs: &dyn SweepObserver,
    running: &mut Vec<Running>,
) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let Budget { threads, ref gpus, .. } = *budget;
    let jobs = if gpus.is_empty() { budget.jobs } else { budget.jobs.min(gpus.len()) };
    let mut queue: std::collections::VecDeque<usize> = todo.iter().copied().collect();
    let mut signalled = 0;
    let mut last_tick = Instant::now();
    while !running.is_empty() || (!queue.is_empty() && stop.load(Ordering::SeqCst) == 0) {
        let level = stop.load(Ordering::SeqCst);
        if level > signalled {
            for r in running.iter_mut() {
                if level >= 2 {
                    let _ = r.child.kill();
                } else {
                    terminate(&r.child);
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
            let gpu = gpus.iter().find(|g| !running.iter().any(|r| r.gpu.as_ref() == Some(*g))).cloned();
            let mut command = Command::new(program);
            command.args(["resume", "--quiet", "--threads", &t.to_string()]);
            if let Some(g) = &gpu {
                command.args(["--device", POINT_DEVICE]).env("CUDA_VISIBLE_DEVICES", g);
            }
            let child = command
                .arg(&dir.path)
                .current_dir(&sweep.spec.cwd)
                .env(PARENT_ENV, std::process::id().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log.into_parts().0))
                .process_group(0)
                .spawn()
                .map_err(|e| TrainError::Run { path: program.into(), reason: format!("starting a point: {e}") })?;
            obs.started(sweep, p, t, gpu.as_deref());
            running.push(Running { index: i, child, gpu });
        }
        let mut k = 0;
        while k < running.len() {
            if running[k].child.try_wait()?.is_some() {
                let i = running.remove(k).index;
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
                .map(|r| {
                    let dir = sweep.run_dir(&sweep.spec.points[r.index]);
                    let epochs = dir.read_config().map_or(0, |c| c.train.epochs);
                    (r.index, epochs_written(&dir), epochs)
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

    #[test]
    fn with_gpus_one_point_runs_per_gpu() {
        assert_eq!(gpu_budget(8, 12, 4), (8, 1), "more GPUs than cores: a thread each");
        assert_eq!(gpu_budget(2, 12, 16), (2, 8));
        assert_eq!(gpu_budget(4, 3, 16), (3, 5), "no more jobs than points");
    }
}
