//! Winograd's minimal filtering F(2x2, 3x3) for 3x3, stride-1, channels_last 2D convolutions:
//! each 2x2 block of outputs comes from a 4x4 patch of input through 16 products per channel
//! pair instead of 36, so the multiply-adds fall 2.25-fold.
//!
//! With Lavin and Gray's matrices ("Fast Algorithms for Convolutional Neural Networks", 2015),
//! a tile of output is `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` for the 4x4 input patch `d` and the 3x3
//! kernel `g`. Summed over input channels, the 16 element-wise products of a tile become 16
//! matrix products over all the tiles at once: `M[ξ] = V[ξ] · U[ξ]`, with `V[ξ]` (tiles x
//! in-channels) the transformed patches and `U[ξ]` (in x out) the transformed kernel. Tiles run
//! in blocks small enough that `V` and `M` stay in L2 between the transform, the 16 products
//! and the inverse transform.
//!
//! The three passes of training share it:
//! - forward: `y = correlate(x, k)`, bias and ReLU folded into the inverse transform;
//! - input gradient (stride 1): `dx = correlate(dy, flip(k) with its channel axes swapped)`
//!   with padding `2 - pad` in front, the same code on other operands;
//! - kernel gradient, the adjoint of the forward pass in `g`:
//!   `dk = Gᵀ [Σ_tiles V[ξ]ᵀ (A dy Aᵀ)[ξ]] G`, 16 products reduced over the tiles.
//!
//! The transforms work on 16 channels at a time (one AVX-512 vector), so both channel counts
//! must be multiples of 16; F(2x2, 3x3)'s matrices hold only 0, ±1 and ½, and its rounding
//! error stays within a few units in the last place of the direct sum's.

use std::sync::Mutex;

use rayon::prelude::*;
use smallvec::SmallVec;

use super::{ConvSpec, Geo};
use crate::ops::matmul::gemm_strided_serial;

/// Channels per vector in the transforms.
const LANES: usize = 16;

/// A block's `V` and `M` together stay under this many floats (384 KiB of a 1 MiB L2).
const BLOCK_FLOATS: usize = 96 * 1024;

/// Whether a convolution with `cin` input and `cout` output channels takes this path.
pub(super) fn eligible(spec: &ConvSpec, cin: usize, cout: usize) -> bool {
    !spec.layout.channels_first
        && spec.layout.rank == 2
        && spec.kernel == [1, 3, 3]
        && spec.strides == [1; 3]
        && spec.dilation == [1; 3]
        && cin > 0
        && cout > 0
        && cin.is_multiple_of(LANES)
        && cout.is_multiple_of(LANES)
        && crate::simd::wide()
}

/// A correlation's tiling: output `(2ty + i, 2tx + j)` reads input rows `2ty - py + 0..4` and
/// columns `2tx - px + 0..4`; reads outside the input are zeros.
#[derive(Clone, Copy, Debug)]
struct Tiling {
    ih: usize,
    iw: usize,
    oh: usize,
    ow: usize,
    py: usize,
    px: usize,
    th: usize,
    tw: usize,
    c_in: usize,
    c_out: usize,
}

impl Tiling {
    fn new(
        (ih, iw): (usize, usize),
        (oh, ow): (usize, usize),
        (py, px): (usize, usize),
        c_in: usize,
        c_out: usize,
    ) -> Tiling {
        Tiling {
            ih,
            iw,
            oh,
            ow,
            py,
            px,
            th: oh.div_ceil(2),
            tw: ow.div_ceil(2),
            c_in,
            c_out,
        }
    }

    /// The forward pass's tiling of `g`.
    fn forward(g: &Geo, cout: usize) -> Tiling {
        Tiling::new(
            (g.sp_in[1], g.sp_in[2]),
            (g.sp_out[1], g.sp_out[2]),
            (g.pad[1], g.pad[2]),
            g.cin,
            cout,
        )
    }

    /// The input gradient's: a correlation of `dy` (`cout` channels) that yields `dx`.
    fn backward(g: &Geo, cout: usize) -> Tiling {
        Tiling::new(
            (g.sp_out[1], g.sp_out[2]),
            (g.sp_in[1], g.sp_in[2]),
            (2 - g.pad[1], 2 - g.pad[2]),
            cout,
            g.cin,
        )
    }

    fn per_sample(&self) -> usize {
        self.th * self.tw
    }

    /// Tiles per block (a multiple of 8, the products' tall tile).
    fn block(&self) -> usize {
        (BLOCK_FLOATS / (LANES * (self.c_in + self.c_out))).clamp(8, 256) / 8 * 8
    }

    /// Floats of one worker's `V` and `M`.
    fn part(&self) -> usize {
        LANES * (self.vs() + self.ms())
    }

    /// Floats between `V`'s 16 planes: a block's tiles and one spare cache line, so that the
    /// planes do not all fall on the same L1 sets (a block of 64 tiles of 32 channels is
    /// exactly 8 KiB: every tile's 16 stores would then evict each other).
    fn vs(&self) -> usize {
        self.block() * self.c_in + LANES
    }

    /// Floats between `M`'s planes, likewise.
    fn ms(&self) -> usize {
        self.block() * self.c_out + LANES
    }

    fn blocks(&self, batch: usize) -> usize {
        (batch * self.per_sample()).div_ceil(self.block())
    }

    /// Sample, tile row and tile column of tile `t`.
    fn locate(&self, t: usize) -> (usize, usize, usize) {
        let (b, r) = (t / self.per_sample(), t % self.per_sample());
        (b, r / self.tw, r % self.tw)
    }
}

/// Worker threads for `blocks` blocks, each with its own part of the scratch.
fn workers(blocks: usize) -> usize {
    rayon::current_num_threads().clamp(1, 8).min(blocks.max(1))
}

/// A pointer that blocks of tiles on different threads write through at disjoint positions.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every tile writes only its own output positions (see `correlate`).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// Scratch floats of a correlation: the transformed kernel, and each worker's part.
fn correlate_scratch(t: &Tiling, batch: usize) -> usize {
    LANES * t.c_in * t.c_out + workers(t.blocks(batch)) * t.part()
}

/// Scratch floats of the forward pass.
pub(super) fn forward_scratch(g: &Geo, cout: usize, batch: usize) -> usize {
    correlate_scratch(&Tiling::forward(g, cout), batch)
}

/// Scratch floats of the input gradient.
pub(super) fn grad_input_scratch(g: &Geo, cout: usize, batch: usize) -> usize {
    correlate_scratch(&Tiling::backward(g, cout), batch)
}

/// The kernel gradient's sum over tiles runs in this many parts at most (each a contiguous
/// run of blocks with its own `V`, `M` and partial sum): fixed by the data, not the thread
/// count, so that the sum's rounding is the same on any pool.
const SUM_PARTS: usize = 4;

/// Scratch floats of the kernel gradient: per part, `V`, `M` and a sum of `dU`.
pub(super) fn grad_kernel_scratch(g: &Geo, cout: usize, batch: usize) -> usize {
    let t = Tiling::forward(g, cout);
    t.blocks(batch).clamp(1, SUM_PARTS) * (t.part() + LANES * g.cin * cout)
}

/// `y = conv(x, k) (+ bias)`, clamped at zero with `relu`.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    g: &Geo,
    x: &[f32],
    k: &[f32],
    cout: usize,
    y: &mut [f32],
    bias: Option<&[f32]>,
    relu: bool,
    scratch: &mut [f32],
) {
    let t = Tiling::forward(g, cout);
    let (u, parts) = scratch.split_at_mut(LANES * g.cin * cout);
    kernel_transform(k, g.cin, cout, false, u);
    correlate(&t, x, u, y, bias, relu, parts);
}

/// `dx` from `dy` and the kernel (stride 1).
pub(super) fn grad_input(
    g: &Geo,
    dy: &[f32],
    k: &[f32],
    cout: usize,
    dx: &mut [f32],
    scratch: &mut [f32],
) {
    let t = Tiling::backward(g, cout);
    let (u, parts) = scratch.split_at_mut(LANES * g.cin * cout);
    kernel_transform(k, g.cin, cout, true, u);
    correlate(&t, dy, u, dx, None, false, parts);
}

/// `U[ξ] = G g Gᵀ` for every channel pair, `U` laid out `(16, rows, cols)`. Forward: rows are
/// `k`'s input channels, columns its output channels. `flip`: the input gradient's kernel,
/// `g'[ky][kx][o][i] = k[2-ky][2-kx][i][o]`, rows the output channels.
fn kernel_transform(k: &[f32], cin: usize, cout: usize, flip: bool, u: &mut [f32]) {
    let (rows, cols) = if flip { (cout, cin) } else { (cin, cout) };
    let plane = rows * cols;
    for r in 0..rows {
        for c in 0..cols {
            let tap = |ky: usize, kx: usize| {
                if flip {
                    k[((2 - ky) * 3 + (2 - kx)) * cin * cout + c * cout + r]
                } else {
                    k[(ky * 3 + kx) * cin * cout + r * cout + c]
                }
            };
            let g: [[f32; 3]; 3] = std::array::from_fn(|ky| std::array::from_fn(|kx| tap(ky, kx)));
            // G g down each kernel column (gc[kx][i]), then along each row: (G g Gᵀ)[i][j].
            let gc: [[f32; 4]; 3] =
                std::array::from_fn(|kx| g_rows([g[0][kx], g[1][kx], g[2][kx]]));
            for i in 0..4 {
                for (j, v) in g_rows([gc[0][i], gc[1][i], gc[2][i]])
                    .into_iter()
                    .enumerate()
                {
                    u[(i * 4 + j) * plane + r * cols + c] = v;
                }
            }
        }
    }
}

/// `G v` for a 3-vector.
#[inline(always)]
fn g_rows([a, b, c]: [f32; 3]) -> [f32; 4] {
    [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c]
}

/// `Gᵀ v` for a 4-vector.
#[inline(always)]
fn gt_rows([a, b, c, d]: [f32; 4]) -> [f32; 3] {
    [a + 0.5 * (b + c), 0.5 * (b - c), 0.5 * (b + c) + d]
}

/// Runs the tiling's correlation of `x` with the transformed kernel `u` into `out`.
fn correlate(
    t: &Tiling,
    x: &[f32],
    u: &[f32],
    out: &mut [f32],
    bias: Option<&[f32]>,
    relu: bool,
    parts: &mut [f32],
) {
    let batch = x.len() / (t.ih * t.iw * t.c_in).max(1);
    assert!(
        out.len() >= batch * t.oh * t.ow * t.c_out && bias.is_none_or(|b| b.len() == t.c_out),
        "winograd: output or bias of the wrong size"
    );
    let (nt, tb) = (batch * t.per_sample(), t.block());
    let blocks = t.blocks(batch);
    // As many workers as the scratch was planned for (the same count on the same pool), and
    // at least the one part it always holds.
    assert!(
        parts.len() >= t.part(),
        "winograd: scratch smaller than one part"
    );
    let w = workers(blocks).min(parts.len() / t.part());
    let parts: SmallVec<[Mutex<&mut [f32]>; 8]> =
        parts.chunks_mut(t.part()).take(w).map(Mutex::new).collect();
    let dst = Out(out.as_mut_ptr());
    let run = |bi: usize| {
        // Each worker thread owns one part: a lock it never waits on.
        let slot = rayon::current_thread_index().unwrap_or(0) % w;
        let mut part = parts[slot].lock().unwrap_or_else(|e| e.into_inner());
        let (v, m) = part.split_at_mut(LANES * t.vs());
        let t0 = bi * tb;
        let n = tb.min(nt - t0);
        // SAFETY: this path runs only on AVX-512 CPUs (`eligible`); `v` holds 16 planes of
        // `tb` tiles, and every tile of the block is a tile of `x`.
        for i in 0..n {
            unsafe { input_tile(t, x, t0 + i, v, t.vs(), i * t.c_in) };
        }
        for xi in 0..LANES {
            gemm_strided_serial(
                n,
                t.c_out,
                t.c_in,
                &v[xi * t.vs()..],
                t.c_in,
                1,
                &u[xi * t.c_in * t.c_out..],
                t.c_out,
                1,
                &mut m[xi * t.ms()..],
                false,
            );
        }
        for i in 0..n {
            // SAFETY: as above; tile `t0 + i` writes only its own outputs, inside `out`
            // (checked above), and no two tiles share an output.
            unsafe { output_tile(t, m, t.ms(), i * t.c_out, t0 + i, dst, bias, relu) };
        }
    };
    if blocks > 1 && w > 1 {
        (0..blocks).into_par_iter().for_each(run);
    } else {
        (0..blocks).for_each(run);
    }
}

/// One vector of 16 channels: AVX-512 on x86-64 (the only CPUs [`eligible`] admits), an
/// array elsewhere so that the module builds everywhere.
mod lane {
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    #[cfg(target_arch = "x86_64")]
    #[derive(Clone, Copy)]
    pub struct V(__m512);

    #[cfg(not(target_arch = "x86_64"))]
    #[derive(Clone, Copy)]
    pub struct V([f32; 16]);

    // SAFETY (every method): the intrinsics need AVX-512F, which the callers' own
    // `target_feature` provides (they run only where `simd::wide()` holds); the pointers
    // are the callers' to keep in bounds.
    #[cfg(target_arch = "x86_64")]
    impl V {
        #[inline(always)]
        pub unsafe fn load(p: *const f32) -> V {
            V(_mm512_loadu_ps(p))
        }
        #[inline(always)]
        pub unsafe fn store(self, p: *mut f32) {
            _mm512_storeu_ps(p, self.0)
        }
        #[inline(always)]
        pub unsafe fn zero() -> V {
            V(_mm512_setzero_ps())
        }
        #[inline(always)]
        pub unsafe fn add(self, o: V) -> V {
            V(_mm512_add_ps(self.0, o.0))
        }
        #[inline(always)]
        pub unsafe fn sub(self, o: V) -> V {
            V(_mm512_sub_ps(self.0, o.0))
        }
        #[inline(always)]
        pub unsafe fn relu(self) -> V {
            V(_mm512_max_ps(self.0, _mm512_setzero_ps()))
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    impl V {
        #[inline(always)]
        pub unsafe fn load(p: *const f32) -> V {
            V(std::ptr::read_unaligned(p.cast()))
        }
        #[inline(always)]
        pub unsafe fn store(self, p: *mut f32) {
            std::ptr::write_unaligned(p.cast(), self.0)
        }
        #[inline(always)]
        pub unsafe fn zero() -> V {
            V([0.0; 16])
        }
        #[inline(always)]
        pub unsafe fn add(self, o: V) -> V {
            V(std::array::from_fn(|l| self.0[l] + o.0[l]))
        }
        #[inline(always)]
        pub unsafe fn sub(self, o: V) -> V {
            V(std::array::from_fn(|l| self.0[l] - o.0[l]))
        }
        #[inline(always)]
        pub unsafe fn relu(self) -> V {
            V(self.0.map(|v| v.max(0.0)))
        }
    }
}

use lane::V;

/// `Bᵀ d` along one axis: `[d0 - d2, d1 + d2, d2 - d1, d1 - d3]`.
#[inline(always)]
unsafe fn bt([d0, d1, d2, d3]: [V; 4]) -> [V; 4] {
    [d0.sub(d2), d1.add(d2), d2.sub(d1), d1.sub(d3)]
}

/// `Aᵀ m` along one axis: `[m0 + m1 + m2, m1 - m2 - m3]`.
#[inline(always)]
unsafe fn at([m0, m1, m2, m3]: [V; 4]) -> [V; 2] {
    [m0.add(m1).add(m2), m1.sub(m2).sub(m3)]
}

/// `A d` along one axis: `[d0, d0 + d1, d0 - d1, -d1]`.
#[inline(always)]
unsafe fn a_rows([d0, d1]: [V; 2]) -> [V; 4] {
    [d0, d0.add(d1), d0.sub(d1), V::zero().sub(d1)]
}

/// Zeros that patch positions outside the input read instead.
static ZEROS: [f32; LANES] = [0.0; LANES];

/// Tile `tile`'s transformed input patch `Bᵀ d B` into `v[ξ * vs + off ..][..c_in]`.
///
/// # Safety
/// AVX-512F (on x86-64); `x` holds whole samples of the tiling's input, `v` at least
/// `15 * vs + off + c_in` floats.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn input_tile(t: &Tiling, x: &[f32], tile: usize, v: &mut [f32], vs: usize, off: usize) {
    let (b, ty, tx) = t.locate(tile);
    let c = t.c_in;
    debug_assert!(x.len() >= (b + 1) * t.ih * t.iw * c && v.len() >= 15 * vs + off + c);
    let sample = x.as_ptr().add(b * t.ih * t.iw * c);
    let y0 = (2 * ty) as isize - t.py as isize;
    let x0 = (2 * tx) as isize - t.px as isize;
    // Each patch position's first channel, and whether it steps through the channels (in
    // the input) or stays on the zeros (outside).
    let mut src = [[ZEROS.as_ptr(); 4]; 4];
    let mut step = [[0usize; 4]; 4];
    for r in 0..4 {
        for q in 0..4 {
            let (iy, ix) = (y0 + r as isize, x0 + q as isize);
            if iy >= 0 && ix >= 0 && (iy as usize) < t.ih && (ix as usize) < t.iw {
                src[r][q] = sample.add((iy as usize * t.iw + ix as usize) * c);
                step[r][q] = 1;
            }
        }
    }
    let dst = v.as_mut_ptr().add(off);
    for c0 in (0..c).step_by(LANES) {
        let d: [[V; 4]; 4] = std::array::from_fn(|r| {
            std::array::from_fn(|q| V::load(src[r][q].add(c0 * step[r][q])))
        });
        // Bᵀ d (down each column), then (Bᵀ d) B (along each row).
        let cols: [[V; 4]; 4] = std::array::from_fn(|q| bt([d[0][q], d[1][q], d[2][q], d[3][q]]));
        for (r, row) in (0..4).map(|r| (r, bt([cols[0][r], cols[1][r], cols[2][r], cols[3][r]]))) {
            for (q, lane) in row.into_iter().enumerate() {
                lane.store(dst.add((r * 4 + q) * vs + c0));
            }
        }
    }
}

/// The inverse transform `Aᵀ m A` of tile `tile`'s products (`m[ξ * ms + off ..]`) into its
/// outputs, plus the bias, clamped at zero with `relu`.
///
/// # Safety
/// AVX-512F (on x86-64); `out` must hold the tiling's whole output, no other thread may
/// touch this tile's outputs meanwhile, and `m` must hold `15 * ms + off + c_out` floats.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn output_tile(
    t: &Tiling,
    m: &[f32],
    ms: usize,
    off: usize,
    tile: usize,
    out: Out,
    bias: Option<&[f32]>,
    relu: bool,
) {
    let (b, ty, tx) = t.locate(tile);
    let c = t.c_out;
    debug_assert!(m.len() >= 15 * ms + off + c);
    let (oy, ox) = (2 * ty, 2 * tx);
    let rows = (t.oh - oy).min(2);
    let cols = (t.ow - ox).min(2);
    let src = m.as_ptr().add(off);
    for c0 in (0..c).step_by(LANES) {
        let mm: [[V; 4]; 4] = std::array::from_fn(|r| {
            std::array::from_fn(|q| V::load(src.add((r * 4 + q) * ms + c0)))
        });
        // Aᵀ m (down each column: 2 x 4), then along each row (2 x 2).
        let down: [[V; 2]; 4] =
            std::array::from_fn(|q| at([mm[0][q], mm[1][q], mm[2][q], mm[3][q]]));
        let bias = match bias {
            Some(bv) => V::load(bv.as_ptr().add(c0)),
            None => V::zero(),
        };
        for (i, y) in (0..rows).map(|i| (i, at([down[0][i], down[1][i], down[2][i], down[3][i]]))) {
            for (j, lane) in y.into_iter().enumerate().take(cols) {
                let o = ((b * t.oh + oy + i) * t.ow + ox + j) * c + c0;
                let v = lane.add(bias);
                (if relu { v.relu() } else { v }).store(out.0.add(o));
            }
        }
    }
}

/// Tile `tile`'s transformed output gradient `A dy Aᵀ` into `m[ξ * ms + off ..][..c_out]`.
///
/// # Safety
/// AVX-512F (on x86-64); `dy` holds whole samples of the tiling's output, `m` at least
/// `15 * ms + off + c_out` floats.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
unsafe fn grad_tile(t: &Tiling, dy: &[f32], tile: usize, m: &mut [f32], ms: usize, off: usize) {
    let (b, ty, tx) = t.locate(tile);
    let c = t.c_out;
    debug_assert!(dy.len() >= (b + 1) * t.oh * t.ow * c && m.len() >= 15 * ms + off + c);
    let sample = dy.as_ptr().add(b * t.oh * t.ow * c);
    let (oy, ox) = (2 * ty, 2 * tx);
    let mut src = [[ZEROS.as_ptr(); 2]; 2];
    let mut step = [[0usize; 2]; 2];
    for i in 0..2 {
        for j in 0..2 {
            if oy + i < t.oh && ox + j < t.ow {
                src[i][j] = sample.add(((oy + i) * t.ow + ox + j) * c);
                step[i][j] = 1;
            }
        }
    }
    let dst = m.as_mut_ptr().add(off);
    for c0 in (0..c).step_by(LANES) {
        let d: [[V; 2]; 2] = std::array::from_fn(|i| {
            std::array::from_fn(|j| V::load(src[i][j].add(c0 * step[i][j])))
        });
        // A d (down each column: 4 x 2), then along each row (4 x 4).
        let down: [[V; 4]; 2] = std::array::from_fn(|j| a_rows([d[0][j], d[1][j]]));
        for (r, row) in (0..4).map(|r| (r, a_rows([down[0][r], down[1][r]]))) {
            for (q, lane) in row.into_iter().enumerate() {
                lane.store(dst.add((r * 4 + q) * ms + c0));
            }
        }
    }
}

/// `dk = Gᵀ [Σ_tiles V[ξ]ᵀ · (A dy Aᵀ)[ξ]] G`. Blocks split into [`SUM_PARTS`] contiguous
/// runs whose sums add in a fixed order, so the result does not depend on the thread count
/// or on which thread ran what.
pub(super) fn grad_kernel(
    g: &Geo,
    x: &[f32],
    dy: &[f32],
    cout: usize,
    dk: &mut [f32],
    scratch: &mut [f32],
) {
    let t = Tiling::forward(g, cout);
    let batch = x.len() / (t.ih * t.iw * t.c_in).max(1);
    let (nt, tb) = (batch * t.per_sample(), t.block());
    let blocks = t.blocks(batch);
    let w = blocks.clamp(1, SUM_PARTS);
    let plane = t.c_in * t.c_out;
    let per = t.part() + LANES * plane;
    let parts = &mut scratch[..w * per];
    let work = |(wi, part): (usize, &mut [f32])| {
        let (vm, du) = part.split_at_mut(t.part());
        let (v, m) = vm.split_at_mut(LANES * t.vs());
        du.fill(0.0);
        for bi in blocks * wi / w..blocks * (wi + 1) / w {
            let t0 = bi * tb;
            let n = tb.min(nt - t0);
            for i in 0..n {
                // SAFETY: AVX-512 CPUs only (`eligible`); `v` and `m` hold 16 planes of `tb`
                // tiles, and every tile of the block is a tile of `x` and of `dy`.
                unsafe {
                    input_tile(&t, x, t0 + i, v, t.vs(), i * t.c_in);
                    grad_tile(&t, dy, t0 + i, m, t.ms(), i * t.c_out);
                }
            }
            for xi in 0..LANES {
                // dU[ξ] (c_in x c_out) += V[ξ]ᵀ · M[ξ], the sum over this block's tiles.
                gemm_strided_serial(
                    t.c_in,
                    t.c_out,
                    n,
                    &v[xi * t.vs()..],
                    1,
                    t.c_in,
                    &m[xi * t.ms()..],
                    t.c_out,
                    1,
                    &mut du[xi * plane..],
                    true,
                );
            }
        }
    };
    if w > 1 && rayon::current_num_threads() > 1 {
        parts.par_chunks_mut(per).enumerate().for_each(work);
    } else {
        parts.chunks_mut(per).enumerate().for_each(work);
    }
    let (first, rest) = parts.split_at_mut(per);
    let du = &mut first[t.part()..];
    for other in rest.chunks(per) {
        du.iter_mut()
            .zip(&other[t.part()..])
            .for_each(|(a, b)| *a += b);
    }
    // dk[ky][kx] = Σ Gᵀ dU G, channel pair by channel pair (columns contiguous).
    for ci in 0..t.c_in {
        for co in 0..t.c_out {
            let at = |r: usize, q: usize| du[(r * 4 + q) * plane + ci * t.c_out + co];
            let rows: [[f32; 3]; 4] =
                std::array::from_fn(|r| gt_rows([at(r, 0), at(r, 1), at(r, 2), at(r, 3)]));
            for kx in 0..3 {
                let col = gt_rows([rows[0][kx], rows[1][kx], rows[2][kx], rows[3][kx]]);
                for (ky, v) in col.into_iter().enumerate() {
                    dk[(ky * 3 + kx) * plane + ci * t.c_out + co] = v;
                }
            }
        }
    }
}
