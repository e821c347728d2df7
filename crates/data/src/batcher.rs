//! Mini-batches as candle tensors, in order or shuffled by (seed, epoch).

use candle_core::{Device, Tensor};

use crate::augment::Augment;
use crate::dataset::{permutation, Split};
use crate::error::Result;

/// One mini-batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Features `[b, ...sample_shape]` (or `[b, features]` when flattened).
    pub xs: Tensor,
    /// Labels `[b]` (u32) when the split has them.
    pub labels: Option<Tensor>,
    /// Indices of the samples in the split.
    pub indices: Vec<u32>,
}

/// Iterates a split in mini-batches. The order is either the split's own or a permutation
/// that depends only on `(seed, epoch)`, so a resumed run sees the same batches.
#[derive(Debug)]
pub struct Batcher<'a> {
    split: &'a Split,
    batch_size: usize,
    order: Option<Vec<u32>>,
    pos: usize,
    drop_last: bool,
    flatten: bool,
    device: Device,
    augment: Option<(&'a Augment, u64)>,
}

impl<'a> Batcher<'a> {
    /// Batches of `batch_size` (at least 1) in the split's order, on the CPU.
    #[must_use]
    pub fn new(split: &'a Split, batch_size: usize) -> Self {
        Self {
            split,
            batch_size: batch_size.max(1),
            order: None,
            pos: 0,
            drop_last: false,
            flatten: false,
            device: Device::Cpu,
            augment: None,
        }
    }

    /// Applies the training transforms `augment` (when given) as they fall in `epoch`.
    #[must_use]
    pub fn augmented(mut self, augment: Option<&'a Augment>, epoch: u64) -> Self {
        self.augment = augment.map(|a| (a, epoch));
        self
    }

    /// Shuffles with a permutation derived from `seed` and `epoch`.
    #[must_use]
    pub fn shuffled(mut self, seed: u64, epoch: u64) -> Self {
        let mixed = seed ^ (epoch.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.order = Some(permutation(self.split.len(), mixed));
        self
    }

    /// Starts at batch `index` of the pass (a resumed epoch), without building the
    /// batches before it.
    #[must_use]
    pub fn starting_at(mut self, index: usize) -> Self {
        self.pos = index.saturating_mul(self.batch_size).min(self.split.len());
        self
    }

    /// Drops a last batch smaller than `batch_size`.
    #[must_use]
    pub fn drop_last(mut self, yes: bool) -> Self {
        self.drop_last = yes;
        self
    }

    /// Flattens each sample to a vector (`[b, features]`), as dense models want.
    #[must_use]
    pub fn flatten(mut self, yes: bool) -> Self {
        self.flatten = yes;
        self
    }

    /// Puts batches on `device`.
    #[must_use]
    pub fn device(mut self, device: &Device) -> Self {
        self.device = device.clone();
        self
    }

    /// Number of batches one pass yields.
    #[must_use]
    pub fn num_batches(&self) -> usize {
        let n = self.split.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    fn batch(&self, start: usize, len: usize) -> Result<Batch> {
        let (xs, indices) = match &self.order {
            None => (self.split.range(start, len)?, (start as u32..(start + len) as u32).collect()),
            Some(order) => {
                let indices = order[start..start + len].to_vec();
                (self.split.rows(&indices)?, indices)
            }
        };
        let xs = match self.augment {
            Some((a, epoch)) => a.apply(&xs, &indices, epoch)?,
            None => xs,
        };
        let xs = if self.flatten { xs.flatten_from(1)? } else { xs };
        let labels = match &self.split.labels {
            Some(l) => {
                let ys: Vec<u32> = indices.iter().map(|&i| l[i as usize]).collect();
                Some(Tensor::from_vec(ys, len, &self.device)?)
            }
            None => None,
        };
        Ok(Batch { xs: xs.to_device(&self.device)?, labels, indices })
    }
}

impl Iterator for Batcher<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        let n = self.split.len();
        let len = self.batch_size.min(n.saturating_sub(self.pos));
        if len == 0 || (self.drop_last && len < self.batch_size) {
            return None;
        }
        let out = self.batch(self.pos, len);
        self.pos += len;
        Some(out)
    }
}
