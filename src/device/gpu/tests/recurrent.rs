//! The recurrent ops on the GPU against the CPU: every cell with and without bias, timestep
//! mask (skipped first and last steps), recurrent dropout mask, initial states and
//! go_backwards, forward and every gradient (BPTT, the recurrent kernel's, the input
//! projection's, the bias', the initial states'), on batch 3, 5 timesteps, 7 units.

use super::{compare, data};
use crate::autodiff::gradients;
use crate::graph::{Graph, Shape};
use crate::ops::recurrent::{build, Cell, RnnSpec};
use crate::ops::{BinaryOp, Op, ReduceKind, UnaryOp};

const B: usize = 3;
const T: usize = 5;
const U: usize = 7;
const IN: usize = 4;

/// Which optional parts a case turns on.
#[derive(Clone, Copy, Debug)]
struct Case {
    bias: bool,
    mask: bool,
    rec_mask: bool,
    init: bool,
    go_backwards: bool,
    /// Return the sequence reversed back to input order (Bidirectional's backward half).
    reverse_sequence: bool,
    act: UnaryOp,
    rec_act: UnaryOp,
}

const PLAIN: Case = Case {
    bias: true,
    mask: false,
    rec_mask: false,
    init: false,
    go_backwards: false,
    reverse_sequence: false,
    act: UnaryOp::Tanh,
    rec_act: UnaryOp::Sigmoid,
};

fn cases() -> [Case; 4] {
    [
        PLAIN,
        Case {
            mask: true,
            rec_mask: true,
            init: true,
            go_backwards: true,
            reverse_sequence: true,
            ..PLAIN
        },
        Case {
            bias: false,
            mask: true,
            init: true,
            rec_act: UnaryOp::HardSigmoid,
            ..PLAIN
        },
        Case {
            rec_mask: true,
            go_backwards: true,
            act: UnaryOp::Relu,
            ..PLAIN
        },
    ]
}

/// Row 0 skips its second and last steps, row 1 its first and fourth; row 2 keeps all.
fn mask() -> Vec<f32> {
    vec![
        1.0, 0.0, 1.0, 1.0, 0.0, //
        0.0, 1.0, 1.0, 0.0, 1.0, //
        1.0, 1.0, 1.0, 1.0, 1.0,
    ]
}

fn run_case(cell: Cell, c: Case) {
    let spec = RnnSpec {
        cell,
        units: U,
        act: c.act,
        rec_act: c.rec_act,
        go_backwards: c.go_backwards,
        has_bias: false,
        has_mask: false,
        has_rec_mask: false,
        has_init: false,
    };
    let gu = spec.gu();
    let mut g = Graph::new();
    let mut feeds = Vec::new();
    let x = g.input(Shape::batched(&[T, IN]));
    feeds.push(data(B * T * IN, 1, -1.0, 1.0));
    let mut vars = Vec::new();
    let w = g.declare_var(&[IN, gu]);
    vars.push(data(IN * gu, 2, -0.6, 0.6));
    let rk = g.declare_var(&[U, gu]);
    vars.push(data(U * gu, 3, -0.5, 0.5));
    let (w, rk) = (g.param(w), g.param(rk));
    let bias = c.bias.then(|| {
        let dims: Vec<usize> = match cell {
            Cell::Gru { reset_after: true } => vec![2, gu],
            _ => vec![gu],
        };
        let n = dims.iter().product();
        let v = g.declare_var(&dims);
        vars.push(data(n, 4, -0.3, 0.3));
        g.param(v)
    });
    let mut init = Vec::new();
    if c.init {
        for k in 0..spec.n_states() {
            init.push(g.input(Shape::batched(&[U])));
            feeds.push(data(B * U, 5 + k as u64, -0.8, 0.8));
        }
    }
    let mask_in = c.mask.then(|| {
        feeds.push(mask());
        g.input(Shape::batched(&[T]))
    });
    let rec_mask = c.rec_mask.then(|| {
        // Dropout's mask: zeros and the kept units scaled by 1 / (1 - rate).
        feeds.push(
            data(B * U, 7, 0.0, 1.0)
                .iter()
                .map(|&v| if v < 0.3 { 0.0 } else { 1.0 / 0.7 })
                .collect(),
        );
        g.input(Shape::batched(&[U]))
    });
    let xproj = g.matmul(x, w, false, false).unwrap();
    let built = build(
        &mut g,
        spec,
        xproj,
        rk,
        bias,
        &init,
        mask_in,
        rec_mask,
        true,
        c.reverse_sequence,
    )
    .unwrap();
    // A loss that weighs every output and state differently.
    let mut loss = None;
    for (k, &o) in [built.output].iter().chain(&built.states).enumerate() {
        let dims = g.shape(o).dims.clone();
        let wy = g.input(Shape::batched(&dims));
        feeds.push(data(
            B * dims.iter().product::<usize>(),
            10 + k as u64,
            -1.0,
            1.0,
        ));
        let prod = g.push(Op::Binary(BinaryOp::Mul), &[o, wy]).unwrap();
        let s = g.reduce_all(ReduceKind::Sum, prod).unwrap();
        loss = Some(match loss {
            None => s,
            Some(l) => g.add(l, s).unwrap(),
        });
    }
    let mut wrt = vec![x, w, rk];
    wrt.extend(bias);
    wrt.extend(&init);
    let grads = gradients(&mut g, loss.unwrap(), &wrt).unwrap();
    let mut outs = vec![built.packed, built.output];
    outs.extend(&built.states);
    outs.extend(&grads);
    // The backward nodes themselves, so a mismatch names the op.
    outs.extend(
        (0..g.nodes.len())
            .filter(|&n| matches!(g.nodes[n].op, Op::RnnGrad(_) | Op::RnnKernelGrad(_))),
    );
    println!("{cell:?} {c:?}");
    compare(&g, &outs, B, &feeds, &vars, false, 1e-4);
}

#[test]
fn simple_rnn_matches_the_cpu_forward_and_backward() {
    for c in cases() {
        run_case(Cell::Simple, c);
    }
}

#[test]
fn lstm_matches_the_cpu_forward_and_backward() {
    for c in cases() {
        run_case(Cell::Lstm, c);
    }
}

#[test]
fn gru_matches_the_cpu_forward_and_backward_in_both_reset_modes() {
    for reset_after in [true, false] {
        for c in cases() {
            run_case(Cell::Gru { reset_after }, c);
        }
    }
}

#[test]
fn slices_of_a_packed_buffer_match_the_cpu() {
    use crate::ops::recurrent::Slice;
    let mut g = Graph::new();
    let x = g.input(Shape::batched(&[T, 9]));
    let mut outs = Vec::new();
    for sl in [
        Slice::all(2, 4),
        Slice {
            reverse: true,
            ..Slice::all(0, 9)
        },
        Slice::first(3, 1, 5),
        Slice::at(4, 3, 6),
        Slice::at(0, 0, 1),
    ] {
        let y = g.push(Op::RnnSlice(sl), &[x]).unwrap();
        outs.push(y);
        outs.push(
            g.push(Op::RnnUnslice(sl, g.shape(x).clone()), &[y])
                .unwrap(),
        );
    }
    compare(
        &g,
        &outs,
        B,
        &[data(B * T * 9, 20, -1.0, 1.0)],
        &[],
        false,
        0.0,
    );
}
