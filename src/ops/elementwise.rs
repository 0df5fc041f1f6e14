//! Binary elementwise ops with numpy broadcasting, and the broadcasting helpers other
//! families share (shape rule, strides, the strided walk).

use rayon::prelude::*;
use smallvec::{smallvec, SmallVec};

use super::{In, Op, UnaryOp, PAR_THRESHOLD};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    /// 1.0 where equal, else 0.0 (no gradient).
    Equal,
    /// 1.0 where `a > b`, else 0.0 (no gradient).
    Greater,
    /// 1.0 where `a >= b`, else 0.0 (no gradient).
    GreaterEqual,
}

impl BinaryOp {
    #[inline]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Maximum => a.max(b),
            BinaryOp::Minimum => a.min(b),
            BinaryOp::Equal => f32::from(a == b),
            BinaryOp::Greater => f32::from(a > b),
            BinaryOp::GreaterEqual => f32::from(a >= b),
        }
    }
}

pub fn same_shape(what: &str, a: &Shape, b: &Shape) -> Result<Shape> {
    if a != b {
        return crate::value_error!("{what}: shapes differ, {} vs {}", a.display(), b.display());
    }
    Ok(a.clone())
}

/// numpy broadcasting on symbolic shapes; the batch axis only meets itself or 1.
pub fn broadcast_shape(a: &Shape, b: &Shape) -> Result<Shape> {
    let full = |s: &Shape| -> Vec<Option<usize>> {
        let mut v = Vec::with_capacity(s.rank());
        if s.batched {
            v.push(None);
        }
        v.extend(s.dims.iter().map(|&d| Some(d)));
        v
    };
    let (fa, fb) = (full(a), full(b));
    let r = fa.len().max(fb.len());
    let mut out: Vec<Option<usize>> = Vec::with_capacity(r);
    for i in 0..r {
        let da = if i + fa.len() >= r {
            fa[i + fa.len() - r]
        } else {
            Some(1)
        };
        let db = if i + fb.len() >= r {
            fb[i + fb.len() - r]
        } else {
            Some(1)
        };
        out.push(match (da, db) {
            (Some(1), d) | (d, Some(1)) => d,
            (None, None) => None,
            (Some(x), Some(y)) if x == y => Some(x),
            _ => {
                return crate::value_error!(
                    "Cannot broadcast shapes {} and {}",
                    a.display(),
                    b.display()
                )
            }
        });
    }
    let batched = out.first() == Some(&None);
    if out.iter().skip(1).any(|d| d.is_none()) {
        return crate::value_error!(
            "Cannot broadcast shapes {} and {}: the batch axis must lead",
            a.display(),
            b.display()
        );
    }
    let dims = out
        .into_iter()
        .skip(usize::from(batched))
        .map(|d| d.unwrap_or(1))
        .collect::<Vec<_>>();
    Ok(Shape { batched, dims })
}

/// Strides of `dims` inside a broadcast output of rank `rank` (0 on broadcast axes).
pub(crate) fn broadcast_strides(dims: &[usize], out_dims: &[usize]) -> SmallVec<[usize; 6]> {
    let r = out_dims.len();
    let mut strides: SmallVec<[usize; 6]> = smallvec![0; r];
    let mut s = 1;
    for i in (0..dims.len()).rev() {
        let oi = i + r - dims.len();
        strides[oi] = if dims[i] == 1 && out_dims[oi] != 1 {
            0
        } else {
            s
        };
        s *= dims[i];
    }
    strides
}

/// Calls `f(out_index, offsets)` for every output element in order, with the offsets of each
/// operand under broadcasting. Used by the general (non fast-path) kernels.
pub(crate) fn for_each_broadcast<const N: usize>(
    out_dims: &[usize],
    strides: [&[usize]; N],
    mut f: impl FnMut(usize, [usize; N]),
) {
    let r = out_dims.len();
    let total: usize = out_dims.iter().product();
    let mut idx: SmallVec<[usize; 6]> = smallvec![0; r];
    let mut off = [0usize; N];
    for o in 0..total {
        f(o, off);
        for ax in (0..r).rev() {
            idx[ax] += 1;
            for k in 0..N {
                off[k] += strides[k][ax];
            }
            if idx[ax] < out_dims[ax] {
                break;
            }
            for k in 0..N {
                off[k] -= strides[k][ax] * out_dims[ax];
            }
            idx[ax] = 0;
        }
    }
}

/// Whether `small` (leading 1s ignored) equals the trailing dims of `out`.
fn is_suffix(small: &[usize], out: &[usize]) -> bool {
    let s: &[usize] = {
        let lead = small.iter().take_while(|&&d| d == 1).count();
        &small[lead..]
    };
    s.len() <= out.len() && out[out.len() - s.len()..] == *s
}

pub fn binary_forward(op: BinaryOp, a: &In<'_>, b: &In<'_>, out: &mut [f32], out_dims: &[usize]) {
    let n = out.len();
    let (ad, bd) = (a.data, b.data);
    if ad.len() == n && bd.len() == n {
        let body = |o: &mut [f32], a: &[f32], b: &[f32]| {
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = op.apply(a, b);
            }
        };
        if n >= PAR_THRESHOLD {
            let c = PAR_THRESHOLD / 4;
            out.par_chunks_mut(c)
                .zip(ad.par_chunks(c))
                .zip(bd.par_chunks(c))
                .for_each(|((o, a), b)| body(o, a, b));
        } else {
            body(out, ad, bd);
        }
    } else if bd.len() == 1 {
        let b = bd[0];
        out.iter_mut()
            .zip(ad)
            .for_each(|(o, &a)| *o = op.apply(a, b));
    } else if ad.len() == 1 {
        let a = ad[0];
        out.iter_mut()
            .zip(bd)
            .for_each(|(o, &b)| *o = op.apply(a, b));
    } else if ad.len() == n && is_suffix(b.dims, out_dims) {
        for (o, a) in out.chunks_mut(bd.len()).zip(ad.chunks(bd.len())) {
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(bd) {
                *o = op.apply(a, b);
            }
        }
    } else if bd.len() == n && is_suffix(a.dims, out_dims) {
        for (o, b) in out.chunks_mut(ad.len()).zip(bd.chunks(ad.len())) {
            for ((o, &a), &b) in o.iter_mut().zip(ad).zip(b) {
                *o = op.apply(a, b);
            }
        }
    } else {
        let sa = broadcast_strides(a.dims, out_dims);
        let sb = broadcast_strides(b.dims, out_dims);
        for_each_broadcast(out_dims, [&sa, &sb], |o, [ia, ib]| {
            out[o] = op.apply(ad[ia], bd[ib])
        });
    }
}

/// Sums `grad` down to `target`'s shape when broadcasting widened it.
pub(crate) fn unbroadcast(g: &mut Graph, grad: NodeId, target: &Shape) -> Result<NodeId> {
    if g.shape(grad) == target {
        Ok(grad)
    } else {
        g.push(Op::SumTo(target.clone()), &[grad])
    }
}

pub fn binary_vjp(
    g: &mut Graph,
    op: BinaryOp,
    a: NodeId,
    b: NodeId,
    y: NodeId,
    dy: NodeId,
) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let (sa, sb) = (g.shape(a).clone(), g.shape(b).clone());
    let (da, db) = match op {
        BinaryOp::Add => (dy, dy),
        BinaryOp::Sub => (dy, g.unary(UnaryOp::Neg, dy)?),
        BinaryOp::Mul => (g.mul(dy, b)?, g.mul(dy, a)?),
        BinaryOp::Div => {
            let da = g.div(dy, b)?;
            let t = g.mul(da, y)?;
            (da, g.unary(UnaryOp::Neg, t)?)
        }
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let mask = if op == BinaryOp::Maximum {
                g.binary(BinaryOp::GreaterEqual, a, b)?
            } else {
                g.binary(BinaryOp::GreaterEqual, b, a)?
            };
            let da = g.mul(dy, mask)?;
            (da, g.sub(dy, da)?)
        }
        BinaryOp::Equal | BinaryOp::Greater | BinaryOp::GreaterEqual => {
            return Ok(smallvec![None, None])
        }
    };
    Ok(smallvec![
        Some(unbroadcast(g, da, &sa)?),
        Some(unbroadcast(g, db, &sb)?)
    ])
}
