//! Runs and sweeps that never lose work: two processes on one run or sweep, a point
//! "on another host", a chaos schedule of SIGKILLs, configs edited between interrupt and
//! resume, hand-edited sweep files, and data too small for some metrics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::run::{cmd, experiment, manifest, run, run_dirs, start_and_signal_exp, text};
use crate::sweep::{column_str, summary, sweep_dir};

fn status(dir: &Path) -> String {
    manifest(dir)["status"].as_str().unwrap_or_default().to_string()
}

fn wait_all(children: Vec<Child>) -> Vec<Output> {
    children.into_iter().map(|c| c.wait_with_output().unwrap()).collect()
}

#[test]
fn two_resumes_of_one_run_one_trains_and_the_other_names_the_holder() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let (child, dir) = start_and_signal_exp(tmp.path(), "fashion-dense", "-INT", &["train.epochs=4"]);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(130));
    assert_eq!(status(&dir), "interrupted");
    let d = dir.display().to_string();
    // The second claims to be on another node: the lock, not the host name, decides.
    let a = cmd(tmp.path(), &["resume", "--quiet", &d]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let b = cmd(tmp.path(), &["resume", "--quiet", &d])
        .env("BOTTLENECK_HOST", "node-b")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let outs = wait_all(vec![a, b]);
    let ok: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
    let refused: Vec<&Output> = outs.iter().filter(|o| !o.status.success()).collect();
    assert_eq!(ok.len(), 1, "exactly one trains: {:?}", outs.iter().map(|o| text(&o.stderr)).collect::<Vec<_>>());
    let why = text(&refused[0].stderr);
    assert!(why.contains("is being trained by process") && !why.contains("panicked"), "{why}");
    assert_eq!(status(&dir), "done");
    assert_eq!(manifest(&dir)["starts"], 2, "one start by run, one by the resume that trained");
    let log = std::fs::read_to_string(dir.join("train.log")).unwrap();
    assert_eq!(log.matches("training starts at epoch").count(), 2, "{log}");
}

/// `date -Iseconds` (RFC 3339, as manifests write it), `ago` before now.
fn rfc3339_ago(ago: &str) -> String {
    let o = Command::new("date").args(["-Iseconds", "-d", &format!("-{ago}")]).output().unwrap();
    text(&o.stdout).trim().to_string()
}

#[test]
fn a_fresh_heartbeat_from_another_node_holds_a_run_without_a_lock() {
    // Where flock does not cross nodes, the lock file of a run trained elsewhere is free
    // here: the manifest's heartbeat decides. Acted out by writing what that node would.
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let (child, dir) = start_and_signal_exp(tmp.path(), "fashion-dense", "-INT", &["train.epochs=2"]);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(130));
    let mut m = manifest(&dir);
    m["status"] = "running".into();
    m["host"] = "gpu-node-7".into();
    m["pid"] = 4242.into();
    m["heartbeat"] = rfc3339_ago("5 seconds").into();
    let edited = serde_json::to_vec_pretty(&m).unwrap();
    std::fs::write(dir.join("manifest.json"), &edited).unwrap();
    let d = dir.display().to_string();
    let o = run(tmp.path(), &["resume", "--quiet", &d]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("process 4242 on gpu-node-7 (heartbeat") && !err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read(dir.join("manifest.json")).unwrap(), edited, "the refused resume changed nothing");
    // The same from a sweep's point of view: `sweep --resume` would not touch it either
    // (tested with a live sweep elsewhere); here, a heartbeat two minutes old is a dead
    // node, and the run continues from its checkpoint.
    m["heartbeat"] = rfc3339_ago("2 minutes").into();
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let o = run(tmp.path(), &["resume", "--quiet", &d]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(status(&dir), "done");
    let s = starts(&dir);
    assert!(s.len() == 2 && s[1] > s[0], "the second start continues from the checkpoint: {s:?}");
}

/// A sweep of `points` latent sizes on the debug preset with `epochs` epochs of 25
/// batches, one point at a time.
fn sweep_args(e: &str, ks: &str, epochs: usize) -> Vec<String> {
    ["sweep", e, "train=debug", &format!("train.epochs={epochs}"), "train.max_batches=25", "--jobs", "1"]
        .iter()
        .map(ToString::to_string)
        .chain([format!("model.latent_dim={ks}")])
        .collect()
}

fn spawn(cwd: &Path, args: &[String], host: Option<&str>) -> Child {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = cmd(cwd, &refs);
    if let Some(h) = host {
        c.env("BOTTLENECK_HOST", h);
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Waits until `cond` holds (polling), or fails with `what`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn a_live_sweep_is_never_resumed_twice_even_from_another_host() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-bottleneck-sweep");
    let mut sweep = spawn(tmp.path(), &sweep_args(&e, "2,4", 12), None);
    let root = tmp.path().join("runs/fashion-bottleneck-sweep");
    wait_for("point 000 to train", Duration::from_secs(120), || {
        std::fs::read_dir(&root).ok().and_then(|mut d| d.next()).is_some_and(|d| {
            let p = d.unwrap().path().join("000");
            p.join("manifest.json").is_file() && status(&p) == "running"
        })
    });
    let dir = sweep_dir(tmp.path(), "fashion-bottleneck-sweep");
    let d = dir.display().to_string();
    // A resume from the "login node" while the sweep runs: refused, nothing changed.
    let o = spawn(tmp.path(), &["sweep".into(), "--resume".into(), d.clone()], Some("login-node"))
        .wait_with_output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("the sweep is being run by process"), "{}", text(&o.stderr));
    let p0 = dir.join("000").display().to_string();
    let o = spawn(tmp.path(), &["resume".into(), p0], Some("login-node")).wait_with_output().unwrap();
    assert!(text(&o.stderr).contains("is being trained by process"), "{}", text(&o.stderr));
    assert_eq!(status(&dir.join("000")), "running", "the live point is untouched");
    assert!(sweep.try_wait().unwrap().is_none());
    assert!(Command::new("kill").args(["-INT", &sweep.id().to_string()]).status().unwrap().success());
    assert_eq!(sweep.wait().unwrap().code(), Some(130));
    assert_eq!(status(&dir.join("000")), "interrupted");
}

/// A small seeded generator for the chaos schedule.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

/// Where each start of a point began: (epoch, batch) from its train.log.
pub fn starts(point: &Path) -> Vec<(usize, usize)> {
    let log = std::fs::read_to_string(point.join("train.log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| {
            let rest = l.split("training starts at epoch ").nth(1)?;
            let (e, rest) = rest.split_once(", batch ")?;
            let b = rest.split_whitespace().next()?;
            Some((e.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// The pid of a point's training process, while it trains.
fn point_pid(point: &Path) -> Option<u32> {
    let m = serde_json::from_slice::<serde_json::Value>(&std::fs::read(point.join("manifest.json")).ok()?).ok()?;
    (m["status"] == "running").then(|| m["pid"].as_u64().map(|p| p as u32)).flatten()
}

#[test]
fn chaos_kills_of_points_and_of_the_sweep_lose_no_checkpointed_work() {
    common::fashion_mnist_dir();
    let exp = experiment("fashion-bottleneck-sweep");
    let (ks, epochs, points) = ("2,8,32", 5, 3);
    // The reference: the same sweep, undisturbed.
    let calm = tempfile::tempdir().unwrap();
    let out = spawn(calm.path(), &sweep_args(&exp, ks, epochs), None).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reference = sweep_dir(calm.path(), "fashion-bottleneck-sweep");

    let tmp = tempfile::tempdir().unwrap();
    let mut rng = XorShift(0x00c0_ffee_d00d);
    let (mut point_kills, mut sweep_kills, mut rounds) = (0, 0, 0);
    let mut dir: Option<PathBuf> = None;
    let t0 = Instant::now();
    loop {
        rounds += 1;
        assert!(rounds <= 40 && t0.elapsed() < Duration::from_secs(900), "the sweep never finished");
        let args = match &dir {
            None => sweep_args(&exp, ks, epochs),
            // The same threads per point as the reference (the metrics depend on them).
            Some(d) => vec!["sweep".into(), "--resume".into(), d.display().to_string(), "--jobs".into(), "1".into()],
        };
        let mut sweep = spawn(tmp.path(), &args, None);
        let mut killed_sweep = false;
        loop {
            std::thread::sleep(rng.millis(300, 1800));
            if sweep.try_wait().unwrap().is_some() {
                break;
            }
            if dir.is_none() {
                dir = std::fs::read_dir(tmp.path().join("runs/fashion-bottleneck-sweep"))
                    .ok()
                    .and_then(|mut d| d.next())
                    .map(|d| d.unwrap().path());
            }
            let Some(d) = &dir else { continue };
            // Two kills in three hit a training point, one the sweep process itself.
            if rng.next().is_multiple_of(3) && (point_kills + sweep_kills) < 14 {
                let _ = sweep.kill();
                sweep_kills += 1;
                killed_sweep = true;
                break;
            }
            let live: Vec<u32> = (0..points).filter_map(|i| point_pid(&d.join(format!("{i:03}")))).collect();
            if let Some(&pid) = live.first().filter(|_| point_kills < 10) {
                if Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success() {
                    point_kills += 1;
                }
            }
        }
        let out = sweep.wait_with_output().unwrap();
        let d = dir.clone().expect("the sweep made its directory");
        if !killed_sweep && out.status.success() {
            break;
        }
        if !killed_sweep {
            // It ended on its own but not cleanly: only points that died too often.
            let err = text(&out.stderr);
            assert!(err.contains("died") || err.contains("have not finished"), "{err}");
        }
        // Orphaned points notice their sweep is gone and stop with a checkpoint.
        wait_for("orphaned points to stop", Duration::from_secs(120), || {
            (0..points).all(|i| point_pid(&d.join(format!("{i:03}"))).is_none())
        });
    }
    let d = dir.unwrap();
    eprintln!("chaos: survived {point_kills} point kills and {sweep_kills} sweep kills in {rounds} rounds");
    assert!(point_kills + sweep_kills >= 3, "the schedule hardly killed anything");
    assert_eq!(column_str(&summary(&d), "status"), ["done"; 3]);
    for i in 0..points {
        let (p, r) = (d.join(format!("{i:03}")), reference.join(format!("{i:03}")));
        assert_eq!(
            std::fs::read_to_string(p.join("metrics.csv")).unwrap(),
            std::fs::read_to_string(r.join("metrics.csv")).unwrap(),
            "point {i}: a disturbed point trains exactly as an undisturbed one"
        );
        assert_eq!(manifest(&p)["metrics"]["test_mse"], manifest(&r)["metrics"]["test_mse"]);
        let s = starts(&p);
        assert!(!s.is_empty() && s.windows(2).all(|w| w[1] >= w[0]), "point {i} went back to an earlier epoch: {s:?}");
    }
}

#[test]
fn a_config_edited_between_interrupt_and_resume_is_checked_again() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let (child, dir) = start_and_signal_exp(tmp.path(), "fashion-dense", "-INT", &[]);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(130));
    let cfg_path = dir.join("config.toml");
    let original = std::fs::read_to_string(&cfg_path).unwrap();
    let d = dir.display().to_string();
    let edits = [
        (
            ("schedule = \"constant\"", "schedule = \"step\""),
            ("step_epochs = 10", "step_epochs = 0"),
            "train.step_epochs",
        ),
        (("batch_size = 64", "batch_size = 32"), ("", ""), "train.batch_size = 64"),
        (("max_batches = 60", "max_batches = 1"), ("", ""), "batches per epoch"),
        (("threads = 0", "threads = 100000"), ("", ""), "train.threads"),
    ];
    for ((a, b), (c, e), expect) in edits {
        assert!(original.contains(a), "{original}");
        std::fs::write(&cfg_path, original.replace(a, b).replace(c, e)).unwrap();
        let o = run(tmp.path(), &["resume", "--quiet", &d]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(expect) && !err.contains("panicked"), "{expect}: {err}");
    }
    std::fs::write(&cfg_path, &original).unwrap();
    let o = run(tmp.path(), &["resume", "--quiet", &d]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(status(&dir), "done");
}

#[test]
fn a_hand_edited_sweep_file_is_a_clear_error() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-bottleneck-sweep");
    let o = cmd(tmp.path(), &["sweep", &e, "train=debug", "model.latent_dim=2,4"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dir = sweep_dir(tmp.path(), "fashion-bottleneck-sweep");
    let spec = dir.join("sweep.toml");
    let text_of = std::fs::read_to_string(&spec).unwrap();
    // Drop the first point's table.
    let first = text_of.find("[[points]]").unwrap();
    let second = text_of[first + 1..].find("[[points]]").unwrap() + first + 1;
    std::fs::write(&spec, format!("{}{}", &text_of[..first], &text_of[second..])).unwrap();
    for args in [["sweep", "--resume"], ["sweep", "--collect"]] {
        let o = cmd(tmp.path(), &[args[0], args[1], &dir.display().to_string()]).output().unwrap();
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("sweep.toml") && err.contains("point 0") && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn tiny_data_skips_what_it_cannot_measure_and_empty_splits_are_config_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("blobs-tabular");
    let o = run(tmp.path(), &["run", "--quiet", &e, "train=debug", "data.samples=30", "model.latent_dim=3"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("panicked"), "{}", text(&o.stderr));
    let dir = run_dirs(tmp.path(), "blobs-tabular").pop().unwrap();
    let analysis: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("analysis.json")).unwrap()).unwrap();
    let skipped = analysis["skipped"].to_string();
    assert!(skipped.contains("trustworthiness"), "{analysis}");
    assert!(analysis["metrics"].as_object().unwrap().values().all(serde_json::Value::is_number), "{analysis}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("t-SNE skipped"), "the report says what it left out");
    // It says how many samples each measurement used: the six test rows there are.
    assert!(html.contains("scored on 6 test codes") && html.contains("unit metrics: 6 test codes"), "{html}");
    // Every number in the manifest reads back (no JSON null for a non-finite metric).
    assert!(manifest(&dir)["metrics"]["test_mse"].is_number());
    let o = run(tmp.path(), &["report", &dir.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    let o = run(tmp.path(), &["run", "--quiet", &e, "train=debug", "data.samples=2"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("split") && err.contains("empty") && !err.contains("panicked"), "{err}");
    let failed = run_dirs(tmp.path(), "blobs-tabular").pop().unwrap();
    assert_eq!(manifest(&failed)["failure"], "config");

    // A sweep holding tiny runs reports too.
    let other = tempfile::tempdir().unwrap();
    let o =
        cmd(other.path(), &["sweep", &e, "train=debug", "data.samples=30", "model.latent_dim=2,3"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let sweep = sweep_dir(other.path(), "blobs-tabular");
    assert!(sweep.join("report.html").is_file());
}

/// A command that ended cleanly: success, a clean error (1, 2) or an interrupt (130) —
/// never a panic (101) or an abort (a signal).
fn assert_clean(what: &str, o: &Output) {
    // 2: a usage error from the argument parser.
    let err = text(&o.stderr);
    assert!(matches!(o.status.code(), Some(0 | 1 | 2 | 130)), "{what}: exit {:?}\n{err}", o.status);
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{what}: {err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// `bytes` cut, with flipped bytes, or with random bytes appended (seeded).
fn damage(rng: &mut XorShift, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let n = b.len().max(1);
    match rng.next() % 4 {
        0 => b.truncate((rng.next() as usize) % n),
        1 => {
            for _ in 0..=rng.next() % 6 {
                let i = (rng.next() as usize) % n;
                if i < b.len() {
                    b[i] = rng.next().to_le_bytes()[0];
                }
            }
        }
        2 => b.extend((0..=rng.next() % 64).map(|_| rng.next().to_le_bytes()[1])),
        _ => b = (0..=rng.next() % 200).map(|_| rng.next().to_le_bytes()[2]).collect(),
    }
    b
}

#[test]
fn hostile_run_files_and_overrides_give_clean_errors() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let (child, run_dir) = start_and_signal_exp(tmp.path(), "fashion-dense", "-INT", &["model.hidden=[64]"]);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(130));
    let mut rng = XorShift(0x0bad_f11e_5eed);
    let mut inputs = 0;
    // Damaged files of an interrupted run, then `resume` on it.
    let files = ["config.toml", "manifest.json", "checkpoints/last.safetensors", "metrics.csv"];
    for round in 0..16 {
        let file = files[round % files.len()];
        let copy = tmp.path().join(format!("copy{round}"));
        copy_dir(&run_dir, &copy);
        let bytes = std::fs::read(copy.join(file)).unwrap();
        std::fs::write(copy.join(file), damage(&mut rng, &bytes)).unwrap();
        let o = run(tmp.path(), &["resume", "--quiet", &copy.display().to_string()]);
        assert_clean(&format!("resume with a damaged {file} (round {round})"), &o);
        inputs += 1;
        // Whatever happened, the manifest (if it still parses) says so.
        if file != "manifest.json" {
            let status = status(&copy);
            assert!(["done", "failed", "interrupted"].contains(&status.as_str()), "{file}: {status}");
        }
        std::fs::remove_dir_all(&copy).unwrap();
    }
    // Random override strings: resolved or refused, never a crash.
    let e = experiment("fashion-dense");
    let pieces = [
        "model.latent_dim",
        "train.lr",
        "model",
        "data",
        "+x",
        "train.threads",
        "seed",
        "model.hidden",
        "=",
        "==",
        "[",
        "]",
        "{",
        "\"",
        "'",
        ",",
        "range(",
        ")",
        "1e999",
        "-1",
        "0",
        "nan",
        "inf",
        "é",
        " ",
        ".",
        "..",
        "\\",
        "conv",
        "999999999999999999999",
        "true",
        "[1,",
        "{a=1}",
        "choice(",
        "model.noise.kind",
    ];
    for _ in 0..150 {
        let len = 1 + rng.next() % 5;
        let s: String = (0..len).map(|_| pieces[(rng.next() as usize) % pieces.len()]).collect();
        let o = run(tmp.path(), &["config", &e, &s]);
        assert_clean(&format!("override `{s}`"), &o);
        inputs += 1;
    }
    eprintln!("hostile run files and overrides: {inputs} inputs, each a clean run or a clean error");
}
