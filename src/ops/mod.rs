//! The primitive ops. Each family file holds, side by side, an op's shape rule, its
//! vector-Jacobian product (which adds gradient nodes to the graph) and its CPU kernel.
//! Everything else (losses, metrics, activations with parameters, regularizers) is a
//! composition of these.
//!
//! # Where an op is registered
//!
//! Every [`Op`] variant (declared in `op.rs`) has exactly one row in the `op_table!` at the
//! end of this file. The row names, side by side, its shape rule, its VJP, the scratch floats
//! its CPU kernel needs (0 when the row leaves it out) and the kernel itself, so adding an op
//! is one variant and one row. The macro turns the rows into [`infer_shape`], [`vjp`], [`scratch_len`] and
//! [`forward`], each a plain `match` on `&Op` with one arm per row and no wildcard: a variant
//! without a row does not compile, and dispatch costs what a hand-written `match` costs (no
//! boxing, no function pointers, no allocation).
//!
//! Why a table and not a trait with one impl per op: `Op` is a plain enum that the graph
//! clones and compares and that the GPU device matches on in its own file
//! (`device/gpu/kernels.rs`), and a type per variant would duplicate it; a table of
//! function pointers would put an indirect call on every kernel launch. A row's pattern
//! binds the op's fields once for all four columns, which is what keeps each row short.
//!
//! ```
//! use rustkeras::graph::Shape;
//! use rustkeras::ops::{forward, infer_shape, scratch_len, Ctx, In, Op};
//! let x = Shape::batched(&[3]);
//! assert_eq!(infer_shape(&Op::Softmax, &[&x]).unwrap(), x);
//! // A batch of two rows of three: each row becomes (1/3, 1/3, 1/3).
//! let dims = [2, 3];
//! assert_eq!(scratch_len(&Op::Softmax, &[&dims], &dims), 0);
//! let mut out = [0.0; 6];
//! let ins = [In { data: &[5.0; 6], dims: &dims }];
//! forward(&Op::Softmax, &ins, &mut out, &dims, &mut [], &Ctx::default());
//! assert!(out.iter().all(|v| (v - 1.0 / 3.0).abs() < 1e-6));
//! ```

use smallvec::SmallVec;

use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

// Declared first: a `macro_rules!` macro is visible only below its module's declaration.
#[macro_use]
mod op_table;

// convolution family
pub mod conv;
pub mod pad;
pub mod pool;

pub mod batch_matmul;
pub mod concat;
pub mod cumulative;
pub mod elementwise;
pub mod index;
pub mod matmul;
pub mod norm;
mod op;
pub mod random;
pub mod reduce;
pub mod select;
pub mod shape;
pub(crate) mod smallgemm;
pub mod softmax;
pub mod take;
pub mod unary;
// recurrent family
pub mod embedding;
pub mod recurrent;

pub use elementwise::BinaryOp;
pub use op::Op;
pub use reduce::ReduceKind;
pub use unary::UnaryOp;

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

// The one place an op is registered: a row per `Op` variant, in the enum's order, with its
// shape rule, VJP, scratch floats (0 when absent) and CPU kernel. `names` spells the
// parameters of the four generated functions (for `vjp` also the node's `op` and inputs `x`),
// and the rows use those names; see `op_table.rs`.
op_table! {
    names {
        infer_shape(op, ins);
        vjp(g, node, dy; op, x);
        scratch_len(op, in_dims, out_dims);
        forward(op, ins, out, out_dims, scratch, ctx);
    }

    // core
    Op::Input(_) | Op::Param(_) => {
        infer: unreachable_shape(op),
        vjp: SmallVec::new(),
        cpu: unreachable!("inputs and params are read in place"),
    }
    Op::Scalar(v) => {
        infer: Ok(Shape::scalar()),
        vjp: SmallVec::new(),
        cpu: out[0] = *v,
    }
    Op::Zeros => {
        infer: unreachable_shape(op),
        vjp: SmallVec::new(),
        cpu: out.fill(0.0),
    }
    Op::Iota { axis } => {
        infer: unreachable_shape(op),
        vjp: SmallVec::new(),
        cpu: index::iota(*axis, out, out_dims),
    }
    Op::Unary(u) => {
        infer: Ok(ins[0].clone()),
        vjp: one(unary::unary_vjp(g, *u, x[0], node, dy)?),
        cpu: unary::unary_forward(*u, ins[0].data, out),
    }
    Op::UnaryGrad(u) => {
        infer: elementwise::same_shape("unary gradient", ins[0], ins[1]),
        vjp: no_second_order(op)?,
        cpu: unary::unary_backward(*u, ins[0].data, ins[1].data, out),
    }
    Op::Binary(b) => {
        infer: elementwise::broadcast_shape(ins[0], ins[1]),
        vjp: elementwise::binary_vjp(g, *b, x[0], x[1], node, dy)?,
        cpu: elementwise::binary_forward(*b, &ins[0], &ins[1], out, out_dims),
    }
    Op::MatMul { ta, tb } => {
        infer: matmul::infer(*ta, *tb, ins[0], ins[1]),
        vjp: matmul::vjp(g, *ta, *tb, x[0], x[1], dy)?,
        scratch: matmul::scratch_len(*ta, *tb, in_dims[0], in_dims[1]),
        cpu: matmul::forward(*ta, *tb, &ins[0], &ins[1], out, scratch),
    }
    Op::BatchMatMul { ta, tb } => {
        infer: batch_matmul::infer(*ta, *tb, ins[0], ins[1]),
        vjp: batch_matmul::vjp(g, *ta, *tb, x[0], x[1], dy)?,
        cpu: batch_matmul::forward(*ta, *tb, &ins[0], &ins[1], out, out_dims),
    }
    Op::Reduce { kind, axes, keepdims } => {
        infer: reduce::infer(ins[0], axes, *keepdims),
        vjp: one(Some(reduce::vjp(g, *kind, axes, *keepdims, x[0], node, dy)?)),
        cpu: reduce::forward(*kind, &ins[0], axes, out),
    }
    Op::ReduceProdGrad { axes } => {
        infer: reduce::infer_prod_grad(ins[0], ins[1], axes),
        vjp: no_second_order(op)?,
        scratch: in_dims[1].iter().product(),
        cpu: reduce::prod_grad(&ins[0], ins[1].data, axes, out, scratch),
    }
    Op::Cumulative { kind, axis, reverse } => {
        infer: cumulative::infer(ins[0], *axis),
        vjp: one(Some(cumulative::vjp(g, *kind, *axis, *reverse, x[0], node, dy)?)),
        cpu: cumulative::forward(*kind, *axis, *reverse, &ins[0], out),
    }
    Op::SumTo(s) => {
        infer: shape::infer_to(op, ins[0], s),
        vjp: one(Some(g.push(Op::BroadcastTo(g.shape(x[0]).clone()), &[dy])?)),
        scratch: shape::sum_to_scratch(in_dims[0], out_dims),
        cpu: shape::sum_to(&ins[0], out, out_dims, scratch),
    }
    Op::BroadcastTo(s) => {
        infer: shape::infer_to(op, ins[0], s),
        vjp: one(Some(g.push(Op::SumTo(g.shape(x[0]).clone()), &[dy])?)),
        cpu: shape::broadcast_to(&ins[0], out, out_dims),
    }
    Op::BroadcastMean(s) => {
        infer: shape::infer_to(op, ins[0], s),
        vjp: no_second_order(op)?,
        cpu: shape::broadcast_mean(&ins[0], out, out_dims),
    }
    Op::Reshape(dims) => {
        infer: shape::infer_reshape(ins[0], dims),
        vjp: one(Some(g.push(Op::Reshape(g.shape(x[0]).dims.clone()), &[dy])?)),
        cpu: out.copy_from_slice(ins[0].data),
    }
    Op::Transpose(perm) => {
        infer: shape::infer_transpose(ins[0], perm),
        vjp: one(Some(g.push(Op::Transpose(shape::inverse(perm)), &[dy])?)),
        cpu: shape::transpose(&ins[0], perm, out, out_dims),
    }
    Op::ToBatched => {
        infer: shape::infer_to_batched(ins[0]),
        vjp: one(Some(g.push(Op::FromBatched(g.shape(x[0]).dims[0]), &[dy])?)),
        cpu: out.copy_from_slice(ins[0].data),
    }
    Op::FromBatched(b) => {
        infer: shape::infer_from_batched(ins[0], *b),
        vjp: one(Some(g.push(Op::ToBatched, &[dy])?)),
        cpu: out.copy_from_slice(ins[0].data),
    }
    Op::Concat { axis } => {
        infer: concat::infer_concat(*axis, ins),
        vjp: concat::vjp_concat(g, *axis, x, dy)?,
        cpu: concat::concat_forward(*axis, ins, out, out_dims),
    }
    Op::SliceAxis { axis, start, len } => {
        infer: concat::infer_slice(*axis, *start, *len, ins[0]),
        vjp: one(Some(concat::vjp_slice(g, *axis, *start, x[0], dy)?)),
        cpu: concat::slice_forward(*axis, *start, &ins[0], out, out_dims),
    }
    Op::UnsliceAxis { axis, start, full } => {
        infer: concat::infer_unslice(*axis, *start, *full, ins[0]),
        vjp: one(Some(concat::vjp_unslice(g, *axis, *start, x[0], dy)?)),
        cpu: concat::unslice_forward(*axis, *start, &ins[0], out, out_dims),
    }
    Op::Softmax => {
        infer: softmax::infer(ins[0]),
        vjp: one(Some(g.push(Op::SoftmaxGrad, &[node, dy])?)),
        cpu: softmax::forward(&ins[0], out),
    }
    Op::SoftmaxGrad => {
        infer: elementwise::same_shape("softmax gradient", ins[0], ins[1]),
        vjp: no_second_order(op)?,
        cpu: softmax::backward(&ins[0], ins[1].data, out),
    }
    Op::Dropout { rate, key } => {
        infer: Ok(ins[0].clone()),
        vjp: one(Some(g.push(Op::DropoutGrad { rate: *rate, key: *key }, &[dy])?)),
        cpu: random::dropout(ins[0].data, out, *rate, ctx, *key),
    }
    // The same kernel as `Dropout`: it regenerates the mask and applies it to `dy`.
    Op::DropoutGrad { rate, key } => {
        infer: Ok(ins[0].clone()),
        vjp: no_second_order(op)?,
        cpu: random::dropout(ins[0].data, out, *rate, ctx, *key),
    }
    Op::TrainSelect => {
        infer: elementwise::same_shape("train/inference select", ins[0], ins[1]),
        vjp: smallvec::smallvec![Some(dy), None],
        cpu: out.copy_from_slice(if ctx.training { ins[0].data } else { ins[1].data }),
    }
    Op::Where => {
        infer: select::infer(ins[0], ins[1], ins[2]),
        vjp: select::vjp(g, x[0], x[1], x[2], dy)?,
        cpu: select::forward(&ins[0], &ins[1], &ins[2], out, out_dims),
    }
    // Piecewise constant, used in metrics only: no input gets a gradient.
    Op::ArgMax => {
        infer: index::infer_argmax(ins[0]),
        vjp: x.iter().map(|_| None).collect(),
        cpu: index::argmax(&ins[0], out),
    }
    Op::TakeLast => {
        infer: index::infer_take(ins[0], ins[1]),
        vjp: {
            let dx = g.push(Op::ScatterLast(g.shape(x[0]).clone()), &[dy, x[1]])?;
            smallvec::smallvec![Some(dx), None]
        },
        cpu: index::take_last(&ins[0], ins[1].data, out),
    }
    Op::ScatterLast(s) => {
        infer: Ok(s.clone()),
        vjp: no_second_order(op)?,
        cpu: index::scatter_last(ins[0].data, ins[1].data, out, out_dims),
    }
    // Piecewise constant, used in metrics only: no input gets a gradient.
    Op::InTopK(k) => {
        infer: index::infer_take(ins[0], ins[1]),
        vjp: x.iter().map(|_| None).collect(),
        cpu: index::in_top_k(&ins[0], ins[1].data, *k, out),
    }
    Op::TopKIndices(k) => {
        infer: index::infer_top_k(ins[0], *k),
        vjp: one(None),
        scratch: *in_dims[0].last().expect("rank checked at build"),
        cpu: index::top_k_indices(&ins[0], *k, out, scratch),
    }
    Op::TakeAlong => {
        infer: take::infer_take_along(ins[0], ins[1]),
        vjp: {
            let dx = g.push(Op::ScatterAlong(g.shape(x[0]).clone()), &[dy, x[1]])?;
            smallvec::smallvec![Some(dx), None]
        },
        cpu: take::take_along(&ins[0], &ins[1], out),
    }
    Op::ScatterAlong(s) => {
        infer: Ok(s.clone()),
        vjp: no_second_order(op)?,
        cpu: take::scatter_along(ins[0].data, &ins[1], out, out_dims),
    }
    Op::Take { axis } => {
        infer: take::infer_take(ins[0], ins[1], *axis),
        vjp: take::take_vjp(g, *axis, x[0], x[1], dy)?,
        cpu: take::take(&ins[0], ins[1].data, *axis, out),
    }
    Op::TakeGrad { axis, shape } => {
        infer: Ok(shape.clone()),
        vjp: no_second_order(op)?,
        cpu: take::take_grad(ins[0].data, ins[1].data, *axis, out, out_dims),
    }

    // recurrent family
    Op::Rnn(s) => {
        infer: recurrent::infer(s, ins),
        vjp: recurrent::vjp(g, s, node, x, dy)?,
        cpu: recurrent::forward(s, ins, out),
    }
    Op::RnnGrad(s) => {
        infer: recurrent::infer_grad(s, ins),
        vjp: no_second_order(op)?,
        cpu: recurrent::backward(s, ins, out),
    }
    Op::RnnKernelGrad(s) => {
        infer: recurrent::infer_kernel_grad(s),
        vjp: no_second_order(op)?,
        cpu: recurrent::kernel_grad(s, ins, out),
    }
    Op::RnnSlice(sl) => {
        infer: recurrent::infer_slice(sl, ins[0]),
        vjp: one(Some(g.push(Op::RnnUnslice(*sl, g.shape(x[0]).clone()), &[dy])?)),
        cpu: recurrent::slice(sl, &ins[0], out),
    }
    Op::RnnUnslice(sl, s) => {
        infer: Ok(s.clone()),
        vjp: one(Some(g.push(Op::RnnSlice(*sl), &[dy])?)),
        cpu: recurrent::unslice(sl, ins[0].data, out, out_dims),
    }
    Op::Gather => {
        infer: embedding::infer(ins[0], ins[1]),
        vjp: embedding::vjp(g, x[0], x[1], dy)?,
        cpu: embedding::gather(&ins[0], ins[1].data, out),
    }
    Op::ScatterAddRows(s) => {
        infer: Ok(s.clone()),
        vjp: no_second_order(op)?,
        cpu: embedding::scatter_add_rows(ins[0].data, ins[1].data, out, out_dims),
    }

    // convolution family
    Op::Conv(s) => {
        infer: conv::infer(s, ins[0], ins[1], ins.get(2).copied()),
        vjp: conv::vjp(g, s, x, dy)?,
        scratch: conv::forward_scratch_len(s, in_dims[0], in_dims[1]),
        cpu: conv::forward(s, &ins[0], &ins[1], ins.get(2), out, scratch, false),
    }
    // The ReLU's gradient reads the output: it is positive exactly where the input was.
    Op::ConvRelu(s) => {
        infer: conv::infer(s, ins[0], ins[1], ins.get(2).copied()),
        vjp: {
            let dz = match pool::relu_through_pool(g, node, dy)? {
                Some(dz) => dz,
                None => g.push(Op::UnaryGrad(UnaryOp::Relu), &[node, dy])?,
            };
            conv::vjp(g, s, x, dz)?
        },
        scratch: conv::forward_scratch_len(s, in_dims[0], in_dims[1]),
        cpu: conv::forward(s, &ins[0], &ins[1], ins.get(2), out, scratch, true),
    }
    Op::ConvGradInput(s, x_shape) => {
        infer: conv::infer_grad_input(s, x_shape, ins[0], ins[1]),
        vjp: conv::vjp_grad_input(g, s, x[0], x[1], dy)?,
        scratch: conv::grad_input_scratch_len(s, out_dims, in_dims[1]),
        cpu: conv::grad_input(s, &ins[0], &ins[1], out, out_dims, scratch),
    }
    Op::ConvGradKernel(s) => {
        infer: conv::infer_grad_kernel(s, ins[0], ins[1]),
        vjp: no_second_order(op)?,
        scratch: conv::grad_kernel_scratch_len(s, in_dims[0], out_dims),
        cpu: conv::grad_kernel(s, &ins[0], &ins[1], out, out_dims, scratch),
    }
    Op::Pool(s) => {
        infer: pool::infer(s, ins[0]),
        vjp: one(Some(g.push(Op::PoolGrad(s.clone()), &[x[0], dy])?)),
        cpu: pool::forward(s, &ins[0], out),
    }
    Op::PoolGrad(s) => {
        infer: pool::infer_grad(s, ins[0], ins[1]),
        vjp: no_second_order(op)?,
        cpu: pool::backward(s, &ins[0], &ins[1], out, false),
    }
    Op::PoolReluGrad(s) => {
        infer: pool::infer_grad(s, ins[0], ins[1]),
        vjp: no_second_order(op)?,
        cpu: pool::backward(s, &ins[0], &ins[1], out, true),
    }
    // normalization family
    Op::Variance { axis } => {
        infer: norm::infer_variance(*axis, ins[0], ins[1]),
        vjp: norm::variance_vjp(g, *axis, x[0], x[1], dy)?,
        scratch: norm::sums_scratch_len(in_dims[0], *axis),
        cpu: norm::variance(*axis, &ins[0], ins[1].data, out, scratch),
    }
    Op::BatchNorm(s) => {
        infer: norm::infer_norm(s, ins),
        vjp: norm::norm_vjp(g, s, x, dy)?,
        scratch: norm::coef_scratch_len(in_dims[0], s.axis),
        cpu: norm::forward(s, ins, out, scratch),
    }
    Op::BatchNormSums(s) => {
        infer: norm::infer_sums(s, ins),
        vjp: no_second_order(op)?,
        scratch: norm::sums_scratch_len(in_dims[0], s.axis),
        cpu: norm::sums(s, ins, out, scratch),
    }
    Op::BatchNormGrad(s) => {
        infer: norm::infer_grad(s, ins),
        vjp: no_second_order(op)?,
        scratch: norm::coef_scratch_len(in_dims[0], s.axis),
        cpu: norm::backward(s, ins, out, scratch),
    }
    Op::Pad(s) => {
        infer: pad::infer_pad(s, ins[0]),
        vjp: pad::vjp_pad(g, s, dy)?,
        cpu: pad::pad_forward(s, &ins[0], out, out_dims),
    }
    Op::UpSample(s) => {
        infer: pad::infer_upsample(s, ins[0]),
        vjp: pad::vjp_upsample(g, s, dy)?,
        cpu: pad::upsample_forward(s, &ins[0], out, out_dims),
    }
}

fn unreachable_shape(op: &Op) -> Result<Shape> {
    crate::value_error!("internal: {op:?} nodes are created with an explicit shape")
}

/// The VJP of an op that only backward passes create (a gradient's gradient): nothing asks
/// for it, so it is an internal error rather than a rule to maintain.
fn no_second_order(op: &Op) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    crate::value_error!("internal: second-order gradient of {op:?} is not supported")
}

/// The gradients of a one-input op.
fn one(dx: Option<NodeId>) -> SmallVec<[Option<NodeId>; 3]> {
    smallvec::smallvec![dx]
}
