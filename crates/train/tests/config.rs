//! Config resolution: every shipped experiment resolves; every kind of bad input is an
//! error that names the key and where it was set.

use std::path::{Path, PathBuf};

use bottleneck_models::ModelKind;
use bottleneck_train::config::resolve_with_env;
use bottleneck_train::Resolved;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn exp(name: &str) -> PathBuf {
    root().join("experiments").join(format!("{name}.toml"))
}

fn resolve(name: &str, overrides: &[&str], env: &[(&str, &str)]) -> Result<Resolved, String> {
    let o: Vec<String> = overrides.iter().map(ToString::to_string).collect();
    let e = env.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string()));
    resolve_with_env(&exp(name), &o, e).map_err(|e| e.to_string())
}

#[test]
fn every_shipped_experiment_resolves() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("experiments")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let r =
                resolve_with_env(&path, &[], std::iter::empty()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!r.config.name.is_empty());
            n += 1;
        }
    }
    assert!(n >= 7, "expected the shipped experiments, found {n}");
}

#[test]
fn precedence_defaults_group_experiment_env_override() {
    let r = resolve("fashion-dense", &[], &[]).unwrap();
    assert_eq!(r.config.model.hidden, [512, 256]);
    assert!(r.source_of("model.hidden").ends_with("configs/model/dense.toml:4"), "{}", r.source_of("model.hidden"));
    assert!(
        r.source_of("train.epochs").ends_with("experiments/fashion-dense.toml:15"),
        "{}",
        r.source_of("train.epochs")
    );
    assert_eq!(r.source_of("train.grad_clip"), "built-in default");

    let r = resolve("fashion-dense", &["model.latent_dim=8", "train.lr=3e-4"], &[("BOTTLENECK_TRAIN__EPOCHS", "3")])
        .unwrap();
    assert_eq!(r.config.model.latent_dim, 8);
    assert!((r.config.train.lr - 3e-4).abs() < 1e-15, "1e-3 style values are floats");
    assert_eq!(r.config.train.epochs, 3);
    assert_eq!(r.source_of("train.epochs"), "environment variable BOTTLENECK_TRAIN__EPOCHS=3");
    assert_eq!(r.source_of("model.latent_dim"), "command-line override `model.latent_dim=8`");

    // The command line beats the environment.
    let r = resolve("fashion-dense", &["train.epochs=2"], &[("BOTTLENECK_TRAIN__EPOCHS", "3")]).unwrap();
    assert_eq!(r.config.train.epochs, 2);
    // Unrelated BOTTLENECK_ variables are not keys: the data dir, the local Slurm's
    // scratch dir (scripts/slurm-local.sh documents it), a sweep's parent pid.
    for var in ["BOTTLENECK_DATA_DIR", "BOTTLENECK_SLURM_DIR", "BOTTLENECK_SWEEP_PARENT", "BOTTLENECK_FOO"] {
        let r = resolve("fashion-dense", &[], &[(var, "/x")]);
        assert!(r.is_ok(), "{var}: {}", r.unwrap_err());
    }
    // A top-level key, and a section with one underscore (a typo) is an error naming it.
    assert_eq!(resolve("fashion-dense", &[], &[("BOTTLENECK_SEED", "7")]).unwrap().config.seed, 7);
    err("fashion-dense", &[], &[("BOTTLENECK_TRAIN_EPOCHS", "3")], &["BOTTLENECK_TRAIN_EPOCHS"]);
}

#[test]
fn group_switches_and_the_debug_preset() {
    let r = resolve("fashion-dense", &["model=conv"], &[]).unwrap();
    assert_eq!(r.config.model.kind, ModelKind::Conv);
    assert_eq!(r.config.defaults.model, "conv");
    let r = resolve("fashion-dense", &["train=debug"], &[]).unwrap();
    assert_eq!(
        (r.config.train.epochs, r.config.train.max_batches),
        (1, 5),
        "train=debug outranks the experiment's epochs"
    );
    let r = resolve("fashion-dense", &["train=debug", "train.epochs=2"], &[]).unwrap();
    assert_eq!(r.config.train.epochs, 2, "a key override outranks the group");
    let r = resolve("fashion-dense", &["+train.grad_clip=1.0"], &[]).unwrap();
    assert!((r.config.train.grad_clip - 1.0).abs() < 1e-12);
}

fn err(name: &str, overrides: &[&str], env: &[(&str, &str)], wants: &[&str]) {
    let e = resolve(name, overrides, env).expect_err("must fail");
    for w in wants {
        assert!(e.contains(w), "missing {w:?} in: {e}");
    }
}

#[test]
fn unknown_key_suggests_the_closest() {
    err(
        "fashion-dense",
        &["model.latent_dimm=3"],
        &[],
        &["`model.latent_dimm`", "did you mean `model.latent_dim`", "command-line override `model.latent_dimm=3`"],
    );
    err("fashion-dense", &["+train.foo=1"], &[], &["unknown key `train.foo`", "epochs"]);
    err(
        "fashion-dense",
        &[],
        &[("BOTTLENECK_MODEL__LATENTDIM", "3")],
        &["`model.latentdim`", "BOTTLENECK_MODEL__LATENTDIM"],
    );
}

#[test]
fn wrong_types_name_key_and_source() {
    err(
        "fashion-dense",
        &["train.lr=abc"],
        &[],
        &["`train.lr`", "command-line override `train.lr=abc`", "found string \"abc\""],
    );
    err(
        "fashion-dense",
        &[],
        &[("BOTTLENECK_TRAIN__EPOCHS", "many")],
        &["`train.epochs`", "BOTTLENECK_TRAIN__EPOCHS=many"],
    );
    err("fashion-dense", &["model.activation=swish"], &[], &["`model.activation`", "swish", "relu"]);
}

#[test]
fn out_of_range_values_name_key_and_source() {
    for (o, key) in [
        ("model.latent_dim=0", "model.latent_dim"),
        ("train.lr=-1e-3", "train.lr"),
        ("data.val_fraction=1.0", "data.val_fraction"),
        ("train.batch_size=0", "train.batch_size"),
        ("device=\"tpu\"", "device"),
        ("device=\"cuda:0\"", "device"),
        ("train.threads=100000", "train.threads"),
    ] {
        if o.contains("cuda") && bottleneck_train::device::CUDA_BUILD {
            continue; // a CUDA build accepts it here; its availability is checked before a run
        }
        err("fashion-dense", &[o], &[], &[&format!("`{key}`"), &format!("command-line override `{o}`")]);
    }
}

#[test]
fn bad_values_of_the_new_kinds_name_key_and_source() {
    for (o, key) in [
        ("model.beta=-1.0", "model.beta"),
        ("model.beta=nan", "model.beta"),
        ("model.sparsity_target=1.0", "model.sparsity_target"),
        ("model.sparsity_target=0", "model.sparsity_target"),
        ("model.sparsity_weight=nan", "model.sparsity_weight"),
        ("model.contractive_weight=nan", "model.contractive_weight"),
        ("model.gamma=inf", "model.gamma"),
        ("model.gaussian_std=0.0", "model.gaussian_std"),
        ("model.contractive_samples=0", "model.contractive_samples"),
    ] {
        err("fashion-vae", &[o], &[], &[&format!("`{key}`"), &format!("command-line override `{o}`")]);
    }
    // A Bernoulli likelihood needs targets in [0, 1]: both keys and their sources are named.
    err(
        "fashion-vae",
        &["data.normalize=standard"],
        &[],
        &["`data.normalize`", "command-line override `data.normalize=standard`", "Bernoulli", "vae.toml:", "gaussian"],
    );
    let r = resolve("fashion-vae", &["data.normalize=standard", "model.likelihood=gaussian"], &[]).unwrap();
    assert!(r.config.model.is_variational());
    // Under a denoising wrapper the VAE is still checked.
    err("fashion-vae", &["model.kind=denoising", "model.wraps=vae", "data.normalize=standard"], &[], &["Bernoulli"]);
    err("fashion-vae", &["model.likelihood=poisson"], &[], &["`model.likelihood`", "poisson", "bernoulli", "gaussian"]);
    err("fashion-sparse", &["model.sparsity=l2"], &[], &["`model.sparsity`", "l2", "l1", "kl"]);
}

#[test]
fn bad_values_in_files_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("experiments")).unwrap();
    let copy = |group: &str, opt: &str| {
        std::fs::create_dir_all(tmp.path().join("configs").join(group)).unwrap();
        std::fs::copy(
            root().join(format!("configs/{group}/{opt}.toml")),
            tmp.path().join(format!("configs/{group}/{opt}.toml")),
        )
        .unwrap();
    };
    copy("data", "fashion-mnist");
    copy("model", "dense");
    copy("train", "default");
    let e = tmp.path().join("experiments/bad.toml");
    std::fs::write(&e, "defaults = { data = \"fashion-mnist\", model = \"dense\", train = \"default\" }\nname = \"bad\"\n\n[train]\nbatch_size = 0\n").unwrap();
    let msg = resolve_with_env(&e, &[], std::iter::empty()).unwrap_err().to_string();
    assert!(msg.contains("`train.batch_size`") && msg.contains("bad.toml:5"), "{msg}");
    std::fs::write(&e, "name = \"bad\"\n[model]\nlatent_dimm = 4\n").unwrap();
    let msg = resolve_with_env(&e, &[], std::iter::empty()).unwrap_err().to_string();
    assert!(msg.contains("`model.latent_dimm`") && msg.contains("bad.toml:3"), "{msg}");
    std::fs::write(&e, "name = \"bad\"\n[model\nlatent_dim = 4\n").unwrap();
    let msg = resolve_with_env(&e, &[], std::iter::empty()).unwrap_err().to_string();
    assert!(msg.contains("bad.toml") && msg.contains("line 2"), "{msg}");
}

#[test]
fn missing_group_option_and_experiment() {
    err(
        "fashion-dense",
        &["model=convv"],
        &[],
        &[
            "`model`",
            "`convv`",
            "contractive, conv, conv-vae, denoising, dense, linear, sparse, vae",
            "command-line override `model=convv`",
        ],
    );
    let e = resolve("nope", &[], &[]).unwrap_err();
    assert!(e.contains("nope.toml") && e.contains("not found") && e.contains("fashion-dense.toml"), "{e}");
    err("fashion-dense", &["model.latent_dim=2,4"], &[], &["bottleneck sweep"]);
    err("fashion-dense", &["+train.epochs=3"], &[], &["already set", "fashion-dense.toml:15"]);
}

#[test]
fn provenance_lists_every_key_once() {
    let r = resolve("fashion-denoising", &["train.lr=3e-4"], &[]).unwrap();
    let rows = r.provenance().unwrap();
    let lr = rows.iter().find(|(k, _, _)| k == "train.lr").unwrap();
    assert_eq!(lr.1, "0.0003");
    assert_eq!(lr.2, "command-line override `train.lr=3e-4`");
    let noise = rows.iter().find(|(k, _, _)| k == "model.noise").unwrap();
    assert!(noise.1.contains("gaussian") && noise.2.contains("fashion-denoising.toml:"), "{noise:?}");
    let mut keys: Vec<&String> = rows.iter().map(|(k, _, _)| k).collect();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n);
}

#[test]
fn a_relative_data_path_is_relative_to_the_file_that_set_it() {
    // Set in experiments/csv-tabular.toml: relative to experiments/, recorded absolute.
    let r = resolve("csv-tabular", &[], &[]).unwrap();
    let table = std::fs::canonicalize(root().join("examples/data/blobs8.csv")).unwrap();
    assert_eq!(Path::new(&r.config.data.path), table);
    // On the command line: relative to the working directory.
    let r = resolve("csv-tabular", &["data.path=some/table.csv"], &[]).unwrap();
    assert_eq!(Path::new(&r.config.data.path), std::env::current_dir().unwrap().join("some/table.csv"));
    // Absolute paths stay as they are.
    let r = resolve("csv-tabular", &["data.path=/data/t.csv"], &[]).unwrap();
    assert_eq!(r.config.data.path, "/data/t.csv");
}
