//! Running a model's programs: the one planning path (`planned`), the CPU run and the GPU
//! submission of a batch (feeds or a resident dataset's gather, the program, then the
//! optimizer, state updates and log sums in the same command buffer), a training or test
//! step, and a prediction batch.

use std::collections::HashMap;
use std::sync::Arc;

use smallvec::SmallVec;

use super::compile::Log;
use super::resident::Resident;
use super::vars::Vars;
use super::{Feeds, Model};
use crate::device::gpu::{kernels, GpuBuffer, GpuContext, GpuSteps, Recorder, RunCtx};
use crate::device::Device;
use crate::error::Result;
use crate::graph::{Graph, NodeId};
use crate::ops::Ctx;
use crate::program::Program;
use crate::tensor::Tensor;

impl Model {
    /// Runs one batch of the training graph (a training step, or a test batch) and adds its
    /// logs' sums (a loss weighted by `batch` rows) to the epoch's sums: plans the program for this batch size
    /// if missing, runs it, and applies the optimizer and the state updates.
    pub(super) fn step(&mut self, pass: Pass, data: Batch<'_>, batch: usize) -> Result<()> {
        self.step_with(pass, data, batch, None)
    }

    /// [`Model::step`]; with `export`, a training step hands its gradients (one vector per
    /// trainable variable, in order) to `export` instead of applying them, so that a caller
    /// can combine them with other replicas' before [`Model::apply_gradients`]. Log sums and
    /// state updates (moving statistics) are applied as in any step.
    pub(super) fn step_with(
        &mut self,
        pass: Pass,
        data: Batch<'_>,
        batch: usize,
        export: Option<&mut Vec<Vec<f32>>>,
    ) -> Result<()> {
        self.ensure_train_graph()?;
        if export.is_some() && pass != Pass::Train {
            return crate::value_error!("gradients are handed out of training steps only");
        }
        if export.is_some() && matches!(self.device, Device::Gpu(_)) {
            return Err(crate::Error::NotImplemented(
                "gradients handed out of a step (data-parallel training) run on the 'cpu' backend only".into(),
            ));
        }
        let feeds = match data {
            Batch::Host { xs, ys, sws } => self.train_feeds(xs, ys, sws)?,
            Batch::Resident { .. } => Feeds::new(),
        };
        let training = pass == Pass::Train;
        if training {
            self.step += 1;
        }
        let ctx = Ctx {
            training,
            seed: self.seed,
            step: self.step,
        };
        let c = self.compiled.as_mut().expect("ensured");
        let t = c.train.as_mut().expect("ensured");
        let programs = if training {
            &mut t.train_programs
        } else {
            &mut t.eval_programs
        };
        let (graph, logs, grads) = (&t.graph, &t.logs, &t.grads);
        let outs = || {
            let mut outs: Vec<NodeId> = logs.iter().map(|l| l.node).collect();
            if training {
                outs.extend(grads);
            }
            outs.extend(update_values(graph, training));
            outs
        };
        let (trainable, log_sums, optimizer) = (&self.trainable, &self.log_sums, &mut c.optimizer);
        let planned = planned(
            programs,
            graph,
            outs,
            batch,
            training,
            &self.device,
            &self.vars,
            |rec, vars, p| {
                if training {
                    let (params, grads): (Vec<GpuBuffer>, Vec<GpuBuffer>) = vars
                        .iter()
                        .enumerate()
                        .filter(|&(v, _)| trainable[v])
                        .zip(grads)
                        .map(|((_, w), &g)| {
                            (
                                w.gpu().expect("on the GPU").clone(),
                                p.gpu_value(g).expect("planned"),
                            )
                        })
                        .unzip();
                    optimizer.record_gpu(rec, &params, &grads)?;
                }
                record_updates(rec, vars, graph, p, training);
                record_log_sums(rec, log_sums, logs, p, batch);
                Ok(())
            },
        )?;
        match &self.device {
            Device::Cpu => {
                let p = planned.run_cpu(&self.vars, &feeds, &ctx)?;
                let sums = self.log_sums.host_mut();
                for l in logs {
                    let (at, n) = l.sums;
                    let scale = l.finalize.batch_scale(batch);
                    for (s, &v) in sums[at..at + n].iter_mut().zip(p.value(l.node)) {
                        *s += f64::from(v) * scale;
                    }
                }
                if training {
                    let mut grad_views: SmallVec<[&mut [f32]; 32]> = SmallVec::new();
                    p.values_mut(grads, &mut grad_views);
                    if let Some(out) = export {
                        out.resize_with(grad_views.len(), Vec::new);
                        for (o, g) in out.iter_mut().zip(&grad_views) {
                            o.clear();
                            o.extend_from_slice(g);
                        }
                        drop(grad_views);
                        apply_updates(&self.vars, graph, p, training);
                        return Ok(());
                    }
                    let timer = crate::profile::start();
                    apply_on_cpu(
                        &self.vars,
                        &self.trainable,
                        &mut c.optimizer,
                        &mut grad_views,
                    )?;
                    crate::profile::record(timer, || "optimizer step".into());
                }
                apply_updates(&self.vars, graph, p, training);
            }
            Device::Gpu(gpu) => {
                let resident = match data {
                    Batch::Resident { index, start } => Some((&self.resident[index], start)),
                    Batch::Host { .. } => None,
                };
                let scalars = if training {
                    c.optimizer.gpu_step_scalars()?
                } else {
                    [0.0; crate::device::gpu::RUN_SCALARS]
                };
                let tail = RunCtx {
                    training,
                    seed: self.seed,
                    step: self.step,
                    scalars,
                };
                planned.run_gpu(gpu, &feeds, resident, &ctx, &tail)?;
            }
        }
        Ok(())
    }

    /// Every output for a batch in inference mode: `xs` holds one array per input, and
    /// output `i` is written to `outs[i]`.
    ///
    /// A large batch of a model whose rows are independent at inference
    /// ([`crate::program::rows_independent`]) runs in parts of about [`PREDICT_BUDGET`]
    /// bytes of activations: the same values (up to the rounding of products of another row
    /// count), with the memory of a part (a batch of 1024 images through the mnist_cnn would
    /// otherwise hold half a gigabyte of activations).
    pub fn predict_batch(
        &mut self,
        xs: &[&[f32]],
        batch: usize,
        outs: &mut [&mut [f32]],
    ) -> Result<()> {
        if xs.len() != self.inputs.len() || outs.len() != self.outputs.len() {
            return crate::value_error!(
                "predict: expected {} x arrays and {} output buffers, received {} and {}",
                self.inputs.len(),
                self.outputs.len(),
                xs.len(),
                outs.len()
            );
        }
        let part = self.predict_part_rows(batch);
        if part >= batch || xs.iter().any(|x| x.len() % batch != 0) {
            return self.predict_rows(xs, batch, outs);
        }
        // Parts of equal size (a multiple of 32), so that one program serves them all.
        let part = batch.div_ceil(batch.div_ceil(part)).div_ceil(32) * 32;
        let x_per: SmallVec<[usize; 4]> = xs.iter().map(|x| x.len() / batch).collect();
        let o_per: SmallVec<[usize; 4]> = outs.iter().map(|o| o.len() / batch).collect();
        if o_per
            .iter()
            .zip(outs.iter())
            .any(|(p, o)| p * batch != o.len())
        {
            return self.predict_rows(xs, batch, outs);
        }
        for lo in (0..batch).step_by(part) {
            let hi = (lo + part).min(batch);
            let xp: SmallVec<[&[f32]; 4]> = xs
                .iter()
                .zip(&x_per)
                .map(|(x, &p)| &x[lo * p..hi * p])
                .collect();
            let mut op: SmallVec<[&mut [f32]; 4]> = outs
                .iter_mut()
                .zip(&o_per)
                .map(|(o, &p)| &mut o[lo * p..hi * p])
                .collect();
            self.predict_rows(&xp, hi - lo, &mut op)?;
        }
        Ok(())
    }

    /// Rows of a part when a batch of `batch` rows is predicted in parts ([`predict_batch`];
    /// `batch` itself when it is not split).
    pub(super) fn predict_part_rows(&self, batch: usize) -> usize {
        if batch <= PREDICT_MIN_PART {
            return batch;
        }
        let per_row: usize = self
            .graph
            .nodes
            .iter()
            .filter(|n| n.shape.batched)
            .map(|n| n.shape.numel(1) * 4)
            .sum();
        let part = (PREDICT_BUDGET / per_row.max(1)).max(PREDICT_MIN_PART) / 32 * 32;
        if part >= batch || !crate::program::rows_independent(&self.graph, &self.outputs) {
            batch
        } else {
            part
        }
    }

    /// [`predict_batch`] on one part of a batch, as one program run.
    fn predict_rows(&mut self, xs: &[&[f32]], batch: usize, outs: &mut [&mut [f32]]) -> Result<()> {
        let ctx = Ctx {
            training: false,
            seed: self.seed,
            step: self.step,
        };
        let graph = &self.graph;
        let outputs = &self.outputs;
        let planned = planned(
            &mut self.predict_programs,
            graph,
            || {
                let mut outs = outputs.clone();
                outs.extend(update_values(graph, false));
                outs
            },
            batch,
            false,
            &self.device,
            &self.vars,
            |rec, vars, p| {
                record_updates(rec, vars, graph, p, false);
                Ok(())
            },
        )?;
        for (out, &o) in outs.iter().zip(outputs) {
            let want: usize = planned.program.dims(o).iter().product();
            if out.len() != want {
                return crate::value_error!(
                    "predict: output buffer holds {} values, expected {want}",
                    out.len()
                );
            }
        }
        match &self.device {
            Device::Cpu => {
                let p = planned.run_cpu(&self.vars, xs, &ctx)?;
                for (out, &o) in outs.iter_mut().zip(outputs) {
                    out.copy_from_slice(p.value(o));
                }
                apply_updates(&self.vars, graph, p, false);
            }
            Device::Gpu(gpu) => {
                planned.run_gpu(gpu, xs, None, &ctx, &RunCtx::default())?;
                let p = &planned.program;
                let bufs: Vec<GpuBuffer> = outputs
                    .iter()
                    .map(|&o| p.gpu_value(o).expect("planned"))
                    .collect();
                let mut reads: Vec<(&GpuBuffer, &mut [f32])> = bufs
                    .iter()
                    .zip(outs.iter_mut())
                    .map(|(b, o)| (b, &mut **o))
                    .collect();
                gpu.read_many(&mut reads);
                gpu.check()?;
            }
        }
        Ok(())
    }
}

/// Bytes of activations (every batched node of the graph, an upper bound on what a program
/// holds) above which a prediction batch runs in parts. Parts this small also stay in cache
/// from one op to the next: mnist_cnn's predict at batch 1024 took 1.33-1.41 s in parts of 32
/// rows against 1.50-1.59 s in parts of 160 (64 MiB), three interleaved runs each.
const PREDICT_BUDGET: usize = 16 << 20;

/// The fewest rows a part of a prediction batch has (a multiple of 32).
const PREDICT_MIN_PART: usize = 32;

/// The values of the updates a program must compute: all after a training step, only the
/// `always` ones (stateful layers) after evaluation or prediction.
/// One optimizer step on the CPU: `grads` (one per trainable variable, in order) applied to
/// the trainable variables' host values, with their write locks held.
pub(super) fn apply_on_cpu(
    vars: &Vars,
    trainable: &[bool],
    optimizer: &mut crate::optimizers::Optimizer,
    grads: &mut [&mut [f32]],
) -> Result<()> {
    let mut guards = vars.write_some(|v| trainable[v]);
    let mut params: SmallVec<[&mut [f32]; 32]> = guards
        .iter_mut()
        .map(|w| w.host_mut().expect("on the CPU"))
        .collect();
    optimizer.apply(&mut params, grads)
}

fn update_values(g: &Graph, training: bool) -> impl Iterator<Item = NodeId> + '_ {
    g.updates
        .iter()
        .filter(move |u| training || u.always)
        .map(|u| u.value)
}

/// Writes the updates a CPU program computed into the variables.
fn apply_updates(vars: &Vars, g: &Graph, p: &Program, training: bool) {
    for u in g.updates.iter().filter(|u| training || u.always) {
        if let Some(mut var) = vars.get_mut(u.var) {
            u.apply(var.host_mut().expect("on the CPU"), p.value(u.value));
        }
    }
}

/// Records the state updates of a GPU program (a blend of each value into its variable).
fn record_updates(
    rec: &mut Recorder<'_>,
    vars: &[&Tensor],
    g: &Graph,
    p: &Program,
    training: bool,
) {
    for u in g.updates.iter().filter(|u| training || u.always) {
        let value = p.gpu_value(u.value).expect("planned");
        let var = vars[u.var].gpu().expect("on the GPU");
        let n = value.len();
        rec.launch(
            kernels::ELEMENTWISE,
            "blend",
            &[n as u32, u.momentum.to_bits()],
            var,
            &[&value],
            n,
        );
    }
}

/// Records the addition of each log's sums (a loss weighted by the batch's rows) to the GPU
/// log sums.
fn record_log_sums(
    rec: &mut Recorder<'_>,
    sums: &LogSums,
    logs: &[Log],
    p: &Program,
    batch: usize,
) {
    let LogSums::Gpu(buf, ..) = sums else {
        return;
    };
    for l in logs {
        let value = p.gpu_value(l.node).expect("planned");
        let (at, n) = l.sums;
        let scale = l.finalize.batch_scale(batch) as f32;
        rec.launch(
            kernels::ELEMENTWISE,
            "accumulate",
            &[at as u32, scale.to_bits(), n as u32],
            buf,
            &[&value],
            n,
        );
    }
}

/// Which loop a batch belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    Train,
    Test,
}

/// A planned program and, on the GPU, what runs after it in the same submission: the
/// optimizer's updates, the state updates and the log sums.
pub(super) struct Planned {
    pub program: Program,
    tail: Option<GpuSteps>,
    /// The gathers of a resident dataset's batch into the feeds, and that upload's number.
    head: Option<(u64, GpuSteps)>,
}

/// The program of `graph` for `batch` rows in `programs`, planned on first use: `outs` gives
/// the nodes it computes, and on the GPU `tail` records what runs after it in the same
/// submission (optimizer, state updates, log sums); every run of it is in the mode
/// `training`. The one planning path of every loop.
#[allow(clippy::too_many_arguments)]
fn planned<'a>(
    programs: &'a mut HashMap<usize, Planned>,
    graph: &Graph,
    outs: impl FnOnce() -> Vec<NodeId>,
    batch: usize,
    training: bool,
    device: &Device,
    vars: &Vars,
    tail: impl FnOnce(&mut Recorder<'_>, &[&Tensor], &Program) -> Result<()>,
) -> Result<&'a mut Planned> {
    match programs.entry(batch) {
        std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
        std::collections::hash_map::Entry::Vacant(e) => {
            let guards = vars.read_all();
            let vars: Vec<&Tensor> = guards.iter().map(|g| &**g).collect();
            let program = Program::plan_on(graph, &outs(), batch, Some(training), device, &vars)?;
            let tail = match device {
                Device::Cpu => None,
                Device::Gpu(gpu) => {
                    let mut rec = Recorder::new(gpu);
                    tail(&mut rec, &vars, &program)?;
                    Some(GpuSteps::from_recorder(rec, GpuSteps::run_buffer(gpu))?)
                }
            };
            Ok(e.insert(Planned {
                program,
                tail,
                head: None,
            }))
        }
    }
}

impl Planned {
    /// Runs a CPU program on the variables' host values.
    fn run_cpu(&mut self, vars: &Vars, feeds: &[&[f32]], ctx: &Ctx) -> Result<&mut Program> {
        let guards = vars.read_all();
        let values: SmallVec<[&[f32]; 32]> = guards
            .iter()
            .map(|t| t.host().expect("on the CPU"))
            .collect();
        self.program.run(&values, feeds, ctx)?;
        Ok(&mut self.program)
    }

    /// One submission on the GPU: the feeds (host arrays written to the feed buffers, or a
    /// resident dataset's rows from `start` gathered into them), the program, and the tail
    /// with its run context.
    fn run_gpu(
        &mut self,
        gpu: &Arc<GpuContext>,
        feeds: &[&[f32]],
        resident: Option<(&Resident, usize)>,
        ctx: &Ctx,
        tail: &RunCtx,
    ) -> Result<()> {
        let p = &self.program;
        if resident.is_none() {
            p.check_feeds(feeds)?;
        }
        for (k, f) in feeds.iter().enumerate() {
            if let Some(b) = p.feed_buffer(k).filter(|b| b.len() == f.len()) {
                gpu.write(b, f);
            }
        }
        let mut enc = gpu.encoder();
        if let Some((r, start)) = resident {
            if self.head.as_ref().map(|(g, _)| *g) != Some(r.generation) {
                let feeds: Vec<GpuBuffer> = (0..r.arrays.len())
                    .map(|k| p.feed_buffer(k).expect("a feed").clone())
                    .collect();
                let mut rec = Recorder::new(gpu);
                r.record_gather(&mut rec, &feeds);
                let steps = GpuSteps::from_recorder(rec, GpuSteps::run_buffer(gpu))?;
                self.head = Some((r.generation, steps));
            }
            let mut run = RunCtx::default();
            run.scalars[0] = start as f32;
            if let Some((_, head)) = &self.head {
                head.encode(gpu, &run, &mut enc);
            }
        }
        p.encode(&mut enc, ctx);
        if let Some(t) = &self.tail {
            t.encode(gpu, tail, &mut enc);
        }
        gpu.submit(enc);
        Ok(())
    }
}

/// Where a batch's data comes from: host arrays (one per input; targets and sample weights
/// one per output), or the rows `start..start + batch` of the order of a dataset kept on the
/// GPU (`resident[index]`).
#[derive(Clone, Copy)]
pub(super) enum Batch<'a> {
    Host {
        xs: &'a [&'a [f32]],
        ys: &'a [&'a [f32]],
        sws: &'a [&'a [f32]],
    },
    Resident {
        index: usize,
        start: usize,
    },
}

/// The logs' running sums over an epoch (see [`crate::metrics`]), on the model's device: a
/// GPU model reads them back only when asked (each read is a synchronisation).
pub(super) enum LogSums {
    Host(Vec<f64>),
    Gpu(GpuBuffer, Arc<GpuContext>, usize),
}

impl LogSums {
    pub(super) fn new(device: &Device, n: usize) -> Result<LogSums> {
        Ok(match device {
            Device::Cpu => LogSums::Host(vec![0.0; n]),
            Device::Gpu(ctx) => LogSums::Gpu(ctx.alloc(n.max(1))?, ctx.clone(), n),
        })
    }

    pub(super) fn len(&self) -> usize {
        match self {
            LogSums::Host(v) => v.len(),
            LogSums::Gpu(_, _, n) => *n,
        }
    }

    pub(super) fn reset(&mut self) {
        match self {
            LogSums::Host(v) => v.fill(0.0),
            LogSums::Gpu(b, ctx, n) => ctx.write(b, &vec![0.0; *n]),
        }
    }

    pub(super) fn host_mut(&mut self) -> &mut [f64] {
        match self {
            LogSums::Host(v) => v,
            LogSums::Gpu(..) => &mut [],
        }
    }

    pub(super) fn write(&mut self, sums: &[f64]) {
        match self {
            LogSums::Host(v) => v.copy_from_slice(sums),
            LogSums::Gpu(b, ctx, _) => {
                ctx.write(b, &sums.iter().map(|&s| s as f32).collect::<Vec<f32>>())
            }
        }
    }

    pub(super) fn read(&self) -> Vec<f64> {
        match self {
            LogSums::Host(v) => v.clone(),
            LogSums::Gpu(b, ctx, n) => ctx.read(b, *n).into_iter().map(f64::from).collect(),
        }
    }
}
