//! Hostile input, generated with a fixed seed: mutated IDX headers and bodies (gzip and
//! raw), truncated and oversized CIFAR batches, and CSV/Parquet tables with nulls,
//! strings, infinities, empty and one-row tables and corrupted bytes. Every input must
//! load or give an error naming the file: no panic, no abort, no hang.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use bottleneck_data::{source, DataConfig, Dataset, RawDataset, SearchPath};
use common::{gz, pattern, write_mnist_dir};

/// The seeded generator of every mutation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

/// What the inputs gave.
#[derive(Default)]
struct Tally {
    inputs: usize,
    loaded: usize,
    errors: usize,
}

impl Tally {
    /// Loads through `load`; a panic, a slow load or an error that names no file fails.
    fn check(&mut self, what: &str, file: &str, load: impl FnOnce() -> Result<(), String>) {
        self.inputs += 1;
        let t0 = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(load));
        assert!(t0.elapsed() < Duration::from_secs(20), "{what}: took {:?}", t0.elapsed());
        let Ok(outcome) = r else { panic!("{what}: the loader panicked") };
        match outcome {
            Ok(()) => self.loaded += 1,
            Err(msg) => {
                assert!(msg.contains(file), "{what}: the error does not name {file}: {msg}");
                self.errors += 1;
            }
        }
    }
}

fn search(dir: &Path) -> SearchPath {
    SearchPath { config_dir: Some(dir.into()), env_dir: None, system_root: "/nonexistent".into(), cache_root: None }
}

/// Loads and normalises (the whole path a run takes), as text errors.
fn load(cfg: &DataConfig, dir: Option<&Path>) -> Result<(), String> {
    let raw = match dir {
        Some(d) => RawDataset::load_from(cfg, 0, &search(d)),
        None => RawDataset::load(cfg, 0),
    };
    let raw = raw.map_err(|e| e.to_string())?;
    // Splitting and normalising must cope with whatever loaded.
    let _ = Dataset::from_raw(raw, cfg.val_fraction, cfg.normalize, 0).map_err(|e| e.to_string())?;
    Ok(())
}

/// One mutation of `bytes`: flipped header or body bytes, a cut, an extension, or a
/// declared dimension rewritten to a huge or zero value.
fn mutate(rng: &mut Rng, bytes: &[u8], header: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match rng.below(6) {
        0 => {
            for _ in 0..=rng.below(3) {
                let i = rng.below(header.min(b.len()));
                b[i] = rng.byte();
            }
        }
        1 => {
            for _ in 0..=rng.below(8) {
                let i = rng.below(b.len());
                b[i] = rng.byte();
            }
        }
        2 => b.truncate(rng.below(b.len())),
        3 => b.extend((0..=rng.below(5000)).map(|_| rng.byte())),
        4 if b.len() >= 8 => {
            // A dimension of 0, 1 or close to u32::MAX.
            let d = [0u32, 1, u32::MAX, u32::MAX / 3, 1 << 20][rng.below(5)];
            let at = 4 + 4 * rng.below((header.saturating_sub(4) / 4).max(1));
            if at + 4 <= b.len() {
                b[at..at + 4].copy_from_slice(&d.to_be_bytes());
            }
        }
        _ => {
            // The byte that gives the IDX rank (or any 4th byte).
            if b.len() > 3 {
                b[3] = rng.byte();
            }
        }
    }
    b
}

#[test]
fn hostile_data_files_give_clean_errors() {
    let mut rng = Rng(0x005e_ed0f_ba5e);
    let mut tally = Tally::default();
    idx_inputs(&mut rng, &mut tally);
    cifar_inputs(&mut rng, &mut tally);
    table_inputs(&mut rng, &mut tally);
    eprintln!("hostile data: {} inputs, {} loaded, {} clean errors", tally.inputs, tally.loaded, tally.errors);
    assert!(tally.errors > tally.inputs / 2, "most of these inputs are broken");
}

fn idx_inputs(rng: &mut Rng, tally: &mut Tally) {
    // IDX, raw and gzip: each of the four files mutated in turn.
    for gzip in [false, true] {
        for round in 0..200 {
            let tmp = tempfile::tempdir().unwrap();
            write_mnist_dir(tmp.path(), 40, 12, gzip);
            let names = [
                "train-images-idx3-ubyte",
                "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte",
            ];
            let n = names[round % names.len()];
            let base = if gzip { format!("{n}.gz") } else { n.to_string() };
            let path = tmp.path().join(&base);
            let raw = if gzip {
                let mut d = flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap());
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut d, &mut v).unwrap();
                v
            } else {
                std::fs::read(&path).unwrap()
            };
            let bad = mutate(rng, &raw, 16);
            // Gzip: the mutation inside the stream, or of the compressed bytes themselves.
            let bytes = if gzip && round % 3 == 0 {
                mutate(rng, &gz(&raw), 10)
            } else if gzip {
                gz(&bad)
            } else {
                bad
            };
            std::fs::write(&path, bytes).unwrap();
            tally.check(&format!("mnist {base} round {round}"), "ubyte", || {
                load(&DataConfig::named("mnist"), Some(tmp.path()))
            });
        }
    }
}

fn cifar_inputs(rng: &mut Rng, tally: &mut Tally) {
    // CIFAR-10 batches: cut, extended, labels out of range, one batch missing.
    for round in 0..60 {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("cifar-10-batches-bin");
        std::fs::create_dir_all(&bin).unwrap();
        let batches = source::cifar_batches();
        for (i, name) in batches.iter().enumerate() {
            let mut bytes: Vec<u8> = (0..3)
                .flat_map(|j| {
                    let mut r = vec![(j % 10) as u8];
                    r.extend(pattern(3072, (i * 10 + j) as u32));
                    r
                })
                .collect();
            if i == round % batches.len() {
                bytes = match round % 4 {
                    0 => mutate(rng, &bytes, 1),
                    1 => {
                        bytes[3073 * rng.below(3)] = 10 + rng.byte() % 200;
                        bytes
                    }
                    2 => [bytes.clone(), bytes].concat(),
                    _ => continue,
                };
            }
            std::fs::write(bin.join(name), bytes).unwrap();
        }
        tally
            .check(&format!("cifar10 round {round}"), ".bin", || load(&DataConfig::named("cifar10"), Some(tmp.path())));
    }
}

fn table_inputs(rng: &mut Rng, tally: &mut Tally) {
    // Tables: generated CSV text, and Parquet files written by polars then damaged.
    let cells = ["1", "-2.5", "", "nan", "inf", "-inf", "NaN", "red", "\"x,y\"", "1e309", "0x1F", "é", " 3 "];
    for round in 0..300 {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("t.csv");
        let (rows, cols) = (rng.below(6), 1 + rng.below(4));
        let mut text: String = (0..cols).map(|c| format!("c{c}")).collect::<Vec<_>>().join(",");
        text.push('\n');
        for _ in 0..rows {
            let row: Vec<&str> = (0..cols).map(|_| cells[rng.below(cells.len())]).collect();
            text.push_str(&row.join(","));
            text.push('\n');
        }
        let mut bytes = text.into_bytes();
        if round % 5 == 0 {
            bytes = mutate(rng, &bytes, 8);
        }
        std::fs::write(&p, &bytes).unwrap();
        let label = if round % 2 == 0 { String::new() } else { "c0".to_string() };
        let cfg = DataConfig { path: p.display().to_string(), label, test_fraction: 0.3, ..DataConfig::named("csv") };
        tally.check(&format!("csv round {round}: {:?}", String::from_utf8_lossy(&bytes)), "t.csv", || load(&cfg, None));
    }
    for round in 0..100 {
        use polars::prelude::*;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("t.parquet");
        let n = 1 + rng.below(8);
        let f: Vec<Option<f64>> = (0..n)
            .map(|i| match rng.below(5) {
                0 => None,
                1 => Some(f64::INFINITY),
                _ => Some(i as f64),
            })
            .collect();
        let s: Vec<&str> = (0..n).map(|i| ["a", "b"][i % 2]).collect();
        let mut df =
            df!("f" => f, "g" => (0..n).map(|i| i64::try_from(i).unwrap()).collect::<Vec<_>>(), "s" => s).unwrap();
        ParquetWriter::new(std::fs::File::create(&p).unwrap()).finish(&mut df).unwrap();
        if round % 2 == 0 {
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, mutate(rng, &bytes, 8)).unwrap();
        }
        let label = ["", "s", "g"][round % 3].to_string();
        let cfg =
            DataConfig { path: p.display().to_string(), label, test_fraction: 0.3, ..DataConfig::named("parquet") };
        tally.check(&format!("parquet round {round}"), "t.parquet", || load(&cfg, None));
        // The same file given to the CSV source: an error that says what it is.
        let as_csv = DataConfig { name: "csv".into(), ..cfg };
        tally.check(&format!("parquet as csv round {round}"), "t.parquet", || load(&as_csv, None));
    }
}
