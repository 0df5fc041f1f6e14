//! numpy's `matmul` for operands of rank >= 2 (ranks counted with the batch axis):
//! `(..., m, k) @ (..., k, n) -> (..., m, n)`, the leading axes broadcast numpy-style.
//! `ta` and `tb` transpose the last two axes of an operand. Keras' `batch_dot` of two batched
//! `(B, m, k)` and `(B, k, n)` tensors is one case; a batched `(B, m, k)` times a 2-D weight
//! `(k, n)` is another, and so is a batched `(B, k)` times a `(k, n)` weight, whose rows are
//! the batch.
//!
//! The batch axis must stay first in the result and is never contracted: `(B, k)ᵀ` and
//! operands whose broadcast would move it are refused. [`super::Op::MatMul`], the dense
//! layer's product, stays the fast path for a weight on the right; this op's VJP uses it where
//! it applies, and [`super::Op::SumTo`] where an operand was broadcast.
//!
//! ```
//! use rustkeras::graph::{Graph, Shape};
//! use rustkeras::ops::Op;
//!
//! let mut g = Graph::new();
//! let a = g.input(Shape::batched(&[4, 3]));
//! let b = g.input(Shape::batched(&[3, 5]));
//! let y = g.push(Op::BatchMatMul { ta: false, tb: false }, &[a, b]).unwrap();
//! assert_eq!(g.shape(y), &Shape::batched(&[4, 5]));
//! ```

use rayon::prelude::*;
use smallvec::{smallvec, SmallVec};

use super::elementwise::{broadcast_shape, broadcast_strides, unbroadcast};
use super::matmul::{gemm_strided, gemm_strided_serial};
use super::{In, Op};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

/// An operand's leading axes as a shape, and its two matrix axes (`None` for the batch axis),
/// transposed when `t`.
fn split(s: &Shape, t: bool) -> (Shape, [Option<usize>; 2]) {
    let d = &s.dims;
    let (lead, mat) = if s.batched && d.len() == 1 {
        (Shape::scalar(), [None, Some(d[0])])
    } else {
        let r = d.len();
        (
            Shape {
                batched: s.batched,
                dims: d[..r - 2].to_vec(),
            },
            [Some(d[r - 2]), Some(d[r - 1])],
        )
    };
    (lead, if t { [mat[1], mat[0]] } else { mat })
}

pub fn infer(ta: bool, tb: bool, a: &Shape, b: &Shape) -> Result<Shape> {
    let what = || format!("batch_matmul of {} and {}", a.display(), b.display());
    if a.rank() < 2 || b.rank() < 2 {
        return crate::value_error!(
            "{}: both operands need rank >= 2 (counting the batch axis)",
            what()
        );
    }
    let (la, [m, ka]) = split(a, ta);
    let (lb, [kb, n]) = split(b, tb);
    let (Some(ka), Some(kb)) = (ka, kb) else {
        return crate::value_error!(
            "{}: contracting over the batch axis is not supported",
            what()
        );
    };
    if ka != kb {
        return crate::value_error!("{}: the contracted axes differ ({ka} vs {kb})", what());
    }
    let Some(n) = n else {
        return crate::value_error!("{}: the batch axis would not lead the result", what());
    };
    let lead = broadcast_shape(&la, &lb)?;
    match m {
        Some(m) => {
            let mut dims = lead.dims;
            dims.extend([m, n]);
            Ok(Shape {
                batched: lead.batched,
                dims,
            })
        }
        // The rows are the batch: only a plain matrix may stand on the right.
        None if lead.rank() == 0 => Ok(Shape::batched(&[n])),
        None => crate::value_error!("{}: the batch axis would not lead the result", what()),
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
    let (sa, sb) = (g.shape(a).clone(), g.shape(b).clone());
    if !ta && !sb.batched && sb.dims.len() == 2 {
        // A weight on the right: the dense layer's products, leading axes folded into rows.
        let (da, db) = if tb {
            (
                g.matmul(dy, b, false, false)?,
                g.matmul(dy, a, true, false)?,
            )
        } else {
            (g.matmul(dy, b, false, true)?, g.matmul(a, dy, true, false)?)
        };
        return Ok(smallvec![Some(da), Some(db)]);
    }
    let bmm = |g: &mut Graph, x: NodeId, y: NodeId, ta: bool, tb: bool| {
        g.push(Op::BatchMatMul { ta, tb }, &[x, y])
    };
    let (da, db) = match (ta, tb) {
        (false, false) => (bmm(g, dy, b, false, true)?, bmm(g, a, dy, true, false)?),
        (false, true) => (bmm(g, dy, b, false, false)?, bmm(g, dy, a, true, false)?),
        (true, false) => (bmm(g, b, dy, false, true)?, bmm(g, a, dy, false, false)?),
        (true, true) => (bmm(g, b, dy, true, true)?, bmm(g, dy, a, true, true)?),
    };
    Ok(smallvec![
        Some(unbroadcast(g, da, &sa)?),
        Some(unbroadcast(g, db, &sb)?)
    ])
}

/// One matrix operand as the GEMM reads it: the column count of the product's view, its row
/// and column strides, and its size in floats.
struct Mat {
    cols: usize,
    rs: usize,
    cs: usize,
    size: usize,
}

fn mat(dims: &[usize], t: bool) -> Mat {
    let r = dims.len();
    let (h, w) = (dims[r - 2], dims[r - 1]);
    if t {
        Mat {
            cols: h,
            rs: 1,
            cs: w,
            size: h * w,
        }
    } else {
        Mat {
            cols: w,
            rs: w,
            cs: 1,
            size: h * w,
        }
    }
}

/// The GEMM view of both operands and each one's float offsets per output product: the
/// strides over the output's leading axes (`out_dims` without its last two), scaled to
/// floats. Shared by the CPU kernel and the GPU recording.
pub(crate) struct Plan {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// `[sam, sak, sbk, sbn]`.
    pub strides: [usize; 4],
    pub lead: Vec<usize>,
    pub a_lead: SmallVec<[usize; 6]>,
    pub b_lead: SmallVec<[usize; 6]>,
}

pub(crate) fn plan(ta: bool, tb: bool, a: &[usize], b: &[usize], out: &[usize]) -> Plan {
    let (ma, mb) = (mat(a, ta), mat(b, tb));
    let lead = out[..out.len() - 2].to_vec();
    let scaled = |dims: &[usize], size: usize| -> SmallVec<[usize; 6]> {
        broadcast_strides(&dims[..dims.len() - 2], &lead)
            .iter()
            .map(|s| s * size)
            .collect()
    };
    Plan {
        m: out[out.len() - 2],
        n: out[out.len() - 1],
        k: ma.cols,
        strides: [ma.rs, ma.cs, mb.rs, mb.cs],
        a_lead: scaled(a, ma.size),
        b_lead: scaled(b, mb.size),
        lead,
    }
}

impl Plan {
    /// The float offsets of product `z`'s operands.
    fn offsets(&self, z: usize) -> (usize, usize) {
        let (mut rest, mut ia, mut ib) = (z, 0, 0);
        for ax in (0..self.lead.len()).rev() {
            let c = rest % self.lead[ax];
            rest /= self.lead[ax];
            ia += c * self.a_lead[ax];
            ib += c * self.b_lead[ax];
        }
        (ia, ib)
    }
}

/// Products at least this large (multiply-adds, over the batch) split the batch over
/// threads, one serial GEMM per product.
const PAR_MADDS: usize = 1 << 18;

pub fn forward(ta: bool, tb: bool, a: &In<'_>, b: &In<'_>, out: &mut [f32], out_dims: &[usize]) {
    let p = plan(ta, tb, a.dims, b.dims, out_dims);
    let [sam, sak, sbk, sbn] = p.strides;
    let (m, n, k) = (p.m, p.n, p.k);
    if b.dims.len() == 2 && !ta {
        // One product: the leading axes of `a` fold into its rows.
        let rows = out.len() / n;
        return gemm_strided(rows, n, k, a.data, sam, sak, b.data, sbk, sbn, out, false);
    }
    let count = out.len() / (m * n);
    let one = |z: usize, c: &mut [f32], serial: bool| {
        let (ia, ib) = p.offsets(z);
        let (a, b) = (&a.data[ia..], &b.data[ib..]);
        if serial {
            gemm_strided_serial(m, n, k, a, sam, sak, b, sbk, sbn, c, false)
        } else {
            gemm_strided(m, n, k, a, sam, sak, b, sbk, sbn, c, false)
        }
    };
    if count > 1 && count * m * n * k >= PAR_MADDS {
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(z, c)| one(z, c, true));
    } else {
        for (z, c) in out.chunks_mut(m * n).enumerate() {
            one(z, c, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::tests::{b, case, check, f};

    /// numpy's matmul by brute force on concrete dims (no transposes: the caller passes
    /// transposed copies).
    fn naive(a: &[f32], ad: &[usize], b: &[f32], bd: &[usize], od: &[usize]) -> Vec<f32> {
        let (ra, rb, ro) = (ad.len(), bd.len(), od.len());
        let (m, k, n) = (ad[ra - 2], ad[ra - 1], bd[rb - 1]);
        let count: usize = od[..ro - 2].iter().product();
        let mut out = vec![0.0; count * m * n];
        for z in 0..count {
            // Coordinates of z over the output's leading axes, mapped into each operand.
            let mut coords = vec![0; ro - 2];
            let mut rest = z;
            for ax in (0..ro - 2).rev() {
                coords[ax] = rest % od[ax];
                rest /= od[ax];
            }
            let offset = |dims: &[usize]| -> usize {
                let lead = &dims[..dims.len() - 2];
                let mut off = 0;
                for (i, &d) in lead.iter().enumerate() {
                    let c = coords[coords.len() - lead.len() + i];
                    off = off * d + if d == 1 { 0 } else { c };
                }
                off * dims[dims.len() - 2] * dims[dims.len() - 1]
            };
            let (oa, ob) = (offset(ad), offset(bd));
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0.0;
                    for p in 0..k {
                        s += a[oa + i * k + p] * b[ob + p * n + j];
                    }
                    out[(z * m + i) * n + j] = s;
                }
            }
        }
        out
    }

    /// The last two axes of `x` swapped.
    fn swapped(x: &[f32], dims: &[usize]) -> (Vec<f32>, Vec<usize>) {
        let r = dims.len();
        let (h, w) = (dims[r - 2], dims[r - 1]);
        let mut out = vec![0.0; x.len()];
        for (blk, o) in x.chunks(h * w).zip(out.chunks_mut(h * w)) {
            for i in 0..h {
                for j in 0..w {
                    o[j * h + i] = blk[i * w + j];
                }
            }
        }
        let mut d = dims.to_vec();
        d.swap(r - 2, r - 1);
        (out, d)
    }

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7 + seed) % 13) as f32 * 0.25 - 1.5)
            .collect()
    }

    #[test]
    fn products_match_numpy_matmul_with_broadcasting_and_transposes() {
        // (a dims, b dims, out dims), untransposed.
        let cases: [(&[usize], &[usize], &[usize]); 5] = [
            (&[3, 4], &[4, 5], &[3, 5]),
            (&[2, 3, 4], &[4, 5], &[2, 3, 5]),
            (&[2, 3, 4], &[2, 4, 5], &[2, 3, 5]),
            (&[2, 1, 3, 4], &[3, 4, 2], &[2, 3, 3, 2]),
            (&[1, 3, 4], &[2, 4, 1], &[2, 3, 1]),
        ];
        for (ad, bd, od) in cases {
            let (a, b) = (
                values(ad.iter().product(), 1),
                values(bd.iter().product(), 5),
            );
            let want = naive(&a, ad, &b, bd, od);
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (a2, ad2) = if ta {
                    swapped(&a, ad)
                } else {
                    (a.clone(), ad.to_vec())
                };
                let (b2, bd2) = if tb {
                    swapped(&b, bd)
                } else {
                    (b.clone(), bd.to_vec())
                };
                let mut out = vec![0.0; want.len()];
                let (ia, ib) = (
                    In {
                        data: &a2,
                        dims: &ad2,
                    },
                    In {
                        data: &b2,
                        dims: &bd2,
                    },
                );
                forward(ta, tb, &ia, &ib, &mut out, od);
                assert_eq!(out, want, "{ad:?} @ {bd:?}, ta={ta}, tb={tb}");
            }
        }
    }

    #[test]
    fn shapes_follow_numpy_and_keep_the_batch_axis_first() {
        let ok = |ta, tb, a: Shape, b: Shape| infer(ta, tb, &a, &b);
        assert_eq!(
            ok(false, false, b(&[3, 4]), f(&[4, 5])).unwrap(),
            Shape::batched(&[3, 5])
        );
        assert_eq!(
            ok(false, false, b(&[4]), f(&[4, 5])).unwrap(),
            Shape::batched(&[5])
        );
        assert_eq!(
            ok(true, false, b(&[4, 3]), b(&[4, 5])).unwrap(),
            Shape::batched(&[3, 5])
        );
        assert_eq!(
            ok(false, false, f(&[1, 3, 4]), b(&[4, 2])).unwrap(),
            Shape::batched(&[3, 2])
        );
        assert_eq!(
            ok(false, true, f(&[3, 4]), f(&[5, 4])).unwrap(),
            Shape::fixed(&[3, 5])
        );
        // Refused: contracting the batch axis, the batch axis not first, mismatches.
        assert!(ok(true, false, b(&[4]), b(&[5])).is_err());
        assert!(ok(false, false, f(&[3, 4]), b(&[5])).is_err());
        assert!(ok(false, false, b(&[4]), f(&[2, 4, 5])).is_err());
        assert!(ok(false, false, f(&[2, 1, 3, 4]), b(&[4, 2])).is_err());
        assert!(ok(false, false, b(&[3, 4]), f(&[5, 4, 5])).is_err());
        assert!(ok(false, false, b(&[3, 4]), f(&[3, 5])).is_err());
        assert!(ok(false, false, f(&[4]), f(&[4, 5])).is_err());
    }

    #[test]
    fn products_match_finite_differences() {
        let cases: Vec<(Shape, Shape)> = vec![
            (b(&[2, 3]), f(&[3, 2])),
            (b(&[3]), f(&[3, 2])),
            (b(&[2, 3]), b(&[3, 2])),
            (b(&[2, 3]), f(&[1, 3, 2])),
            (f(&[2, 1, 2, 3]), f(&[3, 3, 2])),
            (f(&[2, 3]), b(&[3, 2])),
        ];
        for (sa, sb) in cases {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let t = |s: &Shape, t: bool| {
                    let mut s = s.clone();
                    let r = s.dims.len();
                    if t && r >= 2 {
                        s.dims.swap(r - 2, r - 1);
                    }
                    s
                };
                let (ta_shape, tb_shape) = (t(&sa, ta), t(&sb, tb));
                if infer(ta, tb, &ta_shape, &tb_shape).is_err() {
                    // (B, k) cannot be transposed.
                    assert!(ta && sa.batched && sa.dims.len() == 1);
                    continue;
                }
                check(case(&[ta_shape, tb_shape], move |g, x| {
                    g.push(Op::BatchMatMul { ta, tb }, &[x[0], x[1]]).unwrap()
                }));
            }
        }
    }
}
