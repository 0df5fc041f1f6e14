//! Activations for the recurrent kernels, written so that loops over a row vectorise: a
//! branch-free `exp` (Cody-Waite range reduction and a degree-6 polynomial, within 2 ulp on
//! the clamped range), and the activation chosen once per slice instead of per element.
//! libm's `expf`/`tanhf` are opaque calls that keep those loops scalar.

use crate::ops::UnaryOp;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
const ROUNDER: f32 = 12_582_912.0;

#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUNDER;
    let n = t - ROUNDER;
    let ni = t.to_bits() as i32 - ROUNDER.to_bits() as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((ni + 127) << 23) as u32)
}

#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// `v = f(v)` for a supported recurrent activation.
pub fn activate_in_place(u: UnaryOp, v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU supports AVX-512F (checked by `wide`).
        return unsafe { activate_avx512(u, v) };
    }
    activate_generic(u, v)
}

/// `out = f'(x)` written from the activation's output `y = f(x)`.
pub fn derivative_into(u: UnaryOp, y: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU supports AVX-512F (checked by `wide`).
        return unsafe { derivative_avx512(u, y, out) };
    }
    derivative_generic(u, y, out)
}

pub(super) use crate::simd::wide;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn activate_avx512(u: UnaryOp, v: &mut [f32]) {
    activate_generic(u, v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn derivative_avx512(u: UnaryOp, y: &[f32], out: &mut [f32]) {
    derivative_generic(u, y, out)
}

#[inline(always)]
fn activate_generic(u: UnaryOp, v: &mut [f32]) {
    match u {
        UnaryOp::Tanh => v.iter_mut().for_each(|x| *x = tanh(*x)),
        UnaryOp::Sigmoid => v.iter_mut().for_each(|x| *x = sigmoid(*x)),
        UnaryOp::HardSigmoid => v
            .iter_mut()
            .for_each(|x| *x = crate::ops::unary::clip(*x / 6.0 + 0.5, 0.0, 1.0)),
        // NaN fails the comparison and passes through, as in numpy.
        UnaryOp::Relu => v
            .iter_mut()
            .for_each(|x| *x = if *x < 0.0 { 0.0 } else { *x }),
        _ => {}
    }
}

/// The slope of a flat piece: 0, or NaN at a NaN output (the slope at NaN is NaN).
#[inline(always)]
fn nan_or_zero(y: f32) -> f32 {
    if y.is_nan() {
        y
    } else {
        0.0
    }
}

#[inline(always)]
fn derivative_generic(u: UnaryOp, y: &[f32], out: &mut [f32]) {
    let o = out.iter_mut().zip(y);
    match u {
        UnaryOp::Tanh => o.for_each(|(o, &y)| *o = 1.0 - y * y),
        UnaryOp::Sigmoid => o.for_each(|(o, &y)| *o = y * (1.0 - y)),
        UnaryOp::HardSigmoid => o.for_each(|(o, &y)| {
            *o = if y > 0.0 && y < 1.0 {
                1.0 / 6.0
            } else {
                nan_or_zero(y)
            }
        }),
        UnaryOp::Relu => o.for_each(|(o, &y)| *o = if y > 0.0 { 1.0 } else { nan_or_zero(y) }),
        _ => o.for_each(|(o, _)| *o = 1.0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_sigmoid_tanh_match_libm() {
        let mut worst: [f64; 3] = [0.0; 3];
        for i in -200_000..=200_000 {
            let x = i as f32 * 4.35e-4;
            let e = (x as f64).exp();
            worst[0] = worst[0].max(((super::exp(x) as f64 - e) / e).abs());
            worst[1] =
                worst[1].max((super::sigmoid(x) as f64 - 1.0 / (1.0 + (-x as f64).exp())).abs());
            worst[2] = worst[2].max((super::tanh(x) as f64 - (x as f64).tanh()).abs());
        }
        assert!(
            worst[0] < 3e-7 && worst[1] < 2e-7 && worst[2] < 3e-7,
            "{worst:?}"
        );
        assert_eq!(super::exp(-1000.0), super::exp(-87.0));
        assert!(
            super::exp(1000.0).is_finite()
                && super::sigmoid(-1000.0) >= 0.0
                && super::tanh(-1000.0) == -1.0
        );
    }

    #[test]
    fn wide_and_baseline_builds_agree() {
        use crate::ops::UnaryOp;
        let x: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.7).collect();
        for u in [
            UnaryOp::Tanh,
            UnaryOp::Sigmoid,
            UnaryOp::HardSigmoid,
            UnaryOp::Relu,
            UnaryOp::Identity,
        ] {
            let (mut a, mut b) = (x.clone(), x.clone());
            super::activate_in_place(u, &mut a);
            super::activate_generic(u, &mut b);
            assert_eq!(a, b, "{u:?}");
            let (mut da, mut db) = (vec![0.0; 37], vec![0.0; 37]);
            super::derivative_into(u, &a, &mut da);
            super::derivative_generic(u, &a, &mut db);
            assert_eq!(da, db, "{u:?}");
        }
    }
}
