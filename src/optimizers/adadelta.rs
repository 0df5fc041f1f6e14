//! Adadelta, as Keras 3's `keras.optimizers.Adadelta`:
//! `Eg = rho Eg + (1 - rho) g^2; d = -sqrt(Ed + eps) g / sqrt(Eg + eps);
//! Ed = rho Ed + (1 - rho) d^2; w += lr d`.

use super::sweep::{GpuRule, Kernel, SlotSpec, Slots};

#[derive(Clone, Debug)]
pub(crate) struct Adadelta {
    pub rho: f64,
    pub epsilon: f64,
}

impl Adadelta {
    pub fn slots(&self) -> SlotSpec {
        [
            Some(("accumulated_grad", 0.0)),
            Some(("accumulated_delta_var", 0.0)),
            None,
        ]
    }

    pub fn step(&self, lr: f32) -> AdadeltaStep {
        AdadeltaStep {
            lr,
            rho: self.rho as f32,
            one_minus_rho: (1.0 - self.rho) as f32,
            epsilon: self.epsilon as f32,
        }
    }
}

pub(crate) struct AdadeltaStep {
    lr: f32,
    rho: f32,
    one_minus_rho: f32,
    epsilon: f32,
}

impl Kernel for AdadeltaStep {
    fn gpu(&self) -> GpuRule {
        GpuRule::new(3, 0, &[self.lr, self.rho, self.one_minus_rho, self.epsilon])
    }
    #[inline(always)]
    fn update(&self, p: &mut [f32], g: &[f32], [eg, ed, _]: Slots<'_>) {
        let (rho, rho_c, eps) = (self.rho, self.one_minus_rho, self.epsilon);
        for (((p, &g), eg), ed) in p.iter_mut().zip(g).zip(eg.iter_mut()).zip(ed.iter_mut()) {
            *eg = rho * *eg + rho_c * (g * g);
            let delta = -((*ed + eps).sqrt() * g / (*eg + eps).sqrt());
            *ed = rho * *ed + rho_c * (delta * delta);
            *p += self.lr * delta;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizers::testing::{assert_close, run_steps};

    #[test]
    fn two_steps() {
        let (rho, eps, lr) = (0.95f64, 1e-7f64, 1.0f64);
        let (mut w, mut eg, mut ed) = (1.0f64, 0.0f64, 0.0f64);
        for g in [1.0f64, 0.5] {
            eg = rho * eg + (1.0 - rho) * g * g;
            let d = -(ed + eps).sqrt() * g / (eg + eps).sqrt();
            ed = rho * ed + (1.0 - rho) * d * d;
            w += lr * d;
        }
        let got = run_steps(
            "adadelta",
            &[("learning_rate", 1.0)],
            &[1.0],
            &[&[1.0], &[0.5]],
        );
        assert_close(&got, &[w]);
    }
}
