//! Nadam, as Keras 3's `keras.optimizers.Nadam`, with its momentum schedule:
//! `u_t = b1 (1 - 0.5 * 0.96^t)`, `u_{t+1}` likewise, and the cached product
//! `P_t = P_{t-1} u_t` (a scalar optimizer variable, updated once per step before the
//! variables). Per element: `m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
//! m_hat = u_{t+1} m / (1 - P_t u_{t+1}) + (1 - u_t) g / (1 - P_t); v_hat = v / (1 - b2^t);
//! w -= lr m_hat / (sqrt(v_hat) + eps)`.

use super::sweep::{GpuRule, Kernel, SlotSpec, Slots};

#[derive(Clone, Debug)]
pub(crate) struct Nadam {
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
    /// Keras' `_u_product`, a float32 variable starting at 1.
    pub u_product: f32,
}

impl Nadam {
    pub fn new(beta_1: f64, beta_2: f64, epsilon: f64) -> Nadam {
        Nadam {
            beta_1,
            beta_2,
            epsilon,
            u_product: 1.0,
        }
    }

    pub fn slots(&self) -> SlotSpec {
        [Some(("momentum", 0.0)), Some(("velocity", 0.0)), None]
    }

    /// Advances the cached product and returns the step's kernel; call once per step.
    pub fn step(&mut self, lr: f32, t: u64) -> NadamStep {
        let b1 = self.beta_1 as f32;
        let schedule = |t: u64| b1 * (1.0 - 0.5 * 0.96f32.powf(t as f32));
        let (u_t, u_next) = (schedule(t), schedule(t + 1));
        self.u_product = self.u_product * b1 * (1.0 - 0.5 * 0.96f32.powf(t as f32));
        let u_product_next = self.u_product * u_next;
        NadamStep {
            lr,
            u_t,
            u_next,
            one_minus_u_product: 1.0 - self.u_product,
            one_minus_u_product_next: 1.0 - u_product_next,
            bias_correction_2: 1.0 - (self.beta_2 as f32).powf(t as f32),
            one_minus_beta_1: 1.0 - b1,
            one_minus_beta_2: 1.0 - self.beta_2 as f32,
            epsilon: self.epsilon as f32,
        }
    }
}

pub(crate) struct NadamStep {
    lr: f32,
    u_t: f32,
    u_next: f32,
    one_minus_u_product: f32,
    one_minus_u_product_next: f32,
    bias_correction_2: f32,
    one_minus_beta_1: f32,
    one_minus_beta_2: f32,
    epsilon: f32,
}

impl Kernel for NadamStep {
    fn gpu(&self) -> GpuRule {
        GpuRule::new(
            6,
            0,
            &[
                self.lr,
                self.u_t,
                self.u_next,
                self.one_minus_u_product,
                self.one_minus_u_product_next,
                self.bias_correction_2,
                self.one_minus_beta_1,
                self.one_minus_beta_2,
                self.epsilon,
            ],
        )
    }
    #[inline(always)]
    fn update(&self, p: &mut [f32], g: &[f32], [m, v, _]: Slots<'_>) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m += (g - *m) * self.one_minus_beta_1;
            *v += (g * g - *v) * self.one_minus_beta_2;
            let m_hat = self.u_next * *m / self.one_minus_u_product_next
                + (1.0 - self.u_t) * g / self.one_minus_u_product;
            let v_hat = *v / self.bias_correction_2;
            *p -= m_hat * self.lr / (v_hat.sqrt() + self.epsilon);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizers::testing::{assert_close, run_steps};

    #[test]
    fn three_steps_follow_the_schedule() {
        let (lr, b1, b2, eps) = (0.01f64, 0.9f64, 0.999f64, 1e-7f64);
        let grads = [1.0f64, -0.5, 2.0];
        let (mut w, mut m, mut v, mut prod) = (1.0f64, 0.0, 0.0, 1.0f64);
        for (i, &g) in grads.iter().enumerate() {
            let t = (i + 1) as i32;
            let u_t = b1 * (1.0 - 0.5 * 0.96f64.powi(t));
            let u_next = b1 * (1.0 - 0.5 * 0.96f64.powi(t + 1));
            prod *= u_t;
            m += (g - m) * (1.0 - b1);
            v += (g * g - v) * (1.0 - b2);
            let m_hat = u_next * m / (1.0 - prod * u_next) + (1.0 - u_t) * g / (1.0 - prod);
            let v_hat = v / (1.0 - b2.powi(t));
            w -= m_hat * lr / (v_hat.sqrt() + eps);
        }
        let got = run_steps(
            "nadam",
            &[("learning_rate", lr)],
            &[1.0],
            &[&[1.0], &[-0.5], &[2.0]],
        );
        assert_close(&got, &[w]);
    }
}
