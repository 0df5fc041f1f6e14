//! The symbolic graph that layers build once and programs replay.
//!
//! A node's shape has a dynamic batch dimension: `Shape { batched: true, dims: [784] }` is
//! `(batch, 784)`. The batch size is bound only when a [`crate::program::Program`] is planned,
//! so one graph serves every batch size. Nodes are appended in topological order by
//! construction: a node's inputs always have smaller ids.
//!
//! ```
//! use rustkeras::graph::{Graph, Shape};
//! use rustkeras::ops::UnaryOp;
//! let mut g = Graph::new();
//! let x = g.input(Shape::batched(&[3]));
//! let y = g.unary(UnaryOp::Relu, x).unwrap();
//! assert_eq!(g.shape(y), &Shape::batched(&[3]));
//! ```

use smallvec::{smallvec, SmallVec};

use crate::error::Result;
use crate::ops::{self, BinaryOp, Op, ReduceKind, UnaryOp};

pub type NodeId = usize;
pub type VarId = usize;

/// A shape whose leading batch dimension (when `batched`) is bound at planning time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub batched: bool,
    pub dims: Vec<usize>,
}

impl Shape {
    pub fn batched(dims: &[usize]) -> Shape {
        Shape {
            batched: true,
            dims: dims.to_vec(),
        }
    }
    pub fn fixed(dims: &[usize]) -> Shape {
        Shape {
            batched: false,
            dims: dims.to_vec(),
        }
    }
    pub fn scalar() -> Shape {
        Shape::fixed(&[])
    }
    /// Rank including the batch axis.
    pub fn rank(&self) -> usize {
        self.dims.len() + usize::from(self.batched)
    }
    /// The concrete dimensions for a batch size.
    pub fn concrete(&self, batch: usize) -> Vec<usize> {
        let mut d = Vec::with_capacity(self.rank());
        if self.batched {
            d.push(batch);
        }
        d.extend_from_slice(&self.dims);
        d
    }
    pub fn numel(&self, batch: usize) -> usize {
        self.dims.iter().product::<usize>() * if self.batched { batch } else { 1 }
    }
    /// Last dimension (the feature axis); `None` for a scalar.
    pub fn last(&self) -> Option<usize> {
        self.dims.last().copied()
    }
    /// Values per sample (per tensor when not batched), or None when the count overflows or
    /// exceeds what one buffer can address.
    pub fn sample_count(&self) -> Option<usize> {
        crate::memory::count(&self.dims).filter(|&c| c <= isize::MAX as usize / 4)
    }

    /// Keras-style display: `(None, 784)`.
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.batched {
            parts.push("None".into());
        }
        parts.extend(self.dims.iter().map(|d| d.to_string()));
        if parts.len() == 1 {
            format!("({},)", parts[0])
        } else {
            format!("({})", parts.join(", "))
        }
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: SmallVec<[NodeId; 3]>,
    pub shape: Shape,
    /// The layer that built the node (see [`Graph::set_scope`]), for error messages.
    pub scope: Option<std::sync::Arc<str>>,
}

/// A variable moved toward a computed value after each batch:
/// `var = momentum * var + (1 - momentum) * value` (BatchNormalization's moving statistics,
/// after training steps only), or with `momentum` 0 set to it (a stateful recurrent layer's
/// state, after every batch: `always`).
#[derive(Clone, Debug, PartialEq)]
pub struct StateUpdate {
    pub var: VarId,
    pub value: NodeId,
    pub momentum: f32,
    /// Also after evaluation and prediction batches, not only training steps.
    pub always: bool,
}

impl StateUpdate {
    /// Applies the update to the variable's values.
    pub fn apply(&self, var: &mut [f32], value: &[f32]) {
        if self.momentum == 0.0 {
            var.copy_from_slice(value);
        } else {
            let m = self.momentum;
            for (v, &x) in var.iter_mut().zip(value) {
                *v = m * *v + (1.0 - m) * x;
            }
        }
    }
}

/// Nodes in topological order, plus the shapes of the variables they read.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// Moving averages applied after every training step.
    pub updates: Vec<StateUpdate>,
    /// Shape of each variable a `Param` node may refer to.
    pub var_shapes: Vec<Vec<usize>>,
    n_inputs: usize,
    /// The name new nodes are tagged with.
    scope: Option<std::sync::Arc<str>>,
}

/// A memory error when one sample of `shape` holds more values than a buffer can address
/// (products of dimensions are then unsafe to compute): every node's shape is checked, so shape
/// arithmetic on any node's dimensions cannot overflow.
pub fn addressable(shape: &Shape, what: &dyn Fn() -> String) -> Result<()> {
    match shape.sample_count() {
        Some(_) => Ok(()),
        None => Err(crate::error::Error::Memory(format!(
            "{} has shape {}: more values per sample than memory can address",
            what(),
            shape.display()
        ))),
    }
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Tags the nodes pushed from now on with a layer name (`None` clears it), so that an
    /// error about a node (an op a device lacks) can name the layer that built it.
    pub fn set_scope(&mut self, scope: Option<&str>) {
        self.scope = scope.map(std::sync::Arc::from);
    }

    pub fn shape(&self, id: NodeId) -> &Shape {
        &self.nodes[id].shape
    }

    pub fn num_inputs(&self) -> usize {
        self.n_inputs
    }

    /// Appends a node after inferring (and so validating) its shape.
    pub fn push(&mut self, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        if let Some(&i) = inputs
            .iter()
            .find(|&&i| i < self.nodes.len() && self.nodes[i].shape.dims.contains(&0))
        {
            return crate::value_error!(
                "{op:?}: zero-size axes are not supported, received shape {}",
                self.nodes[i].shape.display()
            );
        }
        if let Some(&bad) = inputs.iter().find(|&&i| i >= self.nodes.len()) {
            return crate::value_error!("internal: node {bad} does not exist");
        }
        let shapes: SmallVec<[&Shape; 3]> = inputs.iter().map(|&i| &self.nodes[i].shape).collect();
        let shape = ops::infer_shape(&op, &shapes)?;
        drop(shapes);
        addressable(&shape, &|| format!("the output of {op:?}"))?;
        self.nodes.push(Node {
            op,
            inputs: inputs.iter().copied().collect(),
            shape,
            scope: self.scope.clone(),
        });
        Ok(self.nodes.len() - 1)
    }

    fn push_unchecked(&mut self, op: Op, shape: Shape) -> NodeId {
        self.nodes.push(Node {
            op,
            inputs: smallvec![],
            shape,
            scope: self.scope.clone(),
        });
        self.nodes.len() - 1
    }

    /// A fed tensor; inputs are numbered in the order they are declared.
    pub fn input(&mut self, shape: Shape) -> NodeId {
        let index = self.n_inputs;
        self.n_inputs += 1;
        self.push_unchecked(Op::Input(index), shape)
    }

    /// Declares a variable of a fixed shape and returns its id (the model owns its values).
    pub fn declare_var(&mut self, shape: &[usize]) -> VarId {
        self.var_shapes.push(shape.to_vec());
        self.var_shapes.len() - 1
    }

    /// The node reading variable `var`; a variable has one node, so gradients with respect to
    /// it collect every use.
    pub fn param(&mut self, var: VarId) -> NodeId {
        if let Some(id) = self.nodes.iter().position(|n| n.op == Op::Param(var)) {
            return id;
        }
        let shape = Shape::fixed(&self.var_shapes[var]);
        self.push_unchecked(Op::Param(var), shape)
    }

    pub fn zeros(&mut self, shape: Shape) -> NodeId {
        self.push_unchecked(Op::Zeros, shape)
    }

    /// A fixed node of `dims` holding each element's index along `axis` (numpy's
    /// `arange(dims[axis])` broadcast along the other axes).
    pub fn iota(&mut self, dims: &[usize], axis: usize) -> Result<NodeId> {
        if axis >= dims.len() || dims.contains(&0) {
            return crate::value_error!(
                "iota: expected a non-empty shape and an axis inside it, received dims {dims:?} and axis {axis}"
            );
        }
        Ok(self.push_unchecked(Op::Iota { axis }, Shape::fixed(dims)))
    }

    pub fn scalar(&mut self, value: f32) -> NodeId {
        self.push_unchecked(Op::Scalar(value), Shape::scalar())
    }

    pub fn unary(&mut self, op: UnaryOp, x: NodeId) -> Result<NodeId> {
        self.push(Op::Unary(op), &[x])
    }

    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.push(Op::Binary(op), &[a, b])
    }

    pub fn add(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Add, a, b)
    }
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Sub, a, b)
    }
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Mul, a, b)
    }
    pub fn div(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Div, a, b)
    }
    pub fn scale(&mut self, x: NodeId, factor: f32) -> Result<NodeId> {
        self.unary(UnaryOp::Scale(factor), x)
    }

    pub fn matmul(&mut self, a: NodeId, b: NodeId, ta: bool, tb: bool) -> Result<NodeId> {
        self.push(Op::MatMul { ta, tb }, &[a, b])
    }

    /// Reduction over `axes`, counted on the full rank (axis 0 is the batch axis when batched).
    pub fn reduce(
        &mut self,
        kind: ReduceKind,
        x: NodeId,
        axes: &[usize],
        keepdims: bool,
    ) -> Result<NodeId> {
        self.push(
            Op::Reduce {
                kind,
                axes: axes.iter().copied().collect(),
                keepdims,
            },
            &[x],
        )
    }

    /// Reduction over the last axis.
    pub fn reduce_last(&mut self, kind: ReduceKind, x: NodeId, keepdims: bool) -> Result<NodeId> {
        let r = self.shape(x).rank();
        if r == 0 {
            return crate::value_error!("cannot reduce the last axis of a scalar");
        }
        self.reduce(kind, x, &[r - 1], keepdims)
    }

    /// Reduction over every axis to a scalar.
    pub fn reduce_all(&mut self, kind: ReduceKind, x: NodeId) -> Result<NodeId> {
        let axes: Vec<usize> = (0..self.shape(x).rank()).collect();
        self.reduce(kind, x, &axes, false)
    }

    /// Records that training moves `var` toward `value` (same element count) each step.
    pub fn add_update(&mut self, var: VarId, value: NodeId, momentum: f32) -> Result<()> {
        self.push_update(var, value, momentum, false)
    }

    /// Records that `var` takes the value `value` after every batch, in training, evaluation
    /// and prediction alike (a stateful layer's carried state).
    pub fn add_assign(&mut self, var: VarId, value: NodeId) -> Result<()> {
        self.push_update(var, value, 0.0, true)
    }

    fn push_update(
        &mut self,
        var: VarId,
        value: NodeId,
        momentum: f32,
        always: bool,
    ) -> Result<()> {
        if var >= self.var_shapes.len() {
            return crate::value_error!("state update: variable {var} does not exist");
        }
        let n: usize = self.var_shapes[var].iter().product();
        let s = self.shape(value);
        if s.batched || s.dims.iter().product::<usize>() != n {
            return crate::value_error!(
                "state update: value of shape {} does not fit variable {var} of shape {:?}",
                s.display(),
                self.var_shapes[var]
            );
        }
        self.updates.push(StateUpdate {
            var,
            value,
            momentum,
            always,
        });
        Ok(())
    }

    pub fn reshape(&mut self, x: NodeId, dims: &[usize]) -> Result<NodeId> {
        self.push(Op::Reshape(dims.to_vec()), &[x])
    }

    /// Whether nodes `a` and `b` compute the same value: the same node, or the same op and
    /// shape on inputs that are equivalent in turn. Inputs and variables are equivalent only
    /// to themselves.
    pub fn equivalent(&self, a: NodeId, b: NodeId) -> bool {
        let mut memo = std::collections::HashMap::new();
        self.equivalent_memo(a, b, &mut memo)
    }

    fn equivalent_memo(
        &self,
        a: NodeId,
        b: NodeId,
        memo: &mut std::collections::HashMap<(NodeId, NodeId), bool>,
    ) -> bool {
        if a == b {
            return true;
        }
        if let Some(&r) = memo.get(&(a, b)) {
            return r;
        }
        let (na, nb) = (&self.nodes[a], &self.nodes[b]);
        let leaf = matches!(na.op, Op::Input(_) | Op::Param(_));
        let r = !leaf
            && na.op == nb.op
            && na.shape == nb.shape
            && na.inputs.len() == nb.inputs.len()
            && na
                .inputs
                .iter()
                .zip(&nb.inputs)
                .all(|(&x, &y)| self.equivalent_memo(x, y, memo));
        memo.insert((a, b), r);
        r
    }

    /// Copies the nodes of `frag` that `output` needs into this graph, with `frag`'s input k
    /// read from `inputs[k]` and its variable v from this graph's variable `vars[v]`; returns
    /// the node of `output`. Shapes are inferred again, so a fragment traced for other input
    /// shapes is a value error. (A custom loss or metric, traced in Python on its own graph,
    /// joins the training graph this way.)
    pub fn inline(
        &mut self,
        frag: &Graph,
        inputs: &[NodeId],
        vars: &[VarId],
        output: NodeId,
    ) -> Result<NodeId> {
        if output >= frag.nodes.len() {
            return crate::value_error!("inline: node {output} does not exist in the fragment");
        }
        let mut map = vec![usize::MAX; output + 1];
        for (i, n) in frag.nodes.iter().enumerate().take(output + 1) {
            map[i] = match n.op {
                Op::Input(k) => {
                    let Some(&x) = inputs.get(k) else {
                        return crate::value_error!(
                            "inline: the fragment reads input {k}, but {} inputs were given",
                            inputs.len()
                        );
                    };
                    if self.shape(x) != &n.shape {
                        return crate::value_error!(
                            "inline: input {k} has shape {}, the fragment was traced for {}",
                            self.shape(x).display(),
                            n.shape.display()
                        );
                    }
                    x
                }
                Op::Param(v) => match vars.get(v) {
                    Some(&mv) if mv < self.var_shapes.len() => self.param(mv),
                    _ => {
                        return crate::value_error!(
                            "inline: fragment variable {v} has no variable of this graph"
                        )
                    }
                },
                _ if n.inputs.is_empty() => self.push_unchecked(n.op.clone(), n.shape.clone()),
                _ => {
                    let ins: SmallVec<[NodeId; 3]> = n.inputs.iter().map(|&j| map[j]).collect();
                    self.push(n.op.clone(), &ins)?
                }
            };
        }
        Ok(map[output])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_nodes_are_the_same_op_on_equivalent_inputs() {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[3]));
        let a = g.unary(UnaryOp::Relu, x).unwrap();
        let b = g.unary(UnaryOp::Relu, x).unwrap();
        let a2 = g.scale(a, 2.0).unwrap();
        let b2 = g.scale(b, 2.0).unwrap();
        let c2 = g.scale(b, 3.0).unwrap();
        assert!(g.equivalent(a2, b2));
        assert!(!g.equivalent(a2, c2));
        let y = g.input(Shape::batched(&[3]));
        assert!(!g.equivalent(x, y), "two inputs are never the same value");
    }

    #[test]
    fn inline_copies_a_fragment_onto_given_inputs_and_variables() {
        // Fragment: mean((a - b)^2 * w) over the last axis, w a variable.
        let mut f = Graph::new();
        let a = f.input(Shape::batched(&[2]));
        let b = f.input(Shape::batched(&[2]));
        let w = f.declare_var(&[2]);
        let wn = f.param(w);
        let d = f.sub(a, b).unwrap();
        let sq = f.unary(UnaryOp::Square, d).unwrap();
        let wsq = f.mul(sq, wn).unwrap();
        let out = f.reduce_last(ReduceKind::Mean, wsq, false).unwrap();

        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[2]));
        let y = g.input(Shape::batched(&[2]));
        let v = g.declare_var(&[2]);
        let o = g.inline(&f, &[x, y], &[v], out).unwrap();
        assert_eq!(g.shape(o), &Shape::batched(&[]));
        let mut p = crate::program::Program::plan(&g, &[o], 2).unwrap();
        let xs = [1.0, 2.0, 3.0, 4.0];
        let ys = [0.0, 0.0, 1.0, 1.0];
        let ws = [1.0, 0.5];
        p.run(&[&ws], &[&xs, &ys], &crate::ops::Ctx::default())
            .unwrap();
        assert_eq!(
            p.read(o),
            vec![(1.0 + 0.5 * 4.0) / 2.0, (4.0 + 0.5 * 9.0) / 2.0]
        );
        // Inputs of other shapes than the fragment was traced for are refused.
        let z = g.input(Shape::batched(&[3]));
        assert!(g.inline(&f, &[z, z], &[v], out).is_err());
    }
}
