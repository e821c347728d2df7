//! Layers with PyTorch's default initialisation (so results compare with the PyTorch
//! references). On the CPU they are computed by bottleneck-kernels' fused ops (one op per
//! layer for the product, the bias and the activation, forward and backward); on other
//! devices, or with `kernels = "candle"`, by candle's own ops ([`Kernels::fused`]).

use bottleneck_kernels::{self as k, Act, Conv2dParams, ConvTranspose2dParams};
use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::config::{Activation, Kernels};
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

/// Runs the fused kernel `layer` with `act` fused when possible, else with identity and
/// then `act`.
fn with_act(act: Activation, layer: impl FnOnce(Act) -> candle_core::Result<Tensor>) -> Result<Tensor> {
    Ok(match fused(act) {
        Some(a) => layer(a)?,
        None => act.apply(&layer(Act::Identity)?)?,
    })
}

/// `act(ys + b)` with the bias `[c]` broadcast over the channel dimension 1 of `ys`
/// (`[n, c]` or `[n, c, h, w]`): candle's ops.
fn bias_act(ys: &Tensor, bias: &Tensor, act: Activation) -> Result<Tensor> {
    let mut shape = vec![1; ys.rank()];
    shape[1] = bias.elem_count();
    Ok(act.apply(&ys.broadcast_add(&bias.reshape(shape)?)?)?)
}

/// A fully connected layer, `act(x Wᵀ + b)`; W `[out, in]` and b `[out]` ~ U(-1/√in, 1/√in)
/// (PyTorch's `nn.Linear`).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
    kernels: Kernels,
}

impl Linear {
    /// `act(x Wᵀ + b)` for `x: [n, in]`, or `[n, …]` taken as its flattened features.
    pub fn forward(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        if self.kernels.fused(x) {
            return with_act(act, |a| k::linear(x, &self.weight, &self.bias, a));
        }
        let x = if x.rank() > 2 { x.flatten_from(1)? } else { x.clone() };
        bias_act(&x.matmul(&self.weight.t()?)?, &self.bias, act)
    }

    /// [`Linear::forward`] with the `[n, out]` output reshaped to `shape` (`[n, …]`); the
    /// fused kernel lays its output out so directly, without a reshape in the graph.
    pub fn forward_to(&self, x: &Tensor, act: Activation, shape: &[usize]) -> Result<Tensor> {
        if self.kernels.fused(x) {
            return with_act(act, |a| k::linear_to(x, &self.weight, &self.bias, a, shape));
        }
        Ok(self.forward(x, act)?.reshape(shape)?)
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
pub fn linear(in_dim: usize, out_dim: usize, kernels: Kernels, vb: VarBuilder) -> Result<Linear> {
    let bound = 1.0 / (in_dim as f64).sqrt();
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", uniform(bound))?;
    let bias = vb.get_with_hints(out_dim, "bias", uniform(bound))?;
    Ok(Linear { weight, bias, kernels })
}

/// A square convolution with `padding = kernel / 2`; W `[out, in, k, k]` and b as
/// PyTorch's `nn.Conv2d`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
    kernels: Kernels,
}

impl Conv2d {
    /// `act(conv(x) + b)` for `x: [n, in, h, w]`.
    pub fn forward(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let (stride, padding) = (self.stride, self.padding);
        if self.kernels.fused(x) {
            return with_act(act, |act| k::conv2d(x, &self.weight, &self.bias, Conv2dParams { stride, padding, act }));
        }
        bias_act(&strided_conv(x, &self.weight, stride, padding)?, &self.bias, act)
    }

    /// Weight and bias elements.
    #[must_use]
    pub fn params(&self) -> usize {
        self.weight.elem_count() + self.bias.elem_count()
    }
}

/// A square convolution from `c_in` to `c_out` channels.
pub fn conv2d(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    kernels: Kernels,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let bound = 1.0 / ((c_in * kernel * kernel) as f64).sqrt();
    let weight = vb.get_with_hints((c_out, c_in, kernel, kernel), "weight", uniform(bound))?;
    let bias = vb.get_with_hints(c_out, "bias", uniform(bound))?;
    Ok(Conv2d { weight, bias, stride, padding: kernel / 2, kernels })
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
    kernels: Kernels,
}

impl ConvTranspose2d {
    /// `act(conv_transpose(x) + b)` for `x: [n, in, h, w]`.
    pub fn forward(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let (stride, padding, output_padding) = (self.stride, self.padding, self.output_padding);
        if self.kernels.fused(x) {
            return with_act(act, |act| {
                let p = ConvTranspose2dParams { stride, padding, output_padding, act };
                k::conv_transpose2d(x, &self.weight, &self.bias, p)
            });
        }
        bias_act(&x.conv_transpose2d(&self.weight, padding, output_padding, stride, 1)?, &self.bias, act)
    }

    /// Weight and bias elements.
    #[must_use]
    pub fn params(&self) -> usize {
        self.weight.elem_count() + self.bias.elem_count()
    }
}

/// PyTorch's `conv2d(x, w, stride, padding)` from candle's ops: `x` padded with zeros
/// here and cut to the rows and columns the windows read, then an unpadded convolution.
/// candle's own padded `conv2d` has a backward pass that takes the height's leftover
/// rows for the width's too, and fails on inputs whose sides differ in it (an 8×9 map at
/// stride 2); with nothing left over on either side its backward pass is exact.
fn strided_conv(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, _, kh, kw) = w.dims4()?;
    let mut xs = x.clone();
    for (dim, k) in [(2, kh), (3, kw)] {
        xs = xs.pad_with_zeros(dim, padding, padding)?;
        let n = xs.dim(dim)?;
        if n >= k {
            xs = xs.narrow(dim, 0, (n - k) / stride * stride + k)?;
        }
    }
    Ok(xs.conv2d(w, 0, stride, 1, 1)?)
}

/// A square transposed convolution from `c_in` to `c_out` channels.
pub fn conv_transpose2d(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    output_padding: usize,
    kernels: Kernels,
    vb: VarBuilder,
) -> Result<ConvTranspose2d> {
    let bound = 1.0 / ((c_out * kernel * kernel) as f64).sqrt();
    let weight = vb.get_with_hints((c_in, c_out, kernel, kernel), "weight", uniform(bound))?;
    let bias = vb.get_with_hints(c_out, "bias", uniform(bound))?;
    Ok(ConvTranspose2d { weight, bias, stride, padding: kernel / 2, output_padding, kernels })
}
