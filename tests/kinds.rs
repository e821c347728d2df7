//! The regularised and generative kinds end to end: per-term metrics, the VAE's test
//! metrics and figures, reproducibility and interrupt → resume, and the sweep summary.

// The suite's short names: e(xperiment), o(utput), d(ir), m(etrics), h(eader).
#![allow(clippy::many_single_char_names)]

use std::path::Path;

use crate::common;
use crate::run::{cmd, experiment, manifest, run, run_dirs, start_and_signal_exp, text};
use crate::sweep::{column_f64, summary, sweep_dir};

/// Small and quick: a debug run with a validation split and a 500-image test subset.
const QUICK: [&str; 5] =
    ["train=debug", "data.val_fraction=0.1", "data.test_subset=500", "train.nll_samples=5", "--quiet"];

fn header(dir: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    csv.lines().next().unwrap().split(',').map(ToString::to_string).collect()
}

#[test]
fn a_vae_run_reports_its_terms_elbo_nll_and_figures() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-vae");
    let mut args = vec!["run", e.as_str()];
    args.extend(QUICK);
    let o = run(tmp.path(), &args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("test_neg_elbo") && out.contains("test_is_nll"), "{out}");
    let d = run_dirs(tmp.path(), "fashion-vae").pop().unwrap();
    let h = header(&d);
    for c in ["epoch", "train_loss", "val_loss", "lr", "train_recon", "val_recon", "train_kl", "val_kl"] {
        assert!(h.contains(&c.to_string()), "{c} missing from {h:?}");
    }
    let m = &manifest(&d)["metrics"];
    let f = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("no {k} in {m}"));
    // Nats per image: BCE summed over 784 pixels is hundreds, not a per-pixel mean.
    assert!(f("test_recon") > 100.0 && f("test_kl") >= 0.0, "{m}");
    assert!((f("test_neg_elbo") - f("test_recon") - f("test_kl")).abs() < 1e-9);
    assert!(f("test_is_nll") <= f("test_neg_elbo"), "{m}");
    assert!(f("test_mse") > 0.0 && f("test_mse") < 0.2, "{m}");
    let active = f("test_active_units");
    assert!((0.0..=16.0).contains(&active) && active.fract() == 0.0, "{m}");
    assert!(m["final_train_kl"].is_number() && m["final_val_recon"].is_number(), "{m}");
    for stem in ["loss", "prior_samples", "kl_per_unit", "reconstructions"] {
        let png = d.join(format!("plots/{stem}.png"));
        assert!(std::fs::metadata(&png).is_ok_and(|m| m.len() > 2_000), "{}", png.display());
    }
    let page = std::fs::read_to_string(d.join("report.html")).unwrap();
    assert!(page.contains("plots/prior_samples.png") && page.contains("plots/kl_per_unit.png"), "{page}");
}

#[test]
fn same_seed_same_vae_metrics() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-vae");
    for _ in 0..2 {
        let mut args = vec!["run", e.as_str(), "train.epochs=2"];
        args.extend(QUICK);
        let o = run(tmp.path(), &args);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let dirs = run_dirs(tmp.path(), "fashion-vae");
    assert_eq!(dirs.len(), 2);
    let read = |d: &Path| std::fs::read_to_string(d.join("metrics.csv")).unwrap();
    assert_eq!(read(&dirs[0]), read(&dirs[1]));
    assert_eq!(manifest(&dirs[0])["metrics"], {
        let mut m = manifest(&dirs[1])["metrics"].clone();
        // Timings differ run to run; everything measured must not.
        for k in ["mean_epoch_seconds", "mean_samples_per_second"] {
            m[k] = manifest(&dirs[0])["metrics"][k].clone();
        }
        m
    });
}

#[test]
fn an_interrupted_vae_resumes_to_the_metrics_of_an_uninterrupted_run() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let extra = ["data.val_fraction=0.1", "data.test_subset=500", "train.nll_samples=5"];
    let (child, dir) = start_and_signal_exp(tmp.path(), "fashion-vae", "-INT", &extra);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert_eq!(manifest(&dir)["status"], "interrupted");
    let o = run(tmp.path(), &["resume", "--quiet", &dir.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let other = tempfile::tempdir().unwrap();
    let e = experiment("fashion-vae");
    let mut args = vec!["run", "--quiet", e.as_str(), "train=debug", "train.epochs=3", "train.max_batches=60"];
    args.extend(extra);
    let o = run(other.path(), &args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let plain = run_dirs(other.path(), "fashion-vae").pop().unwrap();
    let a = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert!(a.lines().count() == 4 && a.contains("train_kl"), "{a}");
    assert_eq!(a, std::fs::read_to_string(plain.join("metrics.csv")).unwrap());
    for k in ["test_neg_elbo", "test_is_nll", "test_kl", "test_mse"] {
        assert_eq!(manifest(&dir)["metrics"][k], manifest(&plain)["metrics"][k], "{k}");
    }
}

#[test]
fn sparse_and_contractive_runs_log_their_penalties() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    for (name, term, extra) in [
        ("fashion-sparse", "sparsity", "model.sparsity=kl"),
        ("fashion-contractive", "contractive", "model.hidden=[64]"),
        ("fashion-contractive", "contractive", "model.backbone=conv"),
    ] {
        let e = experiment(name);
        let mut args = vec!["run", e.as_str(), extra];
        args.extend(QUICK);
        let o = run(tmp.path(), &args);
        assert!(o.status.success(), "{name} {extra}: {}", text(&o.stderr));
        let d = run_dirs(tmp.path(), name).pop().unwrap();
        let h = header(&d);
        assert!(h.contains(&format!("train_{term}")) && h.contains(&format!("val_{term}")), "{h:?}");
        let m = &manifest(&d)["metrics"];
        let v = m[format!("test_{term}")].as_f64().unwrap_or_else(|| panic!("{m}"));
        assert!(v.is_finite() && v >= 0.0, "{name}: {m}");
        if name == "fashion-sparse" {
            assert!(d.join("plots/code_activations.png").is_file());
        }
    }
}

#[test]
fn a_beta_sweep_summary_carries_every_term_and_the_vae_metrics() {
    common::fashion_mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let e = experiment("fashion-beta-vae-sweep");
    let o = cmd(
        tmp.path(),
        &["sweep", &e, "model.beta=0.5,4", "train=debug", "data.test_subset=500", "train.nll_samples=5"],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dir = sweep_dir(tmp.path(), "fashion-beta-vae-sweep");
    let df = summary(&dir);
    for c in
        ["model.beta", "test_neg_elbo", "test_is_nll", "test_kl", "test_recon", "final_train_kl", "final_val_recon"]
    {
        assert!(df.column(c).is_ok(), "{c} missing from {:?}", df.get_column_names());
    }
    // A heavier KL weight buys a smaller KL.
    let kl = column_f64(&df, "test_kl");
    assert!(kl[1].unwrap() < kl[0].unwrap(), "{kl:?}");
}
