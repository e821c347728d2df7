//! Access to the `f32` data of CPU tensors, and per-thread floating-point settings.

use std::mem::MaybeUninit;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Layout, Result, Shape, Storage, Tensor};

/// The contiguous `f32` values of a CPU storage under `layout`, or an error naming `op`.
pub(crate) fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { bail!("{op}: needs f32 tensors, got {:?} (the models train in f32)", s.dtype()) };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => bail!("{op}: needs a contiguous tensor, got strides {:?}", l.stride()),
    }
}

/// The `f32` values of a storage read through [`Tensor::storage_and_layout`].
pub(crate) fn storage_slice<'a>(s: &'a Storage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    match s {
        Storage::Cpu(c) => slice(c, l, op),
        _ => bail!("{op}: runs on the CPU only"),
    }
}

/// Calls `f` with the contiguous `f32` values of `t` (copied to a contiguous layout first
/// when it has another one).
pub(crate) fn with_f32<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    if t.dtype() != DType::F32 {
        bail!("{op}: needs f32 tensors, got {:?}", t.dtype());
    }
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    Ok(f(storage_slice(&s, l, op)?))
}

/// `n` values built in parallel, piece by piece: `f(i, piece)` gets piece `i` (`size`
/// values, the last one shorter) zeroed by the thread that runs it, just before, and
/// overwrites or adds onto it; returns the values and `f`'s results in piece order. A
/// kernel that fills its output this way touches each piece once while it is in cache,
/// instead of zeroing the whole buffer in a pass of its own first. Call at a kernel's top
/// level (parallel loops do not nest).
pub(crate) fn build_zeroed<R: Send>(
    n: usize,
    size: usize,
    f: impl Fn(usize, &mut [f32]) -> R + Sync,
) -> (Vec<f32>, Vec<R>) {
    let zero_then_f = |i: usize, piece: &mut [MaybeUninit<f32>]| {
        piece.fill(MaybeUninit::new(0.0));
        // SAFETY: every element of the piece was written just above, and
        // `MaybeUninit<f32>` has the layout of `f32`.
        #[allow(unsafe_code)]
        let piece = unsafe { &mut *(std::ptr::from_mut::<[MaybeUninit<f32>]>(piece) as *mut [f32]) };
        f(i, piece)
    };
    // SAFETY: `zero_then_f` writes every element of its piece first.
    #[allow(unsafe_code)]
    unsafe {
        build_uninit(n, size, zero_then_f)
    }
}

/// [`build_zeroed`] for kernels that overwrite every value: `f(i, piece)` gets piece `i`
/// uninitialised and must write each element of it (with `MaybeUninit::write`), so no
/// thread zeroes memory only for it to be overwritten.
///
/// # Safety
/// `f` must initialise every element of the piece it is given before it returns.
#[allow(unsafe_code)]
pub(crate) unsafe fn build_uninit<R: Send>(
    n: usize,
    size: usize,
    f: impl Fn(usize, &mut [MaybeUninit<f32>]) -> R + Sync,
) -> (Vec<f32>, Vec<R>) {
    let mut v: Vec<f32> = Vec::with_capacity(n);
    let pieces = crate::par::slots(&mut v.spare_capacity_mut()[..n], size.max(1));
    let out = crate::par::map(pieces.len(), |i| f(i, &mut crate::par::lock(&pieces[i])));
    drop(pieces);
    // SAFETY: the capacity is at least `n`; the pieces cover `0..n`, and `map` ran `f`,
    // which initialises its piece (the caller's promise), for every piece (a panic
    // propagates before here).
    unsafe {
        v.set_len(n);
    }
    (v, out)
}

/// A CPU tensor made from `v`, with no gradient history.
pub(crate) fn tensor(v: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(v, shape, &candle_core::Device::Cpu)
}

/// Sum of squares of `t`'s values in f64 (for the global gradient norm).
pub fn grad_sq_sum(t: &Tensor) -> Result<f64> {
    with_f32(t, "grad_sq_sum", |v| {
        v.chunks(4096).map(|c| c.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>()).sum()
    })
}

/// Turns on flush-to-zero and denormals-are-zero (x86 MXCSR bits 15 and 6) on the calling
/// thread and on every thread of the pool the kernels and candle's elementwise ops run on.
/// Denormal floats (below 1.2e-38) are 10–100× slower on x86 and arise in training as
/// gradients and moments decay; PyTorch offers the same switch (`set_flush_denormal`).
/// Results change only for values that small. A no-op on other architectures; returns
/// whether it took effect.
#[must_use = "false means denormals are not flushed on this architecture"]
pub fn flush_denormals() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        #[allow(unsafe_code, deprecated)]
        fn set() {
            #[cfg(target_arch = "x86")]
            use std::arch::x86::{_mm_getcsr, _mm_setcsr};
            #[cfg(target_arch = "x86_64")]
            use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
            const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);
            // SAFETY: reading and writing MXCSR only changes how this thread rounds
            // tiny floats; SSE is part of every x86-64 CPU.
            unsafe {
                _mm_setcsr(_mm_getcsr() | FTZ_DAZ);
            }
        }
        set();
        crate::par::on_every_thread(set);
        true
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_zeroed_hands_every_piece_over_zeroed_once() {
        for (n, size) in [(0, 4), (1, 4), (10, 3), (12, 3), (1000, 1000), (5000, 7)] {
            let (v, ids) = build_zeroed(n, size, |i, piece| {
                assert!(piece.iter().all(|&x| x.to_bits() == 0));
                for x in piece.iter_mut() {
                    *x += i as f32 + 1.0;
                }
                (i, piece.len())
            });
            assert_eq!(v.len(), n);
            assert!(
                v.iter().enumerate().all(|(j, &x)| x.to_bits() == ((j / size) as f32 + 1.0).to_bits()),
                "n = {n}, size = {size}"
            );
            assert_eq!(ids.len(), n.div_ceil(size));
            assert!(ids.iter().enumerate().all(|(i, &(j, len))| i == j && len == size.min(n - i * size)));
        }
    }

    #[test]
    fn denormals_flush_to_zero_on_pool_threads() {
        assert!(flush_denormals());
        let tiny = std::hint::black_box(1e-38f32);
        let out = std::sync::Mutex::new(Vec::new());
        crate::par::on_every_thread(|| {
            let v = std::hint::black_box(tiny) * std::hint::black_box(0.5f32);
            out.lock().unwrap().push(v);
        });
        let out = out.into_inner().unwrap();
        assert_eq!(out.len(), crate::par::threads());
        assert!(out.iter().all(|&x| x == 0.0), "denormal results survived: {out:?}");
    }
}
