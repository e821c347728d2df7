//! The convolutional autoencoder.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::config::{Activation, ConvConfig};
use crate::error::{invalid, Result};
use crate::layers::{conv2d, conv_transpose2d, linear, Conv2d, ConvTranspose2d, Linear};
use crate::model::{Autoencoder, LayerInfo, Summary};

const STRIDE: usize = 2;

/// Stride-2 convolutions over `channels` (each halves the image, rounding up), then a
/// linear layer to the code; the decoder is a linear layer back to the last feature map
/// and mirrored stride-2 transposed convolutions whose output padding is derived from the
/// encoder's sizes, so any `[c, h, w]` input (1×28×28, 3×32×32, odd sizes) comes back at
/// its own shape.
#[derive(Debug, Clone)]
pub struct Conv {
    cfg: ConvConfig,
    down: Vec<Conv2d>,
    enc_fc: Linear,
    dec_fc: Linear,
    /// Transposed convolutions with the `(h, w)` each must produce.
    up: Vec<(ConvTranspose2d, (usize, usize))>,
    /// Feature map shape after the last convolution, `[c, h, w]`.
    inner: [usize; 3],
    layers: Vec<LayerInfo>,
}

impl Conv {
    /// Builds the model; parameters are `encoder.conv{i}`, `encoder.fc`, `decoder.fc`,
    /// `decoder.deconv{i}` (`weight`, `bias` each).
    pub fn new(cfg: &ConvConfig, vb: VarBuilder) -> Result<Self> {
        let &[c0, h0, w0] = cfg.input_shape.as_slice() else {
            return Err(invalid(
                "model.kind",
                "conv",
                format!("the conv autoencoder needs [channels, height, width] images, got samples of shape {:?}; use model.kind = \"dense\" for vectors", cfg.input_shape),
            ));
        };
        let k = cfg.kernel_size;
        if k % 2 == 0 || k > 15 {
            return Err(invalid("model.kernel_size", k, "must be odd, from 1 to 15"));
        }
        if cfg.channels.is_empty() || cfg.channels.contains(&0) {
            let v = format!("{:?}", cfg.channels);
            return Err(invalid("model.channels", v, "needs at least one layer, each with at least 1 channel"));
        }
        let pad = k / 2;
        // Spatial sizes before each conv and after the last one. With an odd kernel and
        // padding k/2 a stride-2 layer maps s to ceil(s/2), never below 1 pixel.
        let mut sizes = vec![(h0, w0)];
        for _ in &cfg.channels {
            let (h, w) = sizes[sizes.len() - 1];
            sizes.push(((h + 2 * pad - k) / STRIDE + 1, (w + 2 * pad - k) / STRIDE + 1));
        }
        let (venc, vdec) = (vb.pp("encoder"), vb.pp("decoder"));
        let mut layers = Vec::new();
        let mut down = Vec::new();
        let mut c_in = c0;
        for (i, &c) in cfg.channels.iter().enumerate() {
            let l = conv2d(c_in, c, k, STRIDE, venc.pp(format!("conv{i}")))?;
            layers.push(LayerInfo {
                name: format!("encoder.conv{i}"),
                kind: format!("conv {k}×{k}/2 + {}", cfg.activation.name()),
                output: vec![c, sizes[i + 1].0, sizes[i + 1].1],
                params: l.params(),
            });
            down.push(l);
            c_in = c;
        }
        let (hl, wl) = sizes[sizes.len() - 1];
        let inner = [c_in, hl, wl];
        let flat = c_in * hl * wl;
        let enc_fc = linear(flat, cfg.latent_dim, venc.pp("fc"))?;
        layers.push(LayerInfo {
            name: "encoder.fc".into(),
            kind: "flatten + linear (code)".into(),
            output: vec![cfg.latent_dim],
            params: enc_fc.params(),
        });
        let dec_fc = linear(cfg.latent_dim, flat, vdec.pp("fc"))?;
        layers.push(LayerInfo {
            name: "decoder.fc".into(),
            kind: format!("linear + {} + reshape", cfg.activation.name()),
            output: inner.to_vec(),
            params: dec_fc.params(),
        });
        let mut up = Vec::new();
        let n = cfg.channels.len();
        for j in 0..n {
            // Mirror of encoder layer n-1-j: from channels[n-1-j] back to its input.
            let i = n - 1 - j;
            let c_from = cfg.channels[i];
            let c_to = if i == 0 { c0 } else { cfg.channels[i - 1] };
            let (hi, wi) = sizes[i + 1];
            let (ho, wo) = sizes[i];
            // Output padding 0 gives 2s - 1 pixels, 1 gives 2s; one value serves both axes,
            // so take the larger and crop the other axis when height and width differ in parity.
            let base = |s: usize| (s - 1) * STRIDE + k - 2 * pad;
            let op = (ho - base(hi)).max(wo - base(wi));
            let l = conv_transpose2d(c_from, c_to, k, STRIDE, op, vdec.pp(format!("deconv{j}")))?;
            let act = if j + 1 == n { cfg.output_activation } else { cfg.activation };
            layers.push(LayerInfo {
                name: format!("decoder.deconv{j}"),
                kind: format!("deconv {k}×{k}/2 + {}", act.name()),
                output: vec![c_to, ho, wo],
                params: l.params(),
            });
            up.push((l, (ho, wo)));
        }
        Ok(Self { cfg: cfg.clone(), down, enc_fc, dec_fc, up, inner, layers })
    }
}

impl Autoencoder for Conv {
    fn input_shape(&self) -> &[usize] {
        &self.cfg.input_shape
    }

    fn latent_dim(&self) -> usize {
        self.cfg.latent_dim
    }

    fn encode(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = xs.clone();
        for l in &self.down {
            xs = l.forward(&xs, self.cfg.activation)?;
        }
        self.enc_fc.forward(&xs.flatten_from(1)?, Activation::Identity)
    }

    fn decode(&self, zs: &Tensor) -> Result<Tensor> {
        let b = zs.dim(0)?;
        let [c, h, w] = self.inner;
        let mut xs = self.dec_fc.forward(zs, self.cfg.activation)?.reshape((b, c, h, w))?;
        for (j, (l, (h, w))) in self.up.iter().enumerate() {
            let act = if j + 1 == self.up.len() { self.cfg.output_activation } else { self.cfg.activation };
            // The activation is elementwise, so applying it before a crop changes nothing.
            xs = l.forward(&xs, act)?;
            if xs.dim(2)? != *h || xs.dim(3)? != *w {
                xs = xs.narrow(2, 0, *h)?.narrow(3, 0, *w)?.contiguous()?;
            }
        }
        Ok(xs)
    }

    fn summary(&self) -> Summary {
        Summary {
            model: "conv".into(),
            input: self.cfg.input_shape.clone(),
            latent_dim: self.cfg.latent_dim,
            layers: self.layers.clone(),
        }
    }
}
