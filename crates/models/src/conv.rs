//! The convolutional autoencoder.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::backbone::{BackboneConfig, Body};
use crate::config::ConvConfig;
use crate::dense::{plain_autoencoder, plain_body};
use crate::error::Result;
use crate::model::{Autoencoder, Summary};

/// Stride-2 convolutions over `channels` (each halves the image, rounding up), then a
/// linear layer to the code; the decoder is a linear layer back to the last feature map
/// and mirrored stride-2 transposed convolutions whose output padding is derived from the
/// encoder's sizes, so any `[c, h, w]` input (1×28×28, 3×32×32, odd sizes) comes back at
/// its own shape ([`crate::backbone::ConvEncoder`], [`crate::backbone::ConvDecoder`]).
#[derive(Debug, Clone)]
pub struct Conv {
    body: Body,
}

impl Conv {
    /// Builds the model; parameters are `encoder.conv{i}`, `encoder.fc`, `decoder.fc`,
    /// `decoder.deconv{i}` (`weight`, `bias` each).
    pub fn new(cfg: &ConvConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self { body: plain_body(&BackboneConfig::Conv(cfg.clone()), vb)? })
    }
}

plain_autoencoder!(Conv, "conv");
