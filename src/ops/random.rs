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
    // Element i drops when a 32-bit half of draw i / 2 falls below rate * 2^32.
    let threshold = (rate as f64 * 4_294_967_296.0) as u64;
    let body = |base: usize, o: &mut [f32], x: &[f32]| {
        debug_assert!(base % 2 == 0);
        for (k, (o, x)) in o.chunks_mut(2).zip(x.chunks(2)).enumerate() {
            let h = bits(stream, (base / 2 + k) as u64);
            for (j, (o, &x)) in o.iter_mut().zip(x).enumerate() {
                let u = (h >> (32 * j)) & 0xffff_ffff;
                *o = if u < threshold { 0.0 } else { x * scale };
            }
        }
    };
    if out.len() >= PAR_THRESHOLD {
        let c = PAR_THRESHOLD / 4;
        out.par_chunks_mut(c).zip(x.par_chunks(c)).enumerate().for_each(|(k, (o, x))| body(k * c, o, x));
    } else {
        body(0, out, x);
    }
}
