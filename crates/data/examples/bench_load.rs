//! Benchmark: load the 60k Fashion-MNIST training images (gzip IDX) into a split of bytes.
//! Run through `scripts/bench-load.sh` (release build, same allocator as the binary).
#![allow(clippy::print_stdout)]

use std::time::Instant;

use bottleneck_data::{find_source, mnist, DataConfig, RawDataset, SearchPath};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(7);
    let src = find_source("fashion-mnist")?;
    let dir = SearchPath::from_env("").locate(src)?;
    let images = dir.join("train-images-idx3-ubyte.gz");
    let labels = dir.join("train-labels-idx1-ubyte.gz");
    let mut train = Vec::new();
    let mut whole = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let split = mnist::load_split(src, &images, &labels, 10)?;
        train.push(t.elapsed().as_secs_f64());
        assert_eq!((split.dims(), split.stored_dtype()), (&[60_000, 1, 28, 28][..], "u8"));
        let t = Instant::now();
        let ds = RawDataset::load(&DataConfig::named("fashion-mnist"), 0)?;
        whole.push(t.elapsed().as_secs_f64());
        assert_eq!(ds.test.len(), 10_000);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2])
    };
    let (tmin, tmed) = median(&mut train);
    let (wmin, wmed) = median(&mut whole);
    println!("fashion-mnist from {}", dir.display());
    println!(
        "60k train images + labels -> u8 split [60000,1,28,28]:    median {tmed:.3} s, best {tmin:.3} s ({reps} runs)"
    );
    println!("whole dataset (train + test, in parallel):              median {wmed:.3} s, best {wmin:.3} s");
    Ok(())
}
