//! Activations fused into the layer kernels. Each one's derivative is a function of its
//! output, so the backward pass needs only the layer's result, not its pre-activation.

use std::mem::MaybeUninit;

use candle_core::{Result, Tensor};

use crate::cpu::with_f32;
use crate::math::exp;
use crate::par;

/// Below this many elements an elementwise pass runs on the calling thread.
const PARALLEL_ELEMS: usize = 1 << 16;
/// Elements per parallel task.
const CHUNK: usize = 1 << 14;
/// Slope of the leaky `ReLU` for negative inputs (PyTorch's default, as the models use).
pub const LEAKY_SLOPE: f32 = 0.01;

/// An activation a kernel can apply in place after its bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// `x`.
    Identity,
    /// `max(0, x)`.
    Relu,
    /// `x` for `x > 0`, else `0.01 x`.
    LeakyRelu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
}

impl Act {
    /// Applies the activation to `ys` in place, in parallel chunks when `ys` is large.
    /// Call at the top level of a kernel (parallel loops do not nest); inside a task use
    /// [`Act::forward_serial`].
    pub fn forward_inplace(self, ys: &mut [f32]) {
        if self == Self::Identity {
            return;
        }
        if ys.len() >= PARALLEL_ELEMS {
            par::chunks_mut(ys, CHUNK, |_, c| self.forward_serial(c));
        } else {
            self.forward_serial(ys);
        }
    }

    /// Applies the activation to `ys` in place on the calling thread, with the CPU's widest
    /// SIMD enabled for the loop (pulp picks AVX-512, AVX2 or SSE at run time).
    pub fn forward_serial(self, ys: &mut [f32]) {
        match self {
            Self::Identity => {}
            Self::Relu => map_inplace(ys, |y| y.max(0.0)),
            Self::LeakyRelu => map_inplace(ys, |y| if y > 0.0 { y } else { y * LEAKY_SLOPE }),
            Self::Sigmoid => map_inplace(ys, |y| 1.0 / (1.0 + exp(-y))),
            Self::Tanh => map_inplace(ys, f32::tanh),
        }
    }

    /// The gradient at a layer's pre-activation, `grad ⊙ f'(x)`, from the layer's output
    /// `res` and the gradient `grad` candle hands its backward pass (`op` names the layer
    /// in errors).
    pub(crate) fn backward_at(self, res: &Tensor, grad: &Tensor, op: &str) -> Result<Vec<f32>> {
        with_f32(grad, op, |g| with_f32(res, op, |y| self.backward(g, y)))?
    }

    /// `grad ⊙ f'(x)` as a new buffer, with `f'` taken from the outputs `ys` (one pass:
    /// read both, write the result).
    ///
    /// # Panics
    /// When `grad` and `ys` differ in length (a bug in the caller).
    #[must_use]
    pub fn backward(self, grad: &[f32], ys: &[f32]) -> Vec<f32> {
        assert_eq!(grad.len(), ys.len(), "activation backward: gradient and output differ in size");
        if self == Self::Identity {
            return grad.to_vec();
        }
        // Small gradients in one piece on this thread; large ones in parallel chunks.
        let size = if grad.len() < PARALLEL_ELEMS { grad.len() } else { CHUNK };
        let piece = |i: usize, out: &mut [MaybeUninit<f32>]| {
            let r = i * size..i * size + out.len();
            self.backward_to(&grad[r.clone()], &ys[r], out, |o, v| {
                o.write(v);
            });
        };
        // SAFETY: `backward_to` writes every element of `out` (its loops zip `out` with
        // `grad` and `ys`, both as long as `out`).
        #[allow(unsafe_code)]
        unsafe {
            crate::cpu::build_uninit(grad.len(), size, piece).0
        }
    }

    /// [`Act::backward`] into `out` (all three the same length), on the calling thread.
    pub(crate) fn backward_serial(self, grad: &[f32], ys: &[f32], out: &mut [f32]) {
        self.backward_to(grad, ys, out, |o, v| *o = v);
    }

    /// `put(out[i], grad[i] · f'(x_i))` for every `i`, on the calling thread (`out` may be
    /// `f32`s or uninitialised slots). Every element of `out` is put once when all three
    /// have the same length.
    fn backward_to<O>(self, grad: &[f32], ys: &[f32], out: &mut [O], put: impl Fn(&mut O, f32)) {
        match self {
            Self::Identity => map2(grad, ys, out, |g, _| g, put),
            Self::Relu => map2(grad, ys, out, |g, y| if y > 0.0 { g } else { 0.0 }, put),
            Self::LeakyRelu => map2(grad, ys, out, |g, y| if y > 0.0 { g } else { g * LEAKY_SLOPE }, put),
            Self::Sigmoid => map2(grad, ys, out, |g, y| g * y * (1.0 - y), put),
            Self::Tanh => map2(grad, ys, out, |g, y| g * (1.0 - y * y), put),
        }
    }
}

/// `y = f(y)` over `ys` on this thread, with the CPU's widest SIMD enabled. Generic, so
/// each activation gets its own inlined, vectorised loop.
fn map_inplace(ys: &mut [f32], f: impl Fn(f32) -> f32) {
    pulp::Arch::new().dispatch(|| ys.iter_mut().for_each(|y| *y = f(*y)));
}

/// `put(out[i], f(grad[i], ys[i]))`, with the CPU's widest SIMD enabled for the loop.
fn map2<O>(grad: &[f32], ys: &[f32], out: &mut [O], f: impl Fn(f32, f32) -> f32, put: impl Fn(&mut O, f32)) {
    pulp::Arch::new().dispatch(|| out.iter_mut().zip(grad.iter().zip(ys)).for_each(|(o, (&g, &y))| put(o, f(g, y))));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_from_outputs_match_finite_differences() {
        for act in [Act::Identity, Act::Relu, Act::LeakyRelu, Act::Sigmoid, Act::Tanh] {
            for &x in &[-2.5f32, -0.3, 0.4, 1.7] {
                let h = 1e-3f32;
                let f = |v: f32| {
                    let mut y = [v];
                    act.forward_inplace(&mut y);
                    y[0]
                };
                let numeric = (f(x + h) - f(x - h)) / (2.0 * h);
                let g = act.backward(&[1.0], &[f(x)]);
                assert!((g[0] - numeric).abs() < 2e-3, "{act:?} at {x}: {} vs {numeric}", g[0]);
            }
        }
    }
}
