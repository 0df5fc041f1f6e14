//! Randomness inside programs. Dropout masks come from a counter-based hash of
//! (seed, step, layer key, element), so a mask needs no storage: the backward pass
//! regenerates exactly the mask the forward pass used, and any element can be computed
//! on any thread.

use rayon::prelude::*;

use super::{Ctx, PAR_THRESHOLD};

/// splitmix64's finaliser: a bijective 64-bit mix with good avalanche.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// 64 random bits for position `i` of the stream `stream` (splitmix64's output function).
#[inline]
pub fn bits(stream: u64, i: u64) -> u64 {
    mix64(stream.wrapping_add(i.wrapping_mul(GOLDEN)))
}

/// A uniform draw in [0, 1) for element `i` of the stream `stream`.
#[inline]
pub fn uniform(stream: u64, i: u64) -> f32 {
    ((bits(stream, i) >> 40) as f32) * (1.0 / (1u64 << 24) as f32)
}

/// Inverted dropout: in training `out = x * keep / (1 - rate)`, else `out = x`.
/// Also the backward pass, applied to the incoming gradient with the same key and step.
pub fn dropout(x: &[f32], out: &mut [f32], rate: f32, ctx: &Ctx, key: u64) {
    if !ctx.training || rate <= 0.0 {
        out.copy_from_slice(x);
        return;
    }
    let stream = mix64(ctx.seed ^ mix64(key.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ ctx.step));
    let scale = 1.0 / (1.0 - rate);
    // Element i drops when its 16-bit quarter of draw i / 4 falls below rate * 2^16 (rates
    // are thus resolved to 1/65536, far below any dropout rate's meaningful precision).
    let threshold = (rate as f64 * 65536.0).round() as u64;
    let body = |base: usize, o: &mut [f32], x: &[f32]| {
        debug_assert!(base.is_multiple_of(4));
        for (k, (o, x)) in o.chunks_mut(4).zip(x.chunks(4)).enumerate() {
            let h = bits(stream, (base / 4 + k) as u64);
            for (j, (o, &x)) in o.iter_mut().zip(x).enumerate() {
                let u = (h >> (16 * j)) & 0xffff;
                *o = if u < threshold { 0.0 } else { x * scale };
            }
        }
    };
    if out.len() >= PAR_THRESHOLD {
        let c = PAR_THRESHOLD / 4;
        out.par_chunks_mut(c)
            .zip(x.par_chunks(c))
            .enumerate()
            .for_each(|(k, (o, x))| body(k * c, o, x));
    } else {
        body(0, out, x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;

    fn ctx(training: bool, step: u64) -> Ctx {
        Ctx {
            device: Device::Cpu,
            training,
            seed: 3,
            step,
        }
    }

    #[test]
    fn drops_the_rate_and_rescales_the_rest() {
        let n = 200_000;
        let x = vec![1.0f32; n];
        let mut out = vec![0.0f32; n];
        dropout(&x, &mut out, 0.3, &ctx(true, 1), 9);
        let dropped = out.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        assert!((dropped - 0.3).abs() < 0.01, "dropped {dropped}");
        assert!(out
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
    }

    #[test]
    fn the_backward_pass_sees_the_forward_mask_and_steps_differ() {
        let n = 1000;
        let x: Vec<f32> = (0..n).map(|i| i as f32 + 1.0).collect();
        let (mut a, mut b, mut c) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        dropout(&x, &mut a, 0.5, &ctx(true, 4), 1);
        dropout(&x, &mut b, 0.5, &ctx(true, 4), 1);
        dropout(&x, &mut c, 0.5, &ctx(true, 5), 1);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn inference_is_the_identity() {
        let x = [1.0, -2.0, 3.0];
        let mut out = [0.0; 3];
        dropout(&x, &mut out, 0.9, &ctx(false, 1), 1);
        assert_eq!(out, x);
    }
}
