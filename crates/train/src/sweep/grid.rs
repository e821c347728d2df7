//! The grid: swept values from the `[sweep]` table and the command line, and the plan.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Axis, PointSpec};
use crate::config::{check_files, parse_override, resolve, Override, Resolved, GROUPS};
use crate::error::{Result, TrainError};

/// Splits `text` at commas that are not inside brackets, parentheses or quotes.
fn split_top_level(text: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, None);
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '(' | '{') => depth += 1,
            (None, ']' | ')' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            (Some(_) | None, _) => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out
}

/// `range(start, stop[, step])`: integers or decimals from `start` up to (not including)
/// `stop`, as Python's `range` and Hydra's sweeper do.
fn range_values(args: &str) -> std::result::Result<Vec<String>, String> {
    let parts = split_top_level(args);
    if !(2..=3).contains(&parts.len()) {
        return Err("range takes (start, stop) or (start, stop, step)".into());
    }
    let ints: Option<Vec<i64>> = parts.iter().map(|p| p.parse().ok()).collect();
    if let Some(v) = ints {
        let step = v.get(2).copied().unwrap_or(1);
        if step == 0 {
            return Err("the step of range must not be 0".into());
        }
        let mut out = Vec::new();
        let mut x = v[0];
        while (step > 0 && x < v[1]) || (step < 0 && x > v[1]) {
            out.push(x.to_string());
            x += step;
            if out.len() > 100_000 {
                return Err("range gives more than 100000 values".into());
            }
        }
        return Ok(out);
    }
    let f: Vec<f64> = parts
        .iter()
        .map(|p| p.parse::<f64>().map_err(|_| format!("`{p}` is not a number")))
        .collect::<std::result::Result<_, _>>()?;
    let step = f.get(2).copied().unwrap_or(1.0);
    if step == 0.0 || !step.is_finite() {
        return Err("the step of range must be a non-zero number".into());
    }
    let n = ((f[1] - f[0]) / step - 1e-9).ceil().max(0.0) as usize;
    if n > 100_000 {
        return Err("range gives more than 100000 values".into());
    }
    Ok((0..n)
        .map(|i| {
            let x = f[0] + step * i as f64;
            // Twelve significant digits hide the float steps' rounding (0.30000000000000004).
            let s = format!("{x:.12e}").parse::<f64>().unwrap_or(x).to_string();
            if s.contains(['.', 'e', 'E']) || s.contains("inf") || s.contains("NaN") {
                s
            } else {
                format!("{s}.0")
            }
        })
        .collect())
}

/// The values of a command-line override when it is a list (`a,b`, `range(...)`,
/// `choice(...)`); `None` for a single value. A TOML list (`[512, 256]`) is one value.
pub fn axis_values(value: &str) -> std::result::Result<Option<Vec<String>>, String> {
    let v = value.trim();
    if let Some(args) = v.strip_prefix("range(").and_then(|r| r.strip_suffix(')')) {
        let out = range_values(args)?;
        return if out.is_empty() { Err(format!("`{v}` is empty")) } else { Ok(Some(out)) };
    }
    if let Some(args) = v.strip_prefix("choice(").and_then(|r| r.strip_suffix(')')) {
        let out = split_top_level(args);
        return if out.iter().any(String::is_empty) {
            Err(format!("`{v}` has an empty choice"))
        } else {
            Ok(Some(out))
        };
    }
    let parts = split_top_level(v);
    if parts.len() == 1 {
        return Ok(None);
    }
    if parts.iter().any(String::is_empty) {
        return Err(format!("`{v}` has an empty value; write values as a,b,c"));
    }
    Ok(Some(parts))
}

/// An axis from an entry of the `[sweep]` table.
fn axis_from_toml(key: &str, value: &toml::Value, source: &str) -> Result<Axis> {
    let bad = |why: &str| TrainError::Config(format!("[sweep] `\"{key}\"` (set in {source}): {why}"));
    let group = GROUPS.contains(&key);
    let values = match value {
        toml::Value::Array(items) if items.is_empty() => return Err(bad("the list is empty")),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| match (group, v) {
                (true, toml::Value::String(s)) => Ok(s.clone()),
                (true, _) => Err(bad("a group takes option names, e.g. \"model\" = [\"dense\", \"conv\"]")),
                (false, v) => Ok(v.to_string()),
            })
            .collect::<Result<Vec<_>>>()?,
        toml::Value::String(s) if s.starts_with("range(") || s.starts_with("choice(") => {
            axis_values(s).map_err(|e| bad(&e))?.ok_or_else(|| bad("expected a list"))?
        }
        _ => return Err(bad("expected a list of values like [2, 4, 8] or \"range(2, 34, 8)\"")),
    };
    Ok(Axis { key: key.to_string(), values, source: source.to_string() })
}

/// A sweep before it has a directory: the experiment, fixed overrides and axes.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The experiment file (absolute).
    pub experiment: PathBuf,
    /// Experiment name.
    pub name: String,
    /// Overrides for every point.
    pub fixed: Vec<String>,
    /// The swept keys.
    pub axes: Vec<Axis>,
}

impl Plan {
    /// Reads the grid from the experiment's `[sweep]` table and the command line.
    pub fn new(experiment: &Path, overrides: &[String]) -> Result<Self> {
        let mut fixed = Vec::new();
        let mut cli_axes = Vec::new();
        let mut cli_keys = BTreeSet::new();
        for text in overrides {
            let (key, value) = match parse_override(text)? {
                Override::Set { key, value, .. } => (key, value),
                Override::Group { group, option } => (group, option),
            };
            cli_keys.insert(key.clone());
            match axis_values(&value) {
                Ok(Some(values)) => {
                    let prefix = if text.starts_with('+') { "+" } else { "" };
                    cli_axes.push(Axis {
                        key: format!("{prefix}{key}"),
                        values,
                        source: format!("command line `{text}`"),
                    });
                }
                Ok(None) => fixed.push(text.clone()),
                Err(why) => return Err(TrainError::Config(format!("command-line override `{text}`: {why}"))),
            }
        }
        let base = resolve(experiment, &fixed)?;
        let source = base.source_of("sweep");
        let mut axes = Vec::new();
        for (key, value) in &base.config.sweep {
            if !cli_keys.contains(key) {
                axes.push(axis_from_toml(key, value, &source)?);
            }
        }
        axes.extend(cli_axes);
        if axes.is_empty() {
            return Err(TrainError::Config(format!(
                "nothing to sweep: {} has no [sweep] table and no override is a list; give one, e.g. model.latent_dim=2,4,8 or 'model.latent_dim=range(2,34,8)'",
                experiment.display()
            )));
        }
        let experiment = fs_err::canonicalize(experiment)?;
        Ok(Self { experiment, name: base.config.name, fixed, axes })
    }

    /// Every point with its config resolved and its data files checked, or why not, in
    /// point order. Resolved once per sweep: the devices are checked on these before any
    /// directory exists, and [`super::Sweep::create`] writes them.
    #[must_use]
    pub fn resolve_points(&self) -> Vec<(PointSpec, Result<Resolved>)> {
        self.points()
            .into_iter()
            .map(|p| {
                let r = resolve(&self.experiment, &p.overrides).and_then(|r| check_files(&r).map(|()| r));
                (p, r)
            })
            .collect()
    }

    /// The points: the cartesian product of the axes, the last axis varying fastest.
    #[must_use]
    pub fn points(&self) -> Vec<PointSpec> {
        let total: usize = self.axes.iter().map(|a| a.values.len()).product();
        let width = total.saturating_sub(1).to_string().len().max(3);
        (0..total)
            .map(|index| {
                let mut rest = index;
                let mut picks = vec![0; self.axes.len()];
                for (a, axis) in self.axes.iter().enumerate().rev() {
                    picks[a] = rest % axis.values.len();
                    rest /= axis.values.len();
                }
                let values: Vec<String> =
                    self.axes.iter().zip(&picks).map(|(axis, &i)| axis.values[i].clone()).collect();
                let mut overrides = self.fixed.clone();
                overrides.extend(self.axes.iter().zip(&values).map(|(axis, v)| format!("{}={v}", axis.key)));
                PointSpec { index, dir: format!("{index:0width$}"), values, overrides }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_ranges_and_choices_parse() {
        assert_eq!(axis_values("2,4,8").unwrap(), Some(vec!["2".into(), "4".into(), "8".into()]));
        assert_eq!(axis_values("8").unwrap(), None);
        assert_eq!(axis_values("[512, 256]").unwrap(), None);
        assert_eq!(axis_values("[512,256],[256,128]").unwrap(), Some(vec!["[512,256]".into(), "[256,128]".into()]));
        assert_eq!(
            axis_values("range(2,34,8)").unwrap(),
            Some(vec!["2".into(), "10".into(), "18".into(), "26".into()])
        );
        assert_eq!(axis_values("range(3)").unwrap_err(), "range takes (start, stop) or (start, stop, step)");
        assert_eq!(axis_values("range(0, 3)").unwrap(), Some(vec!["0".into(), "1".into(), "2".into()]));
        assert_eq!(axis_values("range(10,0,-5)").unwrap(), Some(vec!["10".into(), "5".into()]));
        assert_eq!(axis_values("range(0.1,0.4,0.1)").unwrap(), Some(vec!["0.1".into(), "0.2".into(), "0.3".into()]));
        assert_eq!(axis_values("range(0,1,0.5)").unwrap(), Some(vec!["0.0".into(), "0.5".into()]));
        assert!(axis_values("range(1,2,0)").is_err());
        assert!(axis_values("range(5,2)").is_err(), "an empty range is an error");
        assert_eq!(axis_values("choice(relu, \"a,b\")").unwrap(), Some(vec!["relu".into(), "\"a,b\"".into()]));
        assert!(axis_values("2,,4").is_err());
    }

    #[test]
    fn the_grid_is_a_cartesian_product_with_the_last_axis_fastest() {
        let axis = |k: &str, v: &[&str]| Axis {
            key: k.into(),
            values: v.iter().map(ToString::to_string).collect(),
            source: String::new(),
        };
        let plan = Plan {
            experiment: PathBuf::from("x.toml"),
            name: "x".into(),
            fixed: vec!["train=debug".into()],
            axes: vec![axis("model", &["dense", "conv"]), axis("model.latent_dim", &["2", "4", "8"])],
        };
        let points = plan.points();
        assert_eq!(points.len(), 6);
        assert_eq!(points[1].overrides, ["train=debug", "model=dense", "model.latent_dim=4"]);
        assert_eq!(points[3].values, ["conv", "2"]);
        assert_eq!(points[5].dir, "005");
    }
}
