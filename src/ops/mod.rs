//! The primitive ops. Each family file holds, side by side, an op's shape rule, its
//! vector-Jacobian product (which adds gradient nodes to the graph) and its CPU kernel.
//! Everything else (losses, metrics, activations with parameters, regularizers) is a
//! composition of these.

use smallvec::SmallVec;

use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape, VarId};

// convolution family
pub mod conv;
pub mod pad;
pub mod pool;

pub mod concat;
pub mod elementwise;
pub mod index;
pub mod matmul;
pub mod random;
pub mod reduce;
pub mod shape;
pub mod softmax;
// recurrent family
pub mod embedding;
pub mod recurrent;

pub use elementwise::{BinaryOp, UnaryOp};
pub use reduce::ReduceKind;

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The i-th fed tensor.
    Input(usize),
    /// A model variable, read in place from the variable store.
    Param(VarId),
    Scalar(f32),
    /// A tensor of zeros (the gradient of a node that does not depend on a variable).
    Zeros,
    Unary(UnaryOp),
    /// `dx = f'(x) * dy` with inputs `(x, dy)`.
    UnaryGrad(UnaryOp),
    Binary(BinaryOp),
    /// 2-D product over the last axis; see `matmul.rs` for the three supported forms.
    MatMul {
        ta: bool,
        tb: bool,
    },
    Reduce {
        kind: ReduceKind,
        axes: SmallVec<[usize; 4]>,
        keepdims: bool,
    },
    /// Sums a broadcast result back down to a shape (the VJP of broadcasting).
    SumTo(Shape),
    /// Broadcasts (numpy rules) to a shape.
    BroadcastTo(Shape),
    /// Broadcasts and divides by the repeat count (the VJP of a mean).
    BroadcastMean(Shape),
    /// Same data, new per-sample dims (batchedness is kept).
    Reshape(Vec<usize>),
    /// Permutes the per-sample axes (the batch axis stays first).
    Transpose(Vec<usize>),
    /// A fixed `(B, ..)` tensor read as a batch of `B` samples `(..)` (a stateful layer's
    /// state variable); planning for any other batch size is an error.
    ToBatched,
    /// A batch of samples `(..)` stored as a fixed `(B, ..)` tensor (the value a stateful
    /// layer writes back); planning for a batch size other than `B` is an error.
    FromBatched(usize),
    /// Joins its inputs along `axis` (counted with the batch axis as 0); see `concat.rs`.
    Concat {
        axis: usize,
    },
    /// `len` entries of `axis` from `start` (the VJP of `Concat`).
    SliceAxis {
        axis: usize,
        start: usize,
        len: usize,
    },
    /// The input placed at `start` of an axis of `full` entries, zeros elsewhere.
    UnsliceAxis {
        axis: usize,
        start: usize,
        full: usize,
    },
    /// Softmax over the last axis; `SoftmaxGrad` takes `(y, dy)`.
    Softmax,
    SoftmaxGrad,
    /// Inverted dropout in training, identity at inference. The mask is a pure function of
    /// (seed, step, node, element), so the backward pass regenerates it instead of storing it.
    Dropout {
        rate: f32,
        key: u64,
    },
    DropoutGrad {
        rate: f32,
        key: u64,
    },
    /// `a` in training, `b` at inference (e.g. batch vs moving statistics); the gradient
    /// flows to `a` only.
    TrainSelect,
    /// Index of the maximum along the last axis, as f32.
    ArgMax,
    /// `x[..., idx[...]]` over the last axis with inputs `(x, idx)`.
    TakeLast,
    /// The VJP of `TakeLast`: inputs `(dy, idx)`, output shaped like `x`.
    ScatterLast(Shape),
    /// 1.0 where `target` (an index) is among the top-k of `pred` along the last axis.
    InTopK(usize),
    // recurrent family
    /// A fused SimpleRNN/LSTM/GRU loop: inputs `(projection, recurrent_kernel, [bias], [mask])`,
    /// output the packed per-step buffer; see `recurrent.rs`.
    Rnn(recurrent::RnnSpec),
    /// Backpropagation through time: inputs `(recurrent_kernel, packed, d_packed, [mask])`.
    RnnGrad(recurrent::RnnSpec),
    /// The recurrent kernel's gradient: inputs `(packed, grad)`.
    RnnKernelGrad(recurrent::RnnSpec),
    /// A part of a packed buffer (the `h` sequence, the last `h` or `c`).
    RnnSlice(recurrent::Slice),
    /// The VJP of `RnnSlice`: `dy` placed into zeros of the packed shape.
    RnnUnslice(recurrent::Slice, Shape),
    /// Rows of a table `(V, D)` picked by indices: inputs `(table, idx)`.
    Gather,
    /// The VJP of `Gather` for the table: inputs `(dy, idx)`, output shaped like the table.
    ScatterAddRows(Shape),
    // convolution family
    /// Convolution of `(x, kernel)`; see `conv.rs`.
    Conv(conv::ConvSpec),
    /// The input gradient of `Conv`: inputs `(dy, kernel)`, output shaped like `x`.
    ConvGradInput(conv::ConvSpec, Shape),
    /// The kernel gradient of `Conv`: inputs `(x, dy)`.
    ConvGradKernel(conv::ConvSpec),
    /// Max or average pooling; `PoolGrad` takes `(x, dy)`.
    Pool(pool::PoolSpec),
    PoolGrad(pool::PoolSpec),
    /// Zero padding (positive amounts) and cropping (negative amounts) of spatial axes.
    Pad(pad::PadSpec),
    /// Nearest-neighbour upsampling of spatial axes.
    UpSample(pad::UpSampleSpec),
}

/// A kernel's view of one input: its data and concrete dims.
pub struct In<'a> {
    pub data: &'a [f32],
    pub dims: &'a [usize],
}

/// What a kernel may need besides its tensors (the device is the program's, not the op's).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ctx {
    pub training: bool,
    pub seed: u64,
    pub step: u64,
}

/// Elementwise kernels split across threads only above this many elements, so that small
/// tensors pay no rayon overhead.
pub const PAR_THRESHOLD: usize = 1 << 16;

pub fn infer_shape(op: &Op, ins: &[&Shape]) -> Result<Shape> {
    match op {
        Op::Input(_) | Op::Param(_) => unreachable_shape(op),
        Op::Scalar(_) => Ok(Shape::scalar()),
        Op::Zeros => unreachable_shape(op),
        Op::Unary(_) | Op::Dropout { .. } | Op::DropoutGrad { .. } => Ok(ins[0].clone()),
        Op::UnaryGrad(_) => elementwise::same_shape("unary gradient", ins[0], ins[1]),
        Op::Binary(_) => elementwise::broadcast_shape(ins[0], ins[1]),
        Op::MatMul { ta, tb } => matmul::infer(*ta, *tb, ins[0], ins[1]),
        Op::Reduce { axes, keepdims, .. } => reduce::infer(ins[0], axes, *keepdims),
        Op::SumTo(s) | Op::BroadcastTo(s) | Op::BroadcastMean(s) => shape::infer_to(op, ins[0], s),
        Op::Reshape(dims) => shape::infer_reshape(ins[0], dims),
        Op::Transpose(perm) => shape::infer_transpose(ins[0], perm),
        Op::ToBatched => shape::infer_to_batched(ins[0]),
        Op::FromBatched(b) => shape::infer_from_batched(ins[0], *b),
        Op::Concat { axis } => concat::infer_concat(*axis, ins),
        Op::SliceAxis { axis, start, len } => concat::infer_slice(*axis, *start, *len, ins[0]),
        Op::UnsliceAxis { axis, start, full } => {
            concat::infer_unslice(*axis, *start, *full, ins[0])
        }
        Op::Softmax => softmax::infer(ins[0]),
        Op::TrainSelect => elementwise::same_shape("train/inference select", ins[0], ins[1]),
        Op::SoftmaxGrad => elementwise::same_shape("softmax gradient", ins[0], ins[1]),
        Op::ArgMax => index::infer_argmax(ins[0]),
        Op::TakeLast => index::infer_take(ins[0], ins[1]),
        Op::ScatterLast(s) => Ok(s.clone()),
        Op::InTopK(_) => index::infer_take(ins[0], ins[1]),
        // recurrent family
        Op::Rnn(s) => recurrent::infer(s, ins),
        Op::RnnGrad(s) => recurrent::infer_grad(s, ins),
        Op::RnnKernelGrad(s) => recurrent::infer_kernel_grad(s),
        Op::RnnSlice(sl) => recurrent::infer_slice(sl, ins[0]),
        Op::RnnUnslice(_, s) | Op::ScatterAddRows(s) => Ok(s.clone()),
        Op::Gather => embedding::infer(ins[0], ins[1]),
        // convolution family
        Op::Conv(s) => conv::infer(s, ins[0], ins[1], ins.get(2).copied()),
        Op::ConvGradInput(s, x) => conv::infer_grad_input(s, x, ins[0], ins[1]),
        Op::ConvGradKernel(s) => conv::infer_grad_kernel(s, ins[0], ins[1]),
        Op::Pool(s) => pool::infer(s, ins[0]),
        Op::PoolGrad(s) => pool::infer_grad(s, ins[0], ins[1]),
        Op::Pad(s) => pad::infer_pad(s, ins[0]),
        Op::UpSample(s) => pad::infer_upsample(s, ins[0]),
    }
}

fn unreachable_shape(op: &Op) -> Result<Shape> {
    crate::value_error!("internal: {op:?} nodes are created with an explicit shape")
}

/// Gradient nodes for each input of `node` given the gradient `dy` of its output;
/// `None` where an input gets no gradient.
pub fn vjp(g: &mut Graph, node: NodeId, dy: NodeId) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let n = g.nodes[node].clone();
    let x = |i: usize| n.inputs[i];
    let one = |v: Option<NodeId>| -> SmallVec<[Option<NodeId>; 3]> { smallvec::smallvec![v] };
    Ok(match &n.op {
        Op::Input(_) | Op::Param(_) | Op::Scalar(_) | Op::Zeros => SmallVec::new(),
        Op::Unary(u) => one(elementwise::unary_vjp(g, *u, x(0), node, dy)?),
        Op::Binary(b) => elementwise::binary_vjp(g, *b, x(0), x(1), node, dy)?,
        Op::MatMul { ta, tb } => matmul::vjp(g, *ta, *tb, x(0), x(1), dy)?,
        Op::Reduce {
            kind,
            axes,
            keepdims,
        } => one(Some(reduce::vjp(
            g,
            *kind,
            axes,
            *keepdims,
            x(0),
            node,
            dy,
        )?)),
        Op::SumTo(_) => one(Some(g.push(Op::BroadcastTo(g.shape(x(0)).clone()), &[dy])?)),
        Op::BroadcastTo(_) => one(Some(g.push(Op::SumTo(g.shape(x(0)).clone()), &[dy])?)),
        Op::Reshape(_) => one(Some(
            g.push(Op::Reshape(g.shape(x(0)).dims.clone()), &[dy])?,
        )),
        Op::Transpose(perm) => one(Some(g.push(Op::Transpose(shape::inverse(perm)), &[dy])?)),
        Op::ToBatched => one(Some(g.push(Op::FromBatched(g.shape(x(0)).dims[0]), &[dy])?)),
        Op::FromBatched(_) => one(Some(g.push(Op::ToBatched, &[dy])?)),
        Op::Concat { axis } => concat::vjp_concat(g, *axis, &n.inputs, dy)?,
        Op::SliceAxis { axis, start, .. } => {
            one(Some(concat::vjp_slice(g, *axis, *start, x(0), dy)?))
        }
        Op::UnsliceAxis { axis, start, .. } => {
            one(Some(concat::vjp_unslice(g, *axis, *start, x(0), dy)?))
        }
        Op::Softmax => one(Some(g.push(Op::SoftmaxGrad, &[node, dy])?)),
        Op::TrainSelect => smallvec::smallvec![Some(dy), None],
        Op::Dropout { rate, key } => one(Some(g.push(
            Op::DropoutGrad {
                rate: *rate,
                key: *key,
            },
            &[dy],
        )?)),
        Op::TakeLast => {
            let dx = g.push(Op::ScatterLast(g.shape(x(0)).clone()), &[dy, x(1)])?;
            smallvec::smallvec![Some(dx), None]
        }
        // Gradients of gradients, and of piecewise-constant ops, are not needed: these ops
        // only appear in backward passes or in metrics.
        Op::UnaryGrad(_)
        | Op::SoftmaxGrad
        | Op::DropoutGrad { .. }
        | Op::ScatterLast(_)
        | Op::BroadcastMean(_) => {
            return crate::value_error!(
                "internal: second-order gradient of {:?} is not supported",
                n.op
            )
        }
        Op::ArgMax | Op::InTopK(_) => n.inputs.iter().map(|_| None).collect(),
        // recurrent family
        Op::Rnn(s) => recurrent::vjp(g, s, node, &n.inputs, dy)?,
        Op::RnnSlice(sl) => one(Some(
            g.push(Op::RnnUnslice(*sl, g.shape(x(0)).clone()), &[dy])?,
        )),
        Op::RnnUnslice(sl, _) => one(Some(g.push(Op::RnnSlice(*sl), &[dy])?)),
        Op::Gather => embedding::vjp(g, x(0), x(1), dy)?,
        Op::RnnGrad(_) | Op::RnnKernelGrad(_) | Op::ScatterAddRows(_) => {
            return crate::value_error!(
                "internal: second-order gradient of {:?} is not supported",
                n.op
            )
        }
        // convolution family
        Op::Conv(s) => conv::vjp(g, s, &n.inputs, dy)?,
        Op::Pool(s) => one(Some(g.push(Op::PoolGrad(s.clone()), &[x(0), dy])?)),
        Op::Pad(s) => pad::vjp_pad(g, s, dy)?,
        Op::UpSample(s) => pad::vjp_upsample(g, s, dy)?,
        Op::ConvGradInput(s, _) => conv::vjp_grad_input(g, s, x(0), x(1), dy)?,
        Op::ConvGradKernel(_) | Op::PoolGrad(_) => {
            return crate::value_error!(
                "internal: second-order gradient of {:?} is not supported",
                n.op
            )
        }
    })
}

/// Floats of scratch memory an op's kernel needs for these concrete shapes (0 for most ops).
/// The program plans one scratch buffer, the largest any step needs, and hands it to
/// every kernel, so that kernels with temporaries allocate nothing while running.
pub fn scratch_len(op: &Op, in_dims: &[&[usize]], out_dims: &[usize]) -> usize {
    match op {
        // convolution family
        Op::Conv(s) => conv::scratch_len(s, in_dims[0]),
        // The kernel gradient also keeps a second partial sum of the kernel's size.
        Op::ConvGradKernel(s) => {
            conv::scratch_len(s, in_dims[0]) + out_dims.iter().product::<usize>()
        }
        Op::ConvGradInput(s, _) => conv::scratch_len(s, out_dims),
        _ => 0,
    }
}

/// Runs one op's CPU kernel into `out` (which has exactly the output's element count);
/// `scratch` has at least [`scratch_len`] floats.
pub fn forward(
    op: &Op,
    ins: &[In<'_>],
    out: &mut [f32],
    out_dims: &[usize],
    scratch: &mut [f32],
    ctx: &Ctx,
) {
    match op {
        Op::Input(_) | Op::Param(_) => unreachable!("inputs and params are read in place"),
        Op::Scalar(v) => out[0] = *v,
        Op::Zeros => out.fill(0.0),
        Op::Unary(u) => elementwise::unary_forward(*u, ins[0].data, out),
        Op::UnaryGrad(u) => elementwise::unary_backward(*u, ins[0].data, ins[1].data, out),
        Op::Binary(b) => elementwise::binary_forward(*b, &ins[0], &ins[1], out, out_dims),
        Op::MatMul { ta, tb } => matmul::forward(*ta, *tb, &ins[0], &ins[1], out),
        Op::Reduce { kind, axes, .. } => reduce::forward(*kind, &ins[0], axes, out),
        Op::SumTo(_) => shape::sum_to(&ins[0], out, out_dims),
        Op::BroadcastTo(_) => shape::broadcast_to(&ins[0], out, out_dims),
        Op::BroadcastMean(_) => shape::broadcast_mean(&ins[0], out, out_dims),
        Op::Reshape(_) | Op::ToBatched | Op::FromBatched(_) => out.copy_from_slice(ins[0].data),
        Op::Transpose(perm) => shape::transpose(&ins[0], perm, out, out_dims),
        Op::Concat { axis } => concat::concat_forward(*axis, ins, out, out_dims),
        Op::SliceAxis { axis, start, .. } => {
            concat::slice_forward(*axis, *start, &ins[0], out, out_dims)
        }
        Op::UnsliceAxis { axis, start, .. } => {
            concat::unslice_forward(*axis, *start, &ins[0], out, out_dims)
        }
        Op::Softmax => softmax::forward(&ins[0], out),
        Op::TrainSelect => out.copy_from_slice(if ctx.training {
            ins[0].data
        } else {
            ins[1].data
        }),
        Op::SoftmaxGrad => softmax::backward(&ins[0], ins[1].data, out),
        Op::Dropout { rate, key } | Op::DropoutGrad { rate, key } => {
            random::dropout(ins[0].data, out, *rate, ctx, *key)
        }
        Op::ArgMax => index::argmax(&ins[0], out),
        Op::TakeLast => index::take_last(&ins[0], ins[1].data, out),
        Op::ScatterLast(_) => index::scatter_last(ins[0].data, ins[1].data, out, out_dims),
        Op::InTopK(k) => index::in_top_k(&ins[0], ins[1].data, *k, out),
        // recurrent family
        Op::Rnn(s) => recurrent::forward(s, ins, out),
        Op::RnnGrad(s) => recurrent::backward(s, ins, out),
        Op::RnnKernelGrad(s) => recurrent::kernel_grad(s, ins, out),
        Op::RnnSlice(sl) => recurrent::slice(sl, &ins[0], out),
        Op::RnnUnslice(sl, _) => recurrent::unslice(sl, ins[0].data, out, out_dims),
        Op::Gather => embedding::gather(&ins[0], ins[1].data, out),
        Op::ScatterAddRows(_) => {
            embedding::scatter_add_rows(ins[0].data, ins[1].data, out, out_dims)
        }
        // convolution family
        Op::Conv(s) => conv::forward(s, &ins[0], &ins[1], ins.get(2), out, scratch),
        Op::ConvGradInput(s, _) => conv::grad_input(s, &ins[0], &ins[1], out, out_dims, scratch),
        Op::ConvGradKernel(s) => conv::grad_kernel(s, &ins[0], &ins[1], out, out_dims, scratch),
        Op::Pool(s) => pool::forward(s, &ins[0], out),
        Op::PoolGrad(s) => pool::backward(s, &ins[0], &ins[1], out),
        Op::Pad(s) => pad::pad_forward(s, &ins[0], out, out_dims),
        Op::UpSample(s) => pad::upsample_forward(s, &ins[0], out, out_dims),
    }
}
