//! Analysis for bottleneck: reads run and sweep directories (never trains) and draws the
//! figures a researcher looks at — loss curves, latent scatter plots (the code itself at
//! k = 2, PCA and t-SNE projections above), reconstruction and denoising grids, the sweep
//! curve of reconstruction error against bottleneck size with the PCA baseline — as PNG
//! and SVG, and an offline `report.html` per run and per sweep.

pub mod board;
pub mod compare;
pub mod disentangle;
pub mod error;
pub mod html;
pub mod metrics;
pub mod pca;
pub mod plot;
pub mod run_report;
pub mod sweep_report;

use std::path::{Path, PathBuf};

pub use compare::compare;
pub use error::{AnalysisError, Result};
pub use run_report::report_run;
pub use sweep_report::report_sweep;

/// (Re)draws everything for a run or a sweep directory (a sweep's runs included) and
/// returns the path of its `report.html`.
pub fn report(dir: &Path) -> Result<PathBuf> {
    if dir.join(bottleneck_train::sweep::SWEEP_FILE).is_file() {
        report_sweep(dir, true)
    } else if dir.join("config.toml").is_file() {
        report_run(dir)
    } else {
        Err(AnalysisError::Input {
            path: dir.into(),
            reason: "neither a run directory (config.toml) nor a sweep directory (sweep.toml)".into(),
        })
    }
}
