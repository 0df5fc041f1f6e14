//! Optimizers: Keras 3's update rules, applied in Rust, fused per variable.
//!
//! An [`Optimizer`] is built from Keras 3 argument names and values, and each
//! [`Optimizer::apply`] is one Keras `apply_gradients` step: loss-scale undoing, gradient
//! accumulation, clipping (`clipnorm` per variable, `global_clipnorm` across all,
//! `clipvalue`), decoupled weight decay, the update rule, then the weights' moving average
//! when `use_ema` is set. Slots (momentums, velocities, ...) are created at the first step.
//! Keras 1's `decay` is honoured too: the step's rate is `lr / (1 + decay * iterations)`.
//! A learning-rate [`Schedule`] (Keras' `keras.optimizers.schedules`) replaces the fixed
//! rate: each step's rate is the schedule at the iteration count, computed in Rust.
//!
//! ```
//! use rustkeras::optimizers::Optimizer;
//!
//! let mut opt = Optimizer::from_spec("sgd", &[("learning_rate".into(), 0.1)]).unwrap();
//! let (mut w, mut g) = (vec![1.0f32, 2.0], vec![0.5f32, -1.0]);
//! opt.apply(&mut [&mut w[..]], &mut [&mut g[..]]).unwrap();
//! assert_eq!(w, [0.95, 2.1]);
//! assert_eq!(opt.iterations(), 1);
//! ```

mod adadelta;
mod adagrad;
mod adam;
mod adamax;
mod gpu;
mod nadam;
mod rmsprop;
mod schedule;
mod sgd;
mod spec;
mod sweep;

use crate::error::{Error, Result};
pub use schedule::Schedule;
use spec::Args;
use sweep::{sum_squares, sweep, GradOp, Kernel, Prologue, SlotSpec, MAX_SLOTS};

/// The update rule and its hyperparameters.
#[derive(Clone, Debug)]
enum Rule {
    Sgd(sgd::Sgd),
    RmsProp(rmsprop::RmsProp),
    Adagrad(adagrad::Adagrad),
    Adadelta(adadelta::Adadelta),
    Adam(adam::Adam),
    Adamax(adamax::Adamax),
    Nadam(nadam::Nadam),
}

impl Rule {
    fn slots(&self) -> SlotSpec {
        match self {
            Rule::Sgd(r) => r.slots(),
            Rule::RmsProp(r) => r.slots(),
            Rule::Adagrad(r) => r.slots(),
            Rule::Adadelta(r) => r.slots(),
            Rule::Adam(r) => r.slots(),
            Rule::Adamax(r) => r.slots(),
            Rule::Nadam(r) => r.slots(),
        }
    }

    /// How Keras 3 orders the slots in `optimizer.variables`: slots created by one
    /// `add_optimizer_variables` call are interleaved variable by variable, and calls follow
    /// one another (RMSprop makes three calls, Adam two, the others one).
    fn slot_groups(&self) -> &'static [&'static [usize]] {
        match self {
            Rule::RmsProp(_) => &[&[0], &[1], &[2]],
            Rule::Adam(_) => &[&[0, 1], &[2]],
            Rule::Adadelta(_) | Rule::Adamax(_) | Rule::Nadam(_) => &[&[0, 1]],
            Rule::Sgd(_) | Rule::Adagrad(_) => &[&[0]],
        }
    }
}

/// Where one of Keras' optimizer variables lives in a [`State`] (or the rule).
#[derive(Clone, Copy, Debug)]
enum Place {
    Average(usize),
    Accumulated(usize),
    Slot(usize, usize),
    UProduct,
}

/// Which gradient clipping Keras applies (it allows at most one).
#[derive(Clone, Copy, Debug)]
enum Clip {
    Off,
    Norm(f32),
    Value(f32),
    GlobalNorm(f32),
}

/// Exponential moving average of the weights (`use_ema=True`).
#[derive(Clone, Copy, Debug)]
struct Ema {
    momentum: f32,
    overwrite_frequency: Option<u64>,
}

/// Per-variable state, created at the first step.
#[derive(Clone, Debug)]
struct State {
    lens: Vec<usize>,
    slots: Vec<[Vec<f32>; MAX_SLOTS]>,
    /// Gradient sums between updates (`gradient_accumulation_steps`), else empty.
    accumulated: Vec<Vec<f32>>,
    /// The weights' moving averages (`use_ema`), else empty.
    averages: Vec<Vec<f32>>,
}

/// A Keras 3 optimizer: hyperparameters, iteration count and slots.
#[derive(Debug)]
pub struct Optimizer {
    kind: &'static str,
    rule: Rule,
    learning_rate: f32,
    /// Replaces `learning_rate` (and `decay`) when set.
    schedule: Option<Schedule>,
    decay: f64,
    weight_decay: Option<f32>,
    clip: Clip,
    loss_scale_factor: Option<f32>,
    accumulation_steps: Option<u64>,
    ema: Option<Ema>,
    /// Keras' `_iterations`: every `apply`, including accumulation-only ones.
    raw_iterations: u64,
    state: Option<State>,
    /// The slots on the GPU, while the optimizer steps a GPU model (then `state` is `None`).
    gpu: Option<gpu::GpuState>,
}

const KINDS: [&str; 8] = [
    "sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamax", "nadam", "adamw",
];

impl Optimizer {
    /// Builds an optimizer from Keras 3 argument names; booleans are 0/1, Keras' `None` is an
    /// absent key, and absent keys take Keras 3's defaults.
    ///
    /// kind: "sgd" | "rmsprop" | "adagrad" | "adadelta" | "adam" | "adamax" | "nadam" | "adamw".
    pub fn from_spec(kind: &str, params: &[(String, f64)]) -> Result<Optimizer> {
        let kind = KINDS
            .iter()
            .copied()
            .find(|k| k.eq_ignore_ascii_case(kind))
            .ok_or_else(|| {
                Error::Value(format!("Could not interpret optimizer identifier: {kind}"))
            })?;
        let mut a = Args::new(params)?;
        let unit = |a: &mut Args, name: &str, default: f64| a.float_in(name, default, 0.0, 1.0);
        let non_negative =
            |a: &mut Args, name: &str, default: f64| a.float_in(name, default, 0.0, f64::INFINITY);
        let default_lr = if kind == "sgd" { 0.01 } else { 0.001 };
        let learning_rate = non_negative(&mut a, "learning_rate", default_lr)? as f32;
        let rule = match kind {
            "sgd" => Rule::Sgd(sgd::Sgd {
                momentum: unit(&mut a, "momentum", 0.0)?,
                nesterov: a.flag("nesterov", false)?,
            }),
            "rmsprop" => Rule::RmsProp(rmsprop::RmsProp {
                rho: unit(&mut a, "rho", 0.9)?,
                momentum: unit(&mut a, "momentum", 0.0)?,
                epsilon: non_negative(&mut a, "epsilon", 1e-7)?,
                centered: a.flag("centered", false)?,
            }),
            "adagrad" => Rule::Adagrad(adagrad::Adagrad {
                initial_accumulator_value: non_negative(&mut a, "initial_accumulator_value", 0.1)?,
                epsilon: non_negative(&mut a, "epsilon", 1e-7)?,
            }),
            "adadelta" => Rule::Adadelta(adadelta::Adadelta {
                rho: unit(&mut a, "rho", 0.95)?,
                epsilon: non_negative(&mut a, "epsilon", 1e-7)?,
            }),
            "adam" | "adamw" => Rule::Adam(adam::Adam {
                beta_1: unit(&mut a, "beta_1", 0.9)?,
                beta_2: unit(&mut a, "beta_2", 0.999)?,
                epsilon: non_negative(&mut a, "epsilon", 1e-7)?,
                amsgrad: a.flag("amsgrad", false)?,
            }),
            "adamax" => Rule::Adamax(adamax::Adamax {
                beta_1: unit(&mut a, "beta_1", 0.9)?,
                beta_2: unit(&mut a, "beta_2", 0.999)?,
                epsilon: non_negative(&mut a, "epsilon", 1e-7)?,
            }),
            _ => Rule::Nadam(nadam::Nadam::new(
                unit(&mut a, "beta_1", 0.9)?,
                unit(&mut a, "beta_2", 0.999)?,
                non_negative(&mut a, "epsilon", 1e-7)?,
            )),
        };
        let weight_decay = match (kind, a.optional_non_negative("weight_decay")?) {
            ("adamw", None) => Some(0.004),
            (_, wd) => wd,
        };
        let clips = [
            a.optional_non_negative("clipnorm")?
                .map(|c| Clip::Norm(c as f32)),
            a.optional_non_negative("clipvalue")?
                .map(|c| Clip::Value(c as f32)),
            a.optional_non_negative("global_clipnorm")?
                .map(|c| Clip::GlobalNorm(c as f32)),
        ];
        let clip = match clips.iter().flatten().collect::<Vec<_>>()[..] {
            [] => Clip::Off,
            [only] => *only,
            _ => {
                return Err(Error::Value(format!(
                    "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. \
                     Received: {}",
                    params
                        .iter()
                        .filter(|(n, _)| n.contains("clip"))
                        .map(|(n, x)| format!("{n}={}", spec::format_number(*x)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        let decay = non_negative(&mut a, "decay", 0.0)?;
        let loss_scale_factor = match a.optional_non_negative("loss_scale_factor")? {
            Some(0.0) => {
                return Err(Error::Value(
                    "Invalid value received for argument `loss_scale_factor`. Expected a \
                     float > 0. Received: loss_scale_factor=0"
                        .into(),
                ))
            }
            s => s.map(|s| s as f32),
        };
        let accumulation_steps = a.optional_integer("gradient_accumulation_steps", 2)?;
        let use_ema = a.flag("use_ema", false)?;
        let ema_momentum = unit(&mut a, "ema_momentum", 0.99)? as f32;
        let ema_overwrite_frequency = a.optional_integer("ema_overwrite_frequency", 1)?;
        a.finish()?;
        Ok(Optimizer {
            kind,
            rule,
            learning_rate,
            schedule: None,
            decay,
            weight_decay: weight_decay.map(|w| w as f32),
            clip,
            loss_scale_factor,
            accumulation_steps,
            ema: use_ema.then_some(Ema {
                momentum: ema_momentum,
                overwrite_frequency: ema_overwrite_frequency,
            }),
            raw_iterations: 0,
            state: None,
            gpu: None,
        })
    }

    /// The optimizer's kind, lower case ("adam", ...).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Keras' `optimizer.iterations`: completed update steps (with gradient accumulation,
    /// calls divided by `gradient_accumulation_steps`).
    pub fn iterations(&self) -> u64 {
        match self.accumulation_steps {
            Some(steps) => self.raw_iterations / steps,
            None => self.raw_iterations,
        }
    }

    /// Keras' `_iterations`: every `apply`, accumulation-only ones included (schedules are
    /// evaluated at this count; a `.keras` file's `optimizer/vars/0` holds it).
    pub fn raw_iterations(&self) -> u64 {
        self.raw_iterations
    }

    /// The base learning rate, before Keras 1 `decay`.
    pub fn learning_rate(&self) -> f32 {
        self.learning_rate
    }

    pub fn set_learning_rate(&mut self, lr: f32) {
        self.learning_rate = lr;
    }

    /// Makes the learning rate follow `schedule` (None: the fixed rate again).
    pub fn set_schedule(&mut self, schedule: Option<Schedule>) {
        self.schedule = schedule;
    }

    pub fn schedule(&self) -> Option<&Schedule> {
        self.schedule.as_ref()
    }

    /// The rate the next step will use: the schedule at Keras' raw iteration count (every
    /// `apply`, as Keras' `_iterations`), else `lr / (1 + decay * iterations)`.
    pub fn current_learning_rate(&self) -> f32 {
        if let Some(s) = &self.schedule {
            return s.at(self.raw_iterations);
        }
        if self.decay == 0.0 {
            self.learning_rate
        } else {
            (f64::from(self.learning_rate) / (1.0 + self.decay * self.iterations() as f64)) as f32
        }
    }

    /// One optimizer step over all variables (Keras `apply_gradients`). `grads` are used as
    /// scratch (clipping happens in place). The variables' number and sizes are fixed by the
    /// first call.
    pub fn apply(&mut self, params: &mut [&mut [f32]], grads: &mut [&mut [f32]]) -> Result<()> {
        self.check_shapes(params, grads)?;
        if params.is_empty() {
            return Ok(());
        }
        let iterations = self.iterations();
        let lr = self.current_learning_rate();
        let mut state = match self.state.take() {
            Some(s) => s,
            None => self.build(&params.iter().map(|p| p.len()).collect::<Vec<_>>()),
        };
        if let Some(scale) = self.loss_scale_factor {
            grads
                .iter_mut()
                .for_each(|g| g.iter_mut().for_each(|x| *x /= scale));
        }
        let update = match self.accumulation_steps {
            None => true,
            Some(steps) => accumulate(&mut state.accumulated, grads, self.raw_iterations, steps),
        };
        if update {
            let prologue = self.prologues(grads, lr);
            let t = iterations + 1;
            let (params_, grads_, slots) = (&mut *params, &mut *grads, &mut state.slots);
            match &mut self.rule {
                Rule::Sgd(r) => sweep_all(&r.step(lr), &prologue, params_, grads_, slots),
                Rule::RmsProp(r) => sweep_all(&r.step(lr), &prologue, params_, grads_, slots),
                Rule::Adagrad(r) => sweep_all(&r.step(lr), &prologue, params_, grads_, slots),
                Rule::Adadelta(r) => sweep_all(&r.step(lr), &prologue, params_, grads_, slots),
                Rule::Adam(r) => sweep_all(&r.step(lr, t), &prologue, params_, grads_, slots),
                Rule::Adamax(r) => sweep_all(&r.step(lr, t), &prologue, params_, grads_, slots),
                Rule::Nadam(r) => sweep_all(&r.step(lr, t), &prologue, params_, grads_, slots),
            }
        }
        if let Some(ema) = self.ema {
            update_averages(ema, iterations, &mut state.averages, params);
        }
        self.state = Some(state);
        self.raw_iterations += 1;
        Ok(())
    }

    /// Keras' `finalize_variable_values`: with `use_ema`, overwrites the weights with their
    /// moving averages (fit does this after the last epoch); otherwise does nothing.
    pub fn finalize_variable_values(&self, params: &mut [&mut [f32]]) -> Result<()> {
        let Some(state) = self.state.as_ref().filter(|_| self.ema.is_some()) else {
            return Ok(());
        };
        self.check_lens(state, params.iter().map(|p| p.len()))?;
        for (p, avg) in params.iter_mut().zip(&state.averages) {
            p.copy_from_slice(avg);
        }
        Ok(())
    }

    fn check_shapes(&self, params: &[&mut [f32]], grads: &[&mut [f32]]) -> Result<()> {
        if params.len() != grads.len() {
            return Err(Error::Value(format!(
                "Expected one gradient per variable. Received {} gradients for {} variables.",
                grads.len(),
                params.len()
            )));
        }
        if let Some(i) = (0..params.len()).find(|&i| params[i].len() != grads[i].len()) {
            return Err(Error::Value(format!(
                "Gradient {i} has {} elements but its variable has {}.",
                grads[i].len(),
                params[i].len()
            )));
        }
        match &self.state {
            Some(state) => self.check_lens(state, params.iter().map(|p| p.len())),
            None => Ok(()),
        }
    }

    fn check_lens(&self, state: &State, lens: impl ExactSizeIterator<Item = usize>) -> Result<()> {
        let lens: Vec<usize> = lens.collect();
        if lens == state.lens {
            return Ok(());
        }
        Err(Error::Value(format!(
            "This optimizer was built for {} variables of sizes {:?}; received {} variables \
             of sizes {:?}. It can only be applied to the variables it was first applied to; \
             create a new optimizer for new variables.",
            state.lens.len(),
            state.lens,
            lens.len(),
            lens
        )))
    }

    /// Keras' `build`: zero (or `initial_accumulator_value`) slots shaped like each variable.
    fn build(&self, lens: &[usize]) -> State {
        let spec = self.rule.slots();
        let slots = lens
            .iter()
            .map(|&n| spec.map(|s| s.map_or_else(Vec::new, |(_, init)| vec![init; n])))
            .collect();
        let zeros = |on: bool| -> Vec<Vec<f32>> {
            if on {
                lens.iter().map(|&n| vec![0.0; n]).collect()
            } else {
                Vec::new()
            }
        };
        State {
            lens: lens.to_vec(),
            slots,
            accumulated: zeros(self.accumulation_steps.is_some()),
            // Keras starts the averages at zero; the first update sets them to the weights.
            averages: zeros(self.ema.is_some()),
        }
    }

    /// Keras 3's order of `optimizer.variables` after `iterations` and `learning_rate`:
    /// EMA averages, gradient accumulators, the rule's slots, Nadam's `u_product`. Keras'
    /// variable `j` is this optimizer's variable `order[j]` (Keras orders them as the model
    /// lists its weights, which need not be the order the optimizer was built with).
    fn layout(&self, order: &[usize]) -> Vec<(&'static str, Place)> {
        let mut out = Vec::new();
        if self.ema.is_some() {
            out.extend(order.iter().map(|&i| ("average", Place::Average(i))));
        }
        if self.accumulation_steps.is_some() {
            out.extend(
                order
                    .iter()
                    .map(|&i| ("gradient_accumulator", Place::Accumulated(i))),
            );
        }
        let spec = self.rule.slots();
        for group in self.rule.slot_groups() {
            for &i in order {
                for &k in group.iter() {
                    if let Some((name, _)) = spec[k] {
                        out.push((name, Place::Slot(i, k)));
                    }
                }
            }
        }
        if matches!(self.rule, Rule::Nadam(_)) {
            out.push(("u_product", Place::UProduct));
        }
        out
    }

    /// Drops the slots (they are made anew at the next step, as at the first) and sets Keras'
    /// raw `iterations`.
    pub fn reset(&mut self, iterations: u64) {
        self.state = None;
        self.gpu = None;
        self.raw_iterations = iterations;
        if let Rule::Nadam(r) = &mut self.rule {
            r.u_product = 1.0;
        }
    }

    /// For each entry of [`Optimizer::slot_variables_in_order`], the optimizer variable it
    /// belongs to (None for Nadam's `u_product`, a scalar of its own).
    pub fn slot_owners(&self, order: &[usize]) -> Vec<Option<usize>> {
        if self.state.is_none() {
            return Vec::new();
        }
        self.layout(order)
            .into_iter()
            .map(|(_, place)| match place {
                Place::Average(i) | Place::Accumulated(i) | Place::Slot(i, _) => Some(i),
                Place::UProduct => None,
            })
            .collect()
    }

    /// Keras 3's `optimizer.variables[2:]` (what follows `iterations` and `learning_rate`
    /// in a `.keras` file's `optimizer/vars`), as `(slot name, values)` in Keras' order;
    /// empty before the first step, as Keras' list is before `build`.
    pub fn slot_variables(&self) -> Vec<(&'static str, &[f32])> {
        let n = self.state.as_ref().map_or(0, |s| s.lens.len());
        self.slot_variables_in_order(&(0..n).collect::<Vec<_>>())
            .unwrap_or_default()
    }

    /// [`Optimizer::slot_variables`] for Keras' variable order `order` (Keras' variable `j`
    /// is this optimizer's variable `order[j]`; a permutation of all of them).
    pub fn slot_variables_in_order(&self, order: &[usize]) -> Result<Vec<(&'static str, &[f32])>> {
        let Some(state) = &self.state else {
            return Ok(Vec::new());
        };
        check_order(order, state.lens.len())?;
        Ok(self
            .layout(order)
            .into_iter()
            .map(|(name, place)| {
                let values: &[f32] = match (place, &self.rule) {
                    (Place::Average(i), _) => &state.averages[i],
                    (Place::Accumulated(i), _) => &state.accumulated[i],
                    (Place::Slot(i, k), _) => &state.slots[i][k],
                    (Place::UProduct, Rule::Nadam(r)) => std::slice::from_ref(&r.u_product),
                    (Place::UProduct, _) => &[],
                };
                (name, values)
            })
            .collect())
    }

    /// Restores a saved state: Keras' raw `iterations` and the values `slot_variables`
    /// lists, for model variables of sizes `lens`. Counts and sizes must match.
    pub fn load_variables(
        &mut self,
        iterations: u64,
        lens: &[usize],
        values: &[&[f32]],
    ) -> Result<()> {
        self.load_variables_in_order(
            iterations,
            lens,
            &(0..lens.len()).collect::<Vec<_>>(),
            values,
        )
    }

    /// [`Optimizer::load_variables`] with the values in Keras' variable order `order` (as
    /// [`Optimizer::slot_variables_in_order`] lists them). Slots that lived on the GPU are
    /// dropped there and uploaded anew, from this state, at the next step.
    pub fn load_variables_in_order(
        &mut self,
        iterations: u64,
        lens: &[usize],
        order: &[usize],
        values: &[&[f32]],
    ) -> Result<()> {
        check_order(order, lens.len())?;
        let layout = self.layout(order);
        if layout.len() != values.len() {
            return Err(Error::Value(format!(
                "This optimizer has {} variables for {} model variables, but {} were given.",
                layout.len(),
                lens.len(),
                values.len()
            )));
        }
        let mut state = self.build(lens);
        let mut u_product = None;
        for ((name, place), v) in layout.into_iter().zip(values) {
            let target: &mut [f32] = match place {
                Place::Average(i) => &mut state.averages[i],
                Place::Accumulated(i) => &mut state.accumulated[i],
                Place::Slot(i, k) => &mut state.slots[i][k],
                Place::UProduct => std::slice::from_mut(u_product.insert(0.0f32)),
            };
            if target.len() != v.len() {
                return Err(Error::Value(format!(
                    "Optimizer variable `{name}` has {} elements; received {}.",
                    target.len(),
                    v.len()
                )));
            }
            target.copy_from_slice(v);
        }
        if let (Rule::Nadam(r), Some(u)) = (&mut self.rule, u_product) {
            r.u_product = u;
        }
        self.state = Some(state);
        self.gpu = None;
        self.raw_iterations = iterations;
        Ok(())
    }

    /// Clipping and weight decay for each variable, as Keras' `_clip_gradients` and
    /// `_apply_weight_decay` (the step's learning rate scales the decay).
    fn prologues(&self, grads: &[&mut [f32]], lr: f32) -> Vec<Prologue> {
        let weight_decay = self.weight_decay.map(|wd| (wd, lr));
        let global = match self.clip {
            Clip::GlobalNorm(c) if c > 0.0 => {
                let norm = grads.iter().map(|g| sum_squares(g)).sum::<f64>().sqrt() as f32;
                // Keras: clip * min(1/norm, 1/clip), made NaN when the norm is not finite.
                let scale = if norm.is_finite() {
                    c * (1.0 / norm).min(1.0 / c)
                } else {
                    f32::NAN
                };
                Some(GradOp::Scale(scale))
            }
            _ => None,
        };
        grads
            .iter()
            .map(|g| Prologue {
                grad_op: match self.clip {
                    Clip::Norm(c) if c > 0.0 => GradOp::clip_norm(c, sum_squares(g)),
                    Clip::Value(v) if v > 0.0 => GradOp::Clamp(v),
                    Clip::GlobalNorm(_) => global.unwrap_or(GradOp::Keep),
                    _ => GradOp::Keep,
                },
                weight_decay,
            })
            .collect()
    }
}

/// Checks that `order` is a permutation of `0..n`.
fn check_order(order: &[usize], n: usize) -> Result<()> {
    let mut seen = vec![false; n];
    for &i in order {
        if i >= n || std::mem::replace(&mut seen[i], true) {
            return Err(Error::Value(format!(
                "The optimizer's variable order must list each of its {n} variables once; \
                 received {order:?}."
            )));
        }
    }
    if order.len() != n {
        return Err(Error::Value(format!(
            "The optimizer has {n} variables; the variable order lists {}.",
            order.len()
        )));
    }
    Ok(())
}

fn sweep_all<K: Kernel>(
    kernel: &K,
    prologues: &[Prologue],
    params: &mut [&mut [f32]],
    grads: &mut [&mut [f32]],
    slots: &mut [[Vec<f32>; MAX_SLOTS]],
) {
    for (((p, g), s), prologue) in params.iter_mut().zip(grads).zip(slots).zip(prologues) {
        sweep(
            kernel,
            *prologue,
            p,
            g,
            s.each_mut().map(|v| v.as_mut_slice()),
        );
    }
}

/// Keras' gradient accumulation: adds the gradients to the sums and returns false, except
/// on every `steps`-th call, where it leaves `(g + sum) / steps` in `grads`, resets the sums
/// and returns true.
fn accumulate(sums: &mut [Vec<f32>], grads: &mut [&mut [f32]], raw: u64, steps: u64) -> bool {
    let update = (raw + 1).is_multiple_of(steps);
    for (sum, g) in sums.iter_mut().zip(grads.iter_mut()) {
        if update {
            for (s, g) in sum.iter_mut().zip(g.iter_mut()) {
                *g = (*g + *s) / steps as f32;
                *s = 0.0;
            }
        } else {
            sum.iter_mut().zip(g.iter()).for_each(|(s, g)| *s += g);
        }
    }
    update
}

/// Keras' `_update_model_variables_moving_average` (momentum 0 on the first step) and the
/// periodic overwrite of the weights by their averages.
fn update_averages(
    ema: Ema,
    iterations: u64,
    averages: &mut [Vec<f32>],
    params: &mut [&mut [f32]],
) {
    let momentum = if iterations != 0 { ema.momentum } else { 0.0 };
    let overwrite = ema
        .overwrite_frequency
        .is_some_and(|f| (iterations + 1).is_multiple_of(f));
    for (avg, p) in averages.iter_mut().zip(params.iter_mut()) {
        for (a, p) in avg.iter_mut().zip(p.iter_mut()) {
            *a = momentum * *a + (1.0 - momentum) * *p;
            if overwrite {
                *p = *a;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Optimizer;

    /// Runs one optimizer over one variable for the given per-step gradients.
    pub fn run_steps(kind: &str, params: &[(&str, f64)], w0: &[f32], grads: &[&[f32]]) -> Vec<f32> {
        let params: Vec<(String, f64)> = params.iter().map(|(n, x)| (n.to_string(), *x)).collect();
        let mut opt = Optimizer::from_spec(kind, &params).unwrap();
        let mut w = w0.to_vec();
        for g in grads {
            let mut g = g.to_vec();
            opt.apply(&mut [&mut w[..]], &mut [&mut g[..]]).unwrap();
        }
        w
    }

    pub fn assert_close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let tol = 2e-6 * w.abs().max(1.0);
            assert!(
                (f64::from(*g) - w).abs() <= tol,
                "got {got:?}, want {want:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests;
