//! Every op's VJP against central finite differences. Each case builds `sum(f(inputs) * r)`
//! for a fixed random `r`, differentiates it, and compares with (L(x+h) - L(x-h)) / 2h.

use super::gradients;
use crate::graph::{Graph, NodeId, Shape};
use crate::ops::{random::uniform, BinaryOp, Ctx, Op, ReduceKind, UnaryOp};
use crate::program::Program;

pub(crate) const BATCH: usize = 3;

fn rand_vec(n: usize, stream: u64, lo: f32, hi: f32) -> Vec<f32> {
    (0..n)
        .map(|i| lo + (hi - lo) * uniform(stream, i as u64))
        .collect()
}

/// Inputs: batched shapes become fed inputs, fixed shapes become variables.
pub(crate) struct Case {
    pub shapes: Vec<Shape>,
    pub range: (f32, f32),
    /// Values on a shuffled grid, further apart than the finite-difference step (for max).
    pub distinct: bool,
    pub build: Build,
}

/// Builds a case's graph from its input nodes and returns the output node.
pub(crate) type Build = Box<dyn Fn(&mut Graph, &[NodeId]) -> NodeId>;

pub(crate) fn case(
    shapes: &[Shape],
    build: impl Fn(&mut Graph, &[NodeId]) -> NodeId + 'static,
) -> Case {
    Case {
        shapes: shapes.to_vec(),
        range: (-1.0, 1.0),
        distinct: false,
        build: Box::new(build),
    }
}

/// `sum(y * r)`: r is fed (batched y) or a variable (fixed y); it is always the last one.
fn loss_of(g: &mut Graph, y: NodeId) -> NodeId {
    let s = g.shape(y).clone();
    let r = if s.batched {
        g.input(s)
    } else {
        let v = g.declare_var(&s.dims);
        g.param(v)
    };
    let prod = g.mul(y, r).unwrap();
    g.reduce_all(ReduceKind::Sum, prod).unwrap()
}

pub(crate) fn check(c: Case) {
    let mut g = Graph::new();
    let mut nodes = Vec::new();
    let mut values: Vec<Vec<f32>> = Vec::new();
    let mut var_of = Vec::new();
    for (k, s) in c.shapes.iter().enumerate() {
        let mut v = rand_vec(s.numel(BATCH), 100 + k as u64, c.range.0, c.range.1);
        if c.distinct {
            let mut order: Vec<usize> = (0..v.len()).collect();
            order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
            let n = v.len() as f32;
            for (rank, &i) in order.iter().enumerate() {
                v[i] = -1.0 + 2.0 * (rank as f32 + 0.37 * k as f32) / n;
            }
        }
        if s.batched {
            nodes.push(g.input(s.clone()));
            var_of.push(None);
        } else {
            let id = g.declare_var(&s.dims);
            nodes.push(g.param(id));
            var_of.push(Some(id));
        }
        values.push(v);
    }
    let y = (c.build)(&mut g, &nodes);
    let loss = loss_of(&mut g, y);
    let grads = gradients(&mut g, loss, &nodes).unwrap();
    let mut outs = vec![loss];
    outs.extend(&grads);
    let mut p = Program::plan(&g, &outs, BATCH).unwrap();
    let ctx = Ctx {
        training: true,
        seed: 7,
        step: 1,
    };
    let n_vars = g.var_shapes.len();
    let r_batched = g.shape(y).batched;
    let r_values = rand_vec(g.shape(y).numel(BATCH), 999, -1.0, 1.0);
    let eval = |p: &mut Program, values: &[Vec<f32>]| -> f64 {
        let mut vars: Vec<Vec<f32>> = vec![Vec::new(); n_vars];
        let mut feeds: Vec<&[f32]> = Vec::new();
        for (k, v) in values.iter().enumerate() {
            match var_of[k] {
                Some(id) => vars[id] = v.clone(),
                None => feeds.push(v),
            }
        }
        if r_batched {
            feeds.push(&r_values);
        } else {
            vars[n_vars - 1] = r_values.clone();
        }
        let vs: Vec<&[f32]> = vars.iter().map(|v| v.as_slice()).collect();
        p.run(&vs, &feeds, &ctx).unwrap();
        p.value(loss)[0] as f64
    };
    eval(&mut p, &values);
    let analytic: Vec<Vec<f32>> = grads.iter().map(|&gn| p.value(gn).to_vec()).collect();
    let h = 1e-2f32;
    for k in 0..values.len() {
        for i in 0..values[k].len() {
            let mut plus = values.clone();
            plus[k][i] += h;
            let mut minus = values.clone();
            minus[k][i] -= h;
            let fd = (eval(&mut p, &plus) - eval(&mut p, &minus)) / (2.0 * h as f64);
            let a = analytic[k][i] as f64;
            assert!(
                (fd - a).abs() <= 2e-2 * (1.0 + fd.abs()),
                "input {k} element {i}: analytic {a} vs finite difference {fd}"
            );
        }
    }
}

pub(crate) fn b(d: &[usize]) -> Shape {
    Shape::batched(d)
}
pub(crate) fn f(d: &[usize]) -> Shape {
    Shape::fixed(d)
}

#[test]
fn unary_ops_match_finite_differences() {
    use UnaryOp::*;
    let smooth = [
        Identity,
        Sigmoid,
        HardSigmoid,
        Tanh,
        Exp,
        Neg,
        Scale(1.5),
        AddScalar(0.3),
        Square,
        Softplus,
        Softsign,
        Elu(1.0),
        Selu,
        LeakyRelu(0.2),
        Swish,
        Gelu,
        Arctan,
        Clip(-0.5, 0.5),
        LogCosh,
        Relu,
        Abs,
    ];
    for u in smooth {
        check(case(&[b(&[4])], move |g, x| g.unary(u, x[0]).unwrap()));
    }
    for u in [Log, Sqrt, Reciprocal] {
        let mut c = case(&[b(&[4])], move |g, x| g.unary(u, x[0]).unwrap());
        c.range = (0.5, 2.0);
        check(c);
    }
}

#[test]
fn binary_ops_with_broadcasting_match_finite_differences() {
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
    ] {
        for shapes in [
            [b(&[2, 3]), b(&[2, 3])],
            [b(&[2, 3]), f(&[3])],
            [f(&[2, 1]), b(&[2, 3])],
        ] {
            let mut c = case(&shapes, move |g, x| g.binary(op, x[0], x[1]).unwrap());
            // Maximum and minimum are not differentiable at ties: keep operands apart.
            c.distinct = true;
            check(c);
        }
    }
    let mut c = case(&[b(&[2, 3]), b(&[2, 1])], |g, x| g.div(x[0], x[1]).unwrap());
    c.range = (0.5, 2.0);
    check(c);
}

#[test]
fn matmul_forms_match_finite_differences() {
    check(case(&[b(&[4]), f(&[4, 3])], |g, x| {
        g.matmul(x[0], x[1], false, false).unwrap()
    }));
    check(case(&[b(&[2, 4]), f(&[3, 4])], |g, x| {
        g.matmul(x[0], x[1], false, true).unwrap()
    }));
    check(case(&[b(&[4]), b(&[3])], |g, x| {
        g.matmul(x[0], x[1], true, false).unwrap()
    }));
}

#[test]
fn reductions_match_finite_differences() {
    for kind in [ReduceKind::Sum, ReduceKind::Mean, ReduceKind::Max] {
        for (axes, keep) in [
            (vec![2], false),
            (vec![1], true),
            (vec![0, 2], false),
            (vec![0, 1, 2], false),
        ] {
            let mut c = case(&[b(&[3, 4])], move |g, x| {
                g.reduce(kind, x[0], &axes, keep).unwrap()
            });
            c.distinct = true;
            check(c);
        }
    }
}

#[test]
fn shape_ops_match_finite_differences() {
    check(case(&[b(&[2, 3])], |g, x| {
        g.reshape(x[0], &[3, 2]).unwrap()
    }));
    check(case(&[b(&[2, 3, 4])], |g, x| {
        g.push(Op::Transpose(vec![1, 2, 0]), &[x[0]]).unwrap()
    }));
    check(case(&[f(&[2, 3])], |g, x| {
        g.push(Op::Transpose(vec![1, 0]), &[x[0]]).unwrap()
    }));
    check(case(&[f(&[3])], |g, x| {
        g.push(Op::BroadcastTo(Shape::batched(&[2, 3])), &[x[0]])
            .unwrap()
    }));
    check(case(&[b(&[2, 3])], |g, x| {
        g.push(Op::SumTo(Shape::fixed(&[3])), &[x[0]]).unwrap()
    }));
    // A stateful layer's state: a fixed (BATCH, ..) variable read as a batch, and back.
    check(case(&[f(&[BATCH, 2]), b(&[2])], |g, x| {
        let s = g.push(Op::ToBatched, &[x[0]]).unwrap();
        let y = g.mul(s, x[1]).unwrap();
        g.unary(UnaryOp::Tanh, y).unwrap()
    }));
    check(case(&[b(&[2])], |g, x| {
        let t = g.unary(UnaryOp::Tanh, x[0]).unwrap();
        g.push(Op::FromBatched(BATCH), &[t]).unwrap()
    }));
}

#[test]
fn softmax_and_dropout_match_finite_differences() {
    check(case(&[b(&[5])], |g, x| {
        g.push(Op::Softmax, &[x[0]]).unwrap()
    }));
    check(case(&[b(&[40])], |g, x| {
        g.push(Op::Dropout { rate: 0.3, key: 5 }, &[x[0]]).unwrap()
    }));
}

#[test]
fn take_last_matches_finite_differences() {
    // The indices (argmax of the same input) get no gradient; the picked entries do.
    check(case(&[b(&[4])], |g, x| {
        let am = g.push(Op::ArgMax, &[x[0]]).unwrap();
        g.push(Op::TakeLast, &[x[0], am]).unwrap()
    }));
}

#[test]
fn concat_and_slices_match_finite_differences() {
    check(case(&[b(&[2]), b(&[3]), b(&[1])], |g, x| {
        g.push(Op::Concat { axis: 1 }, x).unwrap()
    }));
    check(case(&[b(&[2, 3]), b(&[1, 3])], |g, x| {
        g.push(Op::Concat { axis: 1 }, x).unwrap()
    }));
    check(case(&[b(&[2, 3]), b(&[2, 2])], |g, x| {
        g.push(Op::Concat { axis: 2 }, x).unwrap()
    }));
    check(case(&[f(&[2, 3]), f(&[2, 1])], |g, x| {
        g.push(Op::Concat { axis: 1 }, x).unwrap()
    }));
    // An input used twice collects both parts of the gradient.
    check(case(&[b(&[2])], |g, x| {
        g.push(Op::Concat { axis: 1 }, &[x[0], x[0]]).unwrap()
    }));
    check(case(&[b(&[4, 2])], |g, x| {
        let s = Op::SliceAxis {
            axis: 1,
            start: 1,
            len: 2,
        };
        g.push(s, &[x[0]]).unwrap()
    }));
    check(case(&[b(&[2, 3])], |g, x| {
        let u = Op::UnsliceAxis {
            axis: 2,
            start: 1,
            full: 5,
        };
        g.push(u, &[x[0]]).unwrap()
    }));
}
