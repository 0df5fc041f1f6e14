//! The optimizer on the GPU: each variable's slots live in one device buffer (slot `k` at
//! `k * len`), and a step is one fused `update` dispatch per variable (`optimizers.wgsl`),
//! preceded by a squared-norm reduction per gradient when clipping by norm. The dispatches
//! are recorded once per training program; what changes per step (learning rate, bias
//! corrections, ...) travels as the run's scalars, computed here exactly as the CPU step
//! computes them.

use std::sync::Arc;

use super::sweep::{Kernel, GPU_RULE_SCALARS, MAX_SLOTS};
use super::{Clip, Optimizer, Rule, State};
use crate::device::gpu::{
    kernels, GpuBuffer, GpuContext, GpuSteps, Recorder, RunCtx, Shader, RUN_SCALARS,
};
use crate::device::Device;
use crate::error::Result;

const OPTIMIZERS: Shader = Shader {
    name: "optimizers",
    source: include_str!("../device/gpu/shaders/optimizers.wgsl"),
};

/// The slots of every variable on the GPU.
#[derive(Debug)]
pub(super) struct GpuState {
    ctx: Arc<GpuContext>,
    lens: Vec<usize>,
    /// Per variable, its slots packed one after another.
    slots: Vec<GpuBuffer>,
    /// Squared gradient norms, one per variable every `norm_stride` floats.
    norms: GpuBuffer,
    norm_stride: usize,
    /// Per variable, `[accumulated gradient (len), moving average (len)]` where gradient
    /// accumulation or the weights' average is on (a float otherwise).
    extra: Vec<GpuBuffer>,
}

impl Optimizer {
    fn used_slots(&self) -> usize {
        self.rule
            .slots()
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |k| k + 1)
    }

    /// Moves the slots to `device` (they follow the model's variables).
    pub(crate) fn move_state(&mut self, device: &Device) -> Result<()> {
        match device {
            Device::Cpu => {
                if let Some(g) = self.gpu.take() {
                    self.state = Some(self.host_state_of(&g));
                }
            }
            Device::Gpu(ctx) => {
                if let Some(s) = self.state.take() {
                    self.gpu = Some(self.gpu_state_of(ctx, &s)?);
                }
            }
        }
        Ok(())
    }

    /// Copies the GPU slots into the host state (for `slot_variables`), keeping them on the GPU.
    pub(crate) fn pull_gpu_state(&mut self) {
        if let Some(g) = &self.gpu {
            self.state = Some(self.host_state_of(g));
        }
    }

    fn has_extra(&self) -> bool {
        self.accumulation_steps.is_some() || self.ema.is_some()
    }

    fn host_state_of(&self, g: &GpuState) -> State {
        let mut s = self.build(&g.lens);
        for (v, (b, &n)) in g.slots.iter().zip(&g.lens).enumerate() {
            let vals = g.ctx.read(b, b.len());
            for k in 0..self.used_slots() {
                if !s.slots[v][k].is_empty() {
                    s.slots[v][k].copy_from_slice(&vals[k * n..(k + 1) * n]);
                }
            }
            if self.has_extra() {
                let extra = g.ctx.read(&g.extra[v], 2 * n);
                if let Some(acc) = s.accumulated.get_mut(v) {
                    acc.copy_from_slice(&extra[..n]);
                }
                if let Some(avg) = s.averages.get_mut(v) {
                    avg.copy_from_slice(&extra[n..]);
                }
            }
        }
        s
    }

    fn gpu_state_of(&self, ctx: &Arc<GpuContext>, s: &State) -> Result<GpuState> {
        let k_slots = self.used_slots().max(1);
        let slots = s
            .slots
            .iter()
            .zip(&s.lens)
            .map(|(sl, &n)| {
                let mut packed = vec![0.0f32; k_slots * n];
                for (k, v) in sl.iter().enumerate().take(k_slots) {
                    if !v.is_empty() {
                        packed[k * n..(k + 1) * n].copy_from_slice(v);
                    }
                }
                ctx.upload(&packed)
            })
            .collect::<Result<Vec<_>>>()?;
        let extra = s
            .lens
            .iter()
            .enumerate()
            .map(|(v, &n)| {
                if !self.has_extra() {
                    return ctx.alloc(1);
                }
                let mut packed = vec![0.0f32; 2 * n];
                if let Some(acc) = s.accumulated.get(v) {
                    packed[..n].copy_from_slice(acc);
                }
                if let Some(avg) = s.averages.get(v) {
                    packed[n..].copy_from_slice(avg);
                }
                ctx.upload(&packed)
            })
            .collect::<Result<Vec<_>>>()?;
        let norm_stride = (ctx.offset_alignment() / 4) as usize;
        Ok(GpuState {
            ctx: ctx.clone(),
            lens: s.lens.clone(),
            slots,
            norms: ctx.alloc(norm_stride * s.lens.len().max(1))?,
            norm_stride,
            extra,
        })
    }

    /// Records one step's dispatches for variables `params` and gradients `grads` (buffers
    /// fixed for a program); creates the slots on the GPU at the first call.
    pub(crate) fn record_gpu(
        &mut self,
        rec: &mut Recorder<'_>,
        params: &[GpuBuffer],
        grads: &[GpuBuffer],
    ) -> Result<()> {
        let lens: Vec<usize> = params.iter().map(|p| p.len()).collect();
        if grads.len() != params.len() {
            return crate::value_error!(
                "Expected one gradient per variable. Received {} gradients for {} variables.",
                grads.len(),
                params.len()
            );
        }
        if self.gpu.is_none() {
            let host = match self.state.take() {
                Some(s) => s,
                None => self.build(&lens),
            };
            self.gpu = Some(self.gpu_state_of(rec.ctx, &host)?);
        }
        let g = self.gpu.as_ref().expect("created above");
        if g.lens != lens {
            return crate::value_error!(
                "This optimizer was built for {} variables of sizes {:?}; received {} variables of sizes {:?}.",
                g.lens.len(),
                g.lens,
                lens.len(),
                lens
            );
        }
        if self.accumulation_steps.is_some() {
            for (v, grad) in grads.iter().enumerate() {
                let p = [lens[v] as u32];
                rec.launch(OPTIMIZERS, "accumulate", &p, grad, &[&g.extra[v]], lens[v]);
            }
        }
        let by_norm = matches!(self.clip, Clip::Norm(c) | Clip::GlobalNorm(c) if c > 0.0);
        if by_norm {
            for (v, grad) in grads.iter().enumerate() {
                let target = g.norms.view(v * g.norm_stride, 1);
                kernels::sum_of_squares(rec, grad, &target);
            }
        }
        let rule = self.rule.clone().gpu_rule(self.learning_rate, 1);
        for (v, (w, grad)) in params.iter().zip(grads).enumerate() {
            let p = [
                lens[v] as u32,
                rule.code,
                rule.flags,
                v as u32,
                params.len() as u32,
                g.norm_stride as u32,
            ];
            rec.launch(
                OPTIMIZERS,
                "update",
                &p,
                w,
                &[grad, &g.slots[v], &g.norms],
                lens[v],
            );
        }
        if self.ema.is_some() {
            for (v, w) in params.iter().enumerate() {
                let p = [lens[v] as u32];
                rec.launch(OPTIMIZERS, "average", &p, w, &[&g.extra[v]], lens[v]);
            }
        }
        Ok(())
    }

    /// Keras' `finalize_variable_values` on the GPU: with `use_ema`, the variables `params`
    /// take their moving averages; otherwise nothing happens.
    pub(crate) fn finalize_gpu(&self, params: &[GpuBuffer]) -> Result<()> {
        let (Some(g), true) = (&self.gpu, self.ema.is_some()) else {
            return Ok(());
        };
        if params.len() != g.lens.len() {
            return crate::value_error!(
                "This optimizer was built for {} variables; received {}.",
                g.lens.len(),
                params.len()
            );
        }
        let mut rec = Recorder::new(&g.ctx);
        for (v, w) in params.iter().enumerate() {
            let p = [g.lens[v] as u32];
            rec.launch(OPTIMIZERS, "take_average", &p, w, &[&g.extra[v]], g.lens[v]);
        }
        let steps = GpuSteps::from_recorder(rec, GpuSteps::run_buffer(&g.ctx))?;
        let mut enc = g.ctx.encoder();
        steps.encode(&g.ctx, &RunCtx::default(), &mut enc);
        g.ctx.submit(enc);
        g.ctx.check()
    }

    /// The run scalars of the next step (and the step's bookkeeping: iterations, Nadam's
    /// running product), as `apply` computes them on the CPU.
    pub(crate) fn gpu_step_scalars(&mut self) -> Result<[f32; RUN_SCALARS]> {
        let iterations = self.iterations();
        let lr = self.current_learning_rate();
        let update = self
            .accumulation_steps
            .is_none_or(|steps| (self.raw_iterations + 1).is_multiple_of(steps));
        let rule = if update {
            self.rule.gpu_rule(lr, iterations + 1)
        } else {
            super::sweep::GpuRule::new(0, 0, &[])
        };
        let (clip_kind, clip_value) = match self.clip {
            Clip::Off => (0.0, 0.0),
            Clip::Value(v) if v > 0.0 => (1.0, v),
            Clip::Norm(c) if c > 0.0 => (2.0, c),
            Clip::GlobalNorm(c) if c > 0.0 => (3.0, c),
            _ => (0.0, 0.0),
        };
        let mut s = [0.0f32; RUN_SCALARS];
        s[0] = lr;
        s[1] = self.weight_decay.unwrap_or(0.0);
        s[2] = clip_kind;
        s[3] = clip_value;
        let unscale = 1.0 / self.loss_scale_factor.unwrap_or(1.0);
        // With accumulation, `accumulate` un-scales the gradient it leaves for `update`.
        s[4] = if self.accumulation_steps.is_some() {
            1.0
        } else {
            unscale
        };
        s[5..5 + GPU_RULE_SCALARS].copy_from_slice(&rule.scalars);
        s[17] = self.accumulation_steps.unwrap_or(0) as f32;
        s[18] = f32::from(u8::from(update));
        if let Some(ema) = self.ema {
            // As `update_averages`: momentum 0 on the first step, and the periodic overwrite.
            s[19] = if iterations != 0 { ema.momentum } else { 0.0 };
            let overwrite = ema
                .overwrite_frequency
                .is_some_and(|f| (iterations + 1).is_multiple_of(f));
            s[20] = f32::from(u8::from(overwrite));
        }
        s[22] = unscale;
        self.raw_iterations += 1;
        Ok(s)
    }
}

impl Rule {
    /// The rule's GPU step for learning rate `lr` at 1-based step `t` (advances Nadam's
    /// running product, as its CPU step does).
    fn gpu_rule(&mut self, lr: f32, t: u64) -> super::sweep::GpuRule {
        match self {
            Rule::Sgd(r) => r.step(lr).gpu(),
            Rule::RmsProp(r) => r.step(lr).gpu(),
            Rule::Adagrad(r) => r.step(lr).gpu(),
            Rule::Adadelta(r) => r.step(lr).gpu(),
            Rule::Adam(r) => r.step(lr, t).gpu(),
            Rule::Adamax(r) => r.step(lr, t).gpu(),
            Rule::Nadam(r) => r.step(lr, t).gpu(),
        }
    }
}

const _: () = assert!(5 + GPU_RULE_SCALARS <= 17 && 23 <= RUN_SCALARS && MAX_SLOTS == 3);
