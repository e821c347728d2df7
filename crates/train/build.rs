//! Reads the exact versions of the numeric crates from the workspace's `Cargo.lock`, for
//! the `versions` of every run's `manifest.json` (`BOTTLENECK_VERSION_<CRATE>`).

use std::path::Path;

const CRATES: [&str; 4] = ["candle-core", "candle-nn", "polars", "safetensors"];

fn main() {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    // `[[package]]` blocks: `name = "…"` then `version = "…"`.
    let mut name = String::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("name = ") {
            name = v.trim_matches('"').to_string();
        } else if let Some(v) = line.strip_prefix("version = ") {
            if CRATES.contains(&name.as_str()) {
                let key = name.to_ascii_uppercase().replace('-', "_");
                println!("cargo:rustc-env=BOTTLENECK_VERSION_{key}={}", v.trim_matches('"'));
            }
            name.clear();
        }
    }
    // A crate missing from the lock file (built outside the workspace) is "unknown".
    for c in CRATES {
        let key = c.to_ascii_uppercase().replace('-', "_");
        if !text.contains(&format!("name = \"{c}\"")) {
            println!("cargo:rustc-env=BOTTLENECK_VERSION_{key}=unknown");
        }
    }
}
