//! Adagrad, as Keras 3's `keras.optimizers.Adagrad`: the accumulator starts at
//! `initial_accumulator_value` (0.1), `acc += g^2; w -= lr g / sqrt(acc + eps)`.

use super::sweep::{GpuRule, Kernel, SlotSpec, Slots};

#[derive(Clone, Debug)]
pub(crate) struct Adagrad {
    pub initial_accumulator_value: f64,
    pub epsilon: f64,
}

impl Adagrad {
    pub fn slots(&self) -> SlotSpec {
        [
            Some(("accumulator", self.initial_accumulator_value as f32)),
            None,
            None,
        ]
    }

    pub fn step(&self, lr: f32) -> AdagradStep {
        AdagradStep {
            lr,
            epsilon: self.epsilon as f32,
        }
    }
}

pub(crate) struct AdagradStep {
    lr: f32,
    epsilon: f32,
}

impl Kernel for AdagradStep {
    fn gpu(&self) -> GpuRule {
        GpuRule::new(2, 0, &[self.lr, self.epsilon])
    }
    #[inline(always)]
    fn update(&self, p: &mut [f32], g: &[f32], [acc, _, _]: Slots<'_>) {
        for ((p, &g), acc) in p.iter_mut().zip(g).zip(acc.iter_mut()) {
            *acc += g * g;
            *p -= self.lr * g / (*acc + self.epsilon).sqrt();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizers::testing::{assert_close, run_steps};

    #[test]
    fn two_steps_from_initial_accumulator() {
        // acc1 = 0.1 + 1 = 1.1, w1 = 1 - 0.1 / sqrt(1.1 + 1e-7)
        // acc2 = 1.1 + 4 = 5.1, w2 = w1 - 0.1 * -2 / sqrt(5.1 + 1e-7)
        let w = run_steps(
            "adagrad",
            &[("learning_rate", 0.1)],
            &[1.0],
            &[&[1.0], &[-2.0]],
        );
        let w1 = 1.0 - 0.1 / (1.1f64 + 1e-7).sqrt();
        assert_close(&w, &[w1 + 0.2 / (5.1f64 + 1e-7).sqrt()]);
    }

    #[test]
    fn custom_initial_accumulator() {
        let w = run_steps(
            "adagrad",
            &[("learning_rate", 0.1), ("initial_accumulator_value", 0.0)],
            &[1.0],
            &[&[2.0]],
        );
        assert_close(&w, &[1.0 - 0.2 / (4.0f64 + 1e-7).sqrt()]);
    }
}
