//! Randomness inside programs. Dropout masks come from a counter-based generator (Philox)
//! over (seed, step, layer key, element), so a mask needs no storage: the backward pass
//! regenerates exactly the mask the forward pass used, any element can be computed on any
//! thread, and the CPU and the GPU draw the same masks.

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

/// Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2,
/// 3", SC 2011): four 32-bit words for a 128-bit counter under a 64-bit key. The GPU's
/// dropout kernel (`device/gpu/shaders/elementwise.wgsl`) computes the same function, so a
/// seed gives the same masks on both devices.
#[inline]
pub fn philox(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for _ in 0..10 {
        let p0 = u64::from(0xD251_1F53u32) * u64::from(c[0]);
        let p1 = u64::from(0xCD9E_8D57u32) * u64::from(c[2]);
        c = [
            (p1 >> 32) as u32 ^ c[1] ^ k[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ c[3] ^ k[1],
            p0 as u32,
        ];
        k = [
            k[0].wrapping_add(0x9E37_79B9),
            k[1].wrapping_add(0xBB67_AE85),
        ];
    }
    c
}

/// Philox4x32-10 of the `LANES` counters `[first + l, c1, c2, c3]`: word `w` of counter `l`
/// in `out[w][l]`. The same function as [`philox`], laid out lane by lane so that the
/// compiler turns each round into vector multiplies (about 8 times faster than one counter
/// at a time on the CPUs we run on).
#[inline(always)]
fn philox_lanes(first: u32, c1: u32, c2: u32, c3: u32, key: [u32; 2]) -> [[u32; LANES]; 4] {
    let mut a: [u32; LANES] = std::array::from_fn(|l| first.wrapping_add(l as u32));
    let mut b = [c1; LANES];
    let mut c = [c2; LANES];
    let mut d = [c3; LANES];
    let mut k = key;
    for _ in 0..10 {
        for l in 0..LANES {
            let p0 = u64::from(0xD251_1F53u32) * u64::from(a[l]);
            let p1 = u64::from(0xCD9E_8D57u32) * u64::from(c[l]);
            let (na, nb) = ((p1 >> 32) as u32 ^ b[l] ^ k[0], p1 as u32);
            let (nc, nd) = ((p0 >> 32) as u32 ^ d[l] ^ k[1], p0 as u32);
            a[l] = na;
            b[l] = nb;
            c[l] = nc;
            d[l] = nd;
        }
        k = [
            k[0].wrapping_add(0x9E37_79B9),
            k[1].wrapping_add(0xBB67_AE85),
        ];
    }
    [a, b, c, d]
}

/// Counters per `philox_lanes` call.
const LANES: usize = 16;

/// A dropout op's constants: the drop threshold on a 16-bit draw (`rate * 2^16`; rates are
/// resolved to 1/65536, far below any dropout rate's meaningful precision), the word its
/// layer key contributes to the counter, and the scale of kept values.
pub fn dropout_words(rate: f32, key: u64) -> (u32, u32, f32) {
    let threshold = (f64::from(rate.clamp(0.0, 1.0)) * 65536.0).round() as u32;
    let k = mix64(key.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let scale = if rate > 0.0 { 1.0 / (1.0 - rate) } else { 1.0 };
    (threshold, (k ^ (k >> 32)) as u32, scale)
}

/// Inverted dropout: in training `out = x * keep / (1 - rate)`, else `out = x`.
/// Also the backward pass, applied to the incoming gradient with the same key and step.
/// Each Philox call draws eight elements: element i drops when the 16-bit half `i % 2` of
/// word `(i / 2) % 4` of `philox([i / 8, step_lo, step_hi, key_word], seed)` is below
/// `rate * 2^16`.
pub fn dropout(x: &[f32], out: &mut [f32], rate: f32, ctx: &Ctx, key: u64) {
    if !ctx.training || rate <= 0.0 {
        out.copy_from_slice(x);
        return;
    }
    let (threshold, key_word, scale) = dropout_words(rate, key);
    let seed = [ctx.seed as u32, (ctx.seed >> 32) as u32];
    let (step_lo, step_hi) = (ctx.step as u32, (ctx.step >> 32) as u32);
    // Compiled for the CPU's widest vectors (`simd::dispatch`): Philox's 32x32->64-bit
    // products run 8 or 16 lanes wide there, 2 in the baseline build.
    let body = |base: usize, o: &mut [f32], x: &[f32]| {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                debug_assert!(base.is_multiple_of(8 * LANES));
                for (k, (o, x)) in o.chunks_mut(8 * LANES).zip(x.chunks(8 * LANES)).enumerate() {
                    let first = (base / 8 + k * LANES) as u32;
                    let w = philox_lanes(first, step_lo, step_hi, key_word, seed);
                    // Element 8 l + 2 j + h of this chunk: half h of word j of counter l.
                    let mut draws = [0u32; 8 * LANES];
                    for (l, d) in draws.chunks_exact_mut(8).enumerate() {
                        for j in 0..4 {
                            d[2 * j] = w[j][l] & 0xffff;
                            d[2 * j + 1] = w[j][l] >> 16;
                        }
                    }
                    for ((o, &x), &draw) in o.iter_mut().zip(x).zip(&draws) {
                        *o = if draw < threshold { 0.0 } else { x * scale };
                    }
                }
            },
        )
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

    fn ctx(training: bool, step: u64) -> Ctx {
        Ctx {
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
    fn philox_matches_the_published_known_answers() {
        // Random123's kat_vectors for philox4x32_10.
        assert_eq!(
            philox([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn the_lane_layout_is_the_scalar_function() {
        let w = philox_lanes(7, 1, 2, 3, [9, 10]);
        for l in 0..LANES {
            let lane: Vec<u32> = w.iter().map(|word| word[l]).collect();
            assert_eq!(lane, philox([7 + l as u32, 1, 2, 3], [9, 10]));
        }
    }

    #[test]
    fn inference_is_the_identity() {
        let x = [1.0, -2.0, 3.0];
        let mut out = [0.0; 3];
        dropout(&x, &mut out, 0.9, &ctx(false, 1), 1);
        assert_eq!(out, x);
    }
}
