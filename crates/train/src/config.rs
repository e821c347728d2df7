//! Experiment configs, Hydra-style, on figment.
//!
//! [`resolve`] builds the config from, lowest precedence first:
//! 1. built-in defaults ([`ExperimentConfig::default`]);
//! 2. the group files named in the experiment's `defaults` table,
//!    `configs/<group>/<option>.toml` (their keys sit at the top of the file);
//! 3. the experiment file itself;
//! 4. group files chosen on the command line (`train=debug`), which outrank the
//!    experiment's own section, as a command-line choice should;
//! 5. `BOTTLENECK_<SECTION>__<KEY>` environment variables (values parsed as TOML);
//! 6. command-line overrides: `key=value` (value parsed as TOML, else a string),
//!    `group=option` to switch a group file, `+key=value` to add a key no file sets.
//!
//! Every value keeps its source, so an unknown key, a wrong type or an out-of-range value
//! is reported with the key and where it was set (file and line, variable, override).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bottleneck_data::DataConfig;
use bottleneck_models::{Kernels, ModelConfig};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::launcher::LauncherConfig;
use crate::train_config::TrainConfig;

/// The config groups, in the order their files are merged.
pub const GROUPS: [&str; 3] = ["data", "model", "train"];

/// Environment variables with this prefix set config keys (`__` separates levels).
pub const ENV_PREFIX: &str = "BOTTLENECK_";

/// Variables with the prefix that are not config keys.
const ENV_NOT_KEYS: [&str; 7] = [
    "BOTTLENECK_SWEEP_PARENT",
    "BOTTLENECK_NO_REPORT",
    "BOTTLENECK_DATA_DIR",
    "BOTTLENECK_CACHE_DIR",
    "BOTTLENECK_CONFIG_DIR",
    "BOTTLENECK_RUNS_DIR",
    "BOTTLENECK_MIRROR",
];

/// `defaults`: which option of each group an experiment starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// `configs/data/<data>.toml`.
    pub data: String,
    /// `configs/model/<model>.toml`.
    pub model: String,
    /// `configs/train/<train>.toml`.
    pub train: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Self { data: "fashion-mnist".into(), model: "dense".into(), train: "default".into() }
    }
}

impl Defaults {
    fn get(&self, group: &str) -> &str {
        match group {
            "data" => &self.data,
            "model" => &self.model,
            _ => &self.train,
        }
    }

    fn set(&mut self, group: &str, option: String) {
        match group {
            "data" => self.data = option,
            "model" => self.model = option,
            _ => self.train = option,
        }
    }
}

/// A whole experiment: what `config.toml` in a run directory holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// The group options this config was composed from.
    pub defaults: Defaults,
    /// Experiment name: runs go to `runs/<name>/`.
    pub name: String,
    /// Seed for weights, splits, shuffling and noise.
    pub seed: u64,
    /// `cpu`, `cuda:N` or `auto`.
    pub device: String,
    /// `auto` (bottleneck-kernels' fused ops on the CPU, candle's elsewhere) or `candle`
    /// (candle's ops everywhere, as on a GPU).
    pub kernels: Kernels,
    /// `[data]`.
    pub data: DataConfig,
    /// `[model]`.
    pub model: ModelConfig,
    /// `[train]`.
    pub train: TrainConfig,
    /// `[launcher]`: where a sweep's points run (`[launcher.slurm]` resources).
    pub launcher: LauncherConfig,
    /// `[sweep]`: key → list of values (used by `bottleneck sweep`).
    pub sweep: BTreeMap<String, toml::Value>,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            defaults: Defaults::default(),
            name: "experiment".into(),
            seed: 0,
            device: "cpu".into(),
            kernels: Kernels::Auto,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            launcher: LauncherConfig::default(),
            sweep: BTreeMap::new(),
        }
    }
}

/// One source of values, in precedence order.
#[derive(Debug, Clone)]
pub struct Layer {
    /// How the source is shown: `configs/model/conv.toml`, `environment variable
    /// BOTTLENECK_TRAIN__LR`, "command-line override `train.lr=3e-4`".
    pub label: String,
    /// The file, for file layers.
    pub file: Option<PathBuf>,
    /// Key prefix the file's keys sit under (`model` for group files).
    pub prefix: Option<String>,
    /// The values, nested.
    pub dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let m = Metadata::named(self.label.clone());
        match &self.file {
            Some(f) => m.source(figment::Source::File(f.clone())),
            None => m,
        }
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        Ok(Map::from([(Profile::Default, self.dict.clone())]))
    }
}

fn lookup<'a>(dict: &'a Dict, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut cur = dict.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_dict()?.get(p)?;
    }
    Some(cur)
}

fn insert(dict: &mut Dict, key: &str, value: Value) {
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = dict;
    for p in &parts[..parts.len() - 1] {
        let entry = cur.entry((*p).to_string()).or_insert_with(|| Value::from(Dict::new()));
        if entry.as_dict().is_none() {
            *entry = Value::from(Dict::new());
        }
        let Value::Dict(_, d) = entry else { unreachable!("just made a dict") };
        cur = d;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
}

/// Parses a value the way overrides and variables are parsed: as a TOML value
/// (`1e-3` is a float, `[2, 4]` a list, `true` a bool), else as a plain string.
#[must_use]
pub fn parse_value(raw: &str) -> Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => {
            t.remove("v").and_then(|v| Value::serialize(v).ok()).unwrap_or_else(|| Value::from(raw.to_string()))
        }
        Err(_) => Value::from(raw.to_string()),
    }
}

/// The 1-based line of `key` (dotted, relative to the file) in a TOML file's text.
#[must_use]
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let mut table = String::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if let Some(h) = l.strip_prefix('[').and_then(|h| h.split(']').next()) {
            table = h.trim().trim_matches('[').trim().replace(['"', ' '], "");
            continue;
        }
        let Some((k, _)) = l.split_once('=') else { continue };
        let k = k.trim().replace(['"', ' '], "");
        let full = if table.is_empty() { k } else { format!("{table}.{k}") };
        if full == key || key.starts_with(&format!("{full}.")) {
            return Some(i + 1);
        }
    }
    None
}

/// A config composed from its layers, with provenance.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The typed, validated config.
    pub config: ExperimentConfig,
    /// The experiment file.
    pub experiment: PathBuf,
    /// The command-line overrides, as given.
    pub overrides: Vec<String>,
    /// Every source, lowest precedence first (built-in defaults excluded).
    pub layers: Vec<Layer>,
}

impl Resolved {
    /// Where `key` was last set: `built-in default`, or a layer label with its line.
    #[must_use]
    pub fn source_of(&self, key: &str) -> String {
        source_of(&self.layers, key)
    }

    /// Every leaf key of the resolved config with its value (TOML) and source.
    pub fn provenance(&self) -> Result<Vec<(String, String, String)>> {
        let value = toml::Value::try_from(&self.config).map_err(|e| TrainError::Config(e.to_string()))?;
        let mut out = Vec::new();
        walk(&value, "", &mut out);
        Ok(out.into_iter().map(|(k, v)| (k.clone(), v, self.source_of(&k))).collect())
    }
}

fn walk(v: &toml::Value, prefix: &str, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::Table(t) if !(prefix.ends_with("noise") || prefix == "sweep") || t.is_empty() => {
            for (k, v) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                walk(v, &key, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

fn source_of(layers: &[Layer], key: &str) -> String {
    for layer in layers.iter().rev() {
        if lookup(&layer.dict, key).is_some() {
            let line = layer.file.as_ref().and_then(|f| {
                let text = fs_err::read_to_string(f).ok()?;
                let rel = match &layer.prefix {
                    Some(p) => key.strip_prefix(&format!("{p}.")).unwrap_or(key).to_string(),
                    None => key.to_string(),
                };
                line_of(&text, &rel)
            });
            return match line {
                Some(n) => format!("{}:{n}", layer.label),
                None => layer.label.clone(),
            };
        }
    }
    "built-in default".into()
}

fn read_toml(path: &Path) -> Result<Dict> {
    let text = fs_err::read_to_string(path)?;
    toml::from_str::<Dict>(&text)
        .map_err(|e| TrainError::Config(format!("{}: {}", path.display(), e.to_string().trim_end())))
}

/// The `configs/` directory for an experiment file: `BOTTLENECK_CONFIG_DIR`, else the
/// nearest `configs/` at or above the file's folder, else `./configs`.
#[must_use]
pub fn configs_dir(experiment: &Path) -> PathBuf {
    if let Ok(d) = std::env::var("BOTTLENECK_CONFIG_DIR") {
        if !d.is_empty() {
            return PathBuf::from(d);
        }
    }
    let start = experiment.parent().map(Path::to_path_buf).unwrap_or_default();
    let start = if start.as_os_str().is_empty() { PathBuf::from(".") } else { start };
    start
        .ancestors()
        .take(4)
        .map(|a| a.join("configs"))
        .find(|c| c.is_dir())
        .unwrap_or_else(|| PathBuf::from("configs"))
}

/// The options of a group: the `*.toml` file stems in `configs/<group>/`, sorted.
#[must_use]
pub fn group_options(configs: &Path, group: &str) -> Vec<String> {
    let mut out: Vec<String> = fs_err::read_dir(configs.join(group))
        .map(|rd| {
            rd.filter_map(|e| {
                let p = e.ok()?.path();
                if p.extension()? != "toml" {
                    return None;
                }
                Some(p.file_stem()?.to_string_lossy().into_owned())
            })
            .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A parsed command-line override.
#[derive(Debug, Clone, PartialEq)]
pub enum Override {
    /// `key=value`.
    Set {
        /// Dotted key.
        key: String,
        /// Raw value text.
        value: String,
        /// `+key=value`: the key must not be set by any file.
        add: bool,
    },
    /// `group=option`.
    Group {
        /// `data`, `model` or `train`.
        group: String,
        /// The option (file stem).
        option: String,
    },
}

/// Parses `key=value`, `+key=value` or `group=option`.
pub fn parse_override(text: &str) -> Result<Override> {
    let bad = |why: &str| TrainError::Config(format!("command-line override `{text}`: {why}"));
    let (k, v) = text.split_once('=').ok_or_else(|| bad("expected key=value, group=option or +key=value"))?;
    let (add, k) = match k.strip_prefix('+') {
        Some(k) => (true, k),
        None => (false, k),
    };
    let k = k.trim();
    if k.is_empty() || k.split('.').any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
        return Err(bad("the key must be dotted names like model.latent_dim"));
    }
    if !add && GROUPS.contains(&k) {
        return Ok(Override::Group { group: k.into(), option: v.trim().into() });
    }
    Ok(Override::Set { key: k.into(), value: v.trim().into(), add })
}

/// A relative path (`data.path`, `train.init_from`) is relative to the file that set it
/// (the experiment file, a group file), or to the working directory when the command
/// line or the environment set it; `config.toml` records it absolute, so the run reads
/// the same file from anywhere.
fn resolve_path(path: &str, key: &str, layers: &[Layer]) -> String {
    if path.is_empty() || Path::new(path).is_absolute() {
        return path.to_string();
    }
    let base = layers
        .iter()
        .rev()
        .find(|l| lookup(&l.dict, key).is_some())
        .and_then(|l| l.file.as_deref())
        .and_then(Path::parent);
    let joined = base.map_or_else(|| PathBuf::from(path), |b| b.join(path));
    std::fs::canonicalize(&joined).or_else(|_| std::path::absolute(&joined)).unwrap_or(joined).display().to_string()
}

/// Resolves an experiment file with overrides and this process's environment.
pub fn resolve(experiment: &Path, overrides: &[String]) -> Result<Resolved> {
    resolve_with_env(experiment, overrides, std::env::vars())
}

/// Like [`resolve`] with the environment given explicitly.
pub fn resolve_with_env(
    experiment: &Path,
    overrides: &[String],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Resolved> {
    if !experiment.is_file() {
        return Err(missing_experiment(experiment));
    }
    let parsed: Vec<Override> = overrides.iter().map(|o| parse_override(o)).collect::<Result<_>>()?;
    let exp = read_toml(experiment)?;
    let mut defaults: Defaults = match exp.get("defaults").cloned() {
        Some(v) => v.deserialize().map_err(|e| {
            TrainError::Config(format!("{}: `defaults`: {e}; expected e.g. defaults = {{ data = \"fashion-mnist\", model = \"dense\", train = \"default\" }}", experiment.display()))
        })?,
        None => Defaults::default(),
    };
    let mut group_from = BTreeMap::new();
    let mut group_layers = Vec::new();
    for o in &parsed {
        if let Override::Group { group, option } = o {
            defaults.set(group, option.clone());
            let label = format!("command-line override `{group}={option}`");
            group_from.insert(group.clone(), label.clone());
            let mut dict = Dict::new();
            insert(&mut dict, &format!("defaults.{group}"), Value::from(option.clone()));
            group_layers.push(Layer { label, file: None, prefix: None, dict });
        }
    }
    let configs = configs_dir(experiment);
    let mut layers = Vec::new();
    let mut switched = Vec::new();
    for group in GROUPS {
        let option = defaults.get(group);
        let path = configs.join(group).join(format!("{option}.toml"));
        if !path.is_file() {
            let options = group_options(&configs, group);
            let from =
                group_from.get(group).cloned().unwrap_or_else(|| format!("`defaults` in {}", experiment.display()));
            return Err(TrainError::Config(format!(
                "config group `{group}` has no option `{option}` (asked for by {from}); options in {}: {}",
                configs.join(group).display(),
                if options.is_empty() { "none".into() } else { options.join(", ") }
            )));
        }
        let mut dict = Dict::new();
        dict.insert(group.into(), Value::from(read_toml(&path)?));
        let layer = Layer { label: path.display().to_string(), file: Some(path), prefix: Some(group.into()), dict };
        // A group chosen on the command line outranks the experiment file's section
        // (so `train=debug` really is quick); a group from `defaults` sits below it.
        if group_from.contains_key(group) {
            switched.push(layer);
        } else {
            layers.push(layer);
        }
    }
    layers.push(Layer {
        label: experiment.display().to_string(),
        file: Some(experiment.into()),
        prefix: None,
        dict: exp,
    });
    layers.extend(group_layers);
    layers.extend(switched);
    layers.extend(env_layers(env));
    for (o, text) in parsed.iter().zip(overrides) {
        if let Override::Set { key, value, add } = o {
            if *add && layers.iter().any(|l| lookup(&l.dict, key).is_some()) {
                return Err(TrainError::Config(format!(
                    "command-line override `{text}`: `{key}` is already set by {}; drop the `+` to override it",
                    source_of(&layers, key)
                )));
            }
            if value.contains(',') && !value.trim_start().starts_with('[') || value.starts_with("range(") {
                return Err(TrainError::Config(format!(
                    "command-line override `{text}`: a list of values is a sweep; run `bottleneck sweep` (or write a TOML list as [a, b])"
                )));
            }
            let mut dict = Dict::new();
            insert(&mut dict, key, parse_value(value));
            layers.push(Layer { label: format!("command-line override `{text}`"), file: None, prefix: None, dict });
        }
    }
    let mut figment = Figment::from(figment::providers::Serialized::defaults(ExperimentConfig::default()));
    for l in &layers {
        figment = figment.merge(l.clone());
    }
    let mut config: ExperimentConfig = figment.extract().map_err(|e| explain(&e, &layers))?;
    config.defaults = defaults;
    config.data.path = resolve_path(&config.data.path, "data.path", &layers);
    config.train.init_from = resolve_path(&config.train.init_from, "train.init_from", &layers);
    let resolved = Resolved { config, experiment: experiment.into(), overrides: overrides.to_vec(), layers };
    validate(&resolved)?;
    Ok(resolved)
}

/// One layer per `BOTTLENECK_<SECTION>__<KEY>` variable, sorted by name.
/// Whether the variable `name` (with the prefix) sets a config key: a
/// `BOTTLENECK_<SECTION>__<KEY>` (any name with `__`), a top-level key
/// (`BOTTLENECK_SEED`, `_NAME`, `_DEVICE`, `_KERNELS`), or a section followed by one underscore
/// (`BOTTLENECK_TRAIN_EPOCHS`, a likely typo of `TRAIN__EPOCHS`, kept so that its error
/// names it). Every other `BOTTLENECK_` variable belongs to someone else (the data and
/// cache directories, `BOTTLENECK_SLURM_DIR` of scripts/slurm-local.sh, a sweep's
/// `BOTTLENECK_SWEEP_PARENT`) and is not read as a key.
fn is_config_var(name: &str) -> bool {
    const TOP: [&str; 4] = ["name", "seed", "device", "kernels"];
    // Not `sweep`: its keys are swept keys, and `BOTTLENECK_SWEEP_PARENT` is not a typo.
    const SECTIONS: [&str; 4] = ["data", "model", "train", "launcher"];
    let Some(rest) = name.strip_prefix(ENV_PREFIX) else { return false };
    if ENV_NOT_KEYS.contains(&name) {
        return false;
    }
    let rest = rest.to_ascii_lowercase();
    rest.contains("__")
        || TOP.contains(&rest.as_str())
        || SECTIONS.iter().any(|s| rest.strip_prefix(s).is_some_and(|r| r.starts_with('_')))
}

fn env_layers(env: impl IntoIterator<Item = (String, String)>) -> Vec<Layer> {
    let mut env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| is_config_var(k)).collect();
    env.sort();
    env.into_iter()
        .map(|(name, raw)| {
            let key = name[ENV_PREFIX.len()..].to_ascii_lowercase().replace("__", ".");
            let mut dict = Dict::new();
            insert(&mut dict, &key, parse_value(&raw));
            Layer { label: format!("environment variable {name}={raw}"), file: None, prefix: None, dict }
        })
        .collect()
}

/// The error for a missing experiment file, listing the experiments beside it.
fn missing_experiment(experiment: &Path) -> TrainError {
    let dir = experiment.parent().filter(|d| d.is_dir());
    let known: Vec<String> = dir
        .and_then(|d| fs_err::read_dir(d).ok())
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut known = known;
    known.sort();
    let hint = if known.is_empty() { String::new() } else { format!("; experiments there: {}", known.join(", ")) };
    TrainError::Config(format!("experiment file `{}` not found{hint}", experiment.display()))
}

/// Turns a figment error into one line naming the key, its source and what is allowed.
fn explain(err: &figment::Error, layers: &[Layer]) -> TrainError {
    use figment::error::Kind;
    let mut parts = err.path.clone();
    if let Kind::UnknownField(field, _) = &err.kind {
        // figment's path ends with the unknown field itself.
        if parts.last() == Some(field) {
            parts.pop();
        }
    }
    let path = parts.join(".");
    let key = |field: &str| if path.is_empty() { field.to_string() } else { format!("{path}.{field}") };
    let msg = match &err.kind {
        Kind::UnknownField(field, expected) => {
            let full = key(field);
            let best = expected.iter().map(|e| (strsim::jaro_winkler(field, e), *e)).max_by(|a, b| a.0.total_cmp(&b.0));
            let hint = match best {
                Some((score, e)) if score > 0.8 => format!("; did you mean `{}`?", key(e)),
                _ => String::new(),
            };
            let section = if path.is_empty() { "top level".to_string() } else { format!("[{path}]") };
            format!(
                "unknown key `{full}` (set in {}){hint} Known keys in {section}: {}",
                source_of(layers, &full),
                expected.join(", ")
            )
        }
        Kind::UnknownVariant(v, expected) => {
            format!("`{path}` = \"{v}\" (set in {}) is not one of: {}", source_of(layers, &path), expected.join(", "))
        }
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!("`{path}` (set in {}): expected {expected}, found {actual}", source_of(layers, &path))
        }
        other => format!("`{path}` (set in {}): {other}", source_of(layers, &path)),
    };
    TrainError::Config(msg)
}

/// Where a key was set, for messages.
trait Sources {
    fn source_of(&self, key: &str) -> String;
}

impl Sources for Resolved {
    fn source_of(&self, key: &str) -> String {
        Self::source_of(self, key)
    }
}

/// A saved `config.toml`: every key comes from it.
struct Saved<'a>(&'a Path);

impl Sources for Saved<'_> {
    fn source_of(&self, key: &str) -> String {
        let line = fs_err::read_to_string(self.0).ok().and_then(|t| line_of(&t, key));
        line.map_or_else(|| self.0.display().to_string(), |l| format!("{}:{l}", self.0.display()))
    }
}

fn out_of_range(r: &dyn Sources, key: &str, value: &str, allowed: &str) -> TrainError {
    TrainError::Config(format!("invalid value {value} for `{key}` (set in {}): {allowed}", r.source_of(key)))
}

/// That the files a resolved config reads from `data.path` are there (see
/// `DataConfig::check_path`); the error names where the path was set. Run before a run
/// or sweep directory is made. Not part of [`resolve`]: an experiment that leaves the
/// path to the command line still resolves (and `bottleneck config` prints it).
pub fn check_files(r: &Resolved) -> Result<()> {
    match r.config.data.check_path() {
        Ok(()) => Ok(()),
        Err(bottleneck_data::DataError::InvalidConfig { key, value, allowed }) => {
            Err(out_of_range(r, &key, &value, &allowed))
        }
        Err(e) => Err(TrainError::Data(e)),
    }
}

/// Opens the device `r` asks for (`device`; [`crate::device::resolve`]), so that one that
/// is not there is an error naming where `device` was set, before any run directory.
pub fn check_device(r: &Resolved) -> Result<crate::device::Resolved> {
    crate::device::resolve(&r.config.device)
        .map_err(|e| TrainError::Config(format!("{e} (`device` set in {})", r.source_of("device"))))
}

/// Checks a run's saved config again, as [`resolve`] checked it (`resume` reads a file
/// that may have been edited since): errors name the key and its line in `path`.
/// `cfg` with `data.<key>=<value>` overrides applied (for `bottleneck encode`, which
/// encodes other data with a trained run); any other override is an error naming it.
pub fn override_data(cfg: &ExperimentConfig, overrides: &[String]) -> Result<ExperimentConfig> {
    let mut figment = Figment::from(figment::providers::Serialized::defaults(cfg.clone()));
    for text in overrides {
        match parse_override(text)? {
            Override::Set { key, value, .. } if key.starts_with("data.") => {
                let mut dict = Dict::new();
                insert(&mut dict, &key, parse_value(&value));
                figment = figment.merge(figment::providers::Serialized::defaults(dict));
            }
            _ => {
                return Err(TrainError::Config(format!(
                    "`{text}`: only data.<key>=<value> overrides choose the data to encode (data.name=mnist, data.path=new.csv); the model and its training stay the run's"
                )))
            }
        }
    }
    figment.extract().map_err(|e| TrainError::Config(format!("the data overrides {}: {e}", overrides.join(" "))))
}

pub fn check_saved(cfg: &ExperimentConfig, path: &Path) -> Result<()> {
    validate_config(cfg, &Saved(path))
}

/// Range checks across sections, reported with the key's source.
fn validate(r: &Resolved) -> Result<()> {
    validate_config(&r.config, r)
}

fn validate_config(c: &ExperimentConfig, r: &dyn Sources) -> Result<()> {
    if let Err(e) = c.data.validate() {
        return Err(match e {
            bottleneck_data::DataError::InvalidConfig { key, value, allowed } => {
                out_of_range(r, &key, &value, &allowed)
            }
            bottleneck_data::DataError::UnknownDataset { name, known } => {
                out_of_range(r, "data.name", &format!("\"{name}\""), &format!("known datasets: {known}"))
            }
            other => TrainError::Data(other),
        });
    }
    if let Err(bottleneck_models::ModelError::InvalidConfig { key, value, allowed }) = c.model.validate() {
        return Err(out_of_range(r, &key, &value, &allowed));
    }
    if let Some((key, value, allowed)) = c.train.check() {
        return Err(out_of_range(r, key, &value, allowed));
    }
    if c.model.is_variational()
        && c.model.likelihood == bottleneck_models::Likelihood::Bernoulli
        && c.data.normalize == bottleneck_data::Normalize::Standard
    {
        return Err(TrainError::Config(format!(
            "invalid value \"standard\" for `data.normalize` (set in {}): a Bernoulli likelihood (`model.likelihood`, set in {}) needs targets in [0, 1]; use data.normalize = \"unit\", or model.likelihood = \"gaussian\"",
            r.source_of("data.normalize"),
            r.source_of("model.likelihood")
        )));
    }
    if let Some((key, value, allowed)) = c.launcher.slurm.check() {
        return Err(out_of_range(r, key, &value, allowed));
    }
    match crate::device::Spec::parse(&c.device) {
        None => return Err(out_of_range(r, "device", &format!("\"{}\"", c.device), crate::device::ACCEPTED)),
        // Checked here, before any run directory exists, not when training starts.
        Some(crate::device::Spec::Cuda(_)) if !crate::device::CUDA_BUILD => {
            return Err(out_of_range(
                r,
                "device",
                &format!("\"{}\"", c.device),
                "this build has no CUDA support; use \"cpu\" or \"auto\" (the CPU), or build with `--features cuda` (README, \"GPUs\")",
            ))
        }
        Some(_) => {}
    }
    if c.name.is_empty() || c.name.contains(['/', '\\']) || c.name.starts_with('.') {
        return Err(out_of_range(
            r,
            "name",
            &format!("\"{}\"", c.name),
            "a non-empty name without slashes (runs go to runs/<name>/)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_toml() {
        assert_eq!(parse_value("1e-3").to_f64(), Some(1e-3));
        assert_eq!(parse_value("8").to_i128(), Some(8));
        assert_eq!(parse_value("abc").as_str(), Some("abc"));
        assert_eq!(parse_value("\"abc\"").as_str(), Some("abc"));
        assert_eq!(parse_value("[512, 256]").as_array().map(<[Value]>::len), Some(2));
    }

    #[test]
    fn overrides_parse() {
        assert_eq!(
            parse_override("model=conv").unwrap(),
            Override::Group { group: "model".into(), option: "conv".into() }
        );
        assert!(matches!(parse_override("+model.x=1").unwrap(), Override::Set { add: true, .. }));
        assert!(parse_override("model.latent_dim").is_err());
        assert!(parse_override("model..x=1").is_err());
    }

    #[test]
    fn lines_are_found() {
        let text = "name = \"x\"\n\n[model]\nlatent_dim = 8\n[train]\nlr = 1e-3\n";
        assert_eq!(line_of(text, "model.latent_dim"), Some(4));
        assert_eq!(line_of(text, "train.lr"), Some(6));
        assert_eq!(line_of(text, "name"), Some(1));
        assert_eq!(line_of(text, "train.epochs"), None);
    }
}
