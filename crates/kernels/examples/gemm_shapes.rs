//! GFLOP/s of gemm for the dense autoencoder's products (batch 256), on 1 thread and on
//! the pool: `cargo run --release --example gemm_shapes -p bottleneck-kernels`.
#![allow(clippy::print_stdout, clippy::many_single_char_names)]

use std::time::Instant;

use bottleneck_kernels::{sgemm, transpose};

fn time(reps: u32, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() / f64::from(reps)
}

fn main() {
    let n = 256;
    let dims = [(784, 512), (512, 256), (256, 32), (32, 256), (256, 512), (512, 784)];
    for parallel in [false, true] {
        let (mut total_flops, mut total_secs) = (0f64, 0f64);
        for &(i, o) in &dims {
            let (x, w, g) = (vec![0.5f32; n * i], vec![0.25f32; o * i], vec![0.1f32; n * o]);
            let (mut y, mut dw, mut dx) = (vec![0f32; n * o], vec![0f32; o * i], vec![0f32; n * i]);
            let flops = 2.0 * (n * i * o) as f64;
            // The forward as bottleneck's linear layer runs it: `W` copied to `Wᵀ` (timed on
            // its own), then a product of two plain row-major matrices; `nt` is the same
            // product reading `W` as stored (gemm packs a transposed right-hand side slower).
            let mut wt = vec![0f32; i * o];
            let tr = time(50, || transpose(o, i, &w, &mut wt, parallel));
            let f = time(50, || sgemm(n, o, i, &x, false, &wt, false, &mut y, false, parallel));
            let nt = time(50, || sgemm(n, o, i, &x, false, &w, true, &mut y, false, parallel));
            let b = time(50, || sgemm(o, i, n, &g, true, &x, false, &mut dw, false, parallel));
            let d = time(50, || sgemm(n, i, o, &g, false, &w, false, &mut dx, false, parallel));
            total_flops += 3.0 * flops;
            total_secs += f + b + d;
            println!(
                "{i:>4}->{o:<4} fwd {:6.1}  dW {:6.1}  dx {:6.1} GFLOP/s; fwd reading W transposed {:6.1}; copying Wᵀ {:.3} ms",
                flops / f / 1e9,
                flops / b / 1e9,
                flops / d / 1e9,
                flops / nt / 1e9,
                tr * 1e3
            );
        }
        println!(
            "parallel={parallel} ({} threads): one batch's products {:.2} ms, {:.1} GFLOP/s; x235 = {:.2} s/epoch",
            candle_core::utils::barrier_pool().n_workers() + 1,
            total_secs * 1e3,
            total_flops / total_secs / 1e9,
            total_secs * 235.0
        );
    }
}
