//! Dataset sources by name, and where their files are looked for.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// How a source stores its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// MNIST-family IDX files (gzip or raw).
    Idx,
    /// CIFAR-10 binary batches.
    Cifar10,
    /// A CSV table read with polars.
    Csv,
    /// A Parquet table read with polars.
    Parquet,
    /// Generated in memory; needs no files.
    Synthetic,
    /// A Hugging Face dataset in the local hub cache, read by candle-datasets' loaders.
    Hub,
    /// A folder of PNG and JPEG images (class sub-folders optional).
    Images,
}

impl Format {
    /// Short name for listings.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Idx => "IDX",
            Self::Cifar10 => "CIFAR-10 binary",
            Self::Csv => "CSV table",
            Self::Parquet => "Parquet table",
            Self::Synthetic => "synthetic",
            Self::Hub => "Hugging Face hub",
            Self::Images => "image folder",
        }
    }
}

/// A file that can be downloaded, with its published SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name on the mirror and on disk.
    pub name: &'static str,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: &'static str,
}

/// One file a source needs, with the names it may have on disk (first = preferred).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needed {
    /// Logical name used in messages ("train images").
    pub what: &'static str,
    /// Accepted file names, relative to the dataset directory.
    pub candidates: &'static [&'static str],
}

/// A dataset source known by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The name used in configs (`data.name`).
    pub name: &'static str,
    /// Storage format.
    pub format: Format,
    /// One line for `bottleneck data list`.
    pub description: &'static str,
    /// Class names, index = label (empty when the source has none fixed).
    pub classes: &'static [&'static str],
    /// Files the source needs inside its directory.
    pub needed: &'static [Needed],
    /// Debian package that installs it under `/usr/share/datasets/<name>`, if any.
    pub debian_package: Option<&'static str>,
    /// Mirrors, tried in order; a file's URL is mirror + file name.
    pub mirrors: &'static [&'static str],
    /// Files to download (with checksums) for `bottleneck data fetch`.
    pub remote: &'static [RemoteFile],
}

const fn idx_needed() -> &'static [Needed] {
    &[
        Needed {
            what: "train images",
            candidates: &["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte", "train-images.idx3-ubyte"],
        },
        Needed {
            what: "train labels",
            candidates: &["train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte", "train-labels.idx1-ubyte"],
        },
        Needed {
            what: "test images",
            candidates: &["t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"],
        },
        Needed {
            what: "test labels",
            candidates: &["t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"],
        },
    ]
}

const CIFAR_BATCHES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];

/// Every source, in listing order.
pub const SOURCES: &[Source] = &[
    Source {
        name: "fashion-mnist",
        format: Format::Idx,
        description: "Zalando's article images, 60000 train / 10000 test, 1x28x28, 10 classes",
        classes: &[
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
        needed: idx_needed(),
        debian_package: Some("dataset-fashion-mnist"),
        mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        remote: &[
            RemoteFile {
                name: "train-images-idx3-ubyte.gz",
                sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            },
            RemoteFile {
                name: "train-labels-idx1-ubyte.gz",
                sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            },
            RemoteFile {
                name: "t10k-images-idx3-ubyte.gz",
                sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            },
            RemoteFile {
                name: "t10k-labels-idx1-ubyte.gz",
                sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            },
        ],
    },
    Source {
        name: "mnist",
        format: Format::Idx,
        description: "LeCun's handwritten digits, 60000 train / 10000 test, 1x28x28, 10 classes",
        classes: &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        needed: idx_needed(),
        debian_package: None,
        mirrors: &["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
        remote: &[
            RemoteFile {
                name: "train-images-idx3-ubyte.gz",
                sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            },
            RemoteFile {
                name: "train-labels-idx1-ubyte.gz",
                sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            },
            RemoteFile {
                name: "t10k-images-idx3-ubyte.gz",
                sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            },
            RemoteFile {
                name: "t10k-labels-idx1-ubyte.gz",
                sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            },
        ],
    },
    Source {
        name: "kmnist",
        format: Format::Idx,
        description: "Kuzushiji-MNIST cursive Japanese characters, 60000 / 10000, 1x28x28, 10 classes",
        classes: &["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
        needed: idx_needed(),
        debian_package: None,
        mirrors: &["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"],
        remote: &[
            RemoteFile {
                name: "train-images-idx3-ubyte.gz",
                sha256: "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
            },
            RemoteFile {
                name: "train-labels-idx1-ubyte.gz",
                sha256: "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
            },
            RemoteFile {
                name: "t10k-images-idx3-ubyte.gz",
                sha256: "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
            },
            RemoteFile {
                name: "t10k-labels-idx1-ubyte.gz",
                sha256: "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
            },
        ],
    },
    Source {
        name: "cifar10",
        format: Format::Cifar10,
        description: "CIFAR-10 tiny colour images, 50000 train / 10000 test, 3x32x32, 10 classes",
        classes: &["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
        needed: &[
            Needed { what: "data batch 1", candidates: &["cifar-10-batches-bin/data_batch_1.bin", "data_batch_1.bin"] },
            Needed { what: "data batch 2", candidates: &["cifar-10-batches-bin/data_batch_2.bin", "data_batch_2.bin"] },
            Needed { what: "data batch 3", candidates: &["cifar-10-batches-bin/data_batch_3.bin", "data_batch_3.bin"] },
            Needed { what: "data batch 4", candidates: &["cifar-10-batches-bin/data_batch_4.bin", "data_batch_4.bin"] },
            Needed { what: "data batch 5", candidates: &["cifar-10-batches-bin/data_batch_5.bin", "data_batch_5.bin"] },
            Needed { what: "test batch", candidates: &["cifar-10-batches-bin/test_batch.bin", "test_batch.bin"] },
        ],
        debian_package: None,
        mirrors: &["https://www.cs.toronto.edu/~kriz/"],
        remote: &[RemoteFile {
            name: "cifar-10-binary.tar.gz",
            sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
        }],
    },
    Source {
        name: "csv",
        format: Format::Csv,
        description: "any CSV table: data.path, numeric data.features, optional data.label",
        classes: &[],
        needed: &[],
        debian_package: None,
        mirrors: &[],
        remote: &[],
    },
    Source {
        name: "parquet",
        format: Format::Parquet,
        description: "any Parquet table: data.path, numeric data.features, optional data.label",
        classes: &[],
        needed: &[],
        debian_package: None,
        mirrors: &[],
        remote: &[],
    },
    Source {
        name: "images",
        format: Format::Images,
        description: "a folder of PNG/JPEG images (data.path; class sub-folders, train/ and test/ optional), resized to data.image_size",
        classes: &[],
        needed: &[],
        debian_package: None,
        mirrors: &[],
        remote: &[],
    },
    Source {
        name: "hub",
        format: Format::Hub,
        description: "a Hugging Face dataset (data.repo) from the local hub cache, read by candle-datasets; build with --features hub",
        classes: &[],
        needed: &[],
        debian_package: None,
        mirrors: &[],
        remote: &[],
    },
    Source {
        name: "blobs",
        format: Format::Synthetic,
        description: "Gaussian blobs: data.classes clusters in data.dim dimensions, data.samples points",
        classes: &[],
        needed: &[],
        debian_package: None,
        mirrors: &[],
        remote: &[],
    },
    Source {
        name: "shapes",
        format: Format::Synthetic,
        description: "drawn 1xSxS images (S = data.image_size): square, disc, horizontal bar, vertical bar",
        classes: &["square", "disc", "horizontal bar", "vertical bar"],
        needed: &[],
        debian_package: None,
        mirrors: &[],
        remote: &[],
    },
    Source {
        name: "sprites",
        format: Format::Synthetic,
        description: "dSprites-like 1xSxS images (S = data.image_size) from known factors: shape, scale, orientation, pos_x, pos_y",
        classes: &["square", "ellipse", "heart"],
        needed: &[],
        debian_package: None,
        mirrors: &[],
        remote: &[],
    },
];

/// Names of the CIFAR-10 batch files, training batches first.
#[must_use]
pub fn cifar_batches() -> &'static [&'static str] {
    &CIFAR_BATCHES
}

/// Looks a source up by name.
pub fn find(name: &str) -> Result<&'static Source> {
    SOURCES.iter().find(|s| s.name == name).ok_or_else(|| DataError::UnknownDataset {
        name: name.into(),
        known: SOURCES.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
    })
}

/// The directories searched for a dataset, in order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPath {
    /// `data.dir` from the config, when set.
    pub config_dir: Option<PathBuf>,
    /// `BOTTLENECK_DATA_DIR`, when set.
    pub env_dir: Option<PathBuf>,
    /// Root of the Debian dataset packages (`/usr/share/datasets`).
    pub system_root: PathBuf,
    /// The user's cache root (`~/.cache/bottleneck`, or `BOTTLENECK_CACHE_DIR`).
    pub cache_root: Option<PathBuf>,
}

impl SearchPath {
    /// The search path for `data.dir = config_dir` (empty = unset) in this process's
    /// environment.
    #[must_use]
    pub fn from_env(config_dir: &str) -> Self {
        let non_empty = |s: String| (!s.is_empty()).then(|| PathBuf::from(s));
        Self {
            config_dir: non_empty(config_dir.to_string()),
            env_dir: std::env::var("BOTTLENECK_DATA_DIR").ok().and_then(non_empty),
            system_root: PathBuf::from("/usr/share/datasets"),
            cache_root: cache_root(),
        }
    }

    /// Every directory that is looked in for `source`, in order. A configured or
    /// environment directory is tried both as the dataset folder itself and as a root
    /// holding `<name>/`.
    #[must_use]
    pub fn candidates(&self, source: &Source) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for root in [&self.config_dir, &self.env_dir].into_iter().flatten() {
            out.push(root.clone());
            out.push(root.join(source.name));
        }
        out.push(self.system_root.join(source.name));
        if let Some(cache) = &self.cache_root {
            out.push(cache.join(source.name));
        }
        out
    }

    /// The first directory that holds the source's first needed file.
    pub fn locate(&self, source: &Source) -> Result<PathBuf> {
        let searched = self.candidates(source);
        let Some(first) = source.needed.first() else {
            return Ok(PathBuf::new());
        };
        searched
            .iter()
            .find(|dir| first.candidates.iter().any(|c| dir.join(c).is_file()))
            .cloned()
            .ok_or_else(|| DataError::NotFound { name: source.name.into(), searched, hint: how_to_get(source) })
    }
}

/// Where `bottleneck data fetch` puts files: `BOTTLENECK_CACHE_DIR`, else the user's
/// cache dir + `bottleneck`.
#[must_use]
pub fn cache_root() -> Option<PathBuf> {
    match std::env::var("BOTTLENECK_CACHE_DIR") {
        Ok(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::cache_dir().map(|d| d.join("bottleneck")),
    }
}

/// How to obtain a source's files, for error messages.
#[must_use]
pub fn how_to_get(source: &Source) -> String {
    let mut ways = Vec::new();
    if let Some(pkg) = source.debian_package {
        ways.push(format!("`apt-get install {pkg}`"));
    }
    if !source.remote.is_empty() {
        ways.push(format!("`bottleneck data fetch {}`", source.name));
    }
    ways.push("set `data.dir` or BOTTLENECK_DATA_DIR to a folder holding the files".into());
    format!("get the files with {}", ways.join(", or "))
}

/// Resolves each needed file of `source` inside `dir` (first candidate that exists).
pub fn resolve_files(source: &Source, dir: &Path) -> Result<Vec<PathBuf>> {
    source
        .needed
        .iter()
        .map(|n| {
            n.candidates.iter().map(|c| dir.join(c)).find(|p| p.is_file()).ok_or_else(|| DataError::MissingFile {
                name: source.name.into(),
                dir: dir.into(),
                missing: n.what.into(),
                candidates: n.candidates.iter().map(|c| (*c).to_string()).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_name_lists_known() {
        let e = find("fashion").unwrap_err().to_string();
        assert!(e.contains("fashion-mnist") && e.contains("cifar10"), "{e}");
    }

    #[test]
    fn search_order() {
        let sp = SearchPath {
            config_dir: Some("/c".into()),
            env_dir: Some("/e".into()),
            system_root: "/usr/share/datasets".into(),
            cache_root: Some("/k".into()),
        };
        let c = sp.candidates(find("mnist").unwrap());
        let c: Vec<_> = c.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(c, ["/c", "/c/mnist", "/e", "/e/mnist", "/usr/share/datasets/mnist", "/k/mnist"]);
    }

    #[test]
    fn not_found_lists_every_place_and_the_fix() {
        let sp = SearchPath {
            config_dir: None,
            env_dir: Some("/nonexistent-e".into()),
            system_root: "/nonexistent-s".into(),
            cache_root: Some("/nonexistent-k".into()),
        };
        let e = sp.locate(find("fashion-mnist").unwrap()).unwrap_err().to_string();
        for want in [
            "/nonexistent-e",
            "/nonexistent-s/fashion-mnist",
            "/nonexistent-k/fashion-mnist",
            "apt-get install dataset-fashion-mnist",
            "bottleneck data fetch fashion-mnist",
        ] {
            assert!(e.contains(want), "missing {want:?} in {e}");
        }
    }
}
