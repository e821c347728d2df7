//! Hugging Face hub loaders through `candle-datasets` (opt-in `hub` feature: it pulls
//! hf-hub, a TLS stack, parquet and image). Downloads go to the hub's own cache.

use candle_core::DType;

use crate::dataset::{RawDataset, Split};
use crate::error::{DataError, Result};
use crate::source::Source;

/// Loads `fashion-mnist`, `mnist` or `cifar10` from the Hugging Face hub.
pub fn load(source: &Source) -> Result<RawDataset> {
    use candle_datasets::vision;
    let (ds, shape) = match source.name {
        "fashion-mnist" => (vision::fashion_mnist::load()?, vec![1, 28, 28]),
        "mnist" => (vision::mnist::load()?, vec![1, 28, 28]),
        "cifar10" => (vision::cifar::load()?, vec![3, 32, 32]),
        other => {
            return Err(DataError::InvalidConfig {
                key: "data.name".into(),
                value: other.into(),
                allowed: "the hub loaders know fashion-mnist, mnist and cifar10".into(),
            })
        }
    };
    let split = |xs: &candle_core::Tensor, ys: &candle_core::Tensor| -> Result<Split> {
        let n = xs.dim(0)?;
        let mut dims = vec![n];
        dims.extend_from_slice(&shape);
        let labels = ys.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        Split::new(xs.to_dtype(DType::F32)?.reshape(dims)?, Some(labels))
    };
    Ok(RawDataset {
        name: source.name.into(),
        sample_shape: shape.clone(),
        classes: source.classes.iter().map(|c| (*c).to_string()).collect(),
        feature_names: Vec::new(),
        factors: Vec::new(),
        location: "huggingface hub".into(),
        pixels: true,
        train: split(&ds.train_images, &ds.train_labels)?,
        test: split(&ds.test_images, &ds.test_labels)?,
    })
}
