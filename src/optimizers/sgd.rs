//! SGD with optional (Nesterov) momentum, as Keras 3's `keras.optimizers.SGD`:
//! `m = momentum * m - lr * g; w += m` (Nesterov: `w += momentum * m - lr * g`);
//! without momentum `w -= lr * g` and no slot.

use super::sweep::{GpuRule, Kernel, SlotSpec, Slots};

#[derive(Clone, Debug)]
pub(crate) struct Sgd {
    pub momentum: f64,
    pub nesterov: bool,
}

impl Sgd {
    /// Keras creates the `momentum` slot only when momentum != 0.
    pub fn slots(&self) -> SlotSpec {
        [
            (self.momentum != 0.0).then_some(("momentum", 0.0)),
            None,
            None,
        ]
    }

    pub fn step(&self, lr: f32) -> SgdStep {
        SgdStep {
            lr,
            momentum: self.momentum as f32,
            mode: match (self.momentum != 0.0, self.nesterov) {
                (false, _) => Mode::Plain,
                (true, false) => Mode::Momentum,
                (true, true) => Mode::Nesterov,
            },
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Plain,
    Momentum,
    Nesterov,
}

pub(crate) struct SgdStep {
    lr: f32,
    momentum: f32,
    mode: Mode,
}

impl Kernel for SgdStep {
    fn gpu(&self) -> GpuRule {
        let flags = match self.mode {
            Mode::Plain => 0,
            Mode::Momentum => 1,
            Mode::Nesterov => 3,
        };
        GpuRule::new(0, flags, &[self.lr, self.momentum])
    }
    #[inline(always)]
    fn update(&self, p: &mut [f32], g: &[f32], [m, _, _]: Slots<'_>) {
        let (lr, mu) = (self.lr, self.momentum);
        match self.mode {
            Mode::Plain => p.iter_mut().zip(g).for_each(|(p, &g)| *p -= g * lr),
            Mode::Momentum => {
                for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
                    *m = *m * mu - g * lr;
                    *p += *m;
                }
            }
            Mode::Nesterov => {
                for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
                    *m = *m * mu - g * lr;
                    *p += *m * mu - g * lr;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizers::testing::{assert_close, run_steps};

    #[test]
    fn plain_step() {
        // w = 1 - 0.1 * 0.5 = 0.95; then 0.95 - 0.1 * -2 = 1.15
        let w = run_steps("sgd", &[("learning_rate", 0.1)], &[1.0], &[&[0.5], &[-2.0]]);
        assert_close(&w, &[1.15]);
    }

    #[test]
    fn momentum_steps() {
        // m1 = -0.1*1 = -0.1, w1 = 0.9; m2 = 0.9*-0.1 - 0.1*1 = -0.19, w2 = 0.71
        let w = run_steps(
            "sgd",
            &[("learning_rate", 0.1), ("momentum", 0.9)],
            &[1.0],
            &[&[1.0], &[1.0]],
        );
        assert_close(&w, &[0.71]);
    }

    #[test]
    fn nesterov_steps() {
        // m1 = -0.1, w1 = 1 + 0.9*-0.1 - 0.1 = 0.81; m2 = -0.19, w2 = 0.81 - 0.171 - 0.1 = 0.539
        let w = run_steps(
            "sgd",
            &[("learning_rate", 0.1), ("momentum", 0.9), ("nesterov", 1.0)],
            &[1.0],
            &[&[1.0], &[1.0]],
        );
        assert_close(&w, &[0.539]);
    }
}
