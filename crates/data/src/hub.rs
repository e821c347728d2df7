//! `data.name = "hub"`: Hugging Face datasets read by candle-datasets' hub loaders.
//!
//! The repos are the ones candle-datasets has loaders for ([`HUB_REPOS`]). Loading reads
//! the local Hugging Face cache only (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`, as `hf-hub` resolves it): a dataset that is not there is an
//! error that says how to get it, never a download. [`fetch`] (`bottleneck data fetch hub
//! --repo ID`) is the one step that downloads. The loaders need the opt-in `hub` cargo
//! feature (it pulls hf-hub, a TLS stack, parquet and image); without it the table below is
//! still known, so a config names the missing feature instead of failing later.

use crate::error::{DataError, Result};

/// The Hugging Face branch with the parquet conversion the loaders read.
pub const REVISION: &str = "refs/convert/parquet";

/// A Hugging Face dataset that candle-datasets can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubRepo {
    /// The dataset id (`data.repo`).
    pub id: &'static str,
    /// The parquet files the loader reads from [`REVISION`]: train, then test.
    pub files: [&'static str; 2],
    /// Shape of one sample, channels first.
    pub sample_shape: [usize; 3],
    /// The local source with the same data (its class names apply).
    pub like: &'static str,
}

/// Every dataset the hub source reads.
pub const HUB_REPOS: &[HubRepo] = &[
    HubRepo {
        id: "zalando-datasets/fashion_mnist",
        files: ["fashion_mnist/train/0000.parquet", "fashion_mnist/test/0000.parquet"],
        sample_shape: [1, 28, 28],
        like: "fashion-mnist",
    },
    HubRepo {
        id: "ylecun/mnist",
        files: ["mnist/train/0000.parquet", "mnist/test/0000.parquet"],
        sample_shape: [1, 28, 28],
        like: "mnist",
    },
    HubRepo {
        id: "cifar10",
        files: ["plain_text/train/0000.parquet", "plain_text/test/0000.parquet"],
        sample_shape: [3, 32, 32],
        like: "cifar10",
    },
];

/// The repo named `id`, or an error listing the known ones.
pub fn find_repo(id: &str) -> Result<&'static HubRepo> {
    HUB_REPOS.iter().find(|r| r.id == id).ok_or_else(|| DataError::InvalidConfig {
        key: "data.repo".into(),
        value: format!("\"{id}\""),
        allowed: format!(
            "data.name = \"hub\" reads the datasets candle-datasets has loaders for: {}",
            HUB_REPOS.iter().map(|r| r.id).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// Checks `data.repo` for the hub source, and that this build can read it.
pub fn check_config(repo: &str) -> Result<()> {
    find_repo(repo)?;
    if cfg!(feature = "hub") {
        Ok(())
    } else {
        Err(no_feature())
    }
}

fn no_feature() -> DataError {
    DataError::InvalidConfig {
        key: "data.name".into(),
        value: "\"hub\"".into(),
        allowed: "this binary was built without the `hub` feature; build it with \
                  `cargo build --release --features hub`"
            .into(),
    }
}

#[cfg(not(feature = "hub"))]
/// Without the `hub` feature: the error that names it.
pub fn load(_source: &crate::source::Source, repo: &str) -> Result<crate::dataset::RawDataset> {
    find_repo(repo)?;
    Err(no_feature())
}

#[cfg(not(feature = "hub"))]
/// Without the `hub` feature: the error that names it.
pub fn cached_files(repo: &str) -> Result<Vec<std::path::PathBuf>> {
    find_repo(repo)?;
    Err(no_feature())
}

#[cfg(not(feature = "hub"))]
/// Without the `hub` feature: the error that names it.
pub fn fetch(repo: &str) -> Result<Vec<std::path::PathBuf>> {
    find_repo(repo)?;
    Err(no_feature())
}

#[cfg(feature = "hub")]
pub use with_hub::{cache_dir, cached_files, fetch, load};

#[cfg(feature = "hub")]
mod with_hub {
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    use candle_core::{DType, Tensor};
    use hf_hub::{HFClient, HFClientSync, HFError};

    use super::{find_repo, HubRepo, REVISION};
    use crate::dataset::{RawDataset, Split};
    use crate::error::{DataError, Result};
    use crate::source::{self, Source};

    fn hub_err(repo: &HubRepo, reason: impl Into<String>) -> DataError {
        DataError::Hub { repo: repo.id.into(), reason: reason.into() }
    }

    /// The Hugging Face cache folder `hf-hub` uses (from `HF_HUB_CACHE`, `HF_HOME`, …).
    pub fn cache_dir() -> Result<PathBuf> {
        let client = HFClient::new().map_err(|e| DataError::Hub { repo: String::new(), reason: e.to_string() })?;
        Ok(client.cache_dir().to_path_buf())
    }

    /// The repo's folder in the cache (`datasets--owner--name`).
    fn repo_folder(repo: &HubRepo) -> Result<PathBuf> {
        Ok(cache_dir()?.join(format!("datasets--{}", repo.id.replace('/', "--"))))
    }

    /// The cached paths of the repo's files, looked up without any network access; an
    /// error naming the cache and the fetch command when one is missing.
    pub fn cached_files(repo_id: &str) -> Result<Vec<PathBuf>> {
        let repo = find_repo(repo_id)?;
        let api = HFClientSync::new().map_err(|e| hub_err(repo, e.to_string()))?;
        let (owner, name) = hf_hub::split_id(repo.id);
        let handle = api.dataset(owner, name);
        let folder = repo_folder(repo)?;
        repo.files
            .iter()
            .map(|file| match handle.download_file().filename(*file).revision(REVISION).local_files_only(true).send() {
                Ok(path) => Ok(path),
                Err(HFError::LocalEntryNotFound { .. } | HFError::EntryNotFound { .. }) => Err(DataError::NotFound {
                    name: format!("hub:{}", repo.id),
                    searched: vec![folder.join("snapshots").join("…").join(file)],
                    hint: format!(
                        "the Hugging Face cache has no {file} of the {REVISION} branch. Fetch it with \
                                 `bottleneck data fetch hub --repo {}` (downloads from huggingface.co), or point \
                                 HF_HUB_CACHE or HF_HOME at a cache that holds it",
                        repo.id
                    ),
                }),
                Err(e) => Err(hub_err(repo, e.to_string())),
            })
            .collect()
    }

    /// One loader at a time: the panic hook is process-wide, and so is the cache.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    /// Runs a candle-datasets loader. Its parquet decoding unwraps on undecodable image
    /// bytes; that panic (silenced on this thread only) becomes an error naming the cache.
    fn run_loader(repo: &HubRepo) -> Result<candle_datasets::vision::Dataset> {
        use candle_datasets::vision;
        let loader: fn() -> candle_core::Result<vision::Dataset> = match repo.like {
            "fashion-mnist" => vision::fashion_mnist::load,
            "mnist" => vision::mnist::load,
            _ => vision::cifar::load,
        };
        let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous: Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> = Arc::from(std::panic::take_hook());
        let me = std::thread::current().id();
        let chained = Arc::clone(&previous);
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() != me {
                chained(info);
            }
        }));
        let outcome = std::panic::catch_unwind(loader);
        drop(std::panic::take_hook());
        std::panic::set_hook(Box::new(move |info| previous(info)));
        match outcome {
            Ok(Ok(ds)) => Ok(ds),
            Ok(Err(e)) => Err(hub_err(repo, e.to_string())),
            Err(payload) => {
                let what = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
                    .unwrap_or_default();
                let folder = repo_folder(repo).map(|f| f.display().to_string()).unwrap_or_default();
                Err(hub_err(
                    repo,
                    format!(
                        "candle-datasets could not decode the cached parquet files ({what}); they are corrupt or \
                         not this dataset: delete {folder} and fetch it again"
                    ),
                ))
            }
        }
    }

    /// Downloads the repo's files into the Hugging Face cache (files already there are
    /// kept) and checks that they load; returns their cached paths.
    pub fn fetch(repo_id: &str) -> Result<Vec<PathBuf>> {
        let repo = find_repo(repo_id)?;
        run_loader(repo)?;
        cached_files(repo_id)
    }

    fn split(repo: &HubRepo, file: &str, xs: &Tensor, ys: &Tensor, classes: usize) -> Result<Split> {
        let n = xs.dim(0)?;
        let [c, h, w] = repo.sample_shape;
        let xs = if c == 1 {
            xs.reshape((n, c, h, w))?
        } else {
            // candle-datasets' CIFAR loader permutes HWC to (C, W, H): put rows first again.
            xs.transpose(2, 3)?.contiguous()?
        };
        if xs.dims() != [n, c, h, w] {
            return Err(hub_err(repo, format!("{file}: images are {:?}, expected [{n}, {c}, {h}, {w}]", xs.dims())));
        }
        let labels = ys.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        if labels.len() != n {
            return Err(hub_err(repo, format!("{file}: {n} images but {} labels", labels.len())));
        }
        if let Some((row, label)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
            return Err(hub_err(
                repo,
                format!("{file}: label {label} in row {row} is out of range (expected 0..{classes})"),
            ));
        }
        // The loaders hand out `byte / 255` as f32: keep the bytes, as every pixel source does.
        let bytes = (xs.to_dtype(DType::F32)? * 255.0)?.round()?.clamp(0f32, 255f32)?.to_dtype(DType::U8)?;
        Split::from_bytes(bytes.flatten_all()?.to_vec1::<u8>()?, &[n, c, h, w], Some(labels))
    }

    /// Loads `repo_id` from the local cache through candle-datasets' loader.
    pub fn load(source: &Source, repo_id: &str) -> Result<RawDataset> {
        let repo = find_repo(repo_id)?;
        let files = cached_files(repo_id)?;
        let ds = run_loader(repo)?;
        let classes: Vec<String> = source::find(repo.like)?.classes.iter().map(|c| (*c).to_string()).collect();
        let train = split(repo, repo.files[0], &ds.train_images, &ds.train_labels, classes.len())?;
        let test = split(repo, repo.files[1], &ds.test_images, &ds.test_labels, classes.len())?;
        Ok(RawDataset {
            name: source.name.into(),
            sample_shape: repo.sample_shape.to_vec(),
            classes,
            feature_names: Vec::new(),
            factors: Vec::new(),
            location: files[0].parent().and_then(|p| p.parent()).map_or_else(|| files[0].clone(), PathBuf::from),
            pixels: true,
            train,
            test,
        })
    }
}
