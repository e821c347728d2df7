//! Layers with PyTorch's default initialisation (so results compare with the PyTorch
//! references), computed by bottleneck-kernels' fused CPU ops: one op per layer for the
//! product, the bias and the activation, forward and backward.

use bottleneck_kernels::{self as k, Act, Conv2dParams, ConvTranspose2dParams};
use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::config::Activation;
use crate::error::Result;

fn uniform(bound: f64) -> Init {
    Init::Uniform { lo: -bound, up: bound }
}

/// The kernel activation for `act`, when the kernels can fuse it (its derivative is a
/// function of its output); GELU and `SiLU` run as candle ops after the layer.
fn fused(act: Activation) -> Option<Act> {
    match act {
        Activation::Identity => Some(Act::Identity),
        Activation::Relu => Some(Act::Relu),
        Activation::LeakyRelu => Some(Act::LeakyRelu),
        Activation::Sigmoid => Some(Act::Sigmoid),
        Activation::Tanh => Some(Act::Tanh),
        Activation::Gelu | Activation::Silu => None,
    }
}

/// Runs `layer` with `act` fused when possible, else with identity and then `act`.
fn with_act(act: Activation, layer: impl FnOnce(Act) -> candle_core::Result<Tensor>) -> Result<Tensor> {
    Ok(match fused(act) {
        Some(a) => layer(a)?,
        None => act.apply(&layer(Act::Identity)?)?,
    })
}

/// A fully connected layer, `act(x Wᵀ + b)`; W `[out, in]` and b `[out]` ~ U(-1/√in, 1/√in)
/// (PyTorch's `nn.Linear`).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// `act(x Wᵀ + b)` for `x: [n, in]`.
    pub fn forward(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        with_act(act, |a| k::linear(x, &self.weight, &self.bias, a))
    }

    /// Weight and bias elements.
    #[must_use]
    pub fn params(&self) -> usize {
        self.weight.elem_count() + self.bias.elem_count()
    }

    /// The weight, `[out, in]`.
    #[must_use]
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

/// A fully connected layer from `in_dim` to `out_dim` features.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let bound = 1.0 / (in_dim as f64).sqrt();
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", uniform(bound))?;
    let bias = vb.get_with_hints(out_dim, "bias", uniform(bound))?;
    Ok(Linear { weight, bias })
}

/// A square convolution with `padding = kernel / 2`; W `[out, in, k, k]` and b as
/// PyTorch's `nn.Conv2d`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// `act(conv(x) + b)` for `x: [n, in, h, w]`.
    pub fn forward(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let (stride, padding) = (self.stride, self.padding);
        with_act(act, |act| k::conv2d(x, &self.weight, &self.bias, Conv2dParams { stride, padding, act }))
    }

    /// Weight and bias elements.
    #[must_use]
    pub fn params(&self) -> usize {
        self.weight.elem_count() + self.bias.elem_count()
    }
}

/// A square convolution from `c_in` to `c_out` channels.
pub fn conv2d(c_in: usize, c_out: usize, kernel: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    let bound = 1.0 / ((c_in * kernel * kernel) as f64).sqrt();
    let weight = vb.get_with_hints((c_out, c_in, kernel, kernel), "weight", uniform(bound))?;
    let bias = vb.get_with_hints(c_out, "bias", uniform(bound))?;
    Ok(Conv2d { weight, bias, stride, padding: kernel / 2 })
}

/// A square transposed convolution with `padding = kernel / 2`; W `[in, out, k, k]` and b
/// as PyTorch's `nn.ConvTranspose2d` (fan-in from the weight's second dimension).
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
    output_padding: usize,
}

impl ConvTranspose2d {
    /// `act(conv_transpose(x) + b)` for `x: [n, in, h, w]`.
    pub fn forward(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let (stride, padding, output_padding) = (self.stride, self.padding, self.output_padding);
        with_act(act, |act| {
            let p = ConvTranspose2dParams { stride, padding, output_padding, act };
            k::conv_transpose2d(x, &self.weight, &self.bias, p)
        })
    }

    /// Weight and bias elements.
    #[must_use]
    pub fn params(&self) -> usize {
        self.weight.elem_count() + self.bias.elem_count()
    }
}

/// A square transposed convolution from `c_in` to `c_out` channels.
pub fn conv_transpose2d(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    output_padding: usize,
    vb: VarBuilder,
) -> Result<ConvTranspose2d> {
    let bound = 1.0 / ((c_out * kernel * kernel) as f64).sqrt();
    let weight = vb.get_with_hints((c_in, c_out, kernel, kernel), "weight", uniform(bound))?;
    let bias = vb.get_with_hints(c_out, "bias", uniform(bound))?;
    Ok(ConvTranspose2d { weight, bias, stride, padding: kernel / 2, output_padding })
}
