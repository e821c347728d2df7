//! Vectorisable `f32` transcendentals for the kernels' elementwise loops: libm's `expf` and
//! `log1pf` are calls the compiler cannot vectorise, and in the VAE's Bernoulli term they
//! were about 8% of a training step.

/// `e^x` for `f32`, vectorisable (Cephes' `expf`: range reduction by ln 2, a degree-6
/// polynomial, the exponent set through the bits); relative error ≈ 1e-7 on `[-87, 88]`.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    p = p * r * r + r + 1.0;
    p * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// `ln(1 + t)` for `t` in `[0, 1]` (what `softplus` needs: `t = e^-|x|`), vectorisable:
/// `ln u` of `u = 1 + t` by Cephes' `logf` (range reduction to `[√½, √2)`, a degree-9
/// polynomial), then Goldberg's correction `ln(u) · t / (u − 1)`, which restores the
/// digits of `t` lost when `1 + t` is rounded. Relative error ≈ 2e-7.
#[inline(always)] // into the callers' vectorised loops
#[allow(clippy::inline_always)]
pub(crate) fn ln_1p_unit(t: f32) -> f32 {
    let u = 1.0 + t;
    let big = u > std::f32::consts::SQRT_2;
    let m = if big { u * 0.5 } else { u };
    let e = if big { 1.0 } else { 0.0 };
    let x = m - 1.0;
    let z = x * x;
    let mut p = 7.037_683_6e-2_f32;
    p = p * x - 1.151_461_1e-1;
    p = p * x + 1.167_699_9e-1;
    p = p * x - 1.242_014_1e-1;
    p = p * x + 1.424_932_3e-1;
    p = p * x - 1.666_805_8e-1;
    p = p * x + 2.000_071_4e-1;
    p = p * x - 2.499_999_4e-1;
    p = p * x + 3.333_333e-1;
    let y = p * x * z - 2.121_944_4e-4 * e - 0.5 * z;
    let ln_u = x + y + 0.693_359_4 * e;
    // `u - 1` is exact for `u` in [1, 2]; when `1 + t` rounds to 1, `ln(1 + t) = t`.
    #[allow(clippy::float_cmp)] // exactly 1 is the case that needs it
    if u == 1.0 {
        t
    } else {
        ln_u * t / (u - 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_within_float_rounding_of_std() {
        let mut worst = 0f32;
        for i in -8700..8800 {
            let x = i as f32 * 0.01 + 0.003;
            let rel = ((exp(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert!(exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn fast_ln_1p_is_within_float_rounding_of_f64() {
        let mut worst = 0f64;
        let mut t = 1f32;
        // Every scale down to the smallest normal, 4096 points per octave near 1.
        while t > 1e-37 {
            for i in 0..4096 {
                let v = t * (1.0 - i as f32 / 8192.0);
                let want = f64::from(v).ln_1p();
                let rel = ((f64::from(ln_1p_unit(v)) - want) / want).abs();
                worst = worst.max(rel);
            }
            t *= 0.5;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(ln_1p_unit(0.0).to_bits(), 0f32.to_bits());
        assert!((ln_1p_unit(1.0) - std::f32::consts::LN_2).abs() < 1e-7);
    }
}
