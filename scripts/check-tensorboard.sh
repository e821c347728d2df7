#!/usr/bin/env bash
# Reads bottleneck's TensorBoard files with the real `tensorboard` package: every run's
# scalars, images and embedding projector must load (scripts/check_tensorboard.py).
#
#   scripts/check-tensorboard.sh [DIR...]
#
# DIR: run or sweep directories (a sweep's points are checked one by one). Without one,
# the script trains its own on Fashion-MNIST with the dev build: a 2-point sweep of the
# dense autoencoder (one point interrupted and resumed) and a VAE run (loss terms), all
# with train=debug.
#   TB_VENV=DIR   the venv with tensorboard (default target/tensorboard-venv, kept)
#   BOTTLENECK=P  the binary (default: cargo build, target/debug/bottleneck)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/venv.sh
venv="${TB_VENV:-target/tensorboard-venv}"
py="$venv/bin/python"
if [ -x "$py" ] && "$py" -c 'import tensorboard' 2>/dev/null; then
  echo "reusing $venv (tensorboard $("$py" -c 'import tensorboard; print(tensorboard.__version__)'))"
else
  echo "installing tensorboard into $venv"
  new_venv "$venv"
  # setuptools: tensorboard's plugin loader still imports pkg_resources.
  "$py" -m pip install --quiet --progress-bar off tensorboard setuptools
fi

dirs=("$@")
if [ ${#dirs[@]} -eq 0 ]; then
  if [ -z "${BOTTLENECK:-}" ]; then
    cargo build --locked --quiet
    BOTTLENECK=target/debug/bottleneck
  fi
  bin=$(realpath "$BOTTLENECK")
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  repo=$(pwd)
  (
    cd "$work"
    "$bin" sweep --quiet "$repo/experiments/fashion-dense.toml" train=debug train.epochs=2 model.latent_dim=2,8
    # Interrupted after its first epoch, then resumed: TensorBoard must see one curve.
    "$bin" run --quiet --runs resumed "$repo/experiments/fashion-dense.toml" train=debug train.epochs=3 model.latent_dim=4 &
    pid=$!
    until ls resumed/fashion-dense/*/metrics.csv >/dev/null 2>&1; do sleep 0.2; done
    kill -INT "$pid"
    wait "$pid" || true
    "$bin" resume --quiet resumed/fashion-dense/*/
    "$bin" run --quiet "$repo/experiments/fashion-vae.toml" train=debug train.epochs=2
  )
  mapfile -t dirs < <(ls -d "$work"/runs/*/*/ "$work"/resumed/*/*/)
fi
"$py" scripts/check_tensorboard.py "${dirs[@]}"
