//! Reusable encoder and decoder bodies: the dense and convolutional stacks every kind
//! is built from. A kind picks how wide the encoder's output is (a plain code: `k`; a
//! Gaussian posterior: `2k` for μ and log σ²) and what the decoder's last activation is
//! (a Bernoulli VAE decodes to logits).
//!
//! Parameter names are the checkpoint format: dense `encoder.{i}`, `decoder.{i}`; conv
//! `encoder.conv{i}`, `encoder.fc`, `decoder.fc`, `decoder.deconv{j}`.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::config::{Activation, ConvConfig, DenseConfig, Kernels};
use crate::error::{invalid, Result};
use crate::layers::{conv2d, conv_transpose2d, linear, Conv2d, ConvTranspose2d, Linear};
use crate::model::LayerInfo;

const STRIDE: usize = 2;

/// The body a kind is built on, with its own config.
#[derive(Debug, Clone, PartialEq)]
pub enum BackboneConfig {
    /// Fully connected.
    Dense(DenseConfig),
    /// Convolutional.
    Conv(ConvConfig),
}

impl BackboneConfig {
    /// `dense` or `conv`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dense(_) => "dense",
            Self::Conv(_) => "conv",
        }
    }

    /// Shape of one input sample.
    #[must_use]
    pub fn input_shape(&self) -> &[usize] {
        match self {
            Self::Dense(c) => &c.input_shape,
            Self::Conv(c) => &c.input_shape,
        }
    }

    /// Code size.
    #[must_use]
    pub fn latent_dim(&self) -> usize {
        match self {
            Self::Dense(c) => c.latent_dim,
            Self::Conv(c) => c.latent_dim,
        }
    }

    /// The activation on the code.
    #[must_use]
    pub fn code_activation(&self) -> Activation {
        match self {
            Self::Dense(c) => c.code_activation,
            Self::Conv(c) => c.code_activation,
        }
    }

    /// The activation of the reconstruction.
    #[must_use]
    pub fn output_activation(&self) -> Activation {
        match self {
            Self::Dense(c) => c.output_activation,
            Self::Conv(c) => c.output_activation,
        }
    }

    /// The same body with its layers computed by `kernels`.
    #[must_use]
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        match &mut self {
            Self::Dense(c) => c.kernels = kernels,
            Self::Conv(c) => c.kernels = kernels,
        }
        self
    }

    /// The same body with `act` on the code.
    #[must_use]
    pub fn with_code_activation(mut self, act: Activation) -> Self {
        match &mut self {
            Self::Dense(c) => c.code_activation = act,
            Self::Conv(c) => c.code_activation = act,
        }
        self
    }

    /// Builds the encoder (emitting `code_out` features, described as `code_label`) and
    /// the decoder (from `latent_dim` features, ending in `output`) under `vb`.
    pub fn body(&self, code_out: usize, code_label: &str, output: Activation, vb: VarBuilder) -> Result<Body> {
        let (venc, vdec) = (vb.pp("encoder"), vb.pp("decoder"));
        let mut layers = Vec::new();
        let (encoder, decoder) = match self {
            Self::Dense(c) => {
                let e = DenseEncoder::new(c, code_out, code_label, venc, &mut layers)?;
                let d = DenseDecoder::new(c, output, vdec, &mut layers)?;
                (Encoder::Dense(e), Decoder::Dense(d))
            }
            Self::Conv(c) => {
                let e = ConvEncoder::new(c, code_out, code_label, venc, &mut layers)?;
                let d = ConvDecoder::new(c, output, vdec, &mut layers)?;
                (Encoder::Conv(e), Decoder::Conv(d))
            }
        };
        Ok(Body { input_shape: self.input_shape().to_vec(), latent_dim: self.latent_dim(), encoder, decoder, layers })
    }
}

/// An encoder and a decoder with the layer list of both.
#[derive(Debug, Clone)]
pub struct Body {
    /// Shape of one input sample.
    pub input_shape: Vec<usize>,
    /// Code size (the decoder's input).
    pub latent_dim: usize,
    /// `x -> features`.
    pub encoder: Encoder,
    /// `z -> x̂`.
    pub decoder: Decoder,
    /// Layers, input to output.
    pub layers: Vec<LayerInfo>,
}

/// A dense or convolutional encoder.
#[derive(Debug, Clone)]
pub enum Encoder {
    /// [`DenseEncoder`].
    Dense(DenseEncoder),
    /// [`ConvEncoder`].
    Conv(ConvEncoder),
}

impl Encoder {
    /// The encoder's output.
    ///
    /// # Shapes
    /// `xs: [b, ...input_shape]` → `[b, code_out]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(e) => e.forward(xs),
            Self::Conv(e) => e.forward(xs),
        }
    }
}

/// A dense or convolutional decoder.
#[derive(Debug, Clone)]
pub enum Decoder {
    /// [`DenseDecoder`].
    Dense(DenseDecoder),
    /// [`ConvDecoder`].
    Conv(ConvDecoder),
}

impl Decoder {
    /// The decoder's output.
    ///
    /// # Shapes
    /// `zs: [b, latent_dim]` → `[b, ...input_shape]`.
    pub fn forward(&self, zs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(d) => d.forward(zs),
            Self::Conv(d) => d.forward(zs),
        }
    }
}

/// `input -> hidden[0] -> ... -> code`, `activation` between layers, `code_activation`
/// on the last one.
#[derive(Debug, Clone)]
pub struct DenseEncoder {
    layers: Vec<Linear>,
    activation: Activation,
    code_activation: Activation,
}

impl DenseEncoder {
    fn new(
        c: &DenseConfig,
        code_out: usize,
        code_label: &str,
        vb: VarBuilder,
        info: &mut Vec<LayerInfo>,
    ) -> Result<Self> {
        let input: usize = c.input_shape.iter().product();
        if input == 0 {
            let v = format!("{:?}", c.input_shape);
            return Err(invalid("data shape", v, "inputs must have at least one feature"));
        }
        let mut widths = vec![input];
        widths.extend(&c.hidden);
        widths.push(code_out);
        let n = widths.len() - 1;
        let mut layers = Vec::new();
        for (i, w) in widths.windows(2).enumerate() {
            let l = linear(w[0], w[1], c.kernels, vb.pp(i))?;
            let kind = if i + 1 == n { code_label.to_string() } else { format!("linear + {}", c.activation.name()) };
            let (name, output, params, macs) = (format!("encoder.{i}"), vec![w[1]], l.params(), w[0] * w[1]);
            info.push(LayerInfo { name, kind, output, params, macs });
            layers.push(l);
        }
        Ok(Self { layers, activation: c.activation, code_activation: c.code_activation })
    }

    /// The encoder's output.
    ///
    /// # Shapes
    /// `xs: [b, ...]` → `[b, code_out]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        run(&self.layers, &xs.flatten_from(1)?, self.activation, self.code_activation)
    }

    /// The one layer of an encoder without hidden layers (`hidden = []`), for the
    /// closed-form Jacobian of the contractive penalty.
    #[must_use]
    pub fn single_layer(&self) -> Option<&Linear> {
        match self.layers.as_slice() {
            [l] => Some(l),
            _ => None,
        }
    }
}

/// `latent -> reversed hidden... -> input`, `activation` between layers, `output` on the
/// last one, reshaped to the input shape.
#[derive(Debug, Clone)]
pub struct DenseDecoder {
    layers: Vec<Linear>,
    activation: Activation,
    output: Activation,
    shape: Vec<usize>,
}

impl DenseDecoder {
    fn new(c: &DenseConfig, output: Activation, vb: VarBuilder, info: &mut Vec<LayerInfo>) -> Result<Self> {
        let input: usize = c.input_shape.iter().product();
        let mut widths = vec![c.latent_dim];
        widths.extend(c.hidden.iter().rev());
        widths.push(input);
        let n = widths.len() - 1;
        let mut layers = Vec::new();
        for (i, w) in widths.windows(2).enumerate() {
            let l = linear(w[0], w[1], c.kernels, vb.pp(i))?;
            let act = if i + 1 == n { output } else { c.activation };
            let out = if i + 1 == n { c.input_shape.clone() } else { vec![w[1]] };
            info.push(LayerInfo {
                name: format!("decoder.{i}"),
                kind: format!("linear + {}", act.name()),
                output: out,
                params: l.params(),
                macs: w[0] * w[1],
            });
            layers.push(l);
        }
        Ok(Self { layers, activation: c.activation, output, shape: c.input_shape.clone() })
    }

    /// The decoder's output.
    ///
    /// # Shapes
    /// `zs: [b, latent_dim]` → `[b, ...input_shape]`.
    pub fn forward(&self, zs: &Tensor) -> Result<Tensor> {
        let mut dims = vec![zs.dim(0)?];
        dims.extend(&self.shape);
        let Some((last, hidden)) = self.layers.split_last() else {
            return Ok(zs.reshape(dims)?);
        };
        let xs = run(hidden, zs, self.activation, self.activation)?;
        last.forward_to(&xs, self.output, &dims)
    }
}

fn run(layers: &[Linear], xs: &Tensor, act: Activation, last: Activation) -> Result<Tensor> {
    let mut xs = xs.clone();
    for (i, l) in layers.iter().enumerate() {
        xs = l.forward(&xs, if i + 1 == layers.len() { last } else { act })?;
    }
    Ok(xs)
}

/// Checks a conv config and returns the spatial sizes before each stride-2 convolution
/// and after the last one. With an odd kernel and padding k/2 a stride-2 layer maps s to
/// ceil(s/2), never below 1 pixel.
fn conv_sizes(c: &ConvConfig) -> Result<(usize, Vec<(usize, usize)>)> {
    let &[c0, h0, w0] = c.input_shape.as_slice() else {
        return Err(invalid(
            "model.kind",
            "conv",
            format!("the conv autoencoder needs [channels, height, width] images, got samples of shape {:?}; use model.kind = \"dense\" for vectors", c.input_shape),
        ));
    };
    let k = c.kernel_size;
    if k.is_multiple_of(2) || k > 15 {
        return Err(invalid("model.kernel_size", k, "must be odd, from 1 to 15"));
    }
    if c.channels.is_empty() || c.channels.contains(&0) {
        let v = format!("{:?}", c.channels);
        return Err(invalid("model.channels", v, "needs at least one layer, each with at least 1 channel"));
    }
    let pad = k / 2;
    let mut sizes = vec![(h0, w0)];
    for _ in &c.channels {
        let (h, w) = sizes[sizes.len() - 1];
        sizes.push(((h + 2 * pad - k) / STRIDE + 1, (w + 2 * pad - k) / STRIDE + 1));
    }
    Ok((c0, sizes))
}

/// Stride-2 convolutions over `channels` (each halves the image, rounding up), then a
/// linear layer to the code.
#[derive(Debug, Clone)]
pub struct ConvEncoder {
    down: Vec<Conv2d>,
    fc: Linear,
    activation: Activation,
    code_activation: Activation,
}

impl ConvEncoder {
    fn new(
        c: &ConvConfig,
        code_out: usize,
        code_label: &str,
        vb: VarBuilder,
        info: &mut Vec<LayerInfo>,
    ) -> Result<Self> {
        let (c0, sizes) = conv_sizes(c)?;
        let k = c.kernel_size;
        let mut down = Vec::new();
        let mut c_in = c0;
        for (i, &ch) in c.channels.iter().enumerate() {
            let l = conv2d(c_in, ch, k, STRIDE, c.kernels, vb.pp(format!("conv{i}")))?;
            info.push(LayerInfo {
                name: format!("encoder.conv{i}"),
                kind: format!("conv {k}×{k}/2 + {}", c.activation.name()),
                output: vec![ch, sizes[i + 1].0, sizes[i + 1].1],
                params: l.params(),
                macs: ch * sizes[i + 1].0 * sizes[i + 1].1 * c_in * k * k,
            });
            down.push(l);
            c_in = ch;
        }
        let (hl, wl) = sizes[sizes.len() - 1];
        let fc = linear(c_in * hl * wl, code_out, c.kernels, vb.pp("fc"))?;
        info.push(LayerInfo {
            name: "encoder.fc".into(),
            kind: format!("flatten + {code_label}"),
            output: vec![code_out],
            params: fc.params(),
            macs: c_in * hl * wl * code_out,
        });
        Ok(Self { down, fc, activation: c.activation, code_activation: c.code_activation })
    }

    /// The encoder's output.
    ///
    /// # Shapes
    /// `xs: [b, c, h, w]` → `[b, code_out]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = xs.clone();
        for l in &self.down {
            xs = l.forward(&xs, self.activation)?;
        }
        // The linear layer flattens `[b, c, h, w]` itself (no reshape node in the graph).
        self.fc.forward(&xs, self.code_activation)
    }
}

/// A linear layer back to the last feature map, then mirrored stride-2 transposed
/// convolutions whose output padding is derived from the encoder's sizes, so any
/// `[c, h, w]` input (1×28×28, 3×32×32, odd sizes) comes back at its own shape.
#[derive(Debug, Clone)]
pub struct ConvDecoder {
    fc: Linear,
    /// Transposed convolutions with the `(h, w)` each must produce.
    up: Vec<(ConvTranspose2d, (usize, usize))>,
    /// Feature map shape after the encoder's last convolution, `[c, h, w]`.
    inner: [usize; 3],
    activation: Activation,
    output: Activation,
}

impl ConvDecoder {
    #[allow(clippy::many_single_char_names)] // the usual names of conv arithmetic
    fn new(c: &ConvConfig, output: Activation, vb: VarBuilder, info: &mut Vec<LayerInfo>) -> Result<Self> {
        let (c0, sizes) = conv_sizes(c)?;
        let k = c.kernel_size;
        let pad = k / 2;
        let n = c.channels.len();
        let (hl, wl) = sizes[n];
        let inner = [c.channels[n - 1], hl, wl];
        let fc = linear(c.latent_dim, inner.iter().product(), c.kernels, vb.pp("fc"))?;
        info.push(LayerInfo {
            name: "decoder.fc".into(),
            kind: format!("linear + {} + reshape", c.activation.name()),
            output: inner.to_vec(),
            params: fc.params(),
            macs: c.latent_dim * inner.iter().product::<usize>(),
        });
        let mut up = Vec::new();
        for j in 0..n {
            // Mirror of encoder layer n-1-j: from channels[n-1-j] back to its input.
            let i = n - 1 - j;
            let c_from = c.channels[i];
            let c_to = if i == 0 { c0 } else { c.channels[i - 1] };
            let (hi, wi) = sizes[i + 1];
            let (ho, wo) = sizes[i];
            // Output padding 0 gives 2s - 1 pixels, 1 gives 2s; one value serves both axes,
            // so take the larger and crop the other axis when height and width differ in parity.
            let base = |s: usize| (s - 1) * STRIDE + k - 2 * pad;
            let op = (ho - base(hi)).max(wo - base(wi));
            let l = conv_transpose2d(c_from, c_to, k, STRIDE, op, c.kernels, vb.pp(format!("deconv{j}")))?;
            let act = if j + 1 == n { output } else { c.activation };
            info.push(LayerInfo {
                name: format!("decoder.deconv{j}"),
                kind: format!("deconv {k}×{k}/2 + {}", act.name()),
                output: vec![c_to, ho, wo],
                params: l.params(),
                // Every input pixel meets the k×k kernel of every (input, output) pair.
                macs: c_from * hi * wi * c_to * k * k,
            });
            up.push((l, (ho, wo)));
        }
        Ok(Self { fc, up, inner, activation: c.activation, output })
    }

    /// The decoder's output.
    ///
    /// # Shapes
    /// `zs: [b, latent_dim]` → `[b, c, h, w]`.
    pub fn forward(&self, zs: &Tensor) -> Result<Tensor> {
        let b = zs.dim(0)?;
        let [c, h, w] = self.inner;
        let mut xs = self.fc.forward_to(zs, self.activation, &[b, c, h, w])?;
        for (j, (l, (h, w))) in self.up.iter().enumerate() {
            let act = if j + 1 == self.up.len() { self.output } else { self.activation };
            // The activation is elementwise, so applying it before a crop changes nothing.
            xs = l.forward(&xs, act)?;
            if xs.dim(2)? != *h || xs.dim(3)? != *w {
                xs = xs.narrow(2, 0, *h)?.narrow(3, 0, *w)?.contiguous()?;
            }
        }
        Ok(xs)
    }
}
