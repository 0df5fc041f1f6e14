//! Adamax, as Keras 3's `keras.optimizers.Adamax`:
//! `m += (g - m)(1 - b1); u = max(b2 u, |g|); w -= lr m / ((1 - b1^t)(u + eps))`.

use super::sweep::{GpuRule, Kernel, SlotSpec, Slots};

#[derive(Clone, Debug)]
pub(crate) struct Adamax {
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
}

impl Adamax {
    pub fn slots(&self) -> SlotSpec {
        [Some(("momentum", 0.0)), Some(("norm", 0.0)), None]
    }

    pub fn step(&self, lr: f32, t: u64) -> AdamaxStep {
        AdamaxStep {
            lr,
            bias_correction: 1.0 - (self.beta_1 as f32).powf(t as f32),
            one_minus_beta_1: (1.0 - self.beta_1) as f32,
            beta_2: self.beta_2 as f32,
            epsilon: self.epsilon as f32,
        }
    }
}

pub(crate) struct AdamaxStep {
    lr: f32,
    bias_correction: f32,
    one_minus_beta_1: f32,
    beta_2: f32,
    epsilon: f32,
}

impl Kernel for AdamaxStep {
    fn gpu(&self) -> GpuRule {
        GpuRule::new(
            5,
            0,
            &[
                self.lr,
                self.bias_correction,
                self.one_minus_beta_1,
                self.beta_2,
                self.epsilon,
            ],
        )
    }
    #[inline(always)]
    fn update(&self, p: &mut [f32], g: &[f32], [m, u, _]: Slots<'_>) {
        for (((p, &g), m), u) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(u.iter_mut()) {
            *m += (g - *m) * self.one_minus_beta_1;
            *u = (self.beta_2 * *u).max(g.abs());
            *p -= self.lr * *m / (self.bias_correction * (*u + self.epsilon));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizers::testing::{assert_close, run_steps};

    #[test]
    fn two_steps() {
        // step 1: m = 0.2, u = 2, w = 1 - 0.1 * 0.2 / (0.1 * (2 + 1e-7))
        // step 2: m = 0.18 - 0.05 = 0.13, u = max(1.998, 0.5) = 1.998,
        //         w -= 0.1 * 0.13 / (0.19 * (1.998 + 1e-7))
        let w = run_steps(
            "adamax",
            &[("learning_rate", 0.1)],
            &[1.0],
            &[&[2.0], &[-0.5]],
        );
        let w1 = 1.0 - 0.1 * 0.2 / (0.1 * (2.0 + 1e-7));
        let w2 = w1 - 0.1 * 0.13 / ((1.0 - 0.81) * (1.998 + 1e-7));
        assert_close(&w, &[w2]);
    }
}
