//! Where tensors live: `device = "cpu" | "cuda:N" | "auto"` resolved to a candle
//! [`Device`], what the manifest records about it, and the GPUs a sweep may spread over.
//!
//! A build without the `cuda` feature knows only the CPU: `cuda:N` is refused when the
//! config is checked, `auto` is the CPU. With `cuda`, `auto` is the first GPU when one is
//! present, else the CPU; `cuda:N` that is not there is an error before any run directory
//! exists. One process opens each GPU once: candle gives every `Device::new_cuda` its own
//! identity, and tensors of two such devices do not mix, so the model, the batches and the
//! optimiser must share one.

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Whether this binary was built with the `cuda` feature.
pub const CUDA_BUILD: bool = cfg!(feature = "cuda");

/// What `device = ...` accepts.
pub const ACCEPTED: &str = "use \"cpu\", \"cuda:N\" (N = 0, 1, ...) or \"auto\"";

/// A device a config may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// The CPU.
    Cpu,
    /// GPU `N` of those this process sees (`CUDA_VISIBLE_DEVICES` renumbers them from 0).
    Cuda(usize),
    /// The first GPU when the build has CUDA and one is present, else the CPU.
    Auto,
}

impl Spec {
    /// Parses `cpu`, `cuda:N` or `auto`; `None` for anything else.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "cpu" => Some(Self::Cpu),
            "auto" => Some(Self::Auto),
            _ => {
                let n = text.strip_prefix("cuda:")?;
                if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                n.parse().ok().map(Self::Cuda)
            }
        }
    }
}

/// The GPU a run trained on, as the driver describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// The model, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Compute capability, e.g. "9.0".
    pub compute_capability: String,
    /// Device memory in MiB.
    pub memory_mib: u64,
    /// The NVIDIA driver version (from `/proc/driver/nvidia/version`), when readable.
    pub driver: Option<String>,
    /// `CUDA_VISIBLE_DEVICES` of the process, when set (which physical GPU `cuda:N` was).
    pub visible_devices: Option<String>,
}

/// A resolved device: the candle device and what the manifest records.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The device tensors go to.
    pub device: Device,
    /// `cpu` or `cuda:N`: what the run actually used.
    pub name: String,
    /// For a GPU, its description.
    pub gpu: Option<GpuInfo>,
}

impl Resolved {
    /// "cpu", or "cuda:0 (NVIDIA H100 80GB HBM3)".
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.gpu {
            Some(g) => format!("{} ({})", self.name, g.name),
            None => self.name.clone(),
        }
    }
}

/// Resolves `text` (as a config's `device`); a GPU is opened once per process, so `auto`
/// and `cuda:0` resolved in one process are the same device.
pub fn resolve(text: &str) -> Result<Resolved> {
    let spec = Spec::parse(text)
        .ok_or_else(|| TrainError::Config(format!("invalid value \"{text}\" for `device`: {ACCEPTED}")))?;
    open(spec, text)
}

/// The GPU `ordinal`, opened by `make` the first time it is asked for.
#[cfg(feature = "cuda")]
fn opened(ordinal: usize, make: impl FnOnce() -> Result<Resolved>) -> Result<Resolved> {
    static OPEN: std::sync::Mutex<Vec<(usize, Resolved)>> = std::sync::Mutex::new(Vec::new());
    let mut open = OPEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, r)) = open.iter().find(|(o, _)| *o == ordinal) {
        return Ok(r.clone());
    }
    let r = make()?;
    open.push((ordinal, r.clone()));
    Ok(r)
}

fn cpu() -> Resolved {
    Resolved { device: Device::Cpu, name: "cpu".into(), gpu: None }
}

#[cfg(not(feature = "cuda"))]
fn open(spec: Spec, text: &str) -> Result<Resolved> {
    match spec {
        Spec::Cpu | Spec::Auto => Ok(cpu()),
        Spec::Cuda(_) => Err(TrainError::Config(format!(
            "invalid value \"{text}\" for `device`: this build has no CUDA support; use \"cpu\" or \"auto\" (the CPU), or build with `--features cuda` (README, \"GPUs\")"
        ))),
    }
}

#[cfg(feature = "cuda")]
fn open(spec: Spec, text: &str) -> Result<Resolved> {
    let ordinal = match spec {
        Spec::Cpu => return Ok(cpu()),
        Spec::Auto => match gpu_count() {
            Ok(n) if n > 0 => 0,
            Ok(_) => return Ok(cpu()),
            Err(e) => {
                tracing::warn!("device = \"auto\": the CUDA driver fails with {e}; using the CPU");
                return Ok(cpu());
            }
        },
        Spec::Cuda(n) => n,
    };
    let unavailable = |why: String| {
        TrainError::Config(format!(
            "`device = \"{text}\"` is not available: {why}; use \"cpu\", \"auto\", or a GPU this process sees (nvidia-smi lists them; CUDA_VISIBLE_DEVICES renumbers them from 0)"
        ))
    };
    let count = gpu_count().map_err(|e| unavailable(format!("the CUDA driver fails with {e}")))?;
    if ordinal >= count {
        return Err(unavailable(format!(
            "this process sees {count} GPU{}{}",
            if count == 1 { "" } else { "s" },
            if count == 0 { String::new() } else { format!(" (cuda:0 to cuda:{})", count - 1) }
        )));
    }
    opened(ordinal, || {
        let device = Device::new_cuda(ordinal).map_err(|e| unavailable(e.to_string()))?;
        let gpu = gpu_info(&device);
        Ok(Resolved { device, name: format!("cuda:{ordinal}"), gpu })
    })
}

/// What the driver says about the GPU of `device`.
#[cfg(feature = "cuda")]
fn gpu_info(device: &Device) -> Option<GpuInfo> {
    match device {
        Device::Cuda(d) => {
            let ctx = d.cuda_stream().context().clone();
            let (major, minor) = ctx.compute_capability().unwrap_or((0, 0));
            Some(GpuInfo {
                name: ctx.name().unwrap_or_else(|e| format!("unknown ({e})")),
                compute_capability: format!("{major}.{minor}"),
                memory_mib: ctx.total_mem().map_or(0, |b| (b / (1 << 20)) as u64),
                driver: driver_version(),
                visible_devices: std::env::var("CUDA_VISIBLE_DEVICES").ok(),
            })
        }
        _ => None,
    }
}

/// GPUs the CUDA driver shows this process (none when it reports
/// `CUDA_ERROR_NO_DEVICE`); else the driver's error code, e.g. `CUDA_ERROR_NOT_INITIALIZED`.
#[cfg(feature = "cuda")]
fn gpu_count() -> std::result::Result<usize, String> {
    use candle_core::cuda_backend::cudarc::driver::{sys::CUresult, CudaContext};
    match CudaContext::device_count() {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
        Err(e) if e.0 == CUresult::CUDA_ERROR_NO_DEVICE => Ok(0),
        Err(e) => Err(format!("{:?}", e.0)),
    }
}

/// The kernel driver's version, e.g. "550.54.15".
#[cfg(feature = "cuda")]
fn driver_version() -> Option<String> {
    let text = std::fs::read_to_string("/proc/driver/nvidia/version").ok()?;
    let line = text.lines().next()?;
    line.split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))
        .map(String::from)
}

/// The GPUs `bottleneck sweep --gpus LIST` spreads points over, as `CUDA_VISIBLE_DEVICES`
/// entries (one per point process). `auto`: every GPU this process sees — the entries of
/// its own `CUDA_VISIBLE_DEVICES` when set, else `0..count`. A list: `0,1,3` (as
/// `nvidia-smi` numbers them), each once and, when `CUDA_VISIBLE_DEVICES` is not set,
/// each one that is there.
pub fn sweep_gpus(list: &str) -> Result<Vec<String>> {
    let bad = |why: &str| TrainError::Config(format!("--gpus {list}: {why}"));
    let ids = if list == "auto" { None } else { Some(parse_gpu_list(list).map_err(|why| bad(&why))?) };
    if !CUDA_BUILD {
        return Err(bad(
            "this build has no CUDA support; build with `--features cuda` (README, \"GPUs\"), or leave out --gpus to run on the CPU",
        ));
    }
    let visible = visible_gpus().map_err(|e| bad(&format!("cannot list the GPUs: the CUDA driver fails with {e}")))?;
    if visible.is_empty() {
        return Err(bad("this process sees no GPU; leave out --gpus to run on the CPU"));
    }
    let Some(ids) = ids else { return Ok(visible) };
    if std::env::var_os("CUDA_VISIBLE_DEVICES").is_none() {
        let n = visible.len();
        if let Some(id) = ids.iter().find(|id| id.parse::<usize>().map_or(true, |i| i >= n)) {
            return Err(bad(&format!("there is no GPU {id}: this process sees {n} (0 to {})", n - 1)));
        }
    }
    Ok(ids)
}

/// `0,1,3`: numbers separated by commas, each once.
fn parse_gpu_list(list: &str) -> std::result::Result<Vec<String>, String> {
    let ids: Vec<&str> = list.split(',').map(str::trim).collect();
    if ids.iter().any(|i| i.is_empty() || !i.chars().all(|c| c.is_ascii_digit())) {
        return Err("give GPU numbers separated by commas (`--gpus 0,1`), or `auto` for every visible GPU".into());
    }
    for (k, id) in ids.iter().enumerate() {
        if ids[..k].contains(id) {
            return Err(format!("GPU {id} is listed twice; each GPU runs one point at a time"));
        }
    }
    Ok(ids.into_iter().map(String::from).collect())
}

#[cfg(feature = "cuda")]
fn visible_gpus() -> std::result::Result<Vec<String>, String> {
    let count = gpu_count()?;
    Ok(match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|s| s.trim().to_string()).take(count).collect(),
        _ => (0..count).map(|i| i.to_string()).collect(),
    })
}

#[cfg(not(feature = "cuda"))]
#[allow(clippy::unnecessary_wraps)]
fn visible_gpus() -> std::result::Result<Vec<String>, String> {
    Ok(Vec::new())
}

/// Whether a Slurm `--gres` asks for GPUs (`gpu:1`, `gpu:a100:2`, `gpu`): the tasks then
/// train on `cuda:0`, the first GPU of their allocation.
#[must_use]
pub fn gres_has_gpu(gres: &str) -> bool {
    gres.split(',').any(|g| g == "gpu" || g.starts_with("gpu:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_as_documented() {
        assert_eq!(Spec::parse("cpu"), Some(Spec::Cpu));
        assert_eq!(Spec::parse("auto"), Some(Spec::Auto));
        assert_eq!(Spec::parse("cuda:0"), Some(Spec::Cuda(0)));
        assert_eq!(Spec::parse("cuda:12"), Some(Spec::Cuda(12)));
        for bad in ["", "gpu", "cuda", "cuda:", "cuda:-1", "cuda:a", "CPU", "cuda:0 ", "metal"] {
            assert_eq!(Spec::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn gres_with_a_gpu_is_recognised() {
        for yes in ["gpu:1", "gpu", "gpu:a100:2", "shard:2,gpu:1"] {
            assert!(gres_has_gpu(yes), "{yes}");
        }
        for no in ["", "shard:2", "gpus:1", "mps:50"] {
            assert!(!gres_has_gpu(no), "{no}");
        }
    }

    #[test]
    fn the_cpu_resolves_in_every_build() {
        for text in ["cpu", "auto"] {
            let r = resolve(text).unwrap();
            if text == "cpu" || !CUDA_BUILD {
                assert!(r.device.is_cpu());
                assert_eq!(r.name, "cpu");
                assert_eq!(r.gpu, None);
            }
        }
        let e = resolve("cuda:x").unwrap_err().to_string();
        assert!(e.contains("\"cuda:x\"") && e.contains("cuda:N"), "{e}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn without_cuda_gpus_are_refused_by_name() {
        let e = resolve("cuda:0").unwrap_err().to_string();
        assert!(e.contains("\"cuda:0\"") && e.contains("--features cuda"), "{e}");
        let e = sweep_gpus("0,1").unwrap_err().to_string();
        assert!(e.contains("--gpus 0,1") && e.contains("no CUDA support"), "{e}");
    }

    #[test]
    fn gpu_lists_are_checked() {
        assert_eq!(parse_gpu_list("0,1").unwrap(), ["0", "1"]);
        assert_eq!(parse_gpu_list(" 2 ,3").unwrap(), ["2", "3"]);
        for (bad, says) in
            [("0,0", "twice"), ("0,,1", "separated by commas"), ("a", "separated by commas"), ("", "commas")]
        {
            let e = parse_gpu_list(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            // A malformed list is named as such in every build, before anything else.
            let e = sweep_gpus(bad).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(&format!("--gpus {bad}:")), "{bad}: {e}");
        }
    }
}
