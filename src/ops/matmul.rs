//! Matrix product over the last axis, in the three forms a dense layer and its gradients need
//! (leading axes, the batch among them, are folded into rows):
//!
//! - `a·b`   with `a (.., k)`, `b (k, n)`  -> `(.., n)`
//! - `a·bᵀ`  with `a (.., k)`, `b (n, k)`  -> `(.., n)`
//! - `aᵀ·b`  with `a (.., k)`, `b (.., n)` sharing leading axes -> `(k, n)` (a weight gradient)
//!
//! Transposes are strides handed to the GEMM kernel, never copies.

use smallvec::{smallvec, SmallVec};

use super::In;
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

pub fn infer(ta: bool, tb: bool, a: &Shape, b: &Shape) -> Result<Shape> {
    let (Some(ka), Some(lb)) = (a.last(), b.last()) else {
        return crate::value_error!(
            "matmul needs operands of rank >= 1, got {} and {}",
            a.display(),
            b.display()
        );
    };
    match (ta, tb) {
        (false, _) => {
            if b.batched || b.dims.len() != 2 {
                return crate::value_error!(
                    "matmul: the right operand must be a 2-D weight, got {}",
                    b.display()
                );
            }
            let (k, n) = if tb {
                (b.dims[1], b.dims[0])
            } else {
                (b.dims[0], b.dims[1])
            };
            if ka != k {
                return crate::value_error!(
                    "matmul: incompatible shapes {} and {}: last axis {} does not match {}",
                    a.display(),
                    b.display(),
                    ka,
                    k
                );
            }
            let mut out = a.clone();
            *out.dims.last_mut().expect("rank >= 1") = n;
            Ok(out)
        }
        (true, false) => {
            if a.batched != b.batched || a.dims[..a.dims.len() - 1] != b.dims[..b.dims.len() - 1] {
                return crate::value_error!(
                    "matmul: aᵀ·b needs equal leading axes, got {} and {}",
                    a.display(),
                    b.display()
                );
            }
            Ok(Shape::fixed(&[ka, lb]))
        }
        (true, true) => crate::value_error!("matmul: aᵀ·bᵀ is not a supported form"),
    }
}

pub fn vjp(
    g: &mut Graph,
    ta: bool,
    tb: bool,
    a: NodeId,
    b: NodeId,
    dy: NodeId,
) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let (da, db) = match (ta, tb) {
        (false, false) => (g.matmul(dy, b, false, true)?, g.matmul(a, dy, true, false)?),
        (false, true) => (
            g.matmul(dy, b, false, false)?,
            g.matmul(dy, a, true, false)?,
        ),
        (true, false) => (
            g.matmul(b, dy, false, true)?,
            g.matmul(a, dy, false, false)?,
        ),
        (true, true) => return crate::value_error!("matmul: aᵀ·bᵀ is not a supported form"),
    };
    Ok(smallvec![Some(da), Some(db)])
}

/// A second thread pays off only for products this large (measured on a 2-core Zen 4: at a
/// 32-row batch, 8M multiply-adds with k >= 512 ran 1.4-1.8x faster on two threads; with a
/// dimension under 32, or a small product, the second thread costs more than it gives). With
/// the fit loops' polling workers (`pool::busy`) the second thread starts at once: the stacked
/// LSTM's 1-2M projections split in two made its step 12% faster (0.82 against 0.93 ms).
pub(crate) const PAR_MADDS: usize = 1_000_000;
const PAR_MIN_DIM: usize = 32;

/// `c[m, n] = a·b` (or `+=` when `accumulate`) on raw strided views.
///
/// `a` is `m x k` with element `(i, p)` at `a[i * a_rs + p * a_cs]`, `b` likewise `k x n`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    let threads = m * n * k >= PAR_MADDS && m.min(n).min(k) >= PAR_MIN_DIM;
    gemm_with(
        m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, accumulate, threads,
    )
}

/// [`gemm_strided`] on the calling thread only (for callers that split the work themselves).
#[allow(clippy::too_many_arguments)]
pub fn gemm_strided_serial(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    gemm_with(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, accumulate, false)
}

#[allow(clippy::too_many_arguments)]
fn gemm_with(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    c: &mut [f32],
    accumulate: bool,
    threads: bool,
) {
    assert!(c.len() >= m * n, "gemm: output too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    assert!(
        a.len() > (m - 1) * a_rs + (k - 1) * a_cs,
        "gemm: lhs too small"
    );
    assert!(
        b.len() > (k - 1) * b_rs + (n - 1) * b_cs,
        "gemm: rhs too small"
    );
    // SAFETY: the asserts above keep every index the kernel touches inside the slices;
    // `c` is exclusively borrowed and cannot alias `a` or `b`.
    unsafe {
        gemm_raw(
            m,
            n,
            k,
            View {
                a: a.as_ptr(),
                a_rs,
                a_cs,
                b: b.as_ptr(),
                b_rs,
                c: c.as_mut_ptr(),
                c_rs: n,
            },
            b_cs,
            accumulate,
            threads,
        )
    }
}

/// Raw strided views of a product's operands: element `(i, p)` of `a` at
/// `a[i * a_rs + p * a_cs]`, `(p, j)` of `b` at `b[p * b_rs + j * b_cs]` (`b_cs` passed
/// beside), `(i, j)` of `c` at `c[i * c_rs + j]`.
#[derive(Clone, Copy)]
pub(crate) struct View {
    pub a: *const f32,
    pub a_rs: usize,
    pub a_cs: usize,
    pub b: *const f32,
    pub b_rs: usize,
    pub c: *mut f32,
    pub c_rs: usize,
}

// SAFETY: a split reads `a` and `b` only, and writes disjoint blocks of `c`, which its caller
// holds exclusively.
unsafe impl Send for View {}
unsafe impl Sync for View {}

/// `c (+)= a·b` on raw strided views: the AVX-512 row kernel (`smallgemm`) where `b`'s rows
/// are contiguous and the CPU has it, else the `gemm` crate; split over the pool when
/// `threads`. The one product behind [`gemm_strided`] and the recurrent kernels.
///
/// # Safety
/// `v` holds every element the `m x n x k` product touches (`b`'s columns `b_cs` apart), and
/// `c` does not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    v: View,
    b_cs: usize,
    accumulate: bool,
    threads: bool,
) {
    if b_cs == 1 && n >= 16 && crate::simd::wide() {
        let depth = if threads {
            rayon::current_num_threads()
                .next_power_of_two()
                .trailing_zeros()
        } else {
            0
        };
        rows_split(m, n, k, v, accumulate, depth);
    } else {
        let par = if threads {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        crate_gemm(m, n, k, v, b_cs, accumulate, par);
    }
}

/// `c (+)= a·b` by the AVX-512 row kernel (`smallgemm`): the output is halved `depth` times
/// (along its columns, in multiples of 16, while each half keeps at least 64; else along its
/// rows) and the halves run on the pool; the last `n % 16` columns go to the `gemm` crate.
/// On the MLP's shapes (m = 32 or 128 rows, 512 to 784 deep) this runs at 200-225 GFLOP/s on
/// two Zen 4 cores where the `gemm` crate, which packs both operands first, ran at 100-200.
/// No split changes a sum's order: each element is summed over `k` the same way.
///
/// # Safety
/// As for [`gemm_raw`], with `b`'s rows contiguous.
unsafe fn rows_split(m: usize, n: usize, k: usize, v: View, accumulate: bool, depth: u32) {
    if depth > 0 && (n >= 128 || m >= 8) {
        let ((m0, n0), (m1, n1), second) = if n >= 128 {
            let h = (n / 2).div_ceil(16) * 16;
            let second = View {
                b: v.b.add(h),
                c: v.c.add(h),
                ..v
            };
            ((m, h), (m, n - h), second)
        } else {
            let h = (m / 2).div_ceil(4) * 4;
            let second = View {
                a: v.a.add(h * v.a_rs),
                c: v.c.add(h * v.c_rs),
                ..v
            };
            ((h, n), (m - h, n), second)
        };
        rayon::join(
            || rows_split(m0, n0, k, v, accumulate, depth - 1),
            || rows_split(m1, n1, k, second, accumulate, depth - 1),
        );
        return;
    }
    let n16 = n / 16 * 16;
    let done = n16 > 0
        && crate::ops::smallgemm::gemm_rows_blocked(
            m, n16, k, v.c, v.c_rs, v.a, v.a_rs, v.a_cs, v.b, v.b_rs, accumulate,
        );
    let first = if done { n16 } else { 0 };
    if first < n {
        let rest = View {
            b: v.b.add(first),
            c: v.c.add(first),
            ..v
        };
        crate_gemm(
            m,
            n - first,
            k,
            rest,
            1,
            accumulate,
            gemm::Parallelism::None,
        );
    }
}

/// The `gemm` crate's kernel on raw strided views.
///
/// # Safety
/// As for [`gemm_raw`].
unsafe fn crate_gemm(
    m: usize,
    n: usize,
    k: usize,
    v: View,
    b_cs: usize,
    accumulate: bool,
    par: gemm::Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        v.c,
        1,
        v.c_rs as isize,
        accumulate,
        v.a,
        v.a_cs as isize,
        v.a_rs as isize,
        v.b,
        b_cs as isize,
        v.b_rs as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        par,
    );
}

/// Whether `a·bᵀ` (`rows x ka` times `(n x ka)ᵀ`) takes the transposed route through the
/// row kernel (where the CPU has it).
fn transposed_route(rows: usize, n: usize, ka: usize) -> bool {
    // The transposes are serial passes over `rows x (ka + n)`: worth it against the weight's
    // `n x ka` only while the batch of rows is small beside both (the MLP's 32 to 128 rows on
    // 512 x 512; not a 128-row batch on a 9216 x 128 weight, where the gemm crate packs it).
    rows >= 16 && 2 * rows <= n.min(ka) && rows * n * ka >= 1 << 18 && crate::simd::wide()
}

/// Scratch floats of the `a·bᵀ` form's transposed route (`aᵀ` and `cᵀ`); 0 for the others.
pub fn scratch_len(ta: bool, tb: bool, a: &[usize], b: &[usize]) -> usize {
    if ta || !tb || b.len() != 2 {
        return 0;
    }
    let ka = a.last().copied().unwrap_or(1);
    let rows = a.iter().product::<usize>() / ka.max(1);
    rows * (ka + b[0])
}

/// Best GFLOP/s of this op's kernel on one of its forms (`"a·b"`, `"a·bᵀ"` or `"aᵀ·b"`) with
/// `c` of `m x n` summed over `k`, run as in a training step (on a worker of the pool, the
/// other workers kept polling), over repeats totalling at least `min_seconds` after a warm-up.
/// For `bench/bench_gemm.py`.
pub fn gflops(
    form: &str,
    m: usize,
    k: usize,
    n: usize,
    min_seconds: f64,
) -> crate::error::Result<f64> {
    let (ta, tb) = match form {
        "a·b" => (false, false),
        "a·bᵀ" => (false, true),
        "aᵀ·b" => (true, false),
        _ => {
            return crate::value_error!(
                "gflops: form must be 'a·b', 'a·bᵀ' or 'aᵀ·b', received {form:?}"
            )
        }
    };
    let floats = [m * k, k * n, m * n]
        .iter()
        .map(|&v| v as u128)
        .sum::<u128>();
    crate::memory::check(floats, &|| format!("a {m}x{k}x{n} product"))?;
    let fill =
        |len: usize| -> Vec<f32> { (0..len).map(|i| (i % 13) as f32 * 0.01 - 0.06).collect() };
    // Operand dims as the op sees them: aᵀ·b takes a (k, m) and b (k, n).
    let (ad, bd) = match (ta, tb) {
        (false, false) => ([m, k], [k, n]),
        (false, true) => ([m, k], [n, k]),
        _ => ([k, m], [k, n]),
    };
    let (a, b) = (fill(m * k), fill(k * n));
    let mut out = vec![0.0; m * n];
    let mut scratch = vec![0.0; scratch_len(ta, tb, &ad, &bd)];
    let (ia, ib) = (
        In {
            data: &a,
            dims: &ad,
        },
        In {
            data: &b,
            dims: &bd,
        },
    );
    let best = rayon::scope(|_| {
        crate::pool::busy(|| {
            forward(ta, tb, &ia, &ib, &mut out, &mut scratch);
            let (mut best, mut total) = (f64::MAX, 0.0);
            while total < min_seconds || best == f64::MAX {
                let t = std::time::Instant::now();
                forward(ta, tb, &ia, &ib, &mut out, &mut scratch);
                let s = t.elapsed().as_secs_f64();
                best = best.min(s);
                total += s;
            }
            best
        })
    });
    Ok(2.0 * (m * n * k) as f64 / best / 1e9)
}

/// `out[j * rows + i] = x[i * cols + j]` for an `rows x cols` matrix, in 16 x 16 tiles.
pub(crate) fn transpose(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    const T: usize = 16;
    for i0 in (0..rows).step_by(T) {
        for j0 in (0..cols).step_by(T) {
            for i in i0..(i0 + T).min(rows) {
                for j in j0..(j0 + T).min(cols) {
                    out[j * rows + i] = x[i * cols + j];
                }
            }
        }
    }
}

pub fn forward(ta: bool, tb: bool, a: &In<'_>, b: &In<'_>, out: &mut [f32], scratch: &mut [f32]) {
    let ka = *a.dims.last().expect("rank checked at build");
    let rows = a.data.len() / ka.max(1);
    match (ta, tb) {
        (false, false) => {
            let n = b.dims[1];
            gemm_strided(rows, n, ka, a.data, ka, 1, b.data, n, 1, out, false)
        }
        (false, true) => {
            let n = b.dims[0];
            if transposed_route(rows, n, ka) {
                // `b`'s columns are strided here, which the row kernel cannot read; its
                // transpose `cᵀ = b·aᵀ` has a row-contiguous right operand (`aᵀ`, small: a
                // batch of rows), so both small operands are transposed instead of the weight.
                let (at, ct) = scratch.split_at_mut(rows * ka);
                let ct = &mut ct[..n * rows];
                transpose(a.data, rows, ka, at);
                gemm_strided(n, rows, ka, b.data, ka, 1, at, rows, 1, ct, false);
                transpose(ct, n, rows, out);
            } else {
                gemm_strided(rows, n, ka, a.data, ka, 1, b.data, 1, ka, out, false)
            }
        }
        (true, false) => {
            let n = *b.dims.last().expect("rank checked at build");
            gemm_strided(ka, n, rows, a.data, 1, ka, b.data, n, 1, out, false)
        }
        (true, true) => unreachable!("rejected by shape inference"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::random::uniform;

    fn filled(len: usize, seed: u64) -> Vec<f32> {
        (0..len).map(|i| uniform(seed, i as u64) - 0.5).collect()
    }

    /// Every form, on shapes that take the row kernel (split in both directions, with a
    /// column tail for the `gemm` crate), the transposed route and the `gemm` crate alone,
    /// against a float64 product.
    #[test]
    fn every_form_matches_a_float64_product() {
        for &(rows, ka, n) in &[
            (32, 784, 512),
            (40, 160, 48),
            (130, 70, 300),
            (7, 33, 10),
            (256, 300, 21),
        ] {
            let a = filled(rows * ka, 1);
            let w = filled(ka * n, 2);
            let wt: Vec<f32> = (0..n * ka).map(|i| w[(i % ka) * n + i / ka]).collect();
            let want: Vec<f64> = (0..rows * n)
                .map(|o| {
                    let (i, j) = (o / n, o % n);
                    (0..ka)
                        .map(|p| f64::from(a[i * ka + p]) * f64::from(w[p * n + j]))
                        .sum()
                })
                .collect();
            let tol = 1e-5 * (ka as f64).sqrt();
            let close = |got: &[f32], want: &[f64], what: &str| {
                for (g, w) in got.iter().zip(want) {
                    assert!(
                        (f64::from(*g) - w).abs() <= tol,
                        "{what} {rows}x{ka}x{n}: {g} vs {w}"
                    );
                }
            };
            let (ad, wd, wtd) = ([rows, ka], [ka, n], [n, ka]);
            let ia = In {
                data: &a,
                dims: &ad,
            };
            let mut scratch = vec![0.0; scratch_len(false, true, &ad, &wtd)];
            let mut out = vec![0.0; rows * n];
            forward(
                false,
                false,
                &ia,
                &In {
                    data: &w,
                    dims: &wd,
                },
                &mut out,
                &mut scratch,
            );
            close(&out, &want, "a·b");
            out.fill(0.0);
            forward(
                false,
                true,
                &ia,
                &In {
                    data: &wt,
                    dims: &wtd,
                },
                &mut out,
                &mut scratch,
            );
            close(&out, &want, "a·bᵀ");
            // aᵀ·b, the weight gradient's form: x (ka, rows) holds aᵀ, so xᵀ·w = a·w.
            let x: Vec<f32> = (0..ka * rows)
                .map(|i| a[(i % rows) * ka + i / rows])
                .collect();
            let y: Vec<f32> = w.clone();
            let (xd, yd) = ([ka, rows], [ka, n]);
            let mut g = vec![0.0; rows * n];
            forward(
                true,
                false,
                &In {
                    data: &x,
                    dims: &xd,
                },
                &In {
                    data: &y,
                    dims: &yd,
                },
                &mut g,
                &mut [],
            );
            close(&g, &want, "aᵀ·b");
        }
    }
}
