//! A planned graph: the schedule of the nodes an output needs, the concrete shapes for one
//! batch size, and buffer slots assigned by liveness so that a node's buffer is reused once
//! its last reader has run. Slots are allocated at planning time, and so is one scratch
//! buffer, as large as the largest temporary any step's kernel needs (im2col columns, for
//! instance); running a program allocates nothing.

use smallvec::SmallVec;

use crate::error::Result;
use crate::graph::{Graph, NodeId, VarId};
use crate::ops::{Ctx, In, Op};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    Unused,
    Feed(usize),
    Var(VarId),
    Slot(usize),
}

struct Step {
    node: NodeId,
    op: Op,
    inputs: SmallVec<[NodeId; 3]>,
}

pub struct Program {
    batch: usize,
    steps: Vec<Step>,
    loc: Vec<Loc>,
    dims: Vec<Vec<usize>>,
    slots: Vec<Vec<f32>>,
    scratch: Vec<f32>,
    feed_lens: Vec<usize>,
}

impl Program {
    /// Plans the nodes that `outputs` need for `batch` rows.
    pub fn plan(g: &Graph, outputs: &[NodeId], batch: usize) -> Result<Program> {
        let n = g.nodes.len();
        let mut needed = vec![false; n];
        for &o in outputs {
            needed[o] = true;
        }
        for i in (0..n).rev() {
            if needed[i] {
                for &j in &g.nodes[i].inputs {
                    needed[j] = true;
                }
            }
        }
        let dims: Vec<Vec<usize>> = g.nodes.iter().map(|nd| nd.shape.concrete(batch)).collect();
        let mut last_use = vec![0usize; n];
        for (i, node) in g.nodes.iter().enumerate().filter(|&(i, _)| needed[i]) {
            for &j in &node.inputs {
                last_use[j] = i;
            }
        }
        for &o in outputs {
            last_use[o] = usize::MAX;
        }
        let mut feed_lens = vec![0; g.num_inputs()];
        let mut loc = vec![Loc::Unused; n];
        let mut slot_len: Vec<usize> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut steps = Vec::new();
        let mut scratch_len = 0;
        for i in 0..n {
            if !needed[i] {
                continue;
            }
            let node = &g.nodes[i];
            let in0 = node.inputs.first().map(|&j| g.shape(j));
            if let Some(b) = crate::ops::shape::fixed_batch(&node.op, in0) {
                if b != batch {
                    return crate::value_error!(
                        "a stateful layer was built for batch size {b}, but received a batch of {batch} samples: use batch_size={b} and a number of samples divisible by {b}"
                    );
                }
            }
            match node.op {
                Op::Input(k) => {
                    loc[i] = Loc::Feed(k);
                    feed_lens[k] = node.shape.numel(batch);
                }
                Op::Param(v) => loc[i] = Loc::Var(v),
                _ => {
                    let len = node.shape.numel(batch);
                    // Best fit among free slots; grow the largest one if none is big enough.
                    let pick = free
                        .iter()
                        .enumerate()
                        .filter(|(_, &s)| slot_len[s] >= len)
                        .min_by_key(|(_, &s)| slot_len[s])
                        .map(|(k, _)| k)
                        .or_else(|| (0..free.len()).max_by_key(|&k| slot_len[free[k]]));
                    let s = match pick {
                        Some(k) => free.swap_remove(k),
                        None => {
                            slot_len.push(0);
                            slot_len.len() - 1
                        }
                    };
                    slot_len[s] = slot_len[s].max(len);
                    loc[i] = Loc::Slot(s);
                    let in_dims: SmallVec<[&[usize]; 3]> =
                        node.inputs.iter().map(|&j| dims[j].as_slice()).collect();
                    scratch_len =
                        scratch_len.max(crate::ops::scratch_len(&node.op, &in_dims, &dims[i]));
                    steps.push(Step {
                        node: i,
                        op: node.op.clone(),
                        inputs: node.inputs.clone(),
                    });
                    for &j in &node.inputs {
                        if last_use[j] == i {
                            if let Loc::Slot(sj) = loc[j] {
                                if !free.contains(&sj) {
                                    free.push(sj);
                                }
                            }
                        }
                    }
                }
            }
        }
        let slots = slot_len.iter().map(|&l| vec![0.0f32; l]).collect();
        Ok(Program {
            batch,
            steps,
            loc,
            dims,
            slots,
            scratch: vec![0.0; scratch_len],
            feed_lens,
        })
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn num_slots(&self) -> usize {
        self.slots.len()
    }

    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }

    /// Runs every step. `feeds[i]` holds input i for this batch size; `vars[v]` variable v.
    pub fn run(&mut self, vars: &[Vec<f32>], feeds: &[&[f32]], ctx: &Ctx) -> Result<()> {
        for (k, &len) in self.feed_lens.iter().enumerate() {
            let got = feeds.get(k).map(|f| f.len());
            if len > 0 && got != Some(len) {
                return crate::value_error!(
                    "input {k}: expected {len} values for batch {}, got {got:?}",
                    self.batch
                );
            }
        }
        for step in &self.steps {
            let Loc::Slot(o) = self.loc[step.node] else {
                unreachable!("steps write slots")
            };
            let mut out = std::mem::take(&mut self.slots[o]);
            {
                let ins: SmallVec<[In<'_>; 3]> = step
                    .inputs
                    .iter()
                    .map(|&j| In {
                        data: value(&self.loc, &self.slots, &self.dims, vars, feeds, j),
                        dims: &self.dims[j],
                    })
                    .collect();
                let len = self.dims[step.node].iter().product();
                ctx.device.run_op(
                    &step.op,
                    &ins,
                    &mut out[..len],
                    &self.dims[step.node],
                    &mut self.scratch,
                    ctx,
                );
            }
            self.slots[o] = out;
        }
        Ok(())
    }

    /// The value of a computed node after `run`.
    pub fn value(&self, node: NodeId) -> &[f32] {
        match self.loc[node] {
            Loc::Slot(s) => &self.slots[s][..self.dims[node].iter().product()],
            other => panic!("node {node} is not computed by this program ({other:?})"),
        }
    }

    pub fn dims(&self, node: NodeId) -> &[usize] {
        &self.dims[node]
    }

    /// Mutable views of several computed outputs at once (e.g. gradients for the optimizer).
    /// The nodes must be distinct outputs of the plan, which gives each its own slot.
    pub fn values_mut<'a>(&'a mut self, nodes: &[NodeId], out: &mut SmallVec<[&'a mut [f32]; 32]>) {
        let mut seen: SmallVec<[usize; 32]> = SmallVec::new();
        let base = self.slots.as_mut_ptr();
        for &node in nodes {
            let Loc::Slot(s) = self.loc[node] else {
                panic!("node {node} is not computed by this program")
            };
            assert!(!seen.contains(&s), "values_mut: two nodes share slot {s}");
            seen.push(s);
            let len: usize = self.dims[node].iter().product();
            // SAFETY: `s` is in bounds (assigned by `plan`) and distinct from every slot
            // handed out before in this call, so the mutable borrows are disjoint; they live
            // as long as the exclusive borrow of `self`.
            let v: &'a mut Vec<f32> = unsafe { &mut *base.add(s) };
            out.push(&mut v[..len]);
        }
    }
}

fn value<'a>(
    loc: &[Loc],
    slots: &'a [Vec<f32>],
    dims: &[Vec<usize>],
    vars: &'a [Vec<f32>],
    feeds: &[&'a [f32]],
    node: NodeId,
) -> &'a [f32] {
    let len: usize = dims[node].iter().product();
    match loc[node] {
        Loc::Slot(s) => &slots[s][..len],
        Loc::Feed(k) => feeds[k],
        Loc::Var(v) => &vars[v],
        Loc::Unused => unreachable!("planned nodes all have a location"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Shape;
    use crate::ops::UnaryOp;

    #[test]
    fn a_chain_reuses_two_buffers() {
        let mut g = Graph::new();
        let mut x = g.input(Shape::batched(&[8]));
        for _ in 0..10 {
            x = g.unary(UnaryOp::Tanh, x).unwrap();
        }
        let p = Program::plan(&g, &[x], 4).unwrap();
        assert_eq!(p.num_steps(), 10);
        assert_eq!(p.num_slots(), 2);
    }

    #[test]
    fn outputs_keep_their_buffers_and_values() {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[2]));
        let a = g.unary(UnaryOp::Scale(2.0), x).unwrap();
        let b = g.unary(UnaryOp::AddScalar(1.0), a).unwrap();
        let c = g.unary(UnaryOp::Neg, b).unwrap();
        let mut p = Program::plan(&g, &[a, c], 2).unwrap();
        let ctx = Ctx {
            device: crate::device::Device::Cpu,
            training: false,
            seed: 0,
            step: 0,
        };
        p.run(&[], &[&[1.0, 2.0, 3.0, 4.0]], &ctx).unwrap();
        assert_eq!(p.value(a), &[2.0, 4.0, 6.0, 8.0]);
        assert_eq!(p.value(c), &[-3.0, -5.0, -7.0, -9.0]);
    }

    #[test]
    fn a_wrong_feed_size_is_an_error() {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[2]));
        let y = g.unary(UnaryOp::Relu, x).unwrap();
        let mut p = Program::plan(&g, &[y], 3).unwrap();
        let ctx = Ctx {
            device: crate::device::Device::Cpu,
            training: false,
            seed: 0,
            step: 0,
        };
        assert!(p.run(&[], &[&[1.0; 4]], &ctx).is_err());
    }

    #[test]
    fn shapes_are_inferred_with_a_dynamic_batch() {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[784]));
        let w = g.declare_var(&[784, 32]);
        let w = g.param(w);
        let y = g.matmul(x, w, false, false).unwrap();
        assert_eq!(g.shape(y), &Shape::batched(&[32]));
        let s = g.reduce_all(crate::ops::ReduceKind::Mean, y).unwrap();
        assert_eq!(g.shape(s), &Shape::scalar());
        let bad = g.declare_var(&[10, 3]);
        let bad = g.param(bad);
        assert!(g.matmul(x, bad, false, false).is_err());
        for b in [1, 32, 128] {
            assert_eq!(Program::plan(&g, &[y], b).unwrap().dims(y), &[b, 32]);
        }
    }
}
