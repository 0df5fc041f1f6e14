//! [`Op`], the primitive ops as the graph holds them: one variant per op, with the fields
//! its shape rule, VJP and kernels read. Each variant's row in the op table (`ops/mod.rs`)
//! says where those live.

use smallvec::SmallVec;

use super::{conv, cumulative, norm, pad, pool, recurrent, BinaryOp, ReduceKind, UnaryOp};
use crate::graph::{Shape, VarId};

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The i-th fed tensor.
    Input(usize),
    /// A model variable, read in place from the variable store.
    Param(VarId),
    Scalar(f32),
    /// A tensor of zeros (the gradient of a node that does not depend on a variable).
    Zeros,
    /// Each element's index along `axis`, as f32 (a fixed node with an explicit shape; see
    /// [`crate::graph::Graph::iota`]).
    Iota {
        axis: usize,
    },
    Unary(UnaryOp),
    /// `dx = f'(x) * dy` with inputs `(x, dy)`.
    UnaryGrad(UnaryOp),
    Binary(BinaryOp),
    /// 2-D product over the last axis; see `matmul.rs` for the three supported forms.
    MatMul {
        ta: bool,
        tb: bool,
    },
    /// numpy's `matmul` of operands of rank >= 2, leading axes broadcast; see
    /// `batch_matmul.rs`.
    BatchMatMul {
        ta: bool,
        tb: bool,
    },
    Reduce {
        kind: ReduceKind,
        axes: SmallVec<[usize; 4]>,
        keepdims: bool,
    },
    /// The VJP of a product reduction: inputs `(x, dy)` with `dy` in the kept-dims shape,
    /// output shaped like `x`; exact where `x` holds zeros (see `reduce.rs`).
    ReduceProdGrad {
        axes: SmallVec<[usize; 4]>,
    },
    /// Cumulative sum or product along `axis` (counted with the batch axis as 0), from the
    /// end when `reverse`; see `cumulative.rs`.
    Cumulative {
        kind: cumulative::Cumulative,
        axis: usize,
        reverse: bool,
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
    /// `a` where `cond` is not zero, else `b`: inputs `(cond, a, b)`, broadcast together; see
    /// `select.rs`.
    Where,
    /// Index of the maximum along the last axis, as f32.
    ArgMax,
    /// `x[..., idx[...]]` over the last axis with inputs `(x, idx)`.
    TakeLast,
    /// The VJP of `TakeLast`: inputs `(dy, idx)`, output shaped like `x`.
    ScatterLast(Shape),
    /// 1.0 where `target` (an index) is among the top-k of `pred` along the last axis.
    InTopK(usize),
    /// Indices (as f32) of the `k` largest entries along the last axis, largest first, ties
    /// to the lower index, NaN counted as the largest; see `index.rs`.
    TopKIndices(usize),
    /// `out[.., j] = x[.., idx[.., j]]` over the last axis with inputs `(x, idx)`, `idx`
    /// having `x`'s leading axes (numpy's `take_along_axis`); see `take.rs`.
    TakeAlong,
    /// The VJP of `TakeAlong`: inputs `(dy, idx)`, output shaped like `x`.
    ScatterAlong(Shape),
    /// numpy's `take(x, idx, axis)` with inputs `(x, idx)` (axis counted with the batch axis
    /// as 0); see `take.rs` for the batched and fixed forms it supports.
    Take {
        axis: usize,
    },
    /// The VJP of `Take`: inputs `(dy, idx)`, `dy` scatter-added into zeros of `x`'s shape.
    TakeGrad {
        axis: usize,
        shape: Shape,
    },
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
    /// `Conv` followed by a ReLU, applied as the output is stored (a layer's
    /// `activation='relu'`).
    ConvRelu(conv::ConvSpec),
    /// The input gradient of `Conv`: inputs `(dy, kernel)`, output shaped like `x`.
    ConvGradInput(conv::ConvSpec, Shape),
    /// The kernel gradient of `Conv`: inputs `(x, dy)`.
    ConvGradKernel(conv::ConvSpec),
    /// Max or average pooling; `PoolGrad` takes `(x, dy)`.
    Pool(pool::PoolSpec),
    PoolGrad(pool::PoolSpec),
    /// `PoolGrad` of a pooling whose input `x` is a ReLU's output, times the ReLU's gradient
    /// `x > 0` in the same pass: inputs `(x, dy)` (see `pool::relu_through_pool`).
    PoolReluGrad(pool::PoolSpec),
    // normalization family
    /// The biased variance per channel of `x` around `mean`: inputs `(x, mean)`, channel
    /// `axis` counted with the batch axis as 0; see `norm.rs`.
    Variance {
        axis: usize,
    },
    /// Batch normalization: inputs `(x, mean, var, [gamma], [beta])`; see `norm.rs`.
    BatchNorm(norm::NormSpec),
    /// `Σ dy · x̂` per channel: inputs `(x, mean, var, dy)`.
    BatchNormSums(norm::NormSpec),
    /// The input gradient of `BatchNorm`: inputs `(x, mean, var, dy, [gamma], [sum_dy,
    /// sum_dy_xhat])`.
    BatchNormGrad(norm::NormSpec),
    /// Zero padding (positive amounts) and cropping (negative amounts) of spatial axes.
    Pad(pad::PadSpec),
    /// Nearest-neighbour upsampling of spatial axes.
    UpSample(pad::UpSampleSpec),
}
