//! CPU kernels for bottleneck's models, plugged into candle through its extension points
//! (custom ops with their own backward, in-place ops). The workspace patches one thing in
//! candle-core (vendor/candle-core/PATCH.md): its backward stores a custom op's first
//! gradient for an input as it is instead of adding it onto a fresh zero tensor.
//! The kernels:
//!
//! - [`linear`]: `act(x Wᵀ + b)` in one op (gemm onto the bias rows, the activation
//!   applied to each thread's rows as they are done; nothing zeroed first); backward computes `dW`, `db` and, only when the input
//!   needs one, `dx`. It takes `[n, …]` inputs as flattened and, with [`linear_to`], lays
//!   its output out in any `[n, …]` shape: a flatten or reshape next to it would otherwise be
//!   a graph node whose gradient candle's backward zero-fills and adds (two passes).
//! - [`conv2d`] and [`conv_transpose2d`]: im2col/col2im + gemm, parallel over groups of
//!   samples, with the bias and activation fused; backward without a gradient for inputs
//!   that need none.
//! - [`mse`]: the mean squared error and its gradient in one pass each; [`bernoulli_nll`]:
//!   the binary cross-entropy with logits summed per sample, likewise.
//! - [`AdamStep`], [`SgdStep`]: the optimiser update applied in place to a parameter, one
//!   pass over parameter, gradient and moments.
//! - [`flush_denormals`]: flush-to-zero / denormals-are-zero on every worker thread (what
//!   PyTorch's `set_flush_denormal(True)` does).
//!
//! Everything is `f32` on the CPU; other devices or dtypes get a clear error. Each kernel
//! is checked against candle's reference ops, forward and backward, in this crate's tests.

// Kernels use the maths' names: x, w, b, n, c, h, k, m, v for tensors, sizes and moments.
#![allow(clippy::many_single_char_names, clippy::similar_names)]
// Sizes and offsets index live allocations, so they are far below isize::MAX.
#![allow(clippy::cast_possible_wrap)]

mod act;
mod blas;
mod conv;
mod cpu;
mod linear;
mod loss;
mod math;
mod optim;
mod par;

pub use act::Act;
pub use blas::{sgemm, transpose};
pub use conv::{conv2d, conv_transpose2d, Conv2dParams, ConvTranspose2dParams};
pub use cpu::{flush_denormals, grad_sq_sum};
pub use linear::{linear, linear_to};
pub use loss::{bernoulli_nll, mse};
pub use optim::{AdamStep, SgdStep};
