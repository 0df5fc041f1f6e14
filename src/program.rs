//! A planned graph: the schedule of the nodes an output needs, the concrete shapes for one
//! batch size, and buffer slots assigned by liveness so that a node's buffer is reused once
//! its last reader has run. Slots are allocated at planning time, and so is one scratch
//! buffer, as large as the largest temporary any step's kernel needs (im2col columns, for
//! instance); running a program allocates nothing.
//!
//! A program owns its memory on its device: on the CPU, host vectors; on the GPU, one arena
//! buffer whose aligned ranges are the slots, a buffer per fed input, and every step recorded
//! as dispatches against those buffers and the model's variable buffers (see `device::gpu`).

use std::sync::Arc;

use smallvec::SmallVec;

use crate::device::gpu::{GpuBuffer, GpuContext, GpuSteps, Recorder, RunCtx};
use crate::device::Device;
use crate::error::Result;
use crate::graph::{Graph, NodeId, VarId};
use crate::ops::{Ctx, In, Op};
use crate::tensor::Tensor;

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
    feed_lens: Vec<usize>,
    mem: Memory,
}

/// A program's buffers on its device.
enum Memory {
    Cpu {
        slots: Vec<Vec<f32>>,
        scratch: Vec<f32>,
    },
    Gpu(GpuMemory),
}

/// On the GPU: slots as aligned ranges of one arena, a buffer per feed, and the recorded
/// dispatches of every step.
struct GpuMemory {
    ctx: Arc<GpuContext>,
    slots: Vec<GpuBuffer>,
    feeds: Vec<GpuBuffer>,
    steps: GpuSteps,
}

/// What planning decides before any memory exists.
struct Layout {
    steps: Vec<Step>,
    loc: Vec<Loc>,
    dims: Vec<Vec<usize>>,
    slot_len: Vec<usize>,
    scratch_len: usize,
    feed_lens: Vec<usize>,
}

impl Program {
    /// Plans the nodes that `outputs` need for `batch` rows, on the CPU.
    pub fn plan(g: &Graph, outputs: &[NodeId], batch: usize) -> Result<Program> {
        Program::plan_on(g, outputs, batch, None, &Device::Cpu, &[])
    }

    /// Plans for `batch` rows on `dev`. On the GPU, every step is recorded against the
    /// variables' buffers `vars` (which must stay alive and in place while the program is
    /// used); on the CPU `vars` is not needed and variables are passed to `run`.
    ///
    /// `training` is the mode every run of the program will use, where the caller knows it
    /// (a model's training, evaluation and prediction programs): then each
    /// [`Op::TrainSelect`] is planned as the branch that mode picks, and the other branch is
    /// not computed at all (batch normalization's inference arithmetic in training, its batch
    /// statistics in prediction); dropout at inference is its input, not a copy. With `None` the choice is made at run time from the run's
    /// context, and both branches run.
    pub fn plan_on(
        g: &Graph,
        outputs: &[NodeId],
        batch: usize,
        training: Option<bool>,
        dev: &Device,
        vars: &[&Tensor],
    ) -> Result<Program> {
        let l = layout(g, outputs, batch, training)?;
        let mem = match dev {
            Device::Cpu => {
                let what = || {
                    format!("The activations of a batch of {batch} samples (argument `batch_size`)")
                };
                let all =
                    l.slot_len.iter().map(|&n| n as u128).sum::<u128>() + l.scratch_len as u128;
                crate::memory::check(all, &what)?;
                Memory::Cpu {
                    slots: l
                        .slot_len
                        .iter()
                        .map(|&n| crate::memory::zeros(n, &what))
                        .collect::<Result<_>>()?,
                    scratch: crate::memory::zeros(l.scratch_len, &what)?,
                }
            }
            Device::Gpu(ctx) => Memory::Gpu(record(ctx, g, &l, vars)?),
        };
        Ok(Program {
            batch,
            steps: l.steps,
            loc: l.loc,
            dims: l.dims,
            feed_lens: l.feed_lens,
            mem,
        })
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn num_slots(&self) -> usize {
        match &self.mem {
            Memory::Cpu { slots, .. } => slots.len(),
            Memory::Gpu(m) => m.slots.len(),
        }
    }

    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }

    pub fn is_gpu(&self) -> bool {
        matches!(self.mem, Memory::Gpu(_))
    }

    /// Checks that `feeds` has the values each input needs for this batch size.
    pub fn check_feeds(&self, feeds: &[&[f32]]) -> Result<()> {
        for (k, &len) in self.feed_lens.iter().enumerate() {
            let got = feeds.get(k).map(|f| f.len());
            if len > 0 && got != Some(len) {
                return crate::value_error!(
                    "input {k}: expected {len} values for batch {}, got {got:?}",
                    self.batch
                );
            }
        }
        Ok(())
    }

    /// Runs every step. `feeds[i]` holds input i for this batch size; `vars[v]` variable v
    /// (host values; unused on the GPU, whose steps were recorded against the variables'
    /// buffers). On the GPU the feeds are uploaded and the steps submitted; results stay on
    /// the device until read.
    pub fn run(&mut self, vars: &[&[f32]], feeds: &[&[f32]], ctx: &Ctx) -> Result<()> {
        self.check_feeds(feeds)?;
        match &mut self.mem {
            Memory::Cpu { slots, scratch } => {
                run_cpu(
                    &self.steps,
                    &self.loc,
                    &self.dims,
                    slots,
                    scratch,
                    vars,
                    feeds,
                    ctx,
                );
            }
            Memory::Gpu(m) => {
                for ((b, f), &len) in m.feeds.iter().zip(feeds).zip(&self.feed_lens) {
                    if len > 0 {
                        m.ctx.write(b, &f[..len]);
                    }
                }
                let mut enc = m.ctx.encoder();
                m.steps.encode(&m.ctx, &run_ctx(ctx), &mut enc);
                m.ctx.submit(enc);
            }
        }
        Ok(())
    }

    /// Encodes the steps into `enc` (GPU programs; the caller has filled the feed buffers).
    pub fn encode(&self, enc: &mut wgpu::CommandEncoder, ctx: &Ctx) {
        if let Memory::Gpu(m) = &self.mem {
            m.steps.encode(&m.ctx, &run_ctx(ctx), enc);
        }
    }

    /// The device buffer input `k` is read from (GPU programs).
    pub fn feed_buffer(&self, k: usize) -> Option<&GpuBuffer> {
        match &self.mem {
            Memory::Gpu(m) => m.feeds.get(k),
            Memory::Cpu { .. } => None,
        }
    }

    /// The value of a computed node after `run` (CPU programs; see [`Program::read`]).
    pub fn value(&self, node: NodeId) -> &[f32] {
        match (&self.mem, self.loc[node]) {
            (Memory::Cpu { slots, .. }, Loc::Slot(s)) => {
                &slots[s][..self.dims[node].iter().product()]
            }
            (Memory::Gpu(_), _) => {
                panic!("node {node}: a GPU program's values are read with `read`")
            }
            (_, other) => panic!("node {node} is not computed by this program ({other:?})"),
        }
    }

    /// The device buffer holding a computed node's value (GPU programs).
    pub fn gpu_value(&self, node: NodeId) -> Option<GpuBuffer> {
        match (&self.mem, self.loc[node]) {
            (Memory::Gpu(m), Loc::Slot(s)) => {
                Some(m.slots[s].view(0, self.dims[node].iter().product()))
            }
            _ => None,
        }
    }

    /// A computed node's value, copied to the host (from either device).
    pub fn read(&self, node: NodeId) -> Vec<f32> {
        match &self.mem {
            Memory::Cpu { .. } => self.value(node).to_vec(),
            Memory::Gpu(m) => {
                let b = self.gpu_value(node).expect("a computed node");
                m.ctx.read(&b, b.len())
            }
        }
    }

    /// The device's pending error, if any (GPU programs; see `GpuContext::check`).
    pub fn check(&self) -> Result<()> {
        match &self.mem {
            Memory::Cpu { .. } => Ok(()),
            Memory::Gpu(m) => m.ctx.check(),
        }
    }

    pub fn dims(&self, node: NodeId) -> &[usize] {
        &self.dims[node]
    }

    /// Mutable views of several computed outputs at once (e.g. gradients for the optimizer).
    /// The nodes must be distinct outputs of the plan, which gives each its own slot.
    pub fn values_mut<'a>(&'a mut self, nodes: &[NodeId], out: &mut SmallVec<[&'a mut [f32]; 32]>) {
        let Memory::Cpu { slots, .. } = &mut self.mem else {
            panic!("values_mut: a GPU program's values stay on the device")
        };
        let mut seen: SmallVec<[usize; 32]> = SmallVec::new();
        let base = slots.as_mut_ptr();
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

fn run_ctx(ctx: &Ctx) -> RunCtx {
    RunCtx {
        training: ctx.training,
        seed: ctx.seed,
        step: ctx.step,
        ..RunCtx::default()
    }
}

/// The node with the most elements among those needed, and the elements of all of them
/// together (u128 and saturating, so that no shape a user can declare overflows it): a bound on
/// what the slots will hold, checked before anything is planned or allocated.
fn activation_sizes(g: &Graph, needed: &[bool], dims: &[Vec<usize>]) -> (usize, u128) {
    let mut largest = (0, 0u128);
    let mut total = 0u128;
    for i in (0..g.nodes.len()).filter(|&i| needed[i]) {
        if matches!(g.nodes[i].op, Op::Param(_)) {
            continue;
        }
        let c = dims[i]
            .iter()
            .fold(1u128, |a, &d| a.saturating_mul(d as u128));
        total = total.saturating_add(c);
        if c > largest.1 {
            largest = (i, c);
        }
    }
    (largest.0, total)
}

/// For each node, the node whose value it is: itself, or for a [`Op::TrainSelect`] planned
/// in a known mode, the branch that mode picks (followed through nested selects), and for
/// dropout planned for inference, its input. A branch
/// that is a fed input or a variable keeps its select as a step (a copy), so that every
/// aliased node lives in a slot like any computed node.
fn resolve_selects(g: &Graph, training: Option<bool>) -> Vec<NodeId> {
    select_branches(g, training, true)
}

/// [`resolve_selects`], with `keep_fed` false following selects into fed inputs and
/// variables too (what a value is, rather than where the planner reads it).
fn select_branches(g: &Graph, training: Option<bool>, keep_fed: bool) -> Vec<NodeId> {
    let mut redir: Vec<NodeId> = (0..g.nodes.len()).collect();
    let Some(training) = training else {
        return redir;
    };
    for (i, node) in g.nodes.iter().enumerate() {
        let picked = match node.op {
            Op::TrainSelect => redir[node.inputs[usize::from(!training)]],
            // Dropout is the identity at inference.
            Op::Dropout { .. } | Op::DropoutGrad { .. } if !training => redir[node.inputs[0]],
            _ => continue,
        };
        if !keep_fed || !matches!(g.nodes[picked].op, Op::Input(_) | Op::Param(_)) {
            redir[i] = picked;
        }
    }
    redir
}

/// Whether, at inference, each row of `outputs` depends only on the same row of the inputs,
/// so that a batch may be computed in parts with the same results: no state updates, and no
/// needed op that mixes rows (a reduction or product over the batch axis, a gather along it,
/// row indices, a stateful layer's fixed batch). Conservative: ops it does not know to be
/// row-wise count as mixing.
pub fn rows_independent(g: &Graph, outputs: &[NodeId]) -> bool {
    if g.updates.iter().any(|u| u.always) {
        return false;
    }
    let redir = select_branches(g, Some(false), false);
    let mut needed = vec![false; g.nodes.len()];
    for &o in outputs {
        needed[redir[o]] = true;
    }
    for i in (0..g.nodes.len()).rev() {
        if !needed[i] {
            continue;
        }
        let node = &g.nodes[i];
        let batched_in = node.inputs.iter().any(|&j| g.nodes[redir[j]].shape.batched);
        if batched_in && !node.shape.batched {
            return false;
        }
        let rowwise = match &node.op {
            Op::Reduce { axes, .. } => !batched_in || !axes.contains(&0),
            Op::Cumulative { axis, .. } | Op::Take { axis } => *axis != 0 || !batched_in,
            Op::Iota { axis } => *axis != 0 || !node.shape.batched,
            Op::ToBatched | Op::FromBatched(_) => false,
            Op::Input(_) | Op::Param(_) | Op::Scalar(_) | Op::Zeros => true,
            Op::Unary(_)
            | Op::Binary(_)
            | Op::MatMul { ta: false, .. }
            | Op::BatchMatMul { .. }
            | Op::BroadcastTo(_)
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::Concat { .. }
            | Op::SliceAxis { .. }
            | Op::Softmax
            | Op::Dropout { .. }
            | Op::TrainSelect
            | Op::Where
            | Op::ArgMax
            | Op::TakeLast
            | Op::InTopK(_)
            | Op::TopKIndices(_)
            | Op::TakeAlong
            | Op::Rnn(_)
            | Op::RnnSlice(_)
            | Op::Gather
            | Op::Conv(_)
            | Op::ConvRelu(_)
            | Op::Pool(_)
            | Op::Pad(_)
            | Op::UpSample(_)
            | Op::BatchNorm(_) => true,
            _ => !batched_in,
        };
        if !rowwise {
            return false;
        }
        for &j in &node.inputs {
            needed[redir[j]] = true;
        }
    }
    true
}

/// For each node, the node whose buffer holds its value: itself, or for a needed reshape of a
/// computed value, that value's (a reshape is a new view of the same row-major elements, so
/// it costs no step; Flatten and its gradient were copies of up to 4.7 MB a step on the
/// mnist_cnn). Program outputs keep their own buffers (the optimizer takes the gradients'
/// slots as distinct mutable views), and so do reshapes of fed inputs and variables.
fn storage(g: &Graph, outputs: &[NodeId], redir: &[NodeId], needed: &[bool]) -> Vec<NodeId> {
    let mut base: Vec<NodeId> = (0..g.nodes.len()).collect();
    let mut output = vec![false; g.nodes.len()];
    for &o in outputs {
        output[redir[o]] = true;
    }
    for (i, node) in g.nodes.iter().enumerate() {
        if !needed[i] || output[i] || !matches!(node.op, Op::Reshape(_)) {
            continue;
        }
        let src = base[redir[node.inputs[0]]];
        if !matches!(g.nodes[src].op, Op::Input(_) | Op::Param(_)) {
            base[i] = src;
        }
    }
    base
}

/// The schedule, shapes, slot sizes and scratch size for `batch` rows (selects resolved for
/// `training` where it is known; see [`Program::plan_on`]).
fn layout(g: &Graph, outputs: &[NodeId], batch: usize, training: Option<bool>) -> Result<Layout> {
    let n = g.nodes.len();
    let redir = resolve_selects(g, training);
    let mut needed = vec![false; n];
    for &o in outputs {
        needed[redir[o]] = true;
    }
    for i in (0..n).rev() {
        if needed[i] {
            for &j in &g.nodes[i].inputs {
                needed[redir[j]] = true;
            }
        }
    }
    let dims: Vec<Vec<usize>> = g.nodes.iter().map(|nd| nd.shape.concrete(batch)).collect();
    let base = storage(g, outputs, &redir, &needed);
    let mut last_use = vec![0usize; n];
    for (i, node) in g.nodes.iter().enumerate().filter(|&(i, _)| needed[i]) {
        for &j in &node.inputs {
            last_use[base[redir[j]]] = i;
        }
    }
    for &o in outputs {
        last_use[base[redir[o]]] = usize::MAX;
    }
    let mut feed_lens = vec![0; g.num_inputs()];
    let mut loc = vec![Loc::Unused; n];
    let mut slot_len: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut steps = Vec::new();
    let mut scratch_len = 0;
    let (largest, total) = activation_sizes(g, &needed, &dims);
    let describe_batch = || {
        let what = match &g.nodes[largest].scope {
            Some(layer) => format!("layer \"{layer}\""),
            None => format!("node {largest} ({:?})", g.nodes[largest].op),
        };
        format!(
            "A batch of {batch} samples (argument `batch_size`; the largest activation is the output of {what}, of shape {:?})",
            dims[largest]
        )
    };
    crate::memory::check(total, &describe_batch)?;
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
        if base[i] != i {
            continue; // a reshape, read where its input is
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
                    inputs: node.inputs.iter().map(|&j| redir[j]).collect(),
                });
                for &j in node.inputs.iter().map(|j| &base[redir[*j]]) {
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
    // A reshape is read where its input is, a resolved select where its branch is.
    for i in 0..n {
        if base[i] != i {
            loc[i] = loc[base[i]];
        }
    }
    for i in 0..n {
        if redir[i] != i && needed[redir[i]] {
            loc[i] = loc[redir[i]];
        }
    }
    Ok(Layout {
        steps,
        loc,
        dims,
        slot_len,
        scratch_len,
        feed_lens,
    })
}

#[allow(clippy::too_many_arguments)]
fn run_cpu(
    steps: &[Step],
    loc: &[Loc],
    dims: &[Vec<usize>],
    slots: &mut [Vec<f32>],
    scratch: &mut [f32],
    vars: &[&[f32]],
    feeds: &[&[f32]],
    ctx: &Ctx,
) {
    for step in steps {
        let Loc::Slot(o) = loc[step.node] else {
            unreachable!("steps write slots")
        };
        let mut out = std::mem::take(&mut slots[o]);
        {
            let ins: SmallVec<[In<'_>; 3]> = step
                .inputs
                .iter()
                .map(|&j| In {
                    data: value(loc, slots, dims, vars, feeds, j),
                    dims: &dims[j],
                })
                .collect();
            let len = dims[step.node].iter().product();
            let timer = crate::profile::start();
            crate::ops::forward(
                &step.op,
                &ins,
                &mut out[..len],
                &dims[step.node],
                scratch,
                ctx,
            );
            crate::profile::record(timer, || crate::profile::op_key(&step.op, &dims[step.node]));
        }
        slots[o] = out;
    }
}

fn value<'a>(
    loc: &[Loc],
    slots: &'a [Vec<f32>],
    dims: &[Vec<usize>],
    vars: &[&'a [f32]],
    feeds: &[&'a [f32]],
    node: NodeId,
) -> &'a [f32] {
    let len: usize = dims[node].iter().product();
    match loc[node] {
        Loc::Slot(s) => &slots[s][..len],
        Loc::Feed(k) => feeds[k],
        Loc::Var(v) => vars[v],
        Loc::Unused => unreachable!("planned nodes all have a location"),
    }
}

/// Allocates a GPU program's memory and records its steps.
fn record(ctx: &Arc<GpuContext>, g: &Graph, l: &Layout, vars: &[&Tensor]) -> Result<GpuMemory> {
    let align = (ctx.offset_alignment() / 4) as usize;
    let mut offsets = Vec::with_capacity(l.slot_len.len());
    let mut total = 0usize;
    for &len in &l.slot_len {
        offsets.push(total);
        total += len.max(1).div_ceil(align) * align;
    }
    let arena = ctx.alloc(total.max(1))?;
    let slots: Vec<GpuBuffer> = offsets
        .iter()
        .zip(&l.slot_len)
        .map(|(&o, &len)| arena.view(o, len.max(1)))
        .collect();
    let feeds = l
        .feed_lens
        .iter()
        .map(|&n| ctx.alloc(n.max(1)))
        .collect::<Result<Vec<_>>>()?;
    let var_buffers: Vec<&GpuBuffer> = vars
        .iter()
        .map(|t| {
            t.gpu().ok_or_else(|| {
                crate::Error::Value("internal: a GPU program needs its variables on the GPU".into())
            })
        })
        .collect::<Result<_>>()?;
    let mut rec = Recorder::new(ctx);
    for step in &l.steps {
        let Loc::Slot(o) = l.loc[step.node] else {
            unreachable!("steps write slots")
        };
        let ins: SmallVec<[(GpuBuffer, &[usize]); 3]> = step
            .inputs
            .iter()
            .map(|&j| {
                let len: usize = l.dims[j].iter().product();
                let b = match l.loc[j] {
                    Loc::Slot(s) => slots[s].view(0, len),
                    Loc::Feed(k) => feeds[k].view(0, len),
                    Loc::Var(v) => match var_buffers.get(v) {
                        Some(b) => b.view(0, len),
                        None => {
                            return crate::value_error!("internal: variable {v} has no GPU buffer")
                        }
                    },
                    Loc::Unused => unreachable!("planned nodes all have a location"),
                };
                Ok((b, l.dims[j].as_slice()))
            })
            .collect::<Result<_>>()?;
        let len: usize = l.dims[step.node].iter().product();
        let out = slots[o].view(0, len);
        crate::device::gpu::kernels::record(
            &mut rec,
            &step.op,
            &g.nodes[step.node].shape,
            &ins,
            &out,
            &l.dims[step.node],
        )
        .map_err(|e| match (e, &g.nodes[step.node].scope) {
            (crate::Error::NotImplemented(m), Some(layer)) => {
                crate::Error::NotImplemented(format!("layer '{layer}': {m}"))
            }
            (e, _) => e,
        })?;
    }
    let run = GpuSteps::run_buffer(ctx);
    let steps = GpuSteps::from_recorder(rec, run)?;
    ctx.check()?;
    Ok(GpuMemory {
        ctx: ctx.clone(),
        slots,
        feeds,
        steps,
    })
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
    fn a_reshape_is_read_where_its_input_is() {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[2, 3]));
        let a = g.unary(UnaryOp::Scale(2.0), x).unwrap();
        let flat = g.push(Op::Reshape(vec![6]), &[a]).unwrap();
        let back = g.push(Op::Reshape(vec![3, 2]), &[flat]).unwrap();
        let y = g.unary(UnaryOp::AddScalar(1.0), back).unwrap();
        // A reshape that is an output, or of a fed input, keeps a buffer (and a step) of its own.
        let out = g.push(Op::Reshape(vec![6]), &[y]).unwrap();
        let fed = g.push(Op::Reshape(vec![6]), &[x]).unwrap();
        let mut p = Program::plan(&g, &[y, out, fed], 2).unwrap();
        // Scale, AddScalar and the two copies: the chain of reshapes between costs nothing.
        assert_eq!(p.num_steps(), 4);
        let feed: Vec<f32> = (0..12).map(|v| v as f32).collect();
        p.run(&[], &[&feed], &Ctx::default()).unwrap();
        let want: Vec<f32> = feed.iter().map(|v| 2.0 * v + 1.0).collect();
        assert_eq!(p.value(y), &want[..]);
        assert_eq!(p.value(out), &want[..]);
        assert_eq!(p.value(fed), &feed[..]);
        assert_eq!(p.dims(back), &[2, 3, 2]);
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
            training: false,
            seed: 0,
            step: 0,
        };
        p.run(&[], &[&[1.0, 2.0, 3.0, 4.0]], &ctx).unwrap();
        assert_eq!(p.value(a), &[2.0, 4.0, 6.0, 8.0]);
        assert_eq!(p.value(c), &[-3.0, -5.0, -7.0, -9.0]);
    }

    #[test]
    fn a_select_planned_in_a_known_mode_runs_only_its_branch() {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[2]));
        let a = g.unary(UnaryOp::Scale(2.0), x).unwrap();
        let b = g.unary(UnaryOp::Neg, x).unwrap();
        let b = g.unary(UnaryOp::AddScalar(1.0), b).unwrap();
        let sel = g.push(Op::TrainSelect, &[a, b]).unwrap();
        let y = g.unary(UnaryOp::AddScalar(10.0), sel).unwrap();
        let y = g.push(Op::Dropout { rate: 0.5, key: 1 }, &[y]).unwrap();
        // A select whose branch is a fed input stays a copy.
        let raw = g.push(Op::TrainSelect, &[x, a]).unwrap();
        let feed: &[f32] = &[1.0, 2.0, 3.0, 4.0];
        for (training, steps, want_sel, want_raw) in [
            // Both branches run, and the run's context (inference) picks.
            (None, 7, [0.0, -1.0, -2.0, -3.0], [2.0, 4.0, 6.0, 8.0]),
            (Some(true), 4, [2.0, 4.0, 6.0, 8.0], [1.0, 2.0, 3.0, 4.0]),
            (
                Some(false),
                4,
                [0.0, -1.0, -2.0, -3.0],
                [2.0, 4.0, 6.0, 8.0],
            ),
        ] {
            let mut p =
                Program::plan_on(&g, &[sel, y, raw], 2, training, &Device::Cpu, &[]).unwrap();
            assert_eq!(p.num_steps(), steps, "{training:?}");
            let ctx = Ctx {
                training: training.unwrap_or(false),
                ..Ctx::default()
            };
            p.run(&[], &[feed], &ctx).unwrap();
            assert_eq!(p.value(sel), &want_sel, "{training:?}");
            // Dropout keeps or doubles each value in training, and is the identity at inference.
            for (&got, &s) in p.value(y).iter().zip(&want_sel) {
                let v = s + 10.0;
                assert!(got == v || training == Some(true) && (got == 0.0 || got == 2.0 * v));
            }
            assert_eq!(p.value(raw), &want_raw, "{training:?}");
        }
    }

    #[test]
    fn rows_are_independent_unless_an_op_mixes_them() {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[3, 4]));
        let per_row = g
            .reduce(crate::ops::ReduceKind::Sum, x, &[1], false)
            .unwrap();
        let y = g.unary(UnaryOp::Tanh, per_row).unwrap();
        assert!(rows_independent(&g, &[y]));
        let over_batch = g
            .reduce(crate::ops::ReduceKind::Max, x, &[0, 2], true)
            .unwrap();
        let z = g.sub(x, over_batch).unwrap();
        assert!(!rows_independent(&g, &[z]));
        // The training branch of a select (batch statistics) does not count at inference.
        let sel = g.push(Op::TrainSelect, &[z, x]).unwrap();
        assert!(rows_independent(&g, &[sel, y]));
        let v = g.declare_var(&[2, 4]);
        let v = g.param(v);
        let state = g.push(Op::ToBatched, &[v]).unwrap();
        assert!(!rows_independent(&g, &[state]));
    }

    #[test]
    fn a_wrong_feed_size_is_an_error() {
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&[2]));
        let y = g.unary(UnaryOp::Relu, x).unwrap();
        let mut p = Program::plan(&g, &[y], 3).unwrap();
        let ctx = Ctx {
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
