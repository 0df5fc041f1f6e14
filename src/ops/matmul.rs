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
/// dimension under 32, or a small product, the second thread costs more than it gives).
const PAR_MADDS: usize = 4_000_000;
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
    let par = if threads {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every index the kernel touches inside the slices;
    // `c` is exclusively borrowed and cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

pub fn forward(ta: bool, tb: bool, a: &In<'_>, b: &In<'_>, out: &mut [f32]) {
    let ka = *a.dims.last().expect("rank checked at build");
    let rows = a.data.len() / ka.max(1);
    match (ta, tb) {
        (false, false) => {
            let n = b.dims[1];
            gemm_strided(rows, n, ka, a.data, ka, 1, b.data, n, 1, out, false)
        }
        (false, true) => {
            let n = b.dims[0];
            gemm_strided(rows, n, ka, a.data, ka, 1, b.data, 1, ka, out, false)
        }
        (true, false) => {
            let n = *b.dims.last().expect("rank checked at build");
            gemm_strided(ka, n, rows, a.data, 1, ka, b.data, n, 1, out, false)
        }
        (true, true) => unreachable!("rejected by shape inference"),
    }
}
