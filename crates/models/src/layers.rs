//! Layer constructors with PyTorch's default initialisation (so results compare with the
//! PyTorch references), behind small functions that faster kernels can replace without
//! touching the models.

use candle_core::Tensor;
use candle_nn::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Init, Linear, VarBuilder};

use crate::error::Result;

fn uniform(bound: f64) -> Init {
    Init::Uniform { lo: -bound, up: bound }
}

/// `y = x Wᵀ + b`, W and b ~ U(-1/√in, 1/√in) (PyTorch's `nn.Linear`).
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let bound = 1.0 / (in_dim as f64).sqrt();
    let w = vb.get_with_hints((out_dim, in_dim), "weight", uniform(bound))?;
    let b = vb.get_with_hints(out_dim, "bias", uniform(bound))?;
    Ok(Linear::new(w, Some(b)))
}

/// A square convolution with `padding = kernel / 2`; init as PyTorch's `nn.Conv2d`.
pub fn conv2d(c_in: usize, c_out: usize, kernel: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    let bound = 1.0 / ((c_in * kernel * kernel) as f64).sqrt();
    let w = vb.get_with_hints((c_out, c_in, kernel, kernel), "weight", uniform(bound))?;
    let b = vb.get_with_hints(c_out, "bias", uniform(bound))?;
    let cfg = Conv2dConfig { padding: kernel / 2, stride, ..Conv2dConfig::default() };
    Ok(Conv2d::new(w, Some(b), cfg))
}

/// A square transposed convolution with `padding = kernel / 2`; init as PyTorch's
/// `nn.ConvTranspose2d` (fan-in from the weight's second dimension).
pub fn conv_transpose2d(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    output_padding: usize,
    vb: VarBuilder,
) -> Result<ConvTranspose2d> {
    let bound = 1.0 / ((c_out * kernel * kernel) as f64).sqrt();
    let w = vb.get_with_hints((c_in, c_out, kernel, kernel), "weight", uniform(bound))?;
    let b = vb.get_with_hints(c_out, "bias", uniform(bound))?;
    let cfg = ConvTranspose2dConfig { padding: kernel / 2, output_padding, stride, dilation: 1 };
    Ok(ConvTranspose2d::new(w, Some(b), cfg))
}

/// Number of parameters of a module's weight and optional bias.
pub fn count(w: &Tensor, b: Option<&Tensor>) -> usize {
    w.elem_count() + b.map_or(0, Tensor::elem_count)
}
