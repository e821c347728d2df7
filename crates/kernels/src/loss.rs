//! The mean squared error as one op: one pass forward, one pass backward.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use crate::cpu::{slice, tensor, with_f32};

const NAME: &str = "mse";

struct Mse;

impl CustomOp2 for Mse {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(&self, a: &CpuStorage, al: &Layout, b: &CpuStorage, bl: &Layout) -> Result<(CpuStorage, Shape)> {
        if al.dims() != bl.dims() {
            bail!("{NAME}: reconstruction {:?} and target {:?} differ in shape", al.dims(), bl.dims());
        }
        let (a, b) = (slice(a, al, NAME)?, slice(b, bl, NAME)?);
        // f64 partial sums per block keep the mean exact to f32 rounding for any size.
        let sum: f64 = a
            .chunks(4096)
            .zip(b.chunks(4096))
            .map(|(a, b)| {
                let s: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
                f64::from(s)
            })
            .sum();
        let mean = if a.is_empty() { f64::NAN } else { sum / a.len() as f64 };
        Ok((CpuStorage::F32(vec![mean as f32]), Shape::from(())))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let scale = 2.0 * grad.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()? / a.elem_count() as f32;
        let d = with_f32(a, NAME, |a| {
            with_f32(b, NAME, |b| a.iter().zip(b).map(|(x, y)| scale * (x - y)).collect::<Vec<f32>>())
        })??;
        let db = if b.track_op() { Some(tensor(d.iter().map(|v| -v).collect(), b.shape().clone())?) } else { None };
        let da = if a.track_op() { Some(tensor(d, a.shape().clone())?) } else { None };
        Ok((da, db))
    }
}

/// Mean over all elements of `(a - b)²`, a scalar; differentiable in both.
pub fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?.apply_op2(&b.contiguous()?, Mse)
}
