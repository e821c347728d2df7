#!/usr/bin/env bash
# Installs what bottleneck needs on a fresh Debian/Ubuntu machine, then builds the release
# binary. Safe to run again: it only installs what is missing.
#   scripts/setup.sh            system packages + release build
#   scripts/setup.sh --deps     system packages only (the test script uses this)
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the Fashion-MNIST dataset, and what the crates' build scripts need
# (a C compiler for ring/zstd, pkg-config + fontconfig headers and a font for the plots),
# and Chromium + chromedriver, with which the tests open the HTML reports.
PACKAGES=(dataset-fashion-mnist pkg-config libfontconfig1-dev fonts-dejavu-core gcc libc6-dev ca-certificates curl
  chromium chromium-driver)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: no Rust toolchain; installing one with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

if [ "${1:-}" = "--deps" ]; then
  exit 0
fi

cargo build --release --locked
echo "setup: built target/release/bottleneck" >&2
