#!/usr/bin/env bash
# The main job from a fresh machine: set up, then sweep the bottleneck size of a dense
# autoencoder on Fashion-MNIST (k = 2, 4, 8, 16, 32, 64; 20 epochs each) and draw the
# report: reconstruction error and latent spaces against k, with the PCA baseline.
# Extra arguments are passed to `bottleneck sweep`, e.g. `scripts/main.sh train.epochs=3`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
target/release/bottleneck data inspect fashion-mnist
target/release/bottleneck sweep experiments/fashion-bottleneck-sweep.toml "$@"
