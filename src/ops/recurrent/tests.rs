//! The fused recurrent op against step-by-step references written as plain loops in f64
//! (Keras 3's equations), and its backward pass against finite differences.

use super::*;
use crate::autodiff::tests::{b, case, check, f};
use crate::ops::random::uniform;
use crate::ops::Ctx;
use crate::program::Program;

fn rand(n: usize, stream: u64, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| scale * (2.0 * uniform(stream, i as u64) - 1.0))
        .collect()
}

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn hard_sig(x: f64) -> f64 {
    (x / 6.0 + 0.5).clamp(0.0, 1.0)
}

/// The outputs `(batch, T, u)` of one layer, by plain loops: `x (B,T,in)`, `w (in,Gu)`,
/// `r (u,Gu)`, `bias` as Keras stores it.
#[allow(clippy::too_many_arguments)]
fn reference(
    spec: &RnnSpec,
    batch: usize,
    steps: usize,
    inp: usize,
    x: &[f32],
    w: &[f32],
    r: &[f32],
    bias: &[f32],
    mask: Option<&[f32]>,
    rec_mask: Option<&[f32]>,
    init: Option<(&[f32], &[f32])>,
) -> Vec<f64> {
    let u = spec.units;
    let gu = spec.gu();
    let ra = |v: f64| {
        if spec.rec_act == UnaryOp::HardSigmoid {
            hard_sig(v)
        } else {
            sig(v)
        }
    };
    let mut out = vec![0.0; batch * steps * u];
    for bi in 0..batch {
        let (mut h, mut c) = (vec![0.0f64; u], vec![0.0f64; u]);
        if let Some((h0, c0)) = init {
            h = h0[bi * u..][..u].iter().map(|&v| v as f64).collect();
            if spec.cell == Cell::Lstm {
                c = c0[bi * u..][..u].iter().map(|&v| v as f64).collect();
            }
        }
        for s in 0..steps {
            let t = if spec.go_backwards { steps - 1 - s } else { s };
            let keep = mask.is_none_or(|m| m[bi * steps + t] > 0.5);
            if keep {
                let xt = &x[(bi * steps + t) * inp..][..inp];
                let proj = |j: usize| -> f64 {
                    (0..inp)
                        .map(|k| xt[k] as f64 * w[k * gu + j] as f64)
                        .sum::<f64>()
                        + bias[j] as f64
                };
                // Recurrent dropout scales h_prev inside the recurrent product only.
                let dm = |k: usize| rec_mask.map_or(1.0, |m| m[bi * u + k] as f64);
                let rec = |j: usize, hv: &[f64]| -> f64 {
                    (0..u).map(|k| hv[k] * dm(k) * r[k * gu + j] as f64).sum()
                };
                match spec.cell {
                    Cell::Simple => h = (0..u).map(|j| (proj(j) + rec(j, &h)).tanh()).collect(),
                    Cell::Lstm => {
                        let z: Vec<f64> = (0..gu).map(|j| proj(j) + rec(j, &h)).collect();
                        for j in 0..u {
                            let (i, fg, g) = (ra(z[j]), ra(z[u + j]), z[2 * u + j].tanh());
                            c[j] = fg * c[j] + i * g;
                        }
                        h = (0..u).map(|j| ra(z[3 * u + j]) * c[j].tanh()).collect();
                    }
                    Cell::Gru { reset_after } => {
                        let xz: Vec<f64> = (0..gu).map(proj).collect();
                        let rb = |j: usize| {
                            if reset_after {
                                bias[gu + j] as f64
                            } else {
                                0.0
                            }
                        };
                        let rz: Vec<f64> = (0..gu).map(|j| rec(j, &h) + rb(j)).collect();
                        let z: Vec<f64> = (0..u).map(|j| ra(xz[j] + rz[j])).collect();
                        let rr: Vec<f64> = (0..u).map(|j| ra(xz[u + j] + rz[u + j])).collect();
                        let hh: Vec<f64> = if reset_after {
                            (0..u)
                                .map(|j| (xz[2 * u + j] + rr[j] * rz[2 * u + j]).tanh())
                                .collect()
                        } else {
                            let rh: Vec<f64> = (0..u).map(|k| rr[k] * h[k]).collect();
                            (0..u)
                                .map(|j| (xz[2 * u + j] + rec(2 * u + j, &rh)).tanh())
                                .collect()
                        };
                        h = (0..u).map(|j| z[j] * h[j] + (1.0 - z[j]) * hh[j]).collect();
                    }
                }
            }
            out[(bi * steps + s) * u..][..u].copy_from_slice(&h);
        }
    }
    out
}

fn bias_len(spec: &RnnSpec) -> usize {
    spec.bias_dims().iter().product()
}

/// Runs the op built as a layer would and compares every output with the reference.
fn compare(spec: RnnSpec, batch: usize, steps: usize, inp: usize, masked: bool) {
    compare_with(spec, batch, steps, inp, masked, false, false)
}

fn compare_with(
    spec: RnnSpec,
    batch: usize,
    steps: usize,
    inp: usize,
    masked: bool,
    rec_dropout: bool,
    with_init: bool,
) {
    let (u, gu) = (spec.units, spec.gu());
    let mut g = Graph::new();
    let x = g.input(Shape::batched(&[steps, inp]));
    let m = masked.then(|| g.input(Shape::batched(&[steps])));
    let rm = rec_dropout.then(|| g.input(Shape::batched(&[spec.units])));
    let init: Vec<NodeId> = if with_init {
        (0..spec.n_states())
            .map(|_| g.input(Shape::batched(&[u])))
            .collect()
    } else {
        Vec::new()
    };
    let (wv, rv, bv) = (
        g.declare_var(&[inp, gu]),
        g.declare_var(&[u, gu]),
        g.declare_var(&spec.bias_dims()),
    );
    let (w, r, bn) = (g.param(wv), g.param(rv), g.param(bv));
    let mut xproj = g.matmul(x, w, false, false).unwrap();
    let bias = if spec.cell == (Cell::Gru { reset_after: true }) {
        Some(bn)
    } else {
        xproj = g.add(xproj, bn).unwrap();
        None
    };
    let built = build(&mut g, spec, xproj, r, bias, &init, m, rm, true, false).unwrap();
    let last = build(&mut g, spec, xproj, r, bias, &init, m, rm, false, false)
        .unwrap()
        .output;
    let mut p = Program::plan(&g, &[built.output, last], batch).unwrap();
    let xs = rand(batch * steps * inp, 1, 1.0);
    let vars = [
        rand(inp * gu, 2, 0.5),
        rand(u * gu, 3, 0.5 * (8.0 / u as f32).sqrt().min(1.0)),
        rand(bias_len(&spec), 4, 0.5),
    ];
    let mask: Vec<f32> = (0..batch * steps)
        .map(|i| if (i * 7) % 5 == 3 { 0.0 } else { 1.0 })
        .collect();
    let mut feeds: Vec<&[f32]> = vec![&xs];
    if masked {
        feeds.push(&mask);
    }
    let rec_mask: Vec<f32> = (0..batch * u)
        .map(|i| if i % 3 == 1 { 0.0 } else { 2.0 })
        .collect();
    if rec_dropout {
        feeds.push(&rec_mask);
    }
    let (h0, c0) = (rand(batch * u, 5, 1.0), rand(batch * u, 6, 2.0));
    if with_init {
        feeds.push(&h0);
        if spec.cell == Cell::Lstm {
            feeds.push(&c0);
        }
    }
    let ctx = Ctx {
        training: false,
        seed: 0,
        step: 0,
    };
    let vs: Vec<&[f32]> = vars.iter().map(|v| v.as_slice()).collect();
    p.run(&vs, &feeds, &ctx).unwrap();
    let want = reference(
        &spec,
        batch,
        steps,
        inp,
        &xs,
        &vars[0],
        &vars[1],
        &vars[2],
        masked.then_some(&mask[..]),
        rec_dropout.then_some(&rec_mask[..]),
        with_init.then_some((&h0[..], &c0[..])),
    );
    let got = p.value(built.output);
    for (i, (&a, &e)) in got.iter().zip(&want).enumerate() {
        assert!(
            (a as f64 - e).abs() < 2e-5,
            "{spec:?} element {i}: {a} vs reference {e}"
        );
    }
    let got_last = p.value(last);
    for bi in 0..batch {
        for j in 0..u {
            let e = want[(bi * steps + steps - 1) * u + j];
            assert!((got_last[bi * u + j] as f64 - e).abs() < 2e-5);
        }
    }
}

fn spec(cell: Cell, units: usize) -> RnnSpec {
    RnnSpec {
        cell,
        units,
        act: UnaryOp::Tanh,
        rec_act: UnaryOp::Sigmoid,
        go_backwards: false,
        has_bias: false,
        has_mask: false,
        has_rec_mask: false,
        has_init: false,
    }
}

const CELLS: [Cell; 4] = [
    Cell::Simple,
    Cell::Lstm,
    Cell::Gru { reset_after: true },
    Cell::Gru { reset_after: false },
];

#[test]
fn forward_matches_step_by_step_reference() {
    for cell in CELLS {
        for (backwards, masked) in [(false, false), (true, false), (false, true), (true, true)] {
            compare(
                RnnSpec {
                    go_backwards: backwards,
                    ..spec(cell, 3)
                },
                4,
                5,
                2,
                masked,
            );
        }
    }
    compare(
        RnnSpec {
            rec_act: UnaryOp::HardSigmoid,
            ..spec(Cell::Lstm, 3)
        },
        2,
        3,
        2,
        false,
    );
    for cell in CELLS {
        compare_with(spec(cell, 3), 4, 5, 2, true, true, false);
        compare_with(spec(cell, 3), 4, 5, 2, true, true, true);
        compare_with(
            RnnSpec {
                go_backwards: true,
                ..spec(cell, 64)
            },
            37,
            12,
            3,
            false,
            true,
            true,
        );
    }
}

#[test]
fn forward_starts_from_initial_states() {
    for cell in CELLS {
        for (backwards, masked) in [(false, false), (true, true)] {
            let s = RnnSpec {
                go_backwards: backwards,
                ..spec(cell, 3)
            };
            compare_with(s, 4, 5, 2, masked, false, true);
        }
        // Split across threads.
        compare_with(spec(cell, 64), 37, 12, 5, true, false, true);
    }
}

#[test]
fn forward_matches_reference_on_parallel_chunks() {
    // Large enough that the batch is split across threads (37 * 12 * 64 * 192 > PAR_WORK).
    for cell in CELLS {
        compare(spec(cell, 64), 37, 12, 5, true);
    }
}

/// The layer as a graph for the finite-difference checker: inputs `x`, kernel, recurrent
/// kernel, bias; output the `h` sequence plus (LSTM) the last cell state.
fn layer_case(spec: RnnSpec, steps: usize, inp: usize, masked: bool, return_sequences: bool) {
    let (u, gu) = (spec.units, spec.gu());
    let mut shapes = vec![
        b(&[steps, inp]),
        f(&[inp, gu]),
        f(&[u, gu]),
        f(&spec.bias_dims()),
    ];
    if masked {
        shapes.push(b(&[steps]));
    }
    // Initial states as inputs: their gradients are checked too.
    let first_init = shapes.len();
    if spec.has_init {
        for _ in 0..spec.n_states() {
            shapes.push(b(&[u]));
        }
    }
    check(case(&shapes, move |g, x| {
        let mut xproj = g.matmul(x[0], x[1], false, false).unwrap();
        let bias = if spec.cell == (Cell::Gru { reset_after: true }) {
            Some(x[3])
        } else {
            xproj = g.add(xproj, x[3]).unwrap();
            None
        };
        // Masks from values in [-1, 1): steps at or below 0.5 (about three in four) are skipped.
        // Recurrent dropout: a fixed mask per sequence, from the dropout op on ones.
        let rec_mask = spec.has_rec_mask.then(|| {
            let zeros = g.zeros(Shape::batched(&[u]));
            let ones = g.unary(UnaryOp::AddScalar(1.0), zeros).unwrap();
            g.push(Op::Dropout { rate: 0.5, key: 11 }, &[ones]).unwrap()
        });
        let mask = masked.then(|| x[4]);
        let init = &x[first_init..];
        let built = build(
            g,
            spec,
            xproj,
            x[2],
            bias,
            init,
            mask,
            rec_mask,
            return_sequences,
            spec.go_backwards,
        )
        .unwrap();
        match (spec.cell_offset(), return_sequences) {
            (Some(_), false) => {
                let c = g.unary(UnaryOp::Scale(0.5), built.states[1]).unwrap();
                g.add(built.output, c).unwrap()
            }
            _ => built.output,
        }
    }));
}

#[test]
fn backward_matches_finite_differences() {
    for cell in CELLS {
        layer_case(spec(cell, 3), 4, 2, false, true);
        layer_case(
            RnnSpec {
                go_backwards: true,
                ..spec(cell, 2)
            },
            3,
            2,
            false,
            false,
        );
        layer_case(spec(cell, 2), 4, 2, true, true);
        layer_case(
            RnnSpec {
                go_backwards: true,
                ..spec(cell, 2)
            },
            3,
            2,
            true,
            true,
        );
    }
    layer_case(
        RnnSpec {
            rec_act: UnaryOp::HardSigmoid,
            act: UnaryOp::Relu,
            ..spec(Cell::Lstm, 2)
        },
        3,
        2,
        false,
        false,
    );
}

#[test]
fn backward_reaches_initial_states() {
    for cell in CELLS {
        let s = RnnSpec {
            has_init: true,
            ..spec(cell, 2)
        };
        layer_case(s, 3, 2, false, true);
        layer_case(s, 3, 2, false, false);
        layer_case(
            RnnSpec {
                go_backwards: true,
                ..s
            },
            4,
            2,
            true,
            true,
        );
    }
    // Recurrent dropout: the masked copy of h_prev feeds the kernel's gradient (a regression
    // test: the gate math once overwrote it).
    for cell in CELLS {
        for has_init in [false, true] {
            for masked in [false, true] {
                let s = RnnSpec {
                    has_init,
                    has_rec_mask: true,
                    ..spec(cell, 2)
                };
                layer_case(s, 3, 2, masked, true);
            }
        }
    }
}

#[test]
fn shape_errors_name_the_input() {
    let mut g = Graph::new();
    let x = g.input(Shape::batched(&[4, 8]));
    let r = g.declare_var(&[3, 8]);
    let r = g.param(r);
    let e = build(
        &mut g,
        spec(Cell::Lstm, 2),
        x,
        r,
        None,
        &[],
        None,
        None,
        true,
        false,
    )
    .err()
    .unwrap();
    assert!(format!("{e}").contains("recurrent kernel"), "{e}");
    let r2 = g.declare_var(&[2, 8]);
    let r2 = g.param(r2);
    assert!(build(
        &mut g,
        spec(Cell::Lstm, 2),
        x,
        r2,
        None,
        &[],
        None,
        None,
        true,
        false
    )
    .is_ok());
    let bad = RnnSpec {
        act: UnaryOp::Gelu,
        ..spec(Cell::Lstm, 2)
    };
    assert!(matches!(
        build(&mut g, bad, x, r2, None, &[], None, None, true, false),
        Err(crate::Error::NotImplemented(_))
    ));
}

#[test]
fn unslice_places_rows_and_differentiates_back() {
    let wide = Shape::batched(&[3, 5]);
    check(case(&[b(&[3, 2])], move |g, x| {
        let sl = Slice {
            reverse: true,
            ..Slice::all(1, 2)
        };
        let y = g.push(Op::RnnUnslice(sl, wide.clone()), &[x[0]]).unwrap();
        g.unary(UnaryOp::Tanh, y).unwrap()
    }));
}
