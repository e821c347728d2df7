//! Who owns a run directory. The training process holds an advisory lock (`flock`) on
//! `<run>/lock` from before it marks the run `running` until it has recorded the outcome,
//! and beats a heartbeat into `manifest.json` every [`HEARTBEAT_SECONDS`]. A second
//! process asks the lock first (it works across processes on one machine and on cluster
//! filesystems whose locks cross nodes), then the heartbeat (for filesystems whose locks
//! do not): no code path starts a second trainer on a run, or marks a live one lost.

use std::fs::TryLockError;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Result, TrainError};
use crate::rundir::{hostname, now, Manifest, RunDir, Status, HEARTBEAT_SECONDS, STALE_SECONDS};

/// The lock file of a run directory.
pub const LOCK_FILE: &str = "lock";

/// The lock of a run directory; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    _file: Option<std::fs::File>,
}

/// What taking a lock file gave.
enum Taken {
    /// Ours (`None`: the filesystem has no locks).
    Mine(Option<std::fs::File>),
    /// Held by the process the lock file names (`None`: it names nobody yet).
    Held(Option<String>),
}

/// Takes the lock on `path`, waiting up to `wait`; the holder writes `process P on HOST`
/// into the file so that others can say who holds it. (That text is informational, so
/// not written by an atomic rename: the lock lives on this file's inode.)
fn take(path: &Path, wait: Duration) -> Result<Taken> {
    use std::io::Write as _;
    let mut file =
        fs_err::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path)?.into_parts().0;
    let t0 = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                write!(file, "process {} on {}", std::process::id(), hostname())?;
                return Ok(Taken::Mine(Some(file)));
            }
            Err(TryLockError::WouldBlock) if t0.elapsed() < wait => std::thread::sleep(Duration::from_millis(200)),
            Err(TryLockError::WouldBlock) => return Ok(Taken::Held(named_in(path))),
            Err(TryLockError::Error(e)) => {
                tracing::warn!(
                    "{}: this filesystem refused a file lock ({e}); relying on heartbeats alone",
                    path.display()
                );
                return Ok(Taken::Mine(None));
            }
        }
    }
}

impl RunLock {
    /// Takes the lock of `dir`, or fails naming the process that holds it. A fresh
    /// heartbeat of another host in the manifest also holds the run (where locks do not
    /// cross nodes); on a filesystem without locks the heartbeat rule alone decides.
    pub fn acquire(dir: &RunDir) -> Result<Self> {
        match take(&dir.file(LOCK_FILE), Duration::ZERO)? {
            Taken::Held(who) => Err(held_error(dir, &who.unwrap_or_else(|| owner_of(dir)))),
            Taken::Mine(file) => {
                let any_host = file.is_none();
                match heartbeat_holder(dir.read_manifest().ok().as_ref(), any_host) {
                    Some(who) => Err(held_error(dir, &who)),
                    None => Ok(Self { _file: file }),
                }
            }
        }
    }
}

fn owner_of(dir: &RunDir) -> String {
    dir.read_manifest().map_or_else(|_| "another process".into(), |m| m.owner())
}

fn held_error(dir: &RunDir, who: &str) -> TrainError {
    TrainError::Run {
        path: dir.path.clone(),
        reason: format!("the run is being trained by {who}; wait for it to end or stop it first"),
    }
}

/// A `running` manifest with a heartbeat younger than [`STALE_SECONDS`] from another
/// host (any host when `any_host`): `process P on HOST (heartbeat N s ago)`.
fn heartbeat_holder(m: Option<&Manifest>, any_host: bool) -> Option<String> {
    let m = m.filter(|m| m.status == Status::Running)?;
    let other_host = m.host.as_deref().is_some_and(|h| h != hostname());
    let age = m.heartbeat_age()?;
    ((any_host || other_host) && age < STALE_SECONDS).then(|| format!("{} (heartbeat {age} s ago)", m.owner()))
}

/// Who is training the run in `dir` now, if anyone: the lock's holder, or a `running`
/// manifest from another host with a fresh heartbeat.
#[must_use]
pub fn holder(dir: &RunDir, m: Option<&Manifest>) -> Option<String> {
    match probe(dir) {
        Probe::Held => Some(named_holder(dir, m)),
        Probe::Free => heartbeat_holder(m, false),
        Probe::Unsupported => heartbeat_holder(m, true),
    }
}

/// The lock's holder alone (where something better than a heartbeat, such as Slurm's
/// queue, says whether the process lives).
#[must_use]
pub fn lock_holder(dir: &RunDir, m: Option<&Manifest>) -> Option<String> {
    (probe(dir) == Probe::Held).then(|| named_holder(dir, m))
}

#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Held,
    Free,
    Unsupported,
}

/// The process a held lock file names. A holder writes its name just after taking the
/// lock, so an empty file is given a moment.
fn named_in(path: &Path) -> Option<String> {
    let t0 = std::time::Instant::now();
    loop {
        let who = std::fs::read_to_string(path).ok().filter(|w| w.starts_with("process "));
        if who.is_some() || t0.elapsed() > Duration::from_secs(1) {
            return who;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The holder the lock file names, else the manifest's owner.
fn named_holder(dir: &RunDir, m: Option<&Manifest>) -> String {
    named_in(&dir.file(LOCK_FILE)).unwrap_or_else(|| m.map_or_else(|| "another process".into(), Manifest::owner))
}

fn probe(dir: &RunDir) -> Probe {
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(dir.file(LOCK_FILE)) else {
        return Probe::Free;
    };
    match file.try_lock() {
        // Dropping the file releases it again.
        Ok(()) => Probe::Free,
        Err(TryLockError::WouldBlock) => Probe::Held,
        Err(TryLockError::Error(_)) => Probe::Unsupported,
    }
}

/// The lock of a sweep directory, held by the process that launches or resumes its
/// points (and briefly by the Slurm summary job), so that two of them never act on the
/// same points.
#[derive(Debug)]
pub struct SweepLock {
    _file: Option<std::fs::File>,
}

impl SweepLock {
    /// Takes the lock of the sweep in `dir`, waiting up to `wait` for it, or fails naming
    /// its holder.
    pub fn acquire(dir: &Path, wait: Duration) -> Result<Self> {
        match take(&dir.join(LOCK_FILE), wait)? {
            Taken::Mine(file) => Ok(Self { _file: file }),
            Taken::Held(who) => Err(TrainError::Run {
                path: dir.into(),
                reason: format!(
                    "the sweep is being run by {}; wait for it to end or stop it first",
                    who.as_deref().unwrap_or("another process")
                ),
            }),
        }
    }
}

/// A run's manifest while its process trains it: shared with the heartbeat thread, which
/// rewrites it every [`HEARTBEAT_SECONDS`] until [`Heartbeat::stop`].
pub struct Heartbeat {
    manifest: Arc<Mutex<Manifest>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts beating into `dir`'s manifest.
    #[must_use]
    pub fn start(dir: &RunDir, manifest: Manifest) -> Self {
        let manifest = Arc::new(Mutex::new(manifest));
        let (tx, rx) = mpsc::channel::<()>();
        let (m, dir) = (Arc::clone(&manifest), dir.clone());
        let thread = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(HEARTBEAT_SECONDS)) {
                let mut m = m.lock().unwrap_or_else(PoisonError::into_inner);
                m.heartbeat = Some(now());
                if let Err(e) = dir.write_manifest(&m) {
                    tracing::warn!("writing the heartbeat: {e}");
                }
            }
        });
        Self { manifest, stop: Some(tx), thread: Some(thread) }
    }

    /// Stops the thread and returns the manifest.
    #[must_use]
    pub fn stop(mut self) -> Manifest {
        self.halt();
        self.manifest.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn halt(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(host: &str, heartbeat: Option<String>) -> Manifest {
        let mut m = Manifest::new("x", "");
        m.set_status(Status::Running, None);
        Manifest { pid: Some(4_000_000), host: Some(host.into()), heartbeat, ..m }
    }

    #[test]
    fn a_second_lock_is_refused_and_names_the_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::create_at(&tmp.path().join("r")).unwrap();
        dir.write_manifest(&manifest("node7", None)).unwrap();
        let lock = RunLock::acquire(&dir).unwrap();
        let me = format!("process {} on {}", std::process::id(), hostname());
        let err = RunLock::acquire(&dir).unwrap_err().to_string();
        assert!(err.contains(&format!("being trained by {me}")), "{err}");
        assert_eq!(holder(&dir, dir.read_manifest().ok().as_ref()), Some(me));
        drop(lock);
        assert!(RunLock::acquire(&dir).is_ok(), "free again once dropped");
    }

    #[test]
    fn a_fresh_heartbeat_from_another_host_holds_the_run_and_a_stale_one_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::create_at(&tmp.path().join("r")).unwrap();
        let fresh = manifest("some-other-node", Some(now()));
        assert!(holder(&dir, Some(&fresh)).is_some_and(|h| h.contains("heartbeat")), "no lock file, fresh beat");
        let old = (chrono::Local::now() - chrono::Duration::seconds(STALE_SECONDS + 5))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        assert_eq!(holder(&dir, Some(&manifest("some-other-node", Some(old)))), None);
        // On this host the lock alone decides: a free lock is a dead process.
        assert_eq!(holder(&dir, Some(&manifest(&hostname(), Some(now())))), None);
        let mut done = fresh;
        done.set_status(Status::Done, None);
        assert_eq!(holder(&dir, Some(&done)), None);
    }
}
