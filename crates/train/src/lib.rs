//! Training for bottleneck: experiment configs (figment, Hydra-style groups and
//! overrides, with provenance), the training loop with owned, checkpointable optimisers,
//! schedules, clipping and early stopping, run directories with atomic files, metrics
//! through polars, checkpoints in safetensors, and resume.

pub mod catalog;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod encode;
pub mod error;
pub mod launcher;
pub mod lock;
pub mod optim;
pub mod run;
pub mod rundir;
pub mod runner;
pub mod slurm;
pub mod sweep;
pub mod tensorboard;
pub mod train_config;

pub use config::{resolve, ExperimentConfig, Resolved};
pub use error::{Result, TrainError};
pub use rundir::{Failure, Manifest, RunDir, Status};
pub use runner::{Observer, Outcome, Silent};
pub use train_config::{OptimizerKind, Schedule, TrainConfig};
