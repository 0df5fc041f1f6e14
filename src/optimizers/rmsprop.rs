//! RMSprop, as Keras 3's `keras.optimizers.RMSprop`:
//! `v = rho v + (1 - rho) g^2`; centered also keeps `a = rho a + (1 - rho) g` and uses
//! `v - a^2`; `inc = lr g / sqrt(v (- a^2) + eps)` (epsilon inside the root);
//! with momentum `m = momentum m + inc; w -= m`, else `w -= inc`.

use super::sweep::{GpuRule, Kernel, SlotSpec, Slots};

#[derive(Clone, Debug)]
pub(crate) struct RmsProp {
    pub rho: f64,
    pub momentum: f64,
    pub epsilon: f64,
    pub centered: bool,
}

impl RmsProp {
    /// Slot order: velocity, then momentum (if momentum > 0), then average_gradient (if
    /// centered); an absent slot stays empty so the kernel's positions are fixed.
    pub fn slots(&self) -> SlotSpec {
        [
            Some(("velocity", 0.0)),
            (self.momentum > 0.0).then_some(("momentum", 0.0)),
            self.centered.then_some(("average_gradient", 0.0)),
        ]
    }

    pub fn step(&self, lr: f32) -> RmsPropStep {
        RmsPropStep {
            lr,
            rho: self.rho as f32,
            one_minus_rho: (1.0 - self.rho) as f32,
            momentum: self.momentum as f32,
            epsilon: self.epsilon as f32,
            has_momentum: self.momentum > 0.0,
            centered: self.centered,
        }
    }
}

pub(crate) struct RmsPropStep {
    lr: f32,
    rho: f32,
    one_minus_rho: f32,
    momentum: f32,
    epsilon: f32,
    has_momentum: bool,
    centered: bool,
}

impl RmsPropStep {
    #[inline(always)]
    fn run<const MOMENTUM: bool, const CENTERED: bool>(
        &self,
        p: &mut [f32],
        g: &[f32],
        [v, m, a]: Slots<'_>,
    ) {
        let n = p.len();
        let (g, v) = (&g[..n], &mut v[..n]);
        let m = if MOMENTUM { &mut m[..n] } else { m };
        let a = if CENTERED { &mut a[..n] } else { a };
        for i in 0..n {
            let gi = g[i];
            v[i] = self.rho * v[i] + self.one_minus_rho * (gi * gi);
            let denominator = if CENTERED {
                a[i] = self.rho * a[i] + self.one_minus_rho * gi;
                v[i] - a[i] * a[i] + self.epsilon
            } else {
                v[i] + self.epsilon
            };
            let increment = self.lr * gi / denominator.sqrt();
            if MOMENTUM {
                m[i] = self.momentum * m[i] + increment;
                p[i] -= m[i];
            } else {
                p[i] -= increment;
            }
        }
    }
}

impl Kernel for RmsPropStep {
    fn gpu(&self) -> GpuRule {
        let flags = u32::from(self.has_momentum) | u32::from(self.centered) << 1;
        GpuRule::new(
            1,
            flags,
            &[
                self.lr,
                self.rho,
                self.one_minus_rho,
                self.momentum,
                self.epsilon,
            ],
        )
    }
    #[inline(always)]
    fn update(&self, p: &mut [f32], g: &[f32], s: Slots<'_>) {
        match (self.has_momentum, self.centered) {
            (false, false) => self.run::<false, false>(p, g, s),
            (true, false) => self.run::<true, false>(p, g, s),
            (false, true) => self.run::<false, true>(p, g, s),
            (true, true) => self.run::<true, true>(p, g, s),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::optimizers::testing::{assert_close, run_steps};

    #[test]
    fn plain_first_step() {
        // v = 0.1 * 4 = 0.4; w = 1 - 0.01 * 2 / sqrt(0.4 + 1e-7)
        let w = run_steps("rmsprop", &[("learning_rate", 0.01)], &[1.0], &[&[2.0]]);
        assert_close(&w, &[1.0 - 0.02 / (0.4f64 + 1e-7).sqrt()]);
    }

    #[test]
    fn centered_momentum_two_steps() {
        // step 1: v = 0.4, a = 0.2, inc = 0.02 / sqrt(0.4 - 0.04 + 1e-7), m = inc, w = 1 - m
        // step 2: v = 0.36 + 0.4 = 0.76, a = 0.18 + 0.2 = 0.38,
        //         inc2 = 0.02 / sqrt(0.76 - 0.1444 + 1e-7), m = 0.5 m + inc2, w -= m
        let w = run_steps(
            "rmsprop",
            &[
                ("learning_rate", 0.01),
                ("momentum", 0.5),
                ("centered", 1.0),
            ],
            &[1.0],
            &[&[2.0], &[2.0]],
        );
        let inc1 = 0.02 / (0.36f64 + 1e-7).sqrt();
        let inc2 = 0.02 / (0.76f64 - 0.1444 + 1e-7).sqrt();
        let m2 = 0.5 * inc1 + inc2;
        assert_close(&w, &[1.0 - inc1 - m2]);
    }
}
