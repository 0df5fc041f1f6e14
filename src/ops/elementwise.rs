//! Elementwise ops: unary functions (activations and arithmetic with a constant) and binary
//! ops with numpy broadcasting. A unary op's value and derivative sit side by side in
//! [`UnaryOp::apply`] and [`UnaryOp::derivative`].

use rayon::prelude::*;
use smallvec::{smallvec, SmallVec};

use super::{In, Op, PAR_THRESHOLD};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Identity,
    Relu,
    Sigmoid,
    /// Keras 3: `clip(x / 6 + 0.5, 0, 1)`.
    HardSigmoid,
    Tanh,
    Exp,
    Log,
    Neg,
    Scale(f32),
    AddScalar(f32),
    Square,
    Sqrt,
    Abs,
    Sign,
    Softplus,
    Softsign,
    Elu(f32),
    Selu,
    LeakyRelu(f32),
    Swish,
    /// Exact GELU, `x * Phi(x)` (Keras 3's default `approximate=False`).
    Gelu,
    Arctan,
    /// 1 for `x >= 0`, else 0; its gradient is zero.
    BinaryStep,
    Clip(f32, f32),
    Reciprocal,
    Round,
    LogCosh,
}

const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;

fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// log(1 + e^x) without overflow.
fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else if x < -20.0 {
        x.exp()
    } else {
        x.exp().ln_1p()
    }
}

/// The error function (Abramowitz & Stegun 7.1.26 refined to f32 accuracy via f64).
fn erf(x: f32) -> f32 {
    let x = x as f64;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-x * x).exp();
    (if x >= 0.0 { y } else { -y }) as f32
}

const INV_SQRT2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;

impl UnaryOp {
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        use UnaryOp::*;
        match self {
            Identity => x,
            Relu => x.max(0.0),
            Sigmoid => sigmoid(x),
            HardSigmoid => (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Tanh => x.tanh(),
            Exp => x.exp(),
            Log => x.ln(),
            Neg => -x,
            Scale(a) => a * x,
            AddScalar(a) => x + a,
            Square => x * x,
            Sqrt => x.sqrt(),
            Abs => x.abs(),
            Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            Softplus => softplus(x),
            Softsign => x / (1.0 + x.abs()),
            Elu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x.exp_m1()
                }
            }
            Selu => SELU_SCALE * if x > 0.0 { x } else { SELU_ALPHA * x.exp_m1() },
            LeakyRelu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            Swish => x * sigmoid(x),
            Gelu => 0.5 * x * (1.0 + erf(x * INV_SQRT2)),
            Arctan => x.atan(),
            BinaryStep => {
                if x >= 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Clip(lo, hi) => x.clamp(lo, hi),
            Reciprocal => 1.0 / x,
            Round => x.round_ties_even(),
            LogCosh => x.abs() + softplus(-2.0 * x.abs()) - std::f32::consts::LN_2,
        }
    }

    #[inline]
    pub fn derivative(self, x: f32) -> f32 {
        use UnaryOp::*;
        match self {
            Identity | AddScalar(_) => 1.0,
            Relu => f32::from(x > 0.0),
            Sigmoid => {
                let s = sigmoid(x);
                s * (1.0 - s)
            }
            HardSigmoid => {
                if x > -3.0 && x < 3.0 {
                    1.0 / 6.0
                } else {
                    0.0
                }
            }
            Tanh => {
                let t = x.tanh();
                1.0 - t * t
            }
            Exp => x.exp(),
            Log => 1.0 / x,
            Neg => -1.0,
            Scale(a) => a,
            Square => 2.0 * x,
            Sqrt => 0.5 / x.sqrt(),
            Abs => UnaryOp::Sign.apply(x),
            Sign | BinaryStep | Round => 0.0,
            Softplus => sigmoid(x),
            Softsign => {
                let d = 1.0 + x.abs();
                1.0 / (d * d)
            }
            Elu(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    a * x.exp()
                }
            }
            Selu => SELU_SCALE * if x > 0.0 { 1.0 } else { SELU_ALPHA * x.exp() },
            LeakyRelu(a) => {
                if x >= 0.0 {
                    1.0
                } else {
                    a
                }
            }
            Swish => {
                let s = sigmoid(x);
                s + x * s * (1.0 - s)
            }
            Gelu => 0.5 * (1.0 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * (-0.5 * x * x).exp(),
            Arctan => 1.0 / (1.0 + x * x),
            Clip(lo, hi) => f32::from(x >= lo && x <= hi),
            Reciprocal => -1.0 / (x * x),
            LogCosh => x.tanh(),
        }
    }

    /// Ops whose gradient is zero everywhere it exists.
    pub fn is_piecewise_constant(self) -> bool {
        matches!(self, UnaryOp::Sign | UnaryOp::BinaryStep | UnaryOp::Round)
    }
}

/// `out = f(x)`, split across threads for large tensors.
fn map_unary(x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    let body = |o: &mut [f32], x: &[f32]| o.iter_mut().zip(x).for_each(|(o, &x)| *o = f(x));
    if out.len() >= PAR_THRESHOLD {
        let c = PAR_THRESHOLD / 4;
        out.par_chunks_mut(c)
            .zip(x.par_chunks(c))
            .for_each(|(o, x)| body(o, x));
    } else {
        body(out, x);
    }
}

pub fn unary_forward(u: UnaryOp, x: &[f32], out: &mut [f32]) {
    // The hot activations get a loop of their own, which the compiler vectorises; the rest
    // share one loop that dispatches per element.
    match u {
        UnaryOp::Relu => map_unary(x, out, |v| v.max(0.0)),
        UnaryOp::Scale(a) => map_unary(x, out, move |v| a * v),
        _ => map_unary(x, out, move |v| u.apply(v)),
    }
}

pub fn unary_backward(u: UnaryOp, x: &[f32], dy: &[f32], out: &mut [f32]) {
    if u == UnaryOp::Relu {
        for ((o, &x), &d) in out.iter_mut().zip(x).zip(dy) {
            *o = if x > 0.0 { d } else { 0.0 };
        }
        return;
    }
    let body = |o: &mut [f32], x: &[f32], dy: &[f32]| {
        for ((o, &x), &d) in o.iter_mut().zip(x).zip(dy) {
            *o = u.derivative(x) * d;
        }
    };
    if out.len() >= PAR_THRESHOLD {
        let c = PAR_THRESHOLD / 4;
        out.par_chunks_mut(c)
            .zip(x.par_chunks(c))
            .zip(dy.par_chunks(c))
            .for_each(|((o, x), d)| body(o, x, d));
    } else {
        body(out, x, dy);
    }
}

pub fn unary_vjp(
    g: &mut Graph,
    u: UnaryOp,
    x: NodeId,
    _y: NodeId,
    dy: NodeId,
) -> Result<Option<NodeId>> {
    Ok(match u {
        _ if u.is_piecewise_constant() => None,
        UnaryOp::Identity | UnaryOp::AddScalar(_) => Some(dy),
        UnaryOp::Neg | UnaryOp::Scale(_) => Some(g.push(Op::Unary(u), &[dy])?),
        _ => Some(g.push(Op::UnaryGrad(u), &[x, dy])?),
    })
}

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
fn unbroadcast(g: &mut Graph, grad: NodeId, target: &Shape) -> Result<NodeId> {
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
