#!/usr/bin/env bash
# The main job from a fresh machine: set up, then run it.
# Today the main job inspects Fashion-MNIST; it grows into the bottleneck sweep + report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
target/release/bottleneck data list
target/release/bottleneck data inspect fashion-mnist
