//! `rustkeras._core.Graph`: the builder layers call to add their nodes and variables.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::graph::{Graph, NodeId, Shape, VarId};
use crate::ops::{Op, UnaryOp};

pub(crate) fn node_check(g: &Graph, n: NodeId) -> PyResult<()> {
    if n >= g.nodes.len() {
        return Err(PyValueError::new_err(format!(
            "node {n} does not exist in this graph"
        )));
    }
    Ok(())
}

#[pyclass(name = "Graph", module = "rustkeras._core")]
pub struct PyGraph {
    g: Option<Graph>,
}

impl PyGraph {
    pub(crate) fn graph(&mut self) -> PyResult<&mut Graph> {
        self.g
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("this graph was already turned into a model"))
    }

    /// Takes the graph out (into a model); the Python object cannot be extended afterwards.
    pub(crate) fn take(&mut self) -> PyResult<Graph> {
        self.g
            .take()
            .ok_or_else(|| PyValueError::new_err("this graph was already turned into a model"))
    }
}

#[pymethods]
impl PyGraph {
    #[new]
    fn new() -> Self {
        PyGraph {
            g: Some(Graph::new()),
        }
    }

    /// Tags the nodes added from now on with a layer's name (None clears it), so that an
    /// error about an op can name the layer.
    #[pyo3(signature = (name=None))]
    fn set_scope(&mut self, name: Option<&str>) -> PyResult<()> {
        self.graph()?.set_scope(name);
        Ok(())
    }

    /// A batched input with per-sample `dims`.
    fn input(&mut self, dims: Vec<usize>) -> PyResult<NodeId> {
        let shape = Shape::batched(&dims);
        crate::graph::addressable(&shape, &|| "An input".to_string())?;
        Ok(self.graph()?.input(shape))
    }

    fn variable(&mut self, shape: Vec<usize>) -> PyResult<(VarId, NodeId)> {
        crate::graph::addressable(&Shape::fixed(&shape), &|| "A weight".to_string())?;
        let g = self.graph()?;
        let v = g.declare_var(&shape);
        Ok((v, g.param(v)))
    }

    /// The node reading a variable declared before (a layer called again reuses its weights).
    fn param(&mut self, var: VarId) -> PyResult<NodeId> {
        let g = self.graph()?;
        if var >= g.var_shapes.len() {
            return Err(PyValueError::new_err(format!(
                "variable {var} does not exist"
            )));
        }
        Ok(g.param(var))
    }

    /// Joins `nodes` along `axis` (counted with the batch axis as 0).
    fn concat(&mut self, nodes: Vec<NodeId>, axis: usize) -> PyResult<NodeId> {
        let g = self.graph()?;
        for &n in &nodes {
            node_check(g, n)?;
        }
        Ok(g.push(Op::Concat { axis }, &nodes)?)
    }

    /// `len` entries of `axis` (counted with the batch axis as 0) from `start`.
    fn slice_axis(&mut self, x: NodeId, axis: usize, start: usize, len: usize) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.push(Op::SliceAxis { axis, start, len }, &[x])?)
    }

    /// A node's shape as `(batched, dims)`: whether it has a leading batch axis, and its
    /// per-sample dims (the batch axis left out).
    fn shape_of(&mut self, node: NodeId) -> PyResult<(bool, Vec<usize>)> {
        let g = self.graph()?;
        node_check(g, node)?;
        let s = g.shape(node);
        Ok((s.batched, s.dims.clone()))
    }

    /// `x` broadcast numpy-style to per-sample `dims`, with a batch axis in front when
    /// `batched` (a fixed node may broadcast to a batched shape, not the reverse). Its
    /// gradient sums back to `x`'s shape.
    #[pyo3(signature = (x, dims, batched=false))]
    fn broadcast_to(&mut self, x: NodeId, dims: Vec<usize>, batched: bool) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.push(Op::BroadcastTo(Shape { batched, dims }), &[x])?)
    }

    /// Per-sample dims of a node (the batch axis left out).
    fn dims(&mut self, node: NodeId) -> PyResult<Vec<usize>> {
        let g = self.graph()?;
        node_check(g, node)?;
        Ok(g.shape(node).dims.clone())
    }

    #[pyo3(signature = (a, b, ta=false, tb=false))]
    fn matmul(&mut self, a: NodeId, b: NodeId, ta: bool, tb: bool) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.matmul(a, b, ta, tb)?)
    }

    /// numpy's `matmul` for operands of rank >= 2 (counting the batch axis): `(..., m, k) @
    /// (..., k, n) -> (..., m, n)`, leading axes broadcast numpy-style; `ta`/`tb` transpose
    /// the last two axes of `a`/`b`. Covers Keras' `batch_dot` (both batched), a batched
    /// tensor times a weight of any rank, and a batched `(B, k)` times a `(k, n)` weight. The
    /// batch axis must stay first in the result and cannot be contracted (ValueError).
    #[pyo3(signature = (a, b, ta=false, tb=false))]
    fn batch_matmul(&mut self, a: NodeId, b: NodeId, ta: bool, tb: bool) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.push(Op::BatchMatMul { ta, tb }, &[a, b])?)
    }

    fn add(&mut self, a: NodeId, b: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.add(a, b)?)
    }

    fn mul(&mut self, a: NodeId, b: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.mul(a, b)?)
    }

    /// A named activation (`relu`, `softmax`, ...).
    fn activation(&mut self, x: NodeId, name: &str) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(crate::activations::apply(g, name, x)?)
    }

    /// A unary op by name, with its parameter where it has one: `leaky_relu` (slope), `elu`
    /// (alpha), `scale` (factor), `add_scalar`, `clip` (min, max), `pow` (exponent, numpy's
    /// float power); arithmetic (`neg`, `square`, `sqrt`, `reciprocal`, `exp`, `log`, `abs`,
    /// `sign`, `log1p`, `expm1`, `sin`, `cos`); rounding (`round` half to even, `floor`,
    /// `ceil`, `trunc`); `logical_not` (1.0 where x == 0, else 0.0); and every activation's
    /// function (`relu`, `sigmoid`, `tanh`, `softplus`, ...). Rounding, `sign` and
    /// `logical_not` pass no gradient.
    #[pyo3(signature = (x, kind, param=0.0, param2=0.0))]
    fn unary(&mut self, x: NodeId, kind: &str, param: f32, param2: f32) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        let u = match kind {
            "leaky_relu" => UnaryOp::LeakyRelu(param),
            "elu" => UnaryOp::Elu(param),
            "scale" => UnaryOp::Scale(param),
            "add_scalar" => UnaryOp::AddScalar(param),
            "clip" => UnaryOp::Clip(param, param2),
            "neg" => UnaryOp::Neg,
            "square" => UnaryOp::Square,
            "sqrt" => UnaryOp::Sqrt,
            "reciprocal" => UnaryOp::Reciprocal,
            "exp" => UnaryOp::Exp,
            "log" => UnaryOp::Log,
            "abs" => UnaryOp::Abs,
            "sign" => UnaryOp::Sign,
            "round" => UnaryOp::Round,
            "floor" => UnaryOp::Floor,
            "ceil" => UnaryOp::Ceil,
            "trunc" => UnaryOp::Trunc,
            "log1p" => UnaryOp::Log1p,
            "expm1" => UnaryOp::Expm1,
            "sin" => UnaryOp::Sin,
            "cos" => UnaryOp::Cos,
            "pow" => UnaryOp::PowScalar(param),
            "logical_not" => UnaryOp::LogicalNot,
            // Activation names; an unknown name gets this op's message, not the activations'.
            other => match crate::activations::unary_of(other) {
                Ok(Some(u)) => u,
                _ => return Err(PyValueError::new_err(format!("unknown unary op '{other}'"))),
            },
        };
        Ok(g.unary(u, x)?)
    }

    fn sub(&mut self, a: NodeId, b: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.sub(a, b)?)
    }

    fn div(&mut self, a: NodeId, b: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.div(a, b)?)
    }

    /// An elementwise binary op by name, broadcasting as numpy does: "maximum", "minimum",
    /// "pow" (numpy's float power), "mod" (numpy's `%`: the remainder takes the divisor's
    /// sign), "floor_divide" (numpy's `//`), and the comparisons "equal", "not_equal",
    /// "greater", "greater_equal", "less", "less_equal" (1.0 or 0.0). Comparisons and
    /// "floor_divide" pass no gradient.
    fn binary(&mut self, a: NodeId, b: NodeId, kind: &str) -> PyResult<NodeId> {
        use crate::ops::BinaryOp;
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        let op = match kind {
            "maximum" => BinaryOp::Maximum,
            "minimum" => BinaryOp::Minimum,
            "pow" => BinaryOp::Pow,
            "mod" => BinaryOp::FloorMod,
            "floor_divide" => BinaryOp::FloorDiv,
            "equal" => BinaryOp::Equal,
            "not_equal" => BinaryOp::NotEqual,
            "greater" => BinaryOp::Greater,
            "greater_equal" => BinaryOp::GreaterEqual,
            "less" => BinaryOp::Less,
            "less_equal" => BinaryOp::LessEqual,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown binary op '{other}'"
                )))
            }
        };
        Ok(g.binary(op, a, b)?)
    }

    /// `kind` is "sum", "mean", "max", "min" or "prod"; axes count the batch axis as 0 (reducing
    /// it gives a fixed node). NaN propagates through every kind. Max and min send the
    /// gradient to every element equal to the result; prod's gradient is the product of the
    /// other elements (exact where some are zero).
    #[pyo3(signature = (x, kind, axes, keepdims=false))]
    fn reduce(
        &mut self,
        x: NodeId,
        kind: &str,
        axes: Vec<usize>,
        keepdims: bool,
    ) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        let k = match kind {
            "sum" => crate::ops::ReduceKind::Sum,
            "mean" => crate::ops::ReduceKind::Mean,
            "max" => crate::ops::ReduceKind::Max,
            "min" => crate::ops::ReduceKind::Min,
            "prod" => crate::ops::ReduceKind::Prod,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown reduction '{other}'"
                )))
            }
        };
        let mut axes = axes;
        axes.sort_unstable();
        axes.dedup();
        Ok(g.reduce(k, x, &axes, keepdims)?)
    }

    /// numpy's `where(cond, a, b)`: `a` where `cond` is not zero (NaN counts as true), else
    /// `b`, the three broadcast together (batched if any is). The gradient flows to `a` and
    /// `b` where each is picked, never to `cond`.
    #[pyo3(name = "where")]
    fn where_(&mut self, cond: NodeId, a: NodeId, b: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        for n in [cond, a, b] {
            node_check(g, n)?;
        }
        Ok(g.push(Op::Where, &[cond, a, b])?)
    }

    /// numpy's `cumsum` (`kind` "sum") or `cumprod` ("prod") along `axis` (counted with the
    /// batch axis as 0, which it may be), accumulating from the end when `reverse`. The
    /// product's gradient divides by the input: NaN or infinite where an input is zero.
    #[pyo3(signature = (x, kind, axis, reverse=false))]
    fn cumulative(
        &mut self,
        x: NodeId,
        kind: &str,
        axis: usize,
        reverse: bool,
    ) -> PyResult<NodeId> {
        use crate::ops::cumulative::Cumulative;
        let g = self.graph()?;
        node_check(g, x)?;
        let kind = match kind {
            "sum" => Cumulative::Sum,
            "prod" => Cumulative::Prod,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown cumulative op '{other}': expected 'sum' or 'prod'"
                )))
            }
        };
        Ok(g.push(
            Op::Cumulative {
                kind,
                axis,
                reverse,
            },
            &[x],
        )?)
    }

    /// Indices (as floats) of the `k` largest entries along the last axis, largest first, ties
    /// to the lower index (`numpy.argsort(-x, kind="stable")[..., :k]`), NaN counted as larger
    /// than every number. Shaped like `x` with `k` as its last axis; no gradient.
    fn top_k_indices(&mut self, x: NodeId, k: usize) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.push(Op::TopKIndices(k), &[x])?)
    }

    /// numpy's `take_along_axis(x, idx, -1)`: `out[..., j] = x[..., idx[..., j]]`. `idx` has
    /// `x`'s batchedness and leading axes and any last length; the result is shaped like
    /// `idx`. Negative indices count from the end; an index that is not a whole number in
    /// `[-n, n)` gives NaN (and a NaN gradient row). The gradient flows to `x` only.
    fn take_along(&mut self, x: NodeId, idx: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        node_check(g, idx)?;
        Ok(g.push(Op::TakeAlong, &[x, idx])?)
    }

    /// numpy's `take(x, idx, axis)`: shaped `x.shape[:axis] + idx.shape + x.shape[axis+1:]`,
    /// `axis` counted with the batch axis as 0. Supported: a fixed `x` with fixed indices
    /// (any axis) or batched indices (axis 0; the result is batched), and a batched `x` with
    /// fixed indices along an axis >= 1. Negative indices count from the end; an index that
    /// is not a whole number in `[-n, n)` gives NaN entries and a NaN gradient. The gradient
    /// flows to `x` only.
    #[pyo3(name = "take")]
    fn take_(&mut self, x: NodeId, idx: NodeId, axis: usize) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        node_check(g, idx)?;
        Ok(g.push(Op::Take { axis }, &[x, idx])?)
    }

    /// Batch normalization of `x` over every axis but `axis` (counted with the batch axis as
    /// 0) with the batch's own moments, scaled by `gamma` and shifted by `beta` where given:
    /// `(y, mean, var)`, the variance biased.
    #[pyo3(signature = (x, axis, epsilon, gamma=None, beta=None))]
    fn batch_norm_train(
        &mut self,
        x: NodeId,
        axis: usize,
        epsilon: f32,
        gamma: Option<NodeId>,
        beta: Option<NodeId>,
    ) -> PyResult<(NodeId, NodeId, NodeId)> {
        let g = self.graph()?;
        for n in [Some(x), gamma, beta].into_iter().flatten() {
            node_check(g, n)?;
        }
        Ok(crate::ops::norm::batch_norm_train(
            g, x, axis, epsilon, gamma, beta,
        )?)
    }

    /// Batch normalization of `x` over every axis but `axis` with given statistics (`mean`
    /// and `var`, vectors over that axis).
    #[pyo3(signature = (x, mean, var, axis, epsilon, gamma=None, beta=None))]
    #[allow(clippy::too_many_arguments)]
    fn batch_norm(
        &mut self,
        x: NodeId,
        mean: NodeId,
        var: NodeId,
        axis: usize,
        epsilon: f32,
        gamma: Option<NodeId>,
        beta: Option<NodeId>,
    ) -> PyResult<NodeId> {
        let g = self.graph()?;
        for n in [Some(x), Some(mean), Some(var), gamma, beta]
            .into_iter()
            .flatten()
        {
            node_check(g, n)?;
        }
        let stats = crate::ops::norm::Stats::Given;
        Ok(crate::ops::norm::batch_norm(
            g, x, mean, var, axis, epsilon, stats, gamma, beta,
        )?)
    }

    /// `a` while training, `b` at inference.
    fn train_select(&mut self, a: NodeId, b: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.push(Op::TrainSelect, &[a, b])?)
    }

    /// After each training step, `var = momentum * var + (1 - momentum) * value`.
    fn add_update(&mut self, var: VarId, value: NodeId, momentum: f32) -> PyResult<()> {
        let g = self.graph()?;
        node_check(g, value)?;
        if var >= g.var_shapes.len() {
            return Err(PyValueError::new_err(format!(
                "variable {var} does not exist"
            )));
        }
        Ok(g.add_update(var, value, momentum)?)
    }

    /// After every batch (training, evaluation, prediction), `var = value`: a stateful
    /// layer's carried state.
    fn add_assign(&mut self, var: VarId, value: NodeId) -> PyResult<()> {
        let g = self.graph()?;
        node_check(g, value)?;
        Ok(g.add_assign(var, value)?)
    }

    /// A fixed `(B, ..)` node read as a batch of B samples (planning for another batch size
    /// raises ValueError).
    fn as_batch(&mut self, x: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.push(Op::ToBatched, &[x])?)
    }

    /// A batched node stored as a fixed `(batch, ..)` tensor.
    fn as_fixed(&mut self, x: NodeId, batch: usize) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.push(Op::FromBatched(batch), &[x])?)
    }

    /// A node filled with `value`: fixed `dims`, or per sample when `batched`.
    #[pyo3(signature = (dims, value, batched=false))]
    fn constant(&mut self, dims: Vec<usize>, value: f32, batched: bool) -> PyResult<NodeId> {
        let g = self.graph()?;
        let shape = if batched {
            Shape::batched(&dims)
        } else {
            Shape::fixed(&dims)
        };
        let z = g.zeros(shape);
        Ok(if value == 0.0 {
            z
        } else {
            g.unary(UnaryOp::AddScalar(value), z)?
        })
    }

    /// A fixed node of `dims` holding each element's index along `axis` as a float (numpy's
    /// `arange` along one axis, broadcast along the others).
    fn iota(&mut self, dims: Vec<usize>, axis: usize) -> PyResult<NodeId> {
        Ok(self.graph()?.iota(&dims, axis)?)
    }

    /// Whether the node's per-sample shape has a batch axis.
    fn batched(&mut self, node: NodeId) -> PyResult<bool> {
        let g = self.graph()?;
        node_check(g, node)?;
        Ok(g.shape(node).batched)
    }

    fn dropout(&mut self, x: NodeId, rate: f32, key: u64) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.push(Op::Dropout { rate, key }, &[x])?)
    }

    /// Permutes the per-sample axes (`perm` excludes the batch axis).
    fn transpose(&mut self, x: NodeId, perm: Vec<usize>) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.push(Op::Transpose(perm), &[x])?)
    }

    fn reshape(&mut self, x: NodeId, dims: Vec<usize>) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.reshape(x, &dims)?)
    }

    /// The index of the largest entry along the last axis (as f32; the axis is dropped).
    fn argmax_last(&mut self, x: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, x)?;
        Ok(g.push(Op::ArgMax, &[x])?)
    }

    /// How many nodes the graph has (the id the next node gets).
    fn node_count(&mut self) -> PyResult<usize> {
        Ok(self.graph()?.nodes.len())
    }

    /// Whether nodes `a` and `b` compute the same thing: the same op on inputs that are the
    /// same nodes or compute the same thing (two traces of a layer that did not branch on
    /// `training`).
    fn equivalent(&mut self, a: NodeId, b: NodeId) -> PyResult<bool> {
        let g = self.graph()?;
        node_check(g, a)?;
        node_check(g, b)?;
        Ok(g.equivalent(a, b))
    }

    /// The per-sample value of the built-in loss `name` (Keras 3's formula, the last axis
    /// reduced) for `y_true` and `y_pred` nodes.
    fn loss(&mut self, name: &str, y_true: NodeId, y_pred: NodeId) -> PyResult<NodeId> {
        let g = self.graph()?;
        node_check(g, y_true)?;
        node_check(g, y_pred)?;
        Ok(crate::losses::build(g, name, y_true, y_pred)?)
    }
}
