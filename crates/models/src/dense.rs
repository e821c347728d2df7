//! The dense (fully connected) autoencoder.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::backbone::{BackboneConfig, Body};
use crate::config::DenseConfig;
use crate::error::Result;
use crate::model::{Autoencoder, Summary};

/// `input -> hidden[0] -> ... -> latent -> ... -> hidden[0] -> input`, activation between
/// layers, `code_activation` (default none) on the code, `output_activation` on the
/// reconstruction. With `hidden = []` and identity activations it is a linear autoencoder
/// (the PCA solution at its optimum).
#[derive(Debug, Clone)]
pub struct Dense {
    body: Body,
}

impl Dense {
    /// Builds the model; parameters are `encoder.{i}.{weight,bias}` and
    /// `decoder.{i}.{weight,bias}`.
    pub fn new(cfg: &DenseConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self { body: plain_body(&BackboneConfig::Dense(cfg.clone()), vb)? })
    }
}

/// The body of a plain autoencoder: the encoder emits the code itself, the decoder ends
/// in the backbone's output activation.
pub(crate) fn plain_body(b: &BackboneConfig, vb: VarBuilder) -> Result<Body> {
    let label = match b.code_activation() {
        crate::Activation::Identity => "linear (code)".to_string(),
        a => format!("linear + {} (code)", a.name()),
    };
    b.body(b.latent_dim(), &label, b.output_activation(), vb)
}

/// The trait methods of a kind whose code is its encoder's output and whose
/// reconstruction is its decoder's output (`self.body`): the shape, the code size,
/// `encode` and `decode`. Expands inside an `impl Autoencoder` block.
macro_rules! body_methods {
    () => {
        fn input_shape(&self) -> &[usize] {
            &self.body.input_shape
        }

        fn latent_dim(&self) -> usize {
            self.body.latent_dim
        }

        fn encode(&self, xs: &Tensor) -> Result<Tensor> {
            self.body.encoder.forward(xs)
        }

        fn decode(&self, zs: &Tensor) -> Result<Tensor> {
            self.body.decoder.forward(zs)
        }
    };
}
pub(crate) use body_methods;

/// The whole `Autoencoder` impl of a plain kind named `$name`: [`body_methods`] and the
/// summary; the objective is the trait's default (one `recon` term).
macro_rules! plain_autoencoder {
    ($ty:ty, $name:expr) => {
        impl Autoencoder for $ty {
            crate::dense::body_methods!();

            fn summary(&self) -> Summary {
                Summary {
                    model: $name.into(),
                    input: self.body.input_shape.clone(),
                    latent_dim: self.body.latent_dim,
                    layers: self.body.layers.clone(),
                }
            }
        }
    };
}
pub(crate) use plain_autoencoder;

plain_autoencoder!(Dense, "dense");
