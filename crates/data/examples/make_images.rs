//! Writes a folder of CelebA-like JPEGs for `scripts/bench-images.sh`: N RGB images of
//! mixed sizes around 178×218 (widths 160–196, heights 200–236), each a smooth gradient with
//! a few soft ellipses and pixel noise, so the decoder sees photograph-like data rather
//! than flat colour. Seeded; files already present are kept, so a second call is cheap.
//!
//! Usage: `make_images DIR N [SEED]`
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

fn picture(seed: u64) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (w, h) = (rng.random_range(160..=196u32), rng.random_range(200..=236u32));
    let base: [f32; 3] = std::array::from_fn(|_| rng.random_range(40.0..200.0));
    let slope: [f32; 3] = std::array::from_fn(|_| rng.random_range(-0.4..0.4));
    let blobs: Vec<(f32, f32, f32, f32, [f32; 3])> = (0..rng.random_range(2..6))
        .map(|_| {
            let (cx, cy) = (rng.random_range(0.0..w as f32), rng.random_range(0.0..h as f32));
            let (rx, ry) = (rng.random_range(15.0..70.0), rng.random_range(15.0..90.0));
            (cx, cy, rx, ry, std::array::from_fn(|_| rng.random_range(-90.0..90.0)))
        })
        .collect();
    let mut img = RgbImage::new(w, h);
    for (x, y, px) in img.enumerate_pixels_mut() {
        let (xf, yf) = (x as f32, y as f32);
        let mut v = std::array::from_fn::<f32, 3, _>(|c| base[c] + slope[c] * (xf + yf));
        for &(cx, cy, rx, ry, col) in &blobs {
            let d = ((xf - cx) / rx).powi(2) + ((yf - cy) / ry).powi(2);
            let wgt = (-d).exp();
            for c in 0..3 {
                v[c] += wgt * col[c];
            }
        }
        let noise = rng.random_range(-6.0..6.0);
        *px = Rgb(v.map(|c| (c + noise).clamp(0.0, 255.0) as u8));
    }
    img
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(n)) = (args.next(), args.next()) else {
        return Err("usage: make_images DIR N [SEED]".into());
    };
    let dir = PathBuf::from(dir);
    let n: u64 = n.parse()?;
    let seed: u64 = args.next().map_or(Ok(0), |s| s.parse())?;
    std::fs::create_dir_all(&dir)?;
    let written: u64 = (0..n)
        .into_par_iter()
        .map(|i| -> Result<u64, String> {
            let path = dir.join(format!("{:06}.jpg", i + 1));
            if path.is_file() {
                return Ok(0);
            }
            let img = picture(seed.wrapping_mul(1_000_003) ^ i);
            let mut bytes = Vec::new();
            JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&img).map_err(|e| e.to_string())?;
            // Written beside, then renamed: a killed run leaves no half image under the name
            // (no fsync per file: this is a benchmark's scratch data).
            let tmp = dir.join(format!(".{:06}.jpg.tmp", i + 1));
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(1)
        })
        .try_reduce(|| 0, |a, b| Ok(a + b))?;
    println!("{}: {n} images ({written} written now)", dir.display());
    Ok(())
}
