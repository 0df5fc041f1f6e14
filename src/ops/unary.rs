//! Unary elementwise ops: activations, arithmetic with a constant, rounding and the usual
//! math functions. A unary op's value and derivative sit side by side in
//! [`UnaryOp::apply`] and [`UnaryOp::derivative`].

use rayon::prelude::*;

use super::{Op, PAR_THRESHOLD};
use crate::error::Result;
use crate::graph::{Graph, NodeId};

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
    /// Rounds half to even, like numpy; its gradient is zero.
    Round,
    LogCosh,
    /// Largest integer `<= x`; its gradient is zero.
    Floor,
    /// Smallest integer `>= x`; its gradient is zero.
    Ceil,
    /// Rounds toward zero; its gradient is zero.
    Trunc,
    /// `ln(1 + x)`, accurate near 0.
    Log1p,
    /// `e^x - 1`, accurate near 0.
    Expm1,
    Sin,
    Cos,
    /// `x^p` as numpy's float power computes it: a negative base with a whole exponent keeps
    /// its sign, with a fractional one it gives NaN.
    PowScalar(f32),
    /// 1.0 where `x == 0`, else 0.0 (NaN is not zero); its gradient is zero.
    LogicalNot,
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

/// `v`, or NaN where `x` is NaN: piecewise formulas whose comparisons would send NaN down a
/// finite branch use it, so that NaN propagates as in numpy.
#[inline(always)]
fn keep_nan(x: f32, v: f32) -> f32 {
    if x.is_nan() {
        x
    } else {
        v
    }
}

/// numpy's `clip(x, lo, hi) = minimum(maximum(x, lo), hi)`: NaN stays NaN, and `lo > hi` gives
/// `hi` (where `f32::clamp` would panic).
#[inline(always)]
pub fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    keep_nan(x, x.max(lo).min(hi))
}

/// numpy's `maximum`: NaN if either side is NaN.
#[inline(always)]
pub fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// numpy's `minimum`: NaN if either side is NaN.
#[inline(always)]
pub fn nan_min(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}

const INV_SQRT2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;

impl UnaryOp {
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        use UnaryOp::*;
        match self {
            Identity => x,
            Relu => keep_nan(x, x.max(0.0)),
            Sigmoid => sigmoid(x),
            HardSigmoid => clip(x / 6.0 + 0.5, 0.0, 1.0),
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
                    keep_nan(x, 0.0)
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
            Clip(lo, hi) => clip(x, lo, hi),
            Reciprocal => 1.0 / x,
            Round => x.round_ties_even(),
            LogCosh => x.abs() + softplus(-2.0 * x.abs()) - std::f32::consts::LN_2,
            Floor => x.floor(),
            Ceil => x.ceil(),
            Trunc => x.trunc(),
            Log1p => x.ln_1p(),
            Expm1 => x.exp_m1(),
            Sin => x.sin(),
            Cos => x.cos(),
            PowScalar(p) => x.powf(p),
            LogicalNot => f32::from(x == 0.0),
        }
    }

    #[inline]
    pub fn derivative(self, x: f32) -> f32 {
        use UnaryOp::*;
        match self {
            Identity | AddScalar(_) => 1.0,
            Relu => keep_nan(x, f32::from(x > 0.0)),
            Sigmoid => {
                let s = sigmoid(x);
                s * (1.0 - s)
            }
            HardSigmoid => keep_nan(x, if x > -3.0 && x < 3.0 { 1.0 / 6.0 } else { 0.0 }),
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
            Sign | BinaryStep | Round | Floor | Ceil | Trunc | LogicalNot => 0.0,
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
            LeakyRelu(a) => keep_nan(x, if x >= 0.0 { 1.0 } else { a }),
            Swish => {
                let s = sigmoid(x);
                s + x * s * (1.0 - s)
            }
            Gelu => 0.5 * (1.0 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * (-0.5 * x * x).exp(),
            Arctan => 1.0 / (1.0 + x * x),
            Clip(lo, hi) => keep_nan(x, f32::from(x >= lo && x <= hi)),
            Reciprocal => -1.0 / (x * x),
            LogCosh => x.tanh(),
            Log1p => 1.0 / (1.0 + x),
            Expm1 => x.exp(),
            Sin => x.cos(),
            Cos => -x.sin(),
            // A zero exponent makes a constant: its slope is 0 even where x^-1 is infinite.
            PowScalar(0.0) => 0.0,
            PowScalar(p) => p * x.powf(p - 1.0),
        }
    }

    /// Ops whose gradient is zero everywhere it exists.
    pub fn is_piecewise_constant(self) -> bool {
        use UnaryOp::*;
        matches!(
            self,
            Sign | BinaryStep | Round | Floor | Ceil | Trunc | LogicalNot
        )
    }
}

/// `out = f(x)`, split across threads for large tensors.
#[inline(always)]
fn map_unary(x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    let body = |o: &mut [f32], x: &[f32]| {
        crate::simd::dispatch(
            #[inline(always)]
            || o.iter_mut().zip(x).for_each(|(o, &x)| *o = f(x)),
        )
    };
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
        // Written so that NaN fails the comparison and passes through, as in numpy's relu.
        UnaryOp::Relu => map_unary(x, out, |v| if v < 0.0 { 0.0 } else { v }),
        UnaryOp::Scale(a) => map_unary(x, out, move |v| a * v),
        UnaryOp::AddScalar(a) => map_unary(x, out, move |v| v + a),
        UnaryOp::Neg => map_unary(x, out, |v| -v),
        UnaryOp::Square => map_unary(x, out, |v| v * v),
        UnaryOp::Sqrt => map_unary(x, out, |v| v.sqrt()),
        UnaryOp::Abs => map_unary(x, out, |v| v.abs()),
        UnaryOp::Identity => map_unary(x, out, |v| v),
        _ => map_unary(x, out, move |v| u.apply(v)),
    }
}

pub fn unary_backward(u: UnaryOp, x: &[f32], dy: &[f32], out: &mut [f32]) {
    let body = |o: &mut [f32], x: &[f32], dy: &[f32]| {
        if u == UnaryOp::Relu {
            crate::simd::dispatch(
                #[inline(always)]
                || {
                    for ((o, &x), &d) in o.iter_mut().zip(x).zip(dy) {
                        *o = if x > 0.0 {
                            d
                        } else if x.is_nan() {
                            x
                        } else {
                            0.0
                        };
                    }
                },
            );
            return;
        }
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
    y: NodeId,
    dy: NodeId,
) -> Result<Option<NodeId>> {
    if u == UnaryOp::Relu {
        if let Some(dx) = super::pool::relu_through_pool(g, y, dy)? {
            return Ok(Some(dx));
        }
    }
    Ok(match u {
        _ if u.is_piecewise_constant() => None,
        UnaryOp::Identity | UnaryOp::AddScalar(_) => Some(dy),
        UnaryOp::Neg | UnaryOp::Scale(_) => Some(g.push(Op::Unary(u), &[dy])?),
        _ => Some(g.push(Op::UnaryGrad(u), &[x, dy])?),
    })
}

#[cfg(test)]
mod tests {
    use super::UnaryOp::{self, *};
    use crate::autodiff::tests::{b, case, check};

    fn same(a: f32, b: f32) -> bool {
        (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-6 * a.abs().max(1.0)
    }

    #[test]
    fn rounding_and_math_functions_match_numpy() {
        // (op, x, numpy's value)
        let cases: &[(UnaryOp, f32, f32)] = &[
            (Floor, -1.5, -2.0),
            (Floor, 2.7, 2.0),
            (Ceil, -1.5, -1.0),
            (Ceil, 2.1, 3.0),
            (Trunc, -1.7, -1.0),
            (Trunc, 1.7, 1.0),
            (Log1p, 1e-7, 1e-7),
            (Log1p, 1.0, std::f32::consts::LN_2),
            (Log1p, -1.0, f32::NEG_INFINITY),
            (Expm1, 1e-7, 1e-7),
            (Expm1, 1.0, std::f32::consts::E - 1.0),
            (Sin, std::f32::consts::FRAC_PI_2, 1.0),
            (Cos, 0.0, 1.0),
            (LogicalNot, 0.0, 1.0),
            (LogicalNot, -0.0, 1.0),
            (LogicalNot, 2.0, 0.0),
            (LogicalNot, f32::NAN, 0.0),
        ];
        for &(u, x, want) in cases {
            assert!(
                same(u.apply(x), want),
                "{u:?}({x}) = {}, numpy {want}",
                u.apply(x)
            );
        }
    }

    #[test]
    fn power_follows_numpy_for_every_sign() {
        // (x, p, numpy's x ** p in float32)
        let cases = [
            (-2.0, 3.0, -8.0),
            (-2.0, 2.0, 4.0),
            (-2.0, 0.5, f32::NAN),
            (-2.0, -1.0, -0.5),
            (4.0, 0.5, 2.0),
            (2.0, -1.0, 0.5),
            (0.0, -1.0, f32::INFINITY),
            (0.0, 0.0, 1.0),
            (f32::NAN, 0.0, 1.0),
            (3.0, 0.0, 1.0),
        ];
        for (x, p, want) in cases {
            let y = PowScalar(p).apply(x);
            assert!(same(y, want), "{x} ** {p} = {y}, numpy {want}");
        }
        // d/dx x^p = p x^(p-1), and 0 for p = 0 even at x = 0.
        assert_eq!(PowScalar(3.0).derivative(-2.0), 12.0);
        assert_eq!(PowScalar(0.5).derivative(4.0), 0.25);
        assert_eq!(PowScalar(0.0).derivative(0.0), 0.0);
    }

    #[test]
    fn new_functions_match_finite_differences() {
        for u in [Sin, Cos, Expm1, PowScalar(2.0), PowScalar(3.0)] {
            check(case(&[b(&[4])], move |g, x| g.unary(u, x[0]).unwrap()));
        }
        for u in [Log1p, PowScalar(0.5), PowScalar(-1.0), PowScalar(1.5)] {
            let mut c = case(&[b(&[4])], move |g, x| g.unary(u, x[0]).unwrap());
            c.range = (0.5, 2.0);
            check(c);
        }
    }

    #[test]
    fn activations_and_clip_carry_nan_and_inf_as_numpy() {
        let (nan, inf) = (f32::NAN, f32::INFINITY);
        // Every activation and clip maps NaN to NaN, value and slope.
        for u in [
            Relu,
            Sigmoid,
            HardSigmoid,
            Tanh,
            Softplus,
            Softsign,
            Elu(1.0),
            Selu,
            LeakyRelu(0.2),
            Swish,
            Gelu,
            Clip(0.0, 6.0),
            Abs,
            Sign,
            Exp,
            LogCosh,
        ] {
            assert!(u.apply(nan).is_nan(), "{u:?}(nan) = {}", u.apply(nan));
            if !u.is_piecewise_constant() {
                assert!(
                    u.derivative(nan).is_nan(),
                    "{u:?}'(nan) = {}",
                    u.derivative(nan)
                );
            }
        }
        // (op, x, numpy's value)
        let cases: &[(UnaryOp, f32, f32)] = &[
            (Relu, inf, inf),
            (Relu, -inf, 0.0),
            (HardSigmoid, inf, 1.0),
            (HardSigmoid, -inf, 0.0),
            (Clip(0.0, 6.0), inf, 6.0),
            (Clip(0.0, 6.0), -inf, 0.0),
            // numpy: lo > hi gives hi.
            (Clip(2.0, 1.0), 0.0, 1.0),
            (Elu(1.0), -inf, -1.0),
            (LeakyRelu(0.2), -inf, -inf),
            (Sigmoid, inf, 1.0),
            (Sigmoid, -inf, 0.0),
            (Tanh, -inf, -1.0),
            (Softplus, inf, inf),
            (Softplus, -inf, 0.0),
            (Sign, -inf, -1.0),
        ];
        for &(u, x, want) in cases {
            assert!(
                same(u.apply(x), want),
                "{u:?}({x}) = {}, numpy {want}",
                u.apply(x)
            );
        }
        // The relu loops of their own carry NaN too.
        let mut y = [0.0; 3];
        super::unary_forward(Relu, &[nan, -1.0, 2.0], &mut y);
        assert!(y[0].is_nan() && y[1] == 0.0 && y[2] == 2.0, "{y:?}");
        super::unary_backward(Relu, &[nan, -1.0, 2.0], &[1.0; 3], &mut y);
        assert!(y[0].is_nan() && y[1] == 0.0 && y[2] == 1.0, "{y:?}");
    }

    #[test]
    fn rounding_and_logical_not_have_no_gradient() {
        for u in [Floor, Ceil, Trunc, LogicalNot] {
            assert!(u.is_piecewise_constant());
        }
    }
}
