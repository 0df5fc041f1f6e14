//! Fused recurrent layers: SimpleRNN, LSTM and GRU (Keras 3's equations and weight layouts).
//!
//! A layer computes the input projection of every timestep as one GEMM (`x · kernel`, the
//! ordinary matmul op, leading axes folded into rows), then one [`Op::Rnn`] node runs the
//! timestep loop: per step one small GEMM `h_prev · recurrent_kernel` written straight into
//! the step's slot, then the gate math fused in one pass.
//!
//! The op's output is a *packed* buffer `(batch, timesteps, S)` holding, per step, the
//! hidden state followed by what backpropagation through time needs (cell state, gate
//! activations). The planner owns it like any other node, so nothing is allocated per step;
//! [`Op::RnnSlice`] exposes the parts a layer returns (the `h` sequence, the last `h`, the
//! last `c`). Backward is three nodes: [`Op::RnnGrad`] runs the reverse loop and writes the
//! gradient of the gate pre-activations for every step (which is also the gradient of the
//! input projection), [`Op::RnnKernelGrad`] turns it into the recurrent kernel's gradient
//! (one GEMM per step with the batch as the reduction axis), and a plain sum over
//! `(batch, time)` gives the bias gradient.
//!
//! Packed layouts per step (`u` units):
//! - SimpleRNN: `[h]`
//! - LSTM: `[h | c | act(c) | i f g o]` (gates after their activations)
//! - GRU: `[h | z r hh | e]`, `e` = `h_prev · R_h + b_rec_h` (reset_after) or `r * h_prev`
//!
//! A timestep mask `(batch, timesteps)` (1 keep, 0 skip) makes a skipped step carry the
//! previous state and output unchanged, as Keras does. Batch rows are independent, so the
//! loop runs on contiguous chunks of rows in parallel.
//!
//! ```
//! use rustkeras::graph::{Graph, Shape};
//! use rustkeras::ops::recurrent::{build, Cell, RnnSpec};
//! use rustkeras::ops::UnaryOp;
//!
//! // LSTM(32, return_sequences=True) on (batch, 8 timesteps, 16 features).
//! let mut g = Graph::new();
//! let x = g.input(Shape::batched(&[8, 16]));
//! let (w, r) = (g.declare_var(&[16, 128]), g.declare_var(&[32, 128]));
//! let (w, r) = (g.param(w), g.param(r));
//! let xproj = g.matmul(x, w, false, false).unwrap(); // every timestep in one GEMM
//! let spec = RnnSpec {
//!     cell: Cell::Lstm, units: 32, act: UnaryOp::Tanh, rec_act: UnaryOp::Sigmoid,
//!     go_backwards: false, has_bias: false, has_mask: false, has_rec_mask: false,
//!     has_init: false,
//! };
//! let lstm = build(&mut g, spec, xproj, r, None, &[], None, None, true, false).unwrap();
//! assert_eq!(g.shape(lstm.output), &Shape::batched(&[8, 32]));
//! ```

use smallvec::{smallvec, SmallVec};

use super::{Op, ReduceKind, UnaryOp};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    Simple,
    Lstm,
    Gru { reset_after: bool },
}

/// Everything that fixes one recurrent node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnSpec {
    pub cell: Cell,
    pub units: usize,
    /// The cell activation (`tanh` by default).
    pub act: UnaryOp,
    /// The gate activation (`sigmoid` in Keras 3, `hard_sigmoid` in Keras 1).
    pub rec_act: UnaryOp,
    pub go_backwards: bool,
    pub has_bias: bool,
    pub has_mask: bool,
    /// A recurrent dropout mask `(batch, units)` multiplies `h_prev` where it enters the
    /// recurrent products (one mask for all gates; Keras draws one per gate).
    pub has_rec_mask: bool,
    /// Initial states `(batch, units)` as inputs (`h0`, and `c0` for LSTM) instead of zeros:
    /// Keras' `initial_state=` and the carried state of a stateful layer.
    pub has_init: bool,
}

/// Which part of a `(batch, steps, width)` buffer a layer reads: `len` features at `offset`,
/// for every step (`step: None`, in reverse time order when `reverse`; only the first `take`
/// steps when set) or for one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    pub step: Option<usize>,
    pub offset: usize,
    pub len: usize,
    pub reverse: bool,
    pub take: Option<usize>,
}

impl Slice {
    pub fn all(offset: usize, len: usize) -> Slice {
        Slice {
            step: None,
            offset,
            len,
            reverse: false,
            take: None,
        }
    }
    /// The first `steps` steps, all of them in order.
    pub fn first(steps: usize, offset: usize, len: usize) -> Slice {
        Slice {
            take: Some(steps),
            ..Slice::all(offset, len)
        }
    }
    pub fn at(step: usize, offset: usize, len: usize) -> Slice {
        Slice {
            step: Some(step),
            offset,
            len,
            reverse: false,
            take: None,
        }
    }
}

/// Activations whose derivative is a function of their output; the backward pass needs no
/// pre-activation then, so the packed buffer stores gates once.
pub const SUPPORTED_ACTIVATIONS: &[UnaryOp] = &[
    UnaryOp::Tanh,
    UnaryOp::Sigmoid,
    UnaryOp::HardSigmoid,
    UnaryOp::Relu,
    UnaryOp::Identity,
];

impl RnnSpec {
    pub fn gates(&self) -> usize {
        match self.cell {
            Cell::Simple => 1,
            Cell::Lstm => 4,
            Cell::Gru { .. } => 3,
        }
    }
    /// Width of the input projection (`gates * units`).
    pub fn gu(&self) -> usize {
        self.gates() * self.units
    }
    /// Per-step width of the packed buffer.
    pub fn packed_width(&self) -> usize {
        self.units
            * (match self.cell {
                Cell::Simple => 1,
                Cell::Lstm => 7,
                Cell::Gru { .. } => 5,
            } + usize::from(self.has_rec_mask))
    }
    /// Offset, in a packed step, of the recurrent product's left operand: `h_prev * mask`
    /// stored at the end of the step with recurrent dropout, else `h` of the step before.
    fn left_offset(&self, s: usize) -> usize {
        let sw = self.packed_width();
        if self.has_rec_mask {
            s * sw + sw - self.units
        } else {
            (s - 1) * sw
        }
    }
    /// Per-step width of the gradient buffer: `d(projection)`, then for GRU with reset_after
    /// `d(recurrent projection)`, which differs in the candidate's part.
    pub fn grad_width(&self) -> usize {
        self.gu()
            * if self.cell == (Cell::Gru { reset_after: true }) {
                2
            } else {
                1
            }
    }
    /// Offset of the gate block in a packed step.
    fn gate_offset(&self) -> usize {
        match self.cell {
            Cell::Simple => 0,
            Cell::Lstm => 3 * self.units,
            Cell::Gru { .. } => self.units,
        }
    }
    /// How many state tensors the cell carries: `h`, and `c` for LSTM.
    pub fn n_states(&self) -> usize {
        1 + usize::from(self.cell == Cell::Lstm)
    }
    /// Steps of the gradient buffer: one per timestep, plus one holding the initial states'
    /// gradients (`[dh0 | dc0 | 0..]`) when the states are inputs.
    fn grad_steps(&self, steps: usize) -> usize {
        steps + usize::from(self.has_init)
    }
    /// Offset of the cell state (LSTM only), for `return_state`.
    pub fn cell_offset(&self) -> Option<usize> {
        (self.cell == Cell::Lstm).then_some(self.units)
    }
    fn bias_dims(&self) -> Vec<usize> {
        match self.cell {
            Cell::Gru { reset_after: true } => vec![2, self.gu()],
            _ => vec![self.gu()],
        }
    }
    fn time(&self, s: usize, steps: usize) -> usize {
        if self.go_backwards {
            steps - 1 - s
        } else {
            s
        }
    }
}

fn check_input(what: &str, s: &Shape, batched: bool, dims: &[usize]) -> Result<()> {
    if s.batched != batched || s.dims != dims {
        let want = Shape {
            batched,
            dims: dims.to_vec(),
        };
        return crate::value_error!(
            "recurrent op: {what} must have shape {}, received {}",
            want.display(),
            s.display()
        );
    }
    Ok(())
}

/// Shape rule of [`Op::Rnn`]: inputs `(projection (B,T,G*u), recurrent_kernel (u,G*u), [bias],
/// [h0 (B,u), [c0 (B,u)]], [mask (B,T)], [recurrent mask (B,u)])`.
pub fn infer(spec: &RnnSpec, ins: &[&Shape]) -> Result<Shape> {
    let want = 2
        + usize::from(spec.has_bias)
        + if spec.has_init { spec.n_states() } else { 0 }
        + usize::from(spec.has_mask)
        + usize::from(spec.has_rec_mask);
    if ins.len() != want {
        return crate::value_error!(
            "recurrent op: expected {want} inputs, received {}",
            ins.len()
        );
    }
    if !SUPPORTED_ACTIVATIONS.contains(&spec.act) || !SUPPORTED_ACTIVATIONS.contains(&spec.rec_act)
    {
        return Err(crate::Error::NotImplemented(format!(
            "recurrent layers support the activations tanh, sigmoid, hard_sigmoid, relu and linear; received {:?} and {:?}",
            spec.act, spec.rec_act
        )));
    }
    let x = ins[0];
    if !x.batched || x.dims.len() != 2 {
        return crate::value_error!(
            "recurrent op: the input must be 3D (batch, timesteps, features), received {}",
            x.display()
        );
    }
    let steps = x.dims[0];
    check_input("the input projection", x, true, &[steps, spec.gu()])?;
    check_input(
        "the recurrent kernel",
        ins[1],
        false,
        &[spec.units, spec.gu()],
    )?;
    let mut k = 2;
    if spec.has_bias {
        check_input("the bias", ins[k], false, &spec.bias_dims())?;
        k += 1;
    }
    if spec.has_init {
        for _ in 0..spec.n_states() {
            check_input("an initial state", ins[k], true, &[spec.units])?;
            k += 1;
        }
    }
    if spec.has_mask {
        check_input("the mask", ins[k], true, &[steps])?;
        k += 1;
    }
    if spec.has_rec_mask {
        check_input("the recurrent dropout mask", ins[k], true, &[spec.units])?;
    }
    Ok(Shape::batched(&[steps, spec.packed_width()]))
}

/// Shape rule of [`Op::RnnGrad`]: inputs `(recurrent_kernel, packed, d_packed, [h0, [c0]],
/// [mask], [recurrent mask])`.
pub fn infer_grad(spec: &RnnSpec, ins: &[&Shape]) -> Result<Shape> {
    let steps = ins[1].dims[0];
    check_input("the gradient", ins[2], true, &ins[1].dims)?;
    Ok(Shape::batched(&[spec.grad_steps(steps), spec.grad_width()]))
}

/// Shape rule of [`Op::RnnKernelGrad`]: inputs `(packed, grad, [h0])`.
pub fn infer_kernel_grad(spec: &RnnSpec) -> Result<Shape> {
    Ok(Shape::fixed(&[spec.units, spec.gu()]))
}

pub fn infer_slice(sl: &Slice, x: &Shape) -> Result<Shape> {
    if !x.batched
        || x.dims.len() != 2
        || sl.offset + sl.len > x.dims[1]
        || sl.step.is_some_and(|s| s >= x.dims[0])
        || sl
            .take
            .is_some_and(|n| n == 0 || n > x.dims[0] || sl.reverse || sl.step.is_some())
    {
        return crate::value_error!("recurrent slice {sl:?} does not fit {}", x.display());
    }
    Ok(match sl.step {
        None => Shape::batched(&[sl.take.unwrap_or(x.dims[0]), sl.len]),
        Some(_) => Shape::batched(&[sl.len]),
    })
}

/// Adds the recurrent node and returns it with the slice nodes a layer reads: the sequence of
/// outputs or the last one, plus (for `return_state`) the final `h` and, for LSTM, `c`.
pub struct Built {
    pub packed: NodeId,
    pub output: NodeId,
    pub states: Vec<NodeId>,
}

/// Builds a recurrent layer on a projected input `xproj (B, T, G*u)`, starting from the
/// states `init` (`[h0]`, or `[h0, c0]` for LSTM; empty for zeros); with `reverse_sequence` a
/// returned sequence is put back in input time order (Bidirectional).
#[allow(clippy::too_many_arguments)]
pub fn build(
    g: &mut Graph,
    spec: RnnSpec,
    xproj: NodeId,
    rk: NodeId,
    bias: Option<NodeId>,
    init: &[NodeId],
    mask: Option<NodeId>,
    rec_mask: Option<NodeId>,
    return_sequences: bool,
    reverse_sequence: bool,
) -> Result<Built> {
    if !init.is_empty() && init.len() != spec.n_states() {
        return crate::value_error!(
            "recurrent op: expected {} initial state tensors (h{}), received {}",
            spec.n_states(),
            if spec.n_states() == 2 { " and c" } else { "" },
            init.len()
        );
    }
    let mut inputs: SmallVec<[NodeId; 4]> = smallvec![xproj, rk];
    inputs.extend(bias);
    inputs.extend_from_slice(init);
    inputs.extend(mask);
    inputs.extend(rec_mask);
    let spec = RnnSpec {
        has_bias: bias.is_some(),
        has_mask: mask.is_some(),
        has_rec_mask: rec_mask.is_some(),
        has_init: !init.is_empty(),
        ..spec
    };
    let packed = g.push(Op::Rnn(spec), &inputs)?;
    let steps = g.shape(packed).dims[0];
    let u = spec.units;
    let last = Slice::at(steps - 1, 0, u);
    let output = if return_sequences {
        g.push(
            Op::RnnSlice(Slice {
                reverse: reverse_sequence,
                ..Slice::all(0, u)
            }),
            &[packed],
        )?
    } else {
        g.push(Op::RnnSlice(last), &[packed])?
    };
    let mut states = vec![g.push(Op::RnnSlice(last), &[packed])?];
    if let Some(c) = spec.cell_offset() {
        states.push(g.push(Op::RnnSlice(Slice::at(steps - 1, c, u)), &[packed])?);
    }
    Ok(Built {
        packed,
        output,
        states,
    })
}

/// Gradients of an [`Op::Rnn`] node's inputs given `d_packed`.
pub fn vjp(
    g: &mut Graph,
    spec: &RnnSpec,
    node: NodeId,
    inputs: &[NodeId],
    dy: NodeId,
) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let rk = inputs[1];
    let mut grad_ins: SmallVec<[NodeId; 4]> = smallvec![rk, node, dy];
    // The initial states, then the masks, are the last inputs, in the same order.
    let n_init = if spec.has_init { spec.n_states() } else { 0 };
    let n_masks = usize::from(spec.has_mask) + usize::from(spec.has_rec_mask);
    grad_ins.extend_from_slice(&inputs[inputs.len() - n_masks - n_init..]);
    let grad = g.push(Op::RnnGrad(*spec), &grad_ins)?;
    let steps = g.shape(node).dims[0];
    // Without initial states the gradient buffer is exactly one block per timestep.
    let per_step = if spec.has_init {
        g.push(
            Op::RnnSlice(Slice::first(steps, 0, spec.grad_width())),
            &[grad],
        )?
    } else {
        grad
    };
    let dx = if spec.grad_width() == spec.gu() {
        per_step
    } else {
        g.push(Op::RnnSlice(Slice::first(steps, 0, spec.gu())), &[grad])?
    };
    let mut kg_ins: SmallVec<[NodeId; 3]> = smallvec![node, grad];
    if spec.has_init {
        kg_ins.push(inputs[inputs.len() - n_masks - n_init]);
    }
    let drk = g.push(Op::RnnKernelGrad(*spec), &kg_ins)?;
    let mut out: SmallVec<[Option<NodeId>; 3]> = smallvec![Some(dx), Some(drk)];
    if spec.has_bias {
        let s = g.reduce(ReduceKind::Sum, per_step, &[0, 1], false)?;
        out.push(Some(g.reshape(s, &spec.bias_dims())?));
    }
    let u = spec.units;
    for k in 0..n_init {
        out.push(Some(
            g.push(Op::RnnSlice(Slice::at(steps, k * u, u)), &[grad])?,
        ));
    }
    out.extend((0..n_masks).map(|_| None));
    Ok(out)
}

mod kernels;
mod math;

pub use kernels::{backward, forward, kernel_grad, slice, unslice};
#[cfg(test)]
mod tests;
