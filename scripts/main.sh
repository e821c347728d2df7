#!/usr/bin/env bash
# The main job from a fresh machine: set up, then train the default experiment
# (a dense autoencoder on Fashion-MNIST, 10 epochs) end to end. Extra arguments are
# passed to `bottleneck run` as overrides, e.g. `scripts/main.sh model.latent_dim=8`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
target/release/bottleneck data inspect fashion-mnist
target/release/bottleneck run experiments/fashion-dense.toml "$@"
