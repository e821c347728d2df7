//! The patched candle-core backward (vendor/candle-core/PATCH.md): a custom op's gradient
//! is stored as its input's gradient when that has none yet, summed from the second on,
//! and a gradient that does not fit its input is still an error.

use bottleneck_kernels::mse;
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor, Var};

fn var(values: &[f32]) -> Var {
    Var::from_tensor(&Tensor::from_slice(values, values.len(), &Device::Cpu).unwrap()).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_vec1::<f32>().unwrap()
}

#[test]
fn a_tensor_used_by_two_custom_ops_gets_the_sum_of_their_gradients() {
    let x = var(&[0.5, -1.0, 2.0, 0.25]);
    let (t, u) = (var(&[1.0, 1.0, 1.0, 1.0]), var(&[0.0, -2.0, 4.0, 0.0]));
    let once = mse(x.as_tensor(), t.as_tensor()).unwrap().backward().unwrap();
    let twice = (mse(x.as_tensor(), t.as_tensor()).unwrap() + mse(x.as_tensor(), u.as_tensor()).unwrap())
        .unwrap()
        .backward()
        .unwrap();
    // d/dx mean((x - t)²) = 2 (x - t) / n, computed here independently.
    let n = 4.0f32;
    let xs = values(x.as_tensor());
    let (ts, us) = (values(t.as_tensor()), values(u.as_tensor()));
    let want_once: Vec<f32> = xs.iter().zip(&ts).map(|(x, t)| 2.0 * (x - t) / n).collect();
    let want_twice: Vec<f32> =
        xs.iter().zip(&ts).zip(&us).map(|((x, t), u)| 2.0 * (x - t) / n + 2.0 * (x - u) / n).collect();
    assert_eq!(values(once.get(x.as_tensor()).unwrap()), want_once);
    let got = values(twice.get(x.as_tensor()).unwrap());
    assert!(got.iter().zip(&want_twice).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} against {want_twice:?}");
    // The target's gradient is the negation of the input's, stored as the op returned it.
    let neg: Vec<f32> = want_once.iter().map(|v| -v).collect();
    assert_eq!(values(once.get(t.as_tensor()).unwrap()), neg);
}

/// The identity forward, and a backward that returns a gradient of the wrong shape.
struct BadGrad;

impl CustomOp1 for BadGrad {
    fn name(&self) -> &'static str {
        "bad-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(v) = s else { candle_core::bail!("f32 only") };
        Ok((
            CpuStorage::F32(v[l.start_offset()..l.start_offset() + l.shape().elem_count()].to_vec()),
            l.shape().clone(),
        ))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, _grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(Tensor::zeros(arg.elem_count() + 1, arg.dtype(), arg.device())?))
    }
}

#[test]
fn a_gradient_that_does_not_fit_its_input_is_an_error() {
    let x = var(&[1.0, 2.0, 3.0]);
    let y = x.as_tensor().apply_op1(BadGrad).unwrap();
    let err = y.sum_all().unwrap().backward().unwrap_err();
    assert!(err.to_string().contains("shape mismatch"), "{err}");
}
