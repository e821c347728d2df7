//! `bottleneck sweep`: make a sweep, run its points locally or on Slurm, resume it,
//! rebuild its summary.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bottleneck_train::launcher::SlurmConfig;
use bottleneck_train::lock::SweepLock;
use bottleneck_train::rundir::Manifest;
use bottleneck_train::sweep::{
    gpu_budget, local_budget, run_local, Budget, Plan, PointSpec, StopLevel, Sweep, SweepObserver,
};
use bottleneck_train::{slurm, Resolved, Status};
use clap::{Args, ValueEnum};

use crate::train::{cores, runs_root};

/// Where points run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Launcher {
    /// Processes on this machine, --jobs at a time.
    Local,
    /// A Slurm job array (sbatch), resources from [launcher.slurm].
    Slurm,
}

impl Launcher {
    fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Slurm => "slurm",
        }
    }
}

/// Arguments of `bottleneck sweep`.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // clap flags
pub struct SweepArgs {
    /// The experiment file (not with --resume or --collect).
    experiment: Option<PathBuf>,
    /// Overrides; a list (a,b,c / range(start,stop,step) / choice(a,b)) adds an axis.
    overrides: Vec<String>,
    /// Where points run (default: local; with --resume, the launcher the sweep last used).
    #[arg(long, value_enum)]
    launcher: Option<Launcher>,
    /// Local launcher: points at a time (default: one per core, one thread each).
    #[arg(long)]
    jobs: Option<usize>,
    /// Local launcher, a `cuda` build: one point per GPU at a time, each process seeing
    /// only its GPU (CUDA_VISIBLE_DEVICES) and training on it whatever `device` says.
    /// GPU numbers as nvidia-smi gives them (`0,1`), or `auto`: every visible GPU.
    #[arg(long, value_name = "LIST", conflicts_with = "jobs")]
    gpus: Option<String>,
    /// Root of the run directories (default: BOTTLENECK_RUNS_DIR, then runs/).
    #[arg(long)]
    runs: Option<PathBuf>,
    /// Continue a sweep: skip done points, resume interrupted ones, rerun failed ones.
    #[arg(long, value_name = "SWEEP_DIR", conflicts_with_all = ["experiment", "collect"])]
    resume: Option<PathBuf>,
    /// Slurm: submit and return instead of waiting for the jobs.
    #[arg(long)]
    no_wait: bool,
    /// Print the grid (and the sbatch scripts with --launcher slurm); run nothing.
    #[arg(long, conflicts_with_all = ["resume", "collect"])]
    dry_run: bool,
    /// Rebuild summary.csv/.parquet of a sweep directory and print it.
    #[arg(long, value_name = "SWEEP_DIR", conflicts_with = "experiment")]
    collect: Option<PathBuf>,
    /// With --collect (the Slurm summary job): points that recorded no outcome failed.
    #[arg(long, hide = true, requires = "collect")]
    mark_lost: bool,
    /// Only the summary; no per-point lines.
    #[arg(short, long)]
    pub quiet: bool,
    /// Skip the points' reports and the sweep's (the summary is still written;
    /// `bottleneck report SWEEP_DIR` draws them all later).
    #[arg(long)]
    pub no_report: bool,
}

/// Runs `bottleneck sweep`.
pub fn run(args: SweepArgs) -> Result<()> {
    crate::train::skip_report(args.no_report);
    if let Some(dir) = &args.collect {
        let sweep = Sweep::open(dir)?;
        if args.mark_lost {
            let _lock = SweepLock::acquire(&sweep.path, Duration::from_secs(60))?;
            let all: Vec<usize> = sweep.spec.points.iter().map(|p| p.index).collect();
            sweep.mark_lost(&all, slurm::LOST)?;
        }
        return report(&sweep, false);
    }
    let program = std::env::current_exe().context("finding the bottleneck binary")?;
    if let Some(dir) = &args.resume {
        if !args.overrides.is_empty() {
            bail!("--resume takes no overrides: the sweep's points keep the config they were made with");
        }
        let sweep = Sweep::open(dir)?;
        let lock = SweepLock::acquire(&sweep.path, Duration::ZERO)?;
        let launcher =
            args.launcher.unwrap_or(if sweep.spec.launcher == "slurm" { Launcher::Slurm } else { Launcher::Local });
        let gpus = gpus(&args, launcher)?;
        if gpus.is_empty() {
            check_resumed_devices(&sweep, launcher)?;
        }
        let todo = sweep.prepare_resume()?;
        let done = sweep.spec.points.len() - todo.len();
        crate::out(&format!(
            "sweep dir: {}\nresuming: {} of {} points left ({done} done or failed for good)\n",
            sweep.path.display(),
            todo.len(),
            sweep.spec.points.len()
        ));
        return launch(sweep, lock, &todo, launcher, &args, &gpus, &program);
    }
    let Some(experiment) = &args.experiment else {
        bail!("give an experiment file (bottleneck sweep experiments/NAME.toml), or --resume / --collect SWEEP_DIR");
    };
    let plan = Plan::new(experiment, &args.overrides)?;
    let launcher = args.launcher.unwrap_or(Launcher::Local);
    let gpus = gpus(&args, launcher)?;
    let points = plan.resolve_points();
    if gpus.is_empty() {
        check_devices(&points, launcher)?;
    }
    // Absolute: Slurm scripts and point processes refer to it from elsewhere.
    let root = std::path::absolute(runs_root(args.runs.clone())).context("the runs directory")?;
    if args.dry_run {
        return dry_run(&plan, &root, launcher, &args, &gpus, &program);
    }
    let sweep = Sweep::create(&plan, points, &root, launcher.name())?;
    let lock = SweepLock::acquire(&sweep.path, Duration::ZERO)?;
    let todo: Vec<usize> = sweep
        .states()
        .iter()
        .filter(|s| s.manifest.as_ref().is_some_and(|m| m.status == Status::Pending))
        .map(|s| s.point.index)
        .collect();
    crate::out(&format!(
        "sweep dir: {}\n{} points: {}\n",
        sweep.path.display(),
        plan.points().len(),
        plan.axes.iter().map(|a| format!("{} = [{}]", a.key, a.values.join(", "))).collect::<Vec<_>>().join(" × ")
    ));
    for s in sweep.states() {
        if let Some(m) = s.manifest.as_ref().filter(|m| m.status == Status::Failed) {
            eprintln!(
                "point {} ({}) failed: {}",
                s.point.dir,
                sweep.label(&s.point),
                m.reason.as_deref().unwrap_or("?")
            );
        }
    }
    launch(sweep, lock, &todo, launcher, &args, &gpus, &program)
}

/// The GPUs of `--gpus`, checked against the machine (none without it): only for the local
/// launcher. Asked once per command; with GPUs given, each point trains on one of them.
fn gpus(args: &SweepArgs, launcher: Launcher) -> Result<Vec<String>> {
    let Some(list) = &args.gpus else { return Ok(Vec::new()) };
    if launcher == Launcher::Slurm {
        bail!("--gpus is for the local launcher; a Slurm task's GPUs come from launcher.slurm.gres (e.g. \"gpu:1\")");
    }
    Ok(bottleneck_train::device::sweep_gpus(list)?)
}

/// Before any directory exists, without `--gpus`: the devices the points name (on this
/// machine for the local launcher; for Slurm, that a task asked for a GPU gets one in its
/// allocation). Points that do not resolve are skipped here: they are written as failed.
fn check_devices(points: &[(PointSpec, bottleneck_train::Result<Resolved>)], launcher: Launcher) -> Result<()> {
    use bottleneck_train::device;
    let mut seen = std::collections::BTreeSet::new();
    for (_, r) in points {
        let Ok(r) = r else { continue };
        if !seen.insert(r.config.device.clone()) {
            continue;
        }
        match launcher {
            Launcher::Local => {
                bottleneck_train::config::check_device(r)?;
            }
            Launcher::Slurm => {
                let gres = &r.config.launcher.slurm.gres;
                if matches!(device::Spec::parse(&r.config.device), Some(device::Spec::Cuda(_)))
                    && !device::gres_has_gpu(gres)
                {
                    bail!(
                        "`device = \"{}\"` (set in {}) needs a GPU in each Slurm task, but launcher.slurm.gres = \"{gres}\" asks for none: set launcher.slurm.gres = \"gpu:1\" (each task then trains on cuda:0 of its allocation), or device = \"cpu\"",
                        r.config.device,
                        r.source_of("device")
                    );
                }
            }
        }
    }
    Ok(())
}

/// [`check_devices`] for `sweep --resume` without `--gpus`, before any point is touched:
/// (local launcher) the device of every point not done yet.
fn check_resumed_devices(sweep: &Sweep, launcher: Launcher) -> Result<()> {
    if launcher == Launcher::Local {
        for s in sweep.states() {
            let dir = sweep.run_dir(&s.point);
            let done = s.manifest.as_ref().is_some_and(|m| m.status == Status::Done);
            if let (false, Ok(cfg)) = (done, dir.read_config()) {
                bottleneck_train::device::resolve(&cfg.device)
                    .with_context(|| format!("point {} ({})", s.point.dir, dir.file("config.toml").display()))?;
            }
        }
    }
    Ok(())
}

fn dry_run(
    plan: &Plan,
    root: &Path,
    launcher: Launcher,
    args: &SweepArgs,
    gpus: &[String],
    program: &Path,
) -> Result<()> {
    let path = root.join(&plan.name).join(bottleneck_train::rundir::stamp());
    let sweep = Sweep::planned(plan, &path, launcher.name())?;
    let mut out = format!("# dry run: {} points; nothing is written\n", sweep.spec.points.len());
    for p in &sweep.spec.points {
        let _ = writeln!(out, "{}  {}", p.dir, p.overrides.join(" "));
    }
    match launcher {
        Launcher::Local => {
            let _ = writeln!(out, "# local: {}", spread(&budget(args, gpus, sweep.spec.points.len())));
        }
        Launcher::Slurm => {
            let cfg =
                bottleneck_train::resolve(&plan.experiment, &sweep.spec.points[0].overrides)?.config.launcher.slurm;
            let all: Vec<usize> = sweep.spec.points.iter().map(|p| p.index).collect();
            let _ = write!(
                out,
                "# ---- {}/slurm/array-0.sbatch\n{}",
                sweep.path.display(),
                slurm::array_script(&sweep, &all, &cfg, program)
            );
            let _ = write!(
                out,
                "# ---- {}/slurm/summary-0.sbatch (--dependency=afterany:<array job>)\n{}",
                sweep.path.display(),
                slurm::summary_script(&sweep, &cfg, program)
            );
        }
    }
    crate::out(&out);
    Ok(())
}

/// Ctrl-C / SIGTERM: the first stops cleanly (points checkpoint), the second at once.
fn stop_level() -> Result<Arc<StopLevel>> {
    let stop = Arc::new(StopLevel::new(0));
    let s = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        crate::exit_if_reporting();
        let level = s.fetch_add(1, Ordering::SeqCst) + 1;
        if level == 1 {
            eprintln!("interrupt: stopping the running points after their batch (again to kill them)");
        } else {
            eprintln!("second interrupt: killing the running points");
        }
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

/// Runs the points `todo`, holding the sweep's lock while this process acts on them.
fn launch(
    mut sweep: Sweep,
    lock: SweepLock,
    todo: &[usize],
    launcher: Launcher,
    args: &SweepArgs,
    gpus: &[String],
    program: &Path,
) -> Result<()> {
    if todo.is_empty() {
        crate::out("nothing left to run\n");
        return report(&sweep, false);
    }
    let stop = stop_level()?;
    match launcher {
        Launcher::Local => {
            if sweep.spec.launcher != "local" {
                sweep.spec.launcher = "local".into();
                sweep.save()?;
            }
            let b = budget(args, gpus, todo.len());
            let jobs = b.jobs;
            if args.jobs.is_some_and(|j| j > jobs && j <= todo.len()) {
                eprintln!(
                    "--jobs {} is more than the {} cores: running {jobs} at a time",
                    args.jobs.unwrap_or(0),
                    cores()
                );
            }
            crate::out(&format!("local launcher: {}\n", spread(&b)));
            let obs = Lines::new(args.quiet, todo.len());
            let ran = run_local(&sweep, todo, &b, program, &stop, &obs);
            obs.clear();
            if let Err(e) = ran {
                // Its points are stopped; the summary still says where each one stands.
                if let Err(s) = sweep.write_summary() {
                    tracing::warn!("writing the summary: {s}");
                }
                return Err(e.into());
            }
        }
        Launcher::Slurm => {
            let cfg = slurm_config(&sweep, todo)?;
            let jobs = slurm::submit(&mut sweep, todo, &cfg, program)?;
            // The tasks own their points now; the summary job takes the lock to collect.
            drop(lock);
            crate::out(&format!(
                "submitted array job {} ({} tasks, --array={}) and summary job {} (afterany)\nlogs: {}/slurm/\n",
                jobs.array,
                todo.len(),
                slurm::array_spec(todo, cfg.max_parallel),
                jobs.summary,
                sweep.path.display()
            ));
            if args.no_wait {
                crate::out(&format!(
                    "not waiting: `squeue -j {},{}` shows the jobs; job {} writes {}/summary.csv when the array ends (or run `bottleneck sweep --collect {}`)\n",
                    jobs.array,
                    jobs.summary,
                    jobs.summary,
                    sweep.path.display(),
                    sweep.path.display()
                ));
                return Ok(());
            }
            wait_slurm(&sweep, todo, &jobs, &cfg, &stop, args.quiet)?;
            let _lock = SweepLock::acquire(&sweep.path, Duration::from_secs(60))?;
            sweep.mark_lost(todo, slurm::LOST)?;
        }
    }
    let interrupted = stop.load(Ordering::SeqCst) > 0;
    report(&sweep, interrupted)
}

/// Points at a time, threads each, and the GPUs of `--gpus` (from [`gpus`]; none without it).
fn budget(args: &SweepArgs, gpus: &[String], points: usize) -> Budget {
    if !gpus.is_empty() {
        let (jobs, threads) = gpu_budget(gpus.len(), points, cores());
        return Budget { jobs, threads, gpus: gpus.to_vec() };
    }
    let (jobs, threads) = local_budget(args.jobs, points, cores());
    Budget { jobs, threads, gpus: Vec::new() }
}

/// "2 at a time, 1 threads each", and ", one per GPU (0,1)" with GPUs.
fn spread(b: &Budget) -> String {
    let on = if b.gpus.is_empty() { String::new() } else { format!(", one per GPU ({})", b.gpus.join(",")) };
    format!("{} at a time, {} threads each{on}", b.jobs, b.threads)
}

/// `[launcher.slurm]` of the sweep's first point that has a config.
fn slurm_config(sweep: &Sweep, todo: &[usize]) -> Result<SlurmConfig> {
    let p = &sweep.spec.points[todo[0]];
    Ok(sweep.run_dir(p).read_config()?.launcher.slurm)
}

fn count(sweep: &Sweep, todo: &[usize]) -> (usize, usize, usize) {
    let states = sweep.states();
    let of = |s: Status| todo.iter().filter(|&&i| states[i].manifest.as_ref().is_some_and(|m| m.status == s)).count();
    (of(Status::Done), of(Status::Failed), of(Status::Running))
}

fn wait_slurm(
    sweep: &Sweep,
    todo: &[usize],
    jobs: &bottleneck_train::sweep::SlurmJobs,
    cfg: &SlurmConfig,
    stop: &StopLevel,
    quiet: bool,
) -> Result<()> {
    let t0 = Instant::now();
    let mut cancelled = false;
    let mut last = String::new();
    let mut errors = 0;
    loop {
        if stop.load(Ordering::SeqCst) > 0 && !cancelled {
            eprintln!("cancelling jobs {} and {} (running points checkpoint first)", jobs.array, jobs.summary);
            slurm::cancel(jobs)?;
            cancelled = true;
        }
        let queued = match slurm::queued(jobs) {
            Ok(q) => {
                errors = 0;
                q
            }
            Err(e) if errors < 5 => {
                errors += 1;
                tracing::warn!("{e}; trying again");
                std::thread::sleep(Duration::from_secs(cfg.poll_seconds));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let (done, failed, running) = count(sweep, todo);
        let line = format!(
            "[{:>5.0} s] {done} done, {failed} failed, {running} training, {} in the queue",
            t0.elapsed().as_secs_f64(),
            queued.len()
        );
        if !quiet && line[10..] != last[last.len().min(10)..] {
            eprintln!("{line}");
            last = line;
        }
        if queued.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(cfg.poll_seconds));
    }
}

/// Writes the summary and the report, prints the summary, and turns failures /
/// interruption into the exit status.
fn report(sweep: &Sweep, interrupted: bool) -> Result<()> {
    // First the summary, so that an interrupt during the report loses nothing; the
    // report writes it again with the PCA columns.
    sweep.write_summary()?;
    crate::REPORTING.store(true, Ordering::SeqCst);
    let drawn = if bottleneck_train::run::no_report() {
        tracing::info!("no report (--no-report): `bottleneck report {}` draws it", sweep.path.display());
        None
    } else {
        Some(bottleneck_analysis::report_sweep(&sweep.path, false))
    };
    let page = match drawn {
        None => None,
        Some(Ok(page)) => Some(page),
        Some(Err(e)) => {
            tracing::warn!(
                "drawing the sweep report failed: {e}; retry with `bottleneck report {}`",
                sweep.path.display()
            );
            None
        }
    };
    crate::REPORTING.store(false, Ordering::SeqCst);
    let states = sweep.states();
    let mut rows = vec![{
        let mut h = vec!["point".to_string()];
        h.extend(sweep.spec.axes.iter().map(|a| a.key.clone()));
        h.extend(["status", "test_mse", "epoch_s", "train_s"].map(String::from));
        h
    }];
    for s in &states {
        let m = s.manifest.as_ref();
        let metric = |k: &str| m.and_then(|m| m.metrics.get(k)).map_or_else(|| "-".into(), |v| format!("{v:.6}"));
        let mut r = vec![s.point.dir.clone()];
        r.extend(s.point.values.iter().cloned());
        r.push(m.map_or_else(|| "missing".into(), |m| m.status.to_string()));
        r.push(metric("test_mse"));
        r.push(m.and_then(|m| m.metrics.get("mean_epoch_seconds")).map_or_else(|| "-".into(), |v| format!("{v:.1}")));
        r.push(m.map_or_else(|| "-".into(), |m| format!("{:.1}", m.train_seconds)));
        rows.push(r);
    }
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let _ = writeln!(out, "summary: {}", sweep.path.join("summary.csv").display());
    if let Some(page) = page {
        let _ = writeln!(out, "report: {}", page.display());
    }
    crate::out(&out);
    let failed: Vec<&PointSpec> = states
        .iter()
        .filter(|s| s.manifest.as_ref().is_none_or(|m| m.status == Status::Failed))
        .map(|s| &s.point)
        .collect();
    for p in &failed {
        let reason = states[p.index].manifest.as_ref().and_then(|m| m.reason.clone()).unwrap_or_default();
        eprintln!("point {} ({}) failed: {reason}", p.dir, sweep.label(p));
    }
    if interrupted {
        eprintln!("interrupted; continue with: bottleneck sweep --resume {}", sweep.path.display());
        std::process::exit(130);
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} points failed; fix the cause and run `bottleneck sweep --resume {}` to rerun them",
            failed.len(),
            states.len(),
            sweep.path.display()
        );
    }
    let unfinished = states.iter().filter(|s| s.manifest.as_ref().is_some_and(|m| m.status != Status::Done)).count();
    if unfinished > 0 {
        bail!(
            "{unfinished} points have not finished; `bottleneck sweep --resume {}` continues them",
            sweep.path.display()
        );
    }
    Ok(())
}

/// Local progress: a line per point start and end; on a terminal, a status line of the
/// running points' epochs.
struct Lines {
    quiet: bool,
    total: usize,
    ended: std::cell::Cell<usize>,
    bar: Option<indicatif::ProgressBar>,
}

impl Lines {
    fn new(quiet: bool, total: usize) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("[{bar:20}] {pos}/{len} points  {msg} ({elapsed})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        });
        Self { quiet, total, ended: std::cell::Cell::new(0), bar }
    }

    fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn clear(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl SweepObserver for Lines {
    fn started(&self, sweep: &Sweep, p: &PointSpec, threads: usize, gpu: Option<&str>) {
        let on = gpu.map_or_else(String::new, |g| format!(" on GPU {g}"));
        self.say(&format!("point {} ({}) started, {threads} threads{on}", p.dir, sweep.label(p)));
    }

    fn finished(&self, sweep: &Sweep, p: &PointSpec, m: Option<&Manifest>) {
        self.ended.set(self.ended.get() + 1);
        if let Some(b) = &self.bar {
            b.inc(1);
        }
        let what = match m {
            Some(m) if m.status == Status::Done => {
                let mse = m.metrics.get("test_mse").map_or_else(String::new, |v| format!(" test_mse {v:.6}"));
                format!("done{mse} in {:.0} s", m.train_seconds)
            }
            Some(m) => format!("{}: {}", m.status, m.reason.as_deref().unwrap_or("")),
            None => "ended without a manifest".into(),
        };
        self.say(&format!("[{}/{}] point {} ({}) {what}", self.ended.get(), self.total, p.dir, sweep.label(p)));
    }

    fn retried(&self, sweep: &Sweep, p: &PointSpec, m: Option<&Manifest>) {
        let why = m.and_then(|m| m.reason.as_deref()).unwrap_or("its process died");
        self.say(&format!("point {} ({}) {why}; starting it again", p.dir, sweep.label(p)));
    }

    fn tick(&self, _sweep: &Sweep, running: &[(usize, usize, usize)]) {
        if let Some(b) = &self.bar {
            let parts: Vec<String> = running.iter().map(|(i, e, n)| format!("{i:03}: epoch {e}/{n}")).collect();
            b.set_message(parts.join(", "));
        }
    }
}
