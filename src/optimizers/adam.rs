//! Adam and AdamW, as Keras 3's `keras.optimizers.Adam` / `AdamW` (AdamW is Adam plus the
//! decoupled weight decay every optimizer applies before its rule, default 0.004):
//! `alpha = lr sqrt(1 - b2^t) / (1 - b1^t); m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);`
//! amsgrad: `v_hat = max(v_hat, v)`, used in place of v; `w -= m alpha / (sqrt(v) + eps)`.

use super::sweep::{GpuRule, Kernel, SlotSpec, Slots};

#[derive(Clone, Debug)]
pub(crate) struct Adam {
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
    pub amsgrad: bool,
}

impl Adam {
    pub fn slots(&self) -> SlotSpec {
        [
            Some(("momentum", 0.0)),
            Some(("velocity", 0.0)),
            self.amsgrad.then_some(("velocity_hat", 0.0)),
        ]
    }

    /// `t` is the 1-based step (Keras `iterations + 1`); scalars in f32 as Keras computes them.
    pub fn step(&self, lr: f32, t: u64) -> AdamStep {
        let t = t as f32;
        let beta_1_power = (self.beta_1 as f32).powf(t);
        let beta_2_power = (self.beta_2 as f32).powf(t);
        AdamStep {
            alpha: lr * (1.0 - beta_2_power).sqrt() / (1.0 - beta_1_power),
            one_minus_beta_1: (1.0 - self.beta_1) as f32,
            one_minus_beta_2: (1.0 - self.beta_2) as f32,
            epsilon: self.epsilon as f32,
            amsgrad: self.amsgrad,
        }
    }
}

pub(crate) struct AdamStep {
    alpha: f32,
    one_minus_beta_1: f32,
    one_minus_beta_2: f32,
    epsilon: f32,
    amsgrad: bool,
}

impl AdamStep {
    #[inline(always)]
    fn run<const AMSGRAD: bool>(&self, p: &mut [f32], g: &[f32], [m, v, vh]: Slots<'_>) {
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        let vh = if AMSGRAD { &mut vh[..n] } else { vh };
        for i in 0..n {
            let gi = g[i];
            m[i] += (gi - m[i]) * self.one_minus_beta_1;
            v[i] += (gi * gi - v[i]) * self.one_minus_beta_2;
            let vi = if AMSGRAD {
                vh[i] = vh[i].max(v[i]);
                vh[i]
            } else {
                v[i]
            };
            p[i] -= m[i] * self.alpha / (vi.sqrt() + self.epsilon);
        }
    }
}

impl Kernel for AdamStep {
    fn gpu(&self) -> GpuRule {
        GpuRule::new(
            4,
            u32::from(self.amsgrad),
            &[
                self.alpha,
                self.one_minus_beta_1,
                self.one_minus_beta_2,
                self.epsilon,
            ],
        )
    }
    #[inline(always)]
    fn update(&self, p: &mut [f32], g: &[f32], s: Slots<'_>) {
        if self.amsgrad {
            self.run::<true>(p, g, s)
        } else {
            self.run::<false>(p, g, s)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizers::testing::{assert_close, run_steps};

    /// Keras' Adam in f64, for `steps` gradients on one scalar.
    fn reference(lr: f64, b2: f64, amsgrad: bool, wd: f64, grads: &[f64]) -> f64 {
        let (b1, eps) = (0.9f64, 1e-7f64);
        let (mut w, mut m, mut v, mut vh) = (1.0f64, 0.0, 0.0, 0.0f64);
        for (i, &g) in grads.iter().enumerate() {
            let t = (i + 1) as i32;
            w -= w * wd * lr;
            let alpha = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
            m += (g - m) * (1.0 - b1);
            v += (g * g - v) * (1.0 - b2);
            vh = vh.max(v);
            let vv = if amsgrad { vh } else { v };
            w -= m * alpha / (vv.sqrt() + eps);
        }
        w
    }

    #[test]
    fn first_step_moves_by_lr() {
        // alpha = lr sqrt(0.001) / 0.1, m = 0.1 g, v = 0.001 g^2 -> step ~ lr * sign(g)
        let w = run_steps("adam", &[("learning_rate", 0.01)], &[1.0], &[&[3.0]]);
        assert_close(&w, &[reference(0.01, 0.999, false, 0.0, &[3.0])]);
        assert!((w[0] - 0.99).abs() < 1e-6);
    }

    #[test]
    fn amsgrad_keeps_max_velocity() {
        let grads = [3.0, 0.1, 0.1];
        let steps: Vec<&[f32]> = vec![&[3.0], &[0.1], &[0.1]];
        let plain = run_steps(
            "adam",
            &[("learning_rate", 0.01), ("beta_2", 0.5)],
            &[1.0],
            &steps,
        );
        let ams = run_steps(
            "adam",
            &[("learning_rate", 0.01), ("beta_2", 0.5), ("amsgrad", 1.0)],
            &[1.0],
            &steps,
        );
        assert_close(&plain, &[reference(0.01, 0.5, false, 0.0, &grads)]);
        assert_close(&ams, &[reference(0.01, 0.5, true, 0.0, &grads)]);
        assert!((plain[0] - ams[0]).abs() > 1e-4);
    }

    #[test]
    fn adamw_decays_weights_first() {
        let w = run_steps(
            "adamw",
            &[("learning_rate", 0.1)],
            &[1.0],
            &[&[0.5], &[0.5]],
        );
        assert_close(&w, &[reference(0.1, 0.999, false, 0.004, &[0.5, 0.5])]);
    }
}
