//! Register-blocked GEMM kernels compiled for AVX-512 and chosen at run time: every product
//! whose right operand has contiguous rows (a Dense layer's three forms, the recurrence's
//! timestep products, the convolutions' gathered products). The general `gemm` crate packs
//! both operands first and runs an 8-lane kernel; these stream the right-hand rows straight
//! from cache into 16-lane FMAs, 4 output rows by 64 columns at a time.

/// `c (+)= a·b` where `b`'s rows are contiguous (`b[p * b_rs + j]`) and `c`'s too
/// (`c[i * c_rs + j]`); `a` has any strides. Returns `false` (doing nothing) when the CPU or
/// the shape does not suit it, and the caller falls back to the general kernel.
///
/// # Safety
/// Every `a[i*a_rs + p*a_cs]`, `b[p*b_rs + j]`, `c[i*c_rs + j]` for `i < m`, `j < n`, `p < k`
/// must be in bounds of live allocations, and `c` must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_rows(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    c_rs: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    accumulate: bool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if n.is_multiple_of(16) && n > 0 && m > 0 && k > 0 && crate::simd::wide() {
        gemm_avx512(m, n, k, c, c_rs, a, a_rs, a_cs, b, b_rs, accumulate);
        return true;
    }
    let _ = (m, n, k, c, c_rs, a, a_rs, a_cs, b, b_rs, accumulate);
    false
}

/// Depth of the blocks of `k` that [`gemm_rows_blocked`] runs one after another: a 64-column
/// panel of `b` over this depth (64 KiB) stays in L2 while every row of `a` passes over it.
pub const KC: usize = 256;

/// [`gemm_rows`] over `k` in blocks of [`KC`] (the first block writes or accumulates as asked,
/// the rest accumulate), so that long products keep `b`'s panel in cache. Each element's sum
/// runs in the same order whatever the caller's split of rows or columns.
///
/// # Safety
/// As for [`gemm_rows`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_rows_blocked(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    c_rs: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    accumulate: bool,
) -> bool {
    let mut p0 = 0;
    while p0 < k {
        let kc = (k - p0).min(KC);
        let (a_p, b_p) = (a.add(p0 * a_cs), b.add(p0 * b_rs));
        if !gemm_rows(
            m,
            n,
            kc,
            c,
            c_rs,
            a_p,
            a_rs,
            a_cs,
            b_p,
            b_rs,
            accumulate || p0 > 0,
        ) {
            return false;
        }
        p0 += kc;
    }
    k > 0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_avx512(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    c_rs: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    accumulate: bool,
) {
    let mut j0 = 0;
    while j0 < n {
        let w = (n - j0).min(64);
        let mut i0 = 0;
        while i0 < m {
            let r = (m - i0).min(4);
            let args = (
                k,
                c.add(i0 * c_rs + j0),
                c_rs,
                a.add(i0 * a_rs),
                a_rs,
                a_cs,
                b.add(j0),
                b_rs,
                accumulate,
            );
            if w == 32 && m - i0 >= 8 {
                // A 32-column panel takes eight rows a tile: as many accumulators as a
                // 4 x 64 tile, so each loaded row of `b` feeds as many multiply-adds.
                block::<8, 32>(args);
                i0 += 8;
                continue;
            }
            match (r, w) {
                (4, 64) => block::<4, 64>(args),
                (4, 48) => block::<4, 48>(args),
                (4, 32) => block::<4, 32>(args),
                (4, 16) => block::<4, 16>(args),
                (3, 64) => block::<3, 64>(args),
                (2, 64) => block::<2, 64>(args),
                (1, 64) => block::<1, 64>(args),
                (3, _) => narrow::<3>(w, args),
                (2, _) => narrow::<2>(w, args),
                (1, _) => narrow::<1>(w, args),
                _ => narrow::<4>(w, args),
            }
            i0 += r;
        }
        j0 += w;
    }
}

type Args = (
    usize,
    *mut f32,
    usize,
    *const f32,
    usize,
    usize,
    *const f32,
    usize,
    bool,
);

/// An `R x W` tile of `c`, accumulated over all of `k` in registers.
#[inline(always)]
unsafe fn block<const R: usize, const W: usize>(
    (k, c, c_rs, a, a_rs, a_cs, b, b_rs, accumulate): Args,
) {
    let mut acc = [[0.0f32; W]; R];
    for p in 0..k {
        let brow = std::slice::from_raw_parts(b.add(p * b_rs), W);
        for (r, acc) in acc.iter_mut().enumerate() {
            let av = *a.add(r * a_rs + p * a_cs);
            for (x, &bv) in acc.iter_mut().zip(brow) {
                // One fused multiply-add (AVX-512F implies FMA).
                *x = av.mul_add(bv, *x);
            }
        }
    }
    store::<R, W>(&acc, c, c_rs, accumulate, false);
}

#[inline(always)]
unsafe fn store<const R: usize, const W: usize>(
    acc: &[[f32; W]; R],
    c: *mut f32,
    c_rs: usize,
    accumulate: bool,
    relu: bool,
) {
    for (r, acc) in acc.iter().enumerate() {
        let crow = std::slice::from_raw_parts_mut(c.add(r * c_rs), W);
        match (accumulate, relu) {
            (true, false) => crow.iter_mut().zip(acc).for_each(|(o, &v)| *o += v),
            (false, false) => crow.copy_from_slice(acc),
            (true, true) => crow
                .iter_mut()
                .zip(acc)
                .for_each(|(o, &v)| *o = (*o + v).max(0.0)),
            (false, true) => crow.iter_mut().zip(acc).for_each(|(o, &v)| *o = v.max(0.0)),
        }
    }
}

/// Tiles narrower than 64 columns in steps of 16.
#[inline(always)]
unsafe fn narrow<const R: usize>(w: usize, (k, c, c_rs, a, a_rs, a_cs, b, b_rs, accumulate): Args) {
    let mut j = 0;
    while j < w {
        block::<R, 16>((k, c.add(j), c_rs, a, a_rs, a_cs, b.add(j), b_rs, accumulate));
        j += 16;
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::random::uniform;

    #[test]
    fn matches_a_naive_product_on_every_tile_shape() {
        for &(m, n, k) in &[
            (1, 16, 1),
            (5, 80, 7),
            (7, 128, 32),
            (37, 512, 128),
            (3, 48, 5),
            (4, 96, 3),
            // 32-column panels in tiles of eight rows, then four and fewer.
            (13, 32, 9),
            (37, 96, 5),
        ] {
            let (a_rs, a_cs) = (1, m + 3); // a transposed view with padding, as the kernel gradient uses
            let a: Vec<f32> = (0..(m + 3) * k)
                .map(|i| uniform(1, i as u64) - 0.5)
                .collect();
            let b_rs = n + 16;
            let b: Vec<f32> = (0..k * b_rs).map(|i| uniform(2, i as u64) - 0.5).collect();
            let c_rs = n + 5;
            let init: Vec<f32> = (0..m * c_rs).map(|i| uniform(3, i as u64)).collect();
            for accumulate in [false, true] {
                let mut c = init.clone();
                // SAFETY: every index stays inside the vectors built above.
                let done = unsafe {
                    super::gemm_rows(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        c_rs,
                        a.as_ptr(),
                        a_rs,
                        a_cs,
                        b.as_ptr(),
                        b_rs,
                        accumulate,
                    )
                };
                if !done {
                    return; // no AVX-512 here: the general kernel is used instead
                }
                for i in 0..m {
                    for j in 0..c_rs {
                        let want: f64 = if j < n {
                            (0..k)
                                .map(|p| a[i * a_rs + p * a_cs] as f64 * b[p * b_rs + j] as f64)
                                .sum::<f64>()
                                + if accumulate {
                                    init[i * c_rs + j] as f64
                                } else {
                                    0.0
                                }
                        } else {
                            init[i * c_rs + j] as f64
                        };
                        assert!(
                            (c[i * c_rs + j] as f64 - want).abs() < 1e-4,
                            "{m}x{n}x{k} ({i}, {j})"
                        );
                    }
                }
            }
        }
    }
}

/// `c[i * c_rs + j] (+)= Σ_p a[ro[i] + co[p]] · b[p * b_rs + j]` for `i < ro.len()`,
/// `p < co.len()`, `j < n`: a product whose left operand is gathered through row and column
/// offsets. With `ro` the windows' origins and `co` the taps' offsets it is a convolution
/// over a channels_last input without building its columns (im2col); swapped, the kernel's
/// gradient. Blocked over `p` like [`gemm_rows_blocked`]; with `relu` each result is
/// clamped at zero as it is stored after the last block (a convolution's fused ReLU).
/// `false` (nothing done) where the CPU lacks AVX-512 or `n` is not a multiple of 16.
///
/// # Safety
/// Every `a[ro[i] + co[p]]`, `b[p * b_rs + j]` and `c[i * c_rs + j]` must be in bounds of live
/// allocations, and `c` must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_gather(
    n: usize,
    a: *const f32,
    ro: &[u32],
    co: &[u32],
    b: *const f32,
    b_rs: usize,
    c: *mut f32,
    c_rs: usize,
    accumulate: bool,
    relu: bool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if n.is_multiple_of(16) && n > 0 && crate::simd::wide() {
        let mut p0 = 0;
        while p0 < co.len() {
            let kc = (co.len() - p0).min(KC);
            let (co_p, b_p) = (&co[p0..p0 + kc], b.add(p0 * b_rs));
            let last = p0 + kc == co.len();
            let (acc, clamp) = (accumulate || p0 > 0, relu && last);
            gather_avx512(n, a, ro, co_p, b_p, b_rs, c, c_rs, acc, clamp);
            p0 += kc;
        }
        return true;
    }
    let _ = (n, a, ro, co, b, b_rs, c, c_rs, accumulate, relu);
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn gather_avx512(
    n: usize,
    a: *const f32,
    ro: &[u32],
    co: &[u32],
    b: *const f32,
    b_rs: usize,
    c: *mut f32,
    c_rs: usize,
    accumulate: bool,
    relu: bool,
) {
    let m = ro.len();
    let mut j0 = 0;
    while j0 < n {
        let w = (n - j0).min(64);
        let mut i0 = 0;
        while i0 < m {
            let r = (m - i0).min(4);
            let mut rows = [0usize; 4];
            for (q, o) in rows.iter_mut().zip(&ro[i0..i0 + r]) {
                *q = *o as usize;
            }
            let g = Gather {
                a,
                rows,
                co,
                b: b.add(j0),
                b_rs,
                c: c.add(i0 * c_rs + j0),
                c_rs,
                accumulate,
                relu,
            };
            if w <= 32 && m - i0 >= 8 {
                // Panels of 16 or 32 columns take eight rows a tile: as many accumulators
                // as a 4 x 64 tile, so each gathered value feeds as many multiply-adds.
                let g8 = Gather8 {
                    rows: std::array::from_fn(|q| ro[i0 + q] as usize),
                    g,
                };
                if w == 32 {
                    g8.block::<32>();
                } else {
                    g8.block::<16>();
                }
                i0 += 8;
                continue;
            }
            match (r, w) {
                (4, 64) => g.block::<4, 64>(),
                (4, 48) => g.block::<4, 48>(),
                (4, 32) => g.block::<4, 32>(),
                (4, 16) => g.block::<4, 16>(),
                (3, _) => g.narrow::<3>(w),
                (2, _) => g.narrow::<2>(w),
                (1, _) => g.narrow::<1>(w),
                _ => g.narrow::<4>(w),
            }
            i0 += r;
        }
        j0 += w;
    }
}

/// One tile's operands for [`gemm_gather`]: up to four rows' offsets into `a`.
#[derive(Clone, Copy)]
struct Gather<'a> {
    a: *const f32,
    rows: [usize; 4],
    co: &'a [u32],
    b: *const f32,
    b_rs: usize,
    c: *mut f32,
    c_rs: usize,
    accumulate: bool,
    relu: bool,
}

/// An eight-row tile of [`gemm_gather`] (`rows` replaces the inner tile's).
#[derive(Clone, Copy)]
struct Gather8<'a> {
    rows: [usize; 8],
    g: Gather<'a>,
}

impl Gather8<'_> {
    #[inline(always)]
    unsafe fn block<const W: usize>(&self) {
        let g = &self.g;
        let mut acc = [[0.0f32; W]; 8];
        let rows: [*const f32; 8] = std::array::from_fn(|r| g.a.add(self.rows[r]));
        for (p, &o) in g.co.iter().enumerate() {
            let brow = std::slice::from_raw_parts(g.b.add(p * g.b_rs), W);
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = *rows[r].add(o as usize);
                for (x, &bv) in acc.iter_mut().zip(brow) {
                    *x = av.mul_add(bv, *x);
                }
            }
        }
        store::<8, W>(&acc, g.c, g.c_rs, g.accumulate, g.relu);
    }
}

impl Gather<'_> {
    /// An `R x W` tile of `c`, accumulated over all of `co` in registers.
    #[inline(always)]
    unsafe fn block<const R: usize, const W: usize>(&self) {
        let mut acc = [[0.0f32; W]; R];
        let rows: [*const f32; R] = std::array::from_fn(|r| self.a.add(self.rows[r]));
        for (p, &o) in self.co.iter().enumerate() {
            let brow = std::slice::from_raw_parts(self.b.add(p * self.b_rs), W);
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = *rows[r].add(o as usize);
                for (x, &bv) in acc.iter_mut().zip(brow) {
                    *x = av.mul_add(bv, *x);
                }
            }
        }
        store::<R, W>(&acc, self.c, self.c_rs, self.accumulate, self.relu);
    }

    #[inline(always)]
    unsafe fn narrow<const R: usize>(&self, w: usize) {
        let mut j = 0;
        while j < w {
            let g = Gather {
                b: self.b.add(j),
                c: self.c.add(j),
                co: self.co,
                ..*self
            };
            g.block::<R, 16>();
            j += 16;
        }
    }
}
