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
    /// 1.0 where `a != b` (NaN is unequal to everything), else 0.0 (no gradient).
    NotEqual,
    /// 1.0 where `a < b`, else 0.0 (no gradient).
    Less,
    /// 1.0 where `a <= b`, else 0.0 (no gradient).
    LessEqual,
    /// `a^b` as numpy's float power computes it (see [`super::UnaryOp::PowScalar`]).
    Pow,
    /// numpy's `a % b` (Python's modulo): the remainder takes the sign of `b`.
    FloorMod,
    /// numpy's `a // b`: `floor(a / b)`, computed with the remainder so that
    /// `a == (a // b) * b + a % b` holds as closely as floats allow (no gradient).
    FloorDiv,
}

impl BinaryOp {
    #[inline]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Maximum => super::unary::nan_max(a, b),
            BinaryOp::Minimum => super::unary::nan_min(a, b),
            BinaryOp::Equal => f32::from(a == b),
            BinaryOp::Greater => f32::from(a > b),
            BinaryOp::GreaterEqual => f32::from(a >= b),
            BinaryOp::NotEqual => f32::from(a != b),
            BinaryOp::Less => f32::from(a < b),
            BinaryOp::LessEqual => f32::from(a <= b),
            BinaryOp::Pow => a.powf(b),
            BinaryOp::FloorMod => divmod(a, b).1,
            BinaryOp::FloorDiv => divmod(a, b).0,
        }
    }
}

/// numpy's float `divmod`: `(a // b, a % b)`. The remainder starts as C's `fmod` (exact) and
/// moves to the sign of `b`; the quotient is `(a - remainder) / b`, snapped to the nearest
/// whole number. Division by zero gives `(a / b, NaN)`.
fn divmod(a: f32, b: f32) -> (f32, f32) {
    let mut m = a % b;
    if b == 0.0 {
        return (a / b, m);
    }
    let mut div = (a - m) / b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) {
            m += b;
            div -= 1.0;
        }
    } else {
        m = 0.0f32.copysign(b);
    }
    let q = if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 {
            f + 1.0
        } else {
            f
        }
    } else {
        0.0f32.copysign(a / b)
    };
    (q, m)
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
pub(crate) fn is_suffix(small: &[usize], out: &[usize]) -> bool {
    let s: &[usize] = {
        let lead = small.iter().take_while(|&&d| d == 1).count();
        &small[lead..]
    };
    s.len() <= out.len() && out[out.len() - s.len()..] == *s
}

pub fn binary_forward(op: BinaryOp, a: &In<'_>, b: &In<'_>, out: &mut [f32], out_dims: &[usize]) {
    // The arithmetic ops get loops of their own, compiled for the CPU's widest vectors: with
    // the op matched per element, a bias add over a (128, 512) batch took 150 us, a tenth
    // of a training step.
    match op {
        BinaryOp::Add => binary_loops(|a, b| a + b, a, b, out, out_dims),
        BinaryOp::Sub => binary_loops(|a, b| a - b, a, b, out, out_dims),
        BinaryOp::Mul => binary_loops(|a, b| a * b, a, b, out, out_dims),
        BinaryOp::Div => binary_loops(|a, b| a / b, a, b, out, out_dims),
        _ => binary_loops(move |a, b| op.apply(a, b), a, b, out, out_dims),
    }
}

#[inline(always)]
fn binary_loops(
    f: impl Fn(f32, f32) -> f32 + Sync + Copy,
    a: &In<'_>,
    b: &In<'_>,
    out: &mut [f32],
    out_dims: &[usize],
) {
    let n = out.len();
    let (ad, bd) = (a.data, b.data);
    if ad.len() == n && bd.len() == n {
        let body = |o: &mut [f32], a: &[f32], b: &[f32]| {
            crate::simd::dispatch(
                #[inline(always)]
                || {
                    for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                        *o = f(a, b);
                    }
                },
            )
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
        crate::simd::dispatch(
            #[inline(always)]
            || out.iter_mut().zip(ad).for_each(|(o, &a)| *o = f(a, b)),
        )
    } else if ad.len() == 1 {
        let a = ad[0];
        crate::simd::dispatch(
            #[inline(always)]
            || out.iter_mut().zip(bd).for_each(|(o, &b)| *o = f(a, b)),
        )
    } else if ad.len() == n && is_suffix(b.dims, out_dims) {
        // `b` repeats along the rows of `a` (a bias, a per-channel scale).
        rows_of(out, ad, bd.len(), |o, a| {
            for (o, a) in o.chunks_mut(bd.len()).zip(a.chunks(bd.len())) {
                for ((o, &a), &b) in o.iter_mut().zip(a).zip(bd) {
                    *o = f(a, b);
                }
            }
        })
    } else if bd.len() == n && is_suffix(a.dims, out_dims) {
        rows_of(out, bd, ad.len(), |o, b| {
            for (o, b) in o.chunks_mut(ad.len()).zip(b.chunks(ad.len())) {
                for ((o, &a), &b) in o.iter_mut().zip(ad).zip(b) {
                    *o = f(a, b);
                }
            }
        })
    } else {
        let sa = broadcast_strides(a.dims, out_dims);
        let sb = broadcast_strides(b.dims, out_dims);
        for_each_broadcast(out_dims, [&sa, &sb], |o, [ia, ib]| {
            out[o] = f(ad[ia], bd[ib])
        });
    }
}

/// Runs `body(out_block, x_block)` over blocks of whole rows (`row` elements), in parallel for
/// large outputs, each block compiled for the CPU's widest vectors.
#[inline(always)]
fn rows_of(out: &mut [f32], x: &[f32], row: usize, body: impl Fn(&mut [f32], &[f32]) + Sync) {
    let run = |o: &mut [f32], x: &[f32]| {
        crate::simd::dispatch(
            #[inline(always)]
            || body(o, x),
        )
    };
    if out.len() >= PAR_THRESHOLD && row > 0 {
        let block = (PAR_THRESHOLD / 4).div_ceil(row) * row;
        out.par_chunks_mut(block)
            .zip(x.par_chunks(block))
            .for_each(|(o, x)| run(o, x));
    } else {
        run(out, x);
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
        BinaryOp::Pow => {
            // d/da = b a^(b-1), 0 where b == 0 (a constant, even at a == 0);
            // d/db = a^b ln(a), 0 where a <= 0 (as TensorFlow does; undefined there).
            let zero = g.scalar(0.0);
            let bm1 = g.unary(UnaryOp::AddScalar(-1.0), b)?;
            let p = g.binary(BinaryOp::Pow, a, bm1)?;
            let slope = g.mul(b, p)?;
            let b_zero = g.binary(BinaryOp::Equal, b, zero)?;
            let slope = g.push(Op::Where, &[b_zero, zero, slope])?;
            let ln = g.unary(UnaryOp::Log, a)?;
            let positive = g.binary(BinaryOp::Greater, a, zero)?;
            let ln = g.push(Op::Where, &[positive, ln, zero])?;
            let t = g.mul(dy, y)?;
            (g.mul(dy, slope)?, g.mul(t, ln)?)
        }
        BinaryOp::FloorMod => {
            let q = g.binary(BinaryOp::FloorDiv, a, b)?;
            let t = g.mul(dy, q)?;
            (dy, g.unary(UnaryOp::Neg, t)?)
        }
        BinaryOp::Equal
        | BinaryOp::NotEqual
        | BinaryOp::Greater
        | BinaryOp::GreaterEqual
        | BinaryOp::Less
        | BinaryOp::LessEqual
        | BinaryOp::FloorDiv => return Ok(smallvec![None, None]),
    };
    Ok(smallvec![
        Some(unbroadcast(g, da, &sa)?),
        Some(unbroadcast(g, db, &sb)?)
    ])
}

#[cfg(test)]
mod tests {
    use super::BinaryOp::{self, *};
    use crate::autodiff::tests::{b, case, check, f};

    fn same(a: f32, b: f32) -> bool {
        (a.is_nan() && b.is_nan())
            || (a == b && a.is_sign_negative() == b.is_sign_negative())
            || (a - b).abs() <= 1e-6 * a.abs().max(1.0)
    }

    #[test]
    fn new_binary_ops_match_numpy() {
        let inf = f32::INFINITY;
        let nan = f32::NAN;
        // (op, a, b, numpy's float32 value)
        let cases: &[(BinaryOp, f32, f32, f32)] = &[
            (NotEqual, nan, nan, 1.0),
            (NotEqual, 2.0, 2.0, 0.0),
            (Less, nan, 1.0, 0.0),
            (Less, 1.0, 2.0, 1.0),
            (LessEqual, 2.0, 2.0, 1.0),
            (LessEqual, 3.0, 2.0, 0.0),
            // numpy's maximum and minimum carry NaN from either side.
            (Maximum, nan, 1.0, nan),
            (Maximum, 1.0, nan, nan),
            (Maximum, -inf, 1.0, 1.0),
            (Maximum, inf, 1.0, inf),
            (Minimum, nan, 1.0, nan),
            (Minimum, 1.0, nan, nan),
            (Minimum, -inf, 1.0, -inf),
            (Pow, -2.0, 3.0, -8.0),
            (Pow, 2.0, 0.5, std::f32::consts::SQRT_2),
            (Pow, -8.0, 1.0 / 3.0, nan),
            (Pow, 0.0, -1.0, inf),
            (FloorMod, 5.0, 3.0, 2.0),
            (FloorMod, -5.0, 3.0, 1.0),
            (FloorMod, 5.0, -3.0, -1.0),
            (FloorMod, -5.0, -3.0, -2.0),
            (FloorMod, 5.5, 2.0, 1.5),
            (FloorMod, 0.0, -3.0, -0.0),
            (FloorMod, 1.0, 0.0, nan),
            (FloorMod, -1.0, inf, inf),
            (FloorMod, 1.0, 0.1, 0.099_999_99),
            (FloorDiv, 5.0, 3.0, 1.0),
            (FloorDiv, -5.0, 3.0, -2.0),
            (FloorDiv, 5.0, -3.0, -2.0),
            (FloorDiv, -5.0, -3.0, 1.0),
            (FloorDiv, 5.5, 2.0, 2.0),
            (FloorDiv, 1.0, 0.0, inf),
            (FloorDiv, -1.0, 0.0, -inf),
            (FloorDiv, 0.0, 0.0, nan),
            (FloorDiv, -1.0, inf, -1.0),
            (FloorDiv, 1.0, inf, 0.0),
            // floor(1 / 0.1) would be 10: numpy's divmod gives 9 and remainder ~0.1.
            (FloorDiv, 1.0, 0.1, 9.0),
        ];
        for &(op, a, b, want) in cases {
            let y = op.apply(a, b);
            assert!(same(y, want), "{op:?}({a}, {b}) = {y}, numpy {want}");
        }
    }

    #[test]
    fn pow_and_floor_mod_match_finite_differences() {
        use crate::ops::UnaryOp::{AddScalar, Scale};
        let shapes = [
            [b(&[2, 3]), b(&[2, 3])],
            [b(&[2, 3]), f(&[3])],
            [f(&[2, 1]), b(&[2, 3])],
        ];
        for s in &shapes {
            let mut c = case(s, |g, x| g.binary(Pow, x[0], x[1]).unwrap());
            c.range = (0.5, 2.0);
            check(c);
            // The modulo jumps where a / b is whole: keep a / b inside (1.17, 1.48), and
            // inside (-1.48, -1.17) for a negative dividend.
            for sign in [1.0, -1.0] {
                check(case(s, move |g, x| {
                    let a = g.unary(Scale(0.375 * sign), x[0]).unwrap();
                    let a = g.unary(AddScalar(4.125 * sign), a).unwrap();
                    let d = g.unary(Scale(0.075), x[1]).unwrap();
                    let d = g.unary(AddScalar(3.125), d).unwrap();
                    g.binary(FloorMod, a, d).unwrap()
                }));
            }
        }
    }

    #[test]
    fn pow_gradient_is_finite_at_a_zero_exponent_and_a_zero_base() {
        use crate::graph::{Graph, Shape};
        use crate::ops::{Ctx, ReduceKind};
        use crate::program::Program;
        let mut g = Graph::new();
        let a = g.input(Shape::batched(&[3]));
        let e = g.input(Shape::batched(&[3]));
        let y = g.binary(Pow, a, e).unwrap();
        let loss = g.reduce_all(ReduceKind::Sum, y).unwrap();
        let grads = crate::autodiff::gradients(&mut g, loss, &[a, e]).unwrap();
        let mut p = Program::plan(&g, &grads, 1).unwrap();
        // 0^0, 0^2 and (-2)^2.
        p.run(&[], &[&[0.0, 0.0, -2.0], &[0.0, 2.0, 2.0]], &Ctx::default())
            .unwrap();
        assert_eq!(p.value(grads[0]), &[0.0, 0.0, -4.0]);
        assert_eq!(p.value(grads[1]), &[0.0, 0.0, 0.0]);
    }
}
