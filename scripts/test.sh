#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing (the Debian dataset
# included), then format check, clippy with -D warnings, every test (the data crate's also
# with the hub feature), and the docs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --deps
export PATH="$HOME/.cargo/bin:$PATH"
start=$(date +%s)
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The opt-in hub feature (candle-datasets' loaders), on a Hugging Face cache its test builds.
cargo clippy -p bottleneck-data --features hub --all-targets --locked -- -D warnings
cargo test -p bottleneck-data --features hub --locked
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
echo "test.sh: all checks passed in $(( $(date +%s) - start )) s" >&2
