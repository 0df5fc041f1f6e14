//! The fused pass over one variable: gradient transform (clipping), decoupled weight decay
//! and the update rule, chunk by chunk, so each element is read and written once per step.
//! Large variables are split across rayon threads; small ones run on the calling thread and
//! pay no scheduling cost.

use rayon::prelude::*;

/// Most slot arrays (momentums, velocities, ...) any rule keeps per variable.
pub(crate) const MAX_SLOTS: usize = 3;

/// A rule's slot arrays for one chunk, in the rule's slot order; unused entries are empty.
pub(crate) type Slots<'a> = [&'a mut [f32]; MAX_SLOTS];

/// The slots a rule keeps per variable: `(Keras name, initial value)` at fixed positions;
/// `None` where an option turns a slot off.
pub(crate) type SlotSpec = [Option<(&'static str, f32)>; MAX_SLOTS];

/// Variables longer than this are updated by several threads.
const PARALLEL_MIN: usize = 1 << 16;
/// Length of the pieces a parallel sweep hands to threads (64 KiB of f32: stays in L2).
const CHUNK: usize = 1 << 14;

/// One step of an update rule with its per-step scalars already computed.
pub(crate) trait Kernel: Sync {
    /// Updates `p` (and the slots) from the already clipped gradient `g`; all same length.
    /// Implementations are `#[inline(always)]`, so that they compile inside the sweep's
    /// vector-width dispatch.
    fn update(&self, p: &mut [f32], g: &[f32], s: Slots<'_>);
    /// The same step for the GPU's fused update kernel (`optimizers.wgsl`).
    fn gpu(&self) -> GpuRule;
}

/// Most per-step scalars a rule passes the GPU kernel.
pub(crate) const GPU_RULE_SCALARS: usize = 12;

/// A rule's step as the GPU kernel takes it: the rule's code and option flags (fixed for a
/// program) and its per-step scalars (written before every step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct GpuRule {
    pub code: u32,
    pub flags: u32,
    pub scalars: [f32; GPU_RULE_SCALARS],
}

impl GpuRule {
    pub fn new(code: u32, flags: u32, values: &[f32]) -> GpuRule {
        let mut scalars = [0.0; GPU_RULE_SCALARS];
        scalars[..values.len()].copy_from_slice(values);
        GpuRule {
            code,
            flags,
            scalars,
        }
    }
}

/// What clipping does to a variable's gradient this step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum GradOp {
    Keep,
    /// `clip(g, -v, v)` (Keras `clipvalue`).
    Clamp(f32),
    /// `g * clipnorm / max(norm, clipnorm)` (Keras `_clip_by_norm`, same operation order).
    ClipNorm {
        clipnorm: f32,
        denominator: f32,
    },
    /// `g * scale` (Keras `clip_by_global_norm`).
    Scale(f32),
}

impl GradOp {
    /// The per-variable clip of Keras' `_clip_by_norm`, given the variable's squared L2 norm.
    pub(crate) fn clip_norm(clipnorm: f32, sum_squares: f64) -> GradOp {
        // Keras takes the norm as 0 when the sum is not > 0, and lets NaN through.
        let norm = if sum_squares > 0.0 {
            sum_squares.sqrt() as f32
        } else {
            sum_squares as f32
        };
        let denominator = if norm.is_nan() {
            f32::NAN
        } else {
            norm.max(clipnorm)
        };
        GradOp::ClipNorm {
            clipnorm,
            denominator,
        }
    }

    #[inline(always)]
    fn apply(self, g: &mut [f32]) {
        match self {
            GradOp::Keep => {}
            GradOp::Clamp(v) => g.iter_mut().for_each(|x| *x = x.clamp(-v, v)),
            GradOp::ClipNorm {
                clipnorm,
                denominator,
            } => g.iter_mut().for_each(|x| *x = *x * clipnorm / denominator),
            GradOp::Scale(s) => g.iter_mut().for_each(|x| *x *= s),
        }
    }
}

/// Everything applied to a variable before its rule: clipping and decoupled weight decay
/// `w -= w * weight_decay * lr` (Keras `_apply_weight_decay`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prologue {
    pub grad_op: GradOp,
    /// `(weight_decay, learning_rate)`, both as Keras casts them to the variable's dtype.
    pub weight_decay: Option<(f32, f32)>,
}

/// Runs the prologue and the kernel over one variable.
pub(crate) fn sweep<K: Kernel>(
    kernel: &K,
    prologue: Prologue,
    p: &mut [f32],
    g: &mut [f32],
    s: Slots<'_>,
) {
    // Each chunk runs compiled for the CPU's widest vectors (`simd::dispatch`): the rules'
    // square roots and divisions ran 4 lanes wide in the baseline build, a fifth of a
    // batch-32 MLP step with RMSprop.
    let body = |p: &mut [f32], g: &mut [f32], s: Slots<'_>| {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                prologue.grad_op.apply(g);
                if let Some((wd, lr)) = prologue.weight_decay {
                    p.iter_mut().for_each(|x| *x -= *x * wd * lr);
                }
                kernel.update(p, g, s);
            },
        )
    };
    if p.len() > PARALLEL_MIN {
        split(&body, p, g, s);
    } else {
        body(p, g, s);
    }
}

/// Halves every array at the same index and recurses in parallel down to `CHUNK`; no
/// allocation, so a step allocates nothing whatever the variable's size.
fn split<F>(f: &F, p: &mut [f32], g: &mut [f32], mut s: Slots<'_>)
where
    F: Fn(&mut [f32], &mut [f32], Slots<'_>) + Sync,
{
    if p.len() <= CHUNK {
        return f(p, g, s);
    }
    // Cut on a multiple of CHUNK so that every piece but the last is a whole chunk.
    let mid = (p.len() / 2).div_ceil(CHUNK) * CHUNK;
    let (pl, pr) = p.split_at_mut(mid);
    let (gl, gr) = g.split_at_mut(mid);
    let mut right: Slots<'_> = Default::default();
    for (l, r) in s.iter_mut().zip(right.iter_mut()) {
        if !l.is_empty() {
            let (a, b) = std::mem::take(l).split_at_mut(mid);
            *l = a;
            *r = b;
        }
    }
    rayon::join(|| split(f, pl, gl, s), || split(f, pr, gr, right));
}

/// `sum(g^2)` accumulated in f64, in parallel for large variables.
pub(crate) fn sum_squares(g: &[f32]) -> f64 {
    let partial = |c: &[f32]| c.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
    if g.len() > PARALLEL_MIN {
        g.par_chunks(CHUNK).map(partial).sum()
    } else {
        partial(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct AddGrad;
    impl Kernel for AddGrad {
        fn gpu(&self) -> GpuRule {
            GpuRule::new(0, 0, &[])
        }
        fn update(&self, p: &mut [f32], g: &[f32], [a, _, _]: Slots<'_>) {
            for ((p, g), a) in p.iter_mut().zip(g).zip(a.iter_mut()) {
                *a += 1.0;
                *p += g;
            }
        }
    }

    #[test]
    fn parallel_sweep_covers_every_element() {
        let n = PARALLEL_MIN * 3 + 17;
        let mut p = vec![1.0f32; n];
        let mut g: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut a = vec![0.0f32; n];
        let prologue = Prologue {
            grad_op: GradOp::Scale(2.0),
            weight_decay: None,
        };
        sweep(
            &AddGrad,
            prologue,
            &mut p,
            &mut g,
            [&mut a, &mut [], &mut []],
        );
        assert!(a.iter().all(|&x| x == 1.0));
        assert!(p
            .iter()
            .enumerate()
            .all(|(i, &x)| x == 1.0 + 2.0 * i as f32));
    }

    #[test]
    fn clip_norm_matches_keras_cases() {
        assert_eq!(
            GradOp::clip_norm(1.0, 0.0),
            GradOp::ClipNorm {
                clipnorm: 1.0,
                denominator: 1.0
            }
        );
        assert_eq!(
            GradOp::clip_norm(1.0, 25.0),
            GradOp::ClipNorm {
                clipnorm: 1.0,
                denominator: 5.0
            }
        );
    }
}
