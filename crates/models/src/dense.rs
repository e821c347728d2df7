//! The dense (fully connected) autoencoder.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::config::{Activation, DenseConfig};
use crate::error::{invalid, Result};
use crate::layers::{linear, Linear};
use crate::model::{Autoencoder, LayerInfo, Summary};

/// `input -> hidden[0] -> ... -> latent -> ... -> hidden[0] -> input`, activation between
/// layers, none on the code, `output_activation` on the reconstruction. With `hidden = []`
/// and identity activations it is a linear autoencoder (the PCA solution at its optimum).
#[derive(Debug, Clone)]
pub struct Dense {
    cfg: DenseConfig,
    encoder: Vec<Linear>,
    decoder: Vec<Linear>,
    layers: Vec<LayerInfo>,
}

impl Dense {
    /// Builds the model; parameters are `encoder.{i}.{weight,bias}` and
    /// `decoder.{i}.{weight,bias}`.
    pub fn new(cfg: &DenseConfig, vb: VarBuilder) -> Result<Self> {
        let input: usize = cfg.input_shape.iter().product();
        if input == 0 {
            return Err(invalid(
                "data shape",
                format!("{:?}", cfg.input_shape),
                "inputs must have at least one feature",
            ));
        }
        let mut widths = vec![input];
        widths.extend(&cfg.hidden);
        widths.push(cfg.latent_dim);
        let (venc, vdec) = (vb.pp("encoder"), vb.pp("decoder"));
        let mut layers = Vec::new();
        let mut encoder = Vec::new();
        let n = widths.len() - 1;
        for (i, w) in widths.windows(2).enumerate() {
            let l = linear(w[0], w[1], venc.pp(i))?;
            let act =
                if i + 1 == n { "linear (code)".to_string() } else { format!("linear + {}", cfg.activation.name()) };
            layers.push(LayerInfo { name: format!("encoder.{i}"), kind: act, output: vec![w[1]], params: params(&l) });
            encoder.push(l);
        }
        let mut decoder = Vec::new();
        let rev: Vec<usize> = widths.iter().rev().copied().collect();
        for (i, w) in rev.windows(2).enumerate() {
            let l = linear(w[0], w[1], vdec.pp(i))?;
            let act = if i + 1 == n { cfg.output_activation } else { cfg.activation };
            let output = if i + 1 == n { cfg.input_shape.clone() } else { vec![w[1]] };
            layers.push(LayerInfo {
                name: format!("decoder.{i}"),
                kind: format!("linear + {}", act.name()),
                output,
                params: params(&l),
            });
            decoder.push(l);
        }
        Ok(Self { cfg: cfg.clone(), encoder, decoder, layers })
    }
}

fn params(l: &Linear) -> usize {
    l.params()
}

fn run(layers: &[Linear], xs: &Tensor, act: Activation, last: Activation) -> Result<Tensor> {
    let mut xs = xs.clone();
    for (i, l) in layers.iter().enumerate() {
        xs = l.forward(&xs, if i + 1 == layers.len() { last } else { act })?;
    }
    Ok(xs)
}

impl Autoencoder for Dense {
    fn input_shape(&self) -> &[usize] {
        &self.cfg.input_shape
    }

    fn latent_dim(&self) -> usize {
        self.cfg.latent_dim
    }

    fn encode(&self, xs: &Tensor) -> Result<Tensor> {
        run(&self.encoder, &xs.flatten_from(1)?, self.cfg.activation, Activation::Identity)
    }

    fn decode(&self, zs: &Tensor) -> Result<Tensor> {
        let flat = run(&self.decoder, zs, self.cfg.activation, self.cfg.output_activation)?;
        let mut dims = vec![zs.dim(0)?];
        dims.extend(&self.cfg.input_shape);
        Ok(flat.reshape(dims)?)
    }

    fn summary(&self) -> Summary {
        Summary {
            model: "dense".into(),
            input: self.cfg.input_shape.clone(),
            latent_dim: self.cfg.latent_dim,
            layers: self.layers.clone(),
        }
    }
}
