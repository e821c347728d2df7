//! How far apart two cores are: the round trip of one cache line between two threads that
//! hand it back and forth (median of 3 runs of 500,000 trips), in nanoseconds:
//! `cargo run --release --example pingpong -p bottleneck-kernels`.
//!
//! The threads are not pinned: while both spin, the OS keeps them on different CPUs. On
//! the 2-vCPU development VMs the figure moves every few seconds with where the host
//! places the vCPUs: about 55 ns on one die, about 330 ns far apart, about 28 ns on the
//! two threads of one physical core (the 2-core AMD EPYC of 2026-12-05). A two-thread
//! training step, which passes data between its threads, slows down in the far stretches
//! (see the README's performance section); `bench-vs-pytorch.sh` prints this figure
//! before and after every run.
//!
//! `pingpong rewrite` also times what such a step does to memory: one thread overwriting
//! 4 MiB that it alone used, that the other thread wrote last, or that both threads read
//! last (as both read a weight in the forward and backward before the optimiser rewrites
//! it). Only the last case depends on the distance: a write to a line that the other core
//! still holds a copy of waits for that copy to be invalidated.
#![allow(clippy::print_stdout)]

use std::hint::spin_loop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Instant;

/// The line the threads hand over, alone in its 128 bytes (two lines, so that the
/// adjacent-line prefetcher does not pull a neighbour into the measurement).
#[repr(align(128))]
struct Line(AtomicU64);

fn round_trip_ns(trips: u64) -> f64 {
    let line = Line(AtomicU64::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..trips {
                while line.0.load(Ordering::Acquire) != 2 * i + 1 {
                    spin_loop();
                }
                line.0.store(2 * i + 2, Ordering::Release);
            }
        });
        let t = Instant::now();
        for i in 0..trips {
            line.0.store(2 * i + 1, Ordering::Release);
            while line.0.load(Ordering::Acquire) != 2 * i + 2 {
                spin_loop();
            }
        }
        t.elapsed().as_secs_f64() * 1e9 / trips as f64
    })
}

/// Who touched the buffer last before the timed overwrite.
#[derive(Clone, Copy)]
enum Last {
    ThisThread,
    OtherWrote,
    BothRead,
}

/// Milliseconds one thread takes to overwrite 4 MiB, after `last` (median of 51 rounds).
fn rewrite_ms(last: Last) -> f64 {
    let mut buf = vec![1f32; 1 << 20];
    let rounds = 51;
    let both = Barrier::new(2);
    let cell = std::sync::Mutex::new(&mut buf);
    let mut times: Vec<f64> = std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..rounds {
                both.wait();
                match last {
                    Last::ThisThread => {}
                    Last::OtherWrote => cell.lock().expect("no panics").iter_mut().for_each(|v| *v += 1.0),
                    Last::BothRead => {
                        std::hint::black_box(cell.lock().expect("no panics").iter().sum::<f32>());
                    }
                }
                both.wait();
                both.wait();
            }
        });
        (0..rounds)
            .map(|_| {
                let mut b = cell.lock().expect("no panics");
                b.iter_mut().for_each(|v| *v *= 0.5);
                drop(b);
                both.wait();
                both.wait();
                let mut b = cell.lock().expect("no panics");
                if matches!(last, Last::BothRead) {
                    std::hint::black_box(b.iter().sum::<f32>());
                }
                let t = Instant::now();
                b.fill(2.0);
                let ms = t.elapsed().as_secs_f64() * 1e3;
                std::hint::black_box(&**b);
                drop(b);
                both.wait();
                ms
            })
            .collect()
    });
    times.sort_by(f64::total_cmp);
    times[rounds / 2]
}

fn main() {
    if std::thread::available_parallelism().map_or(1, std::num::NonZero::get) < 2 {
        println!("core-to-core round trip: one core only");
        return;
    }
    let mut runs: Vec<f64> = (0..3).map(|_| round_trip_ns(500_000)).collect();
    runs.sort_by(f64::total_cmp);
    println!("core-to-core round trip: {:.0} ns", runs[1]);
    if std::env::args().nth(1).as_deref() == Some("rewrite") {
        println!(
            "overwriting 4 MiB: {:.3} ms used by this thread only, {:.3} ms written last by the other, \
             {:.3} ms read last by both",
            rewrite_ms(Last::ThisThread),
            rewrite_ms(Last::OtherWrote),
            rewrite_ms(Last::BothRead)
        );
    }
}
