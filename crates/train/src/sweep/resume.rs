//! Resuming and collecting a sweep: what to do with each point, and who owns it now.
//!
//! A point is owned while a process holds its lock (or, where locks do not cross nodes,
//! beats a fresh heartbeat from another host), or, for a point of the latest Slurm
//! submission, while its array task is still in Slurm's queue. Nothing here touches an
//! owned point. A point whose process died without an outcome keeps its checkpoint and
//! continues from it; only config and numerical failures start again from scratch.

use std::collections::BTreeMap;

use super::{PointState, Sweep};
use crate::config::resolve;
use crate::error::{Result, TrainError};
use crate::lock::{holder, lock_holder};
use crate::run::{record_lost, write_new};
use crate::rundir::{Failure, Manifest, Status};
use crate::slurm;

/// Why a sweep found a point's process gone.
pub const DIED: &str =
    "its process ended without recording an outcome (killed, out of memory, or its machine went down)";

impl Sweep {
    /// The tasks of this sweep's latest Slurm submission still in the queue, by point:
    /// `ARRAY_TASK STATE`. Empty when the sweep last ran locally.
    pub fn queued_tasks(&self) -> Result<BTreeMap<usize, String>> {
        let Some(jobs) = self.spec.slurm_jobs.last().filter(|_| self.spec.launcher == "slurm") else {
            return Ok(BTreeMap::new());
        };
        slurm::queued_tasks(&jobs.array).map_err(|e| {
            TrainError::Run {
                path: self.path.clone(),
                reason: format!(
                    "cannot ask Slurm whether array job {} still trains this sweep's points ({e}); run this where `squeue` reaches the cluster",
                    jobs.array
                ),
            }
        })
    }

    /// Who trains point `s` now, if anyone (see the module docs).
    fn owner(&self, s: &PointState, queued: &BTreeMap<usize, String>) -> Option<String> {
        let dir = self.run_dir(&s.point);
        let slurm_point = self.spec.launcher == "slurm"
            && self.spec.slurm_jobs.last().is_some_and(|j| j.points.contains(&s.point.index));
        if slurm_point {
            // Slurm knows whether the task lives; a heartbeat can only be older news.
            if let Some(state) = queued.get(&s.point.index) {
                let array = self.spec.slurm_jobs.last().map_or("?", |j| j.array.as_str());
                return Some(format!("Slurm task {array}_{} ({state})", s.point.index));
            }
            return lock_holder(&dir, s.manifest.as_ref());
        }
        holder(&dir, s.manifest.as_ref())
    }

    /// Gets the sweep ready to continue and returns the points left to train: done
    /// points are skipped; interrupted points, points whose process died and points failed
    /// as lost or by an error outside the model (I/O, data) continue from their checkpoints; points failed for their config or a
    /// non-finite loss are cleared to start again, and points that did not resolve are
    /// resolved again (the experiment may have been fixed). Errors, changing nothing, if
    /// any point is still owned by a process or a queued Slurm task.
    pub fn prepare_resume(&self) -> Result<Vec<usize>> {
        let queued = self.queued_tasks()?;
        let states = self.states();
        for s in &states {
            if let Some(who) = self.owner(s, &queued) {
                return Err(TrainError::Run {
                    path: self.run_dir(&s.point).path,
                    reason: format!(
                        "point {} is still being trained by {who}; wait for it to end or stop it first",
                        s.point.dir
                    ),
                });
            }
        }
        let mut todo = Vec::new();
        for s in states {
            let dir = self.run_dir(&s.point);
            match s.manifest {
                Some(m) if m.status == Status::Done => continue,
                Some(mut m) if m.status == Status::Running => {
                    record_lost(&dir, &mut m, DIED)?;
                    if m.status == Status::Failed {
                        tracing::warn!("point {}: {}", s.point.dir, m.reason.as_deref().unwrap_or_default());
                        continue;
                    }
                }
                // Lost, or an error other than the config or the loss (I/O, data): the
                // checkpoint is still good.
                Some(mut m)
                    if m.status == Status::Failed
                        && matches!(m.failure, Some(Failure::Lost | Failure::Error))
                        && dir.last_checkpoint().is_file() =>
                {
                    // Asked again: one more round of retries from the checkpoint.
                    m.lost = 0;
                    m.set_status(
                        Status::Interrupted,
                        Some("failed; continued from its checkpoint by `sweep --resume`".into()),
                    );
                    dir.write_manifest(&m)?;
                }
                Some(mut m) if m.status == Status::Failed && dir.file("config.toml").is_file() => {
                    dir.clear_results()?;
                    m.set_status(Status::Pending, None);
                    m.metrics.clear();
                    m.epochs_done = 0;
                    m.train_seconds = 0.0;
                    m.lost = 0;
                    m.lost_step = None;
                    dir.write_manifest(&m)?;
                }
                Some(Manifest { status: Status::Failed, .. }) | None => {
                    match resolve(&self.spec.experiment, &s.point.overrides) {
                        Ok(r) => {
                            fs_err::create_dir_all(dir.path.join("checkpoints"))?;
                            write_new(&dir, &r, 0, Status::Pending)?;
                        }
                        Err(e) => {
                            self.write_unresolved(&dir, &s.point, &e)?;
                            continue;
                        }
                    }
                }
                Some(_) => {}
            }
            todo.push(s.point.index);
        }
        Ok(todo)
    }

    /// After a launcher has ended `points`: those that never recorded an outcome (a task
    /// killed by the scheduler, a crashed process, a task that never started) are
    /// recorded as lost with `why` ([`record_lost`]: they keep their checkpoints).
    /// Points still owned by a process or a queued task are left alone.
    pub fn mark_lost(&self, points: &[usize], why: &str) -> Result<()> {
        let queued = self.queued_tasks()?;
        for s in self.states() {
            if !points.contains(&s.point.index) || self.owner(&s, &queued).is_some() {
                continue;
            }
            if let Some(mut m) = s.manifest.clone().filter(|m| matches!(m.status, Status::Running | Status::Pending)) {
                record_lost(&self.run_dir(&s.point), &mut m, why)?;
            }
        }
        Ok(())
    }
}
