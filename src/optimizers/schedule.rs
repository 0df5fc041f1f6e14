//! Learning-rate schedules: Keras 3's `keras.optimizers.schedules`, evaluated in Rust at
//! every step from the optimizer's iteration count, so that a schedule costs no Python call.
//! The formulas are Keras 3's (`learning_rate_schedule.py`); they are computed in f64 and
//! rounded once to f32, where Keras computes in float32 throughout.
//!
//! ```
//! use rustkeras::optimizers::Schedule;
//!
//! let s = Schedule::from_spec(
//!     "exponential_decay",
//!     &[
//!         ("initial_learning_rate".into(), vec![0.1]),
//!         ("decay_steps".into(), vec![10.0]),
//!         ("decay_rate".into(), vec![0.5]),
//!     ],
//! )
//! .unwrap();
//! assert_eq!(s.at(0), 0.1);
//! assert_eq!(s.at(10), 0.05);
//! ```

use std::f64::consts::PI;

use crate::error::{Error, Result};

/// A learning rate as a function of the step (Keras' `optimizer.iterations`).
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// `initial * decay_rate ^ (step / decay_steps)` (the exponent floored when `staircase`).
    Exponential {
        initial: f64,
        decay_steps: f64,
        decay_rate: f64,
        staircase: bool,
    },
    /// `initial / (1 + decay_rate * step / decay_steps)` (the ratio floored when `staircase`).
    InverseTime {
        initial: f64,
        decay_steps: f64,
        decay_rate: f64,
        staircase: bool,
    },
    /// `values[0]` while `step <= boundaries[0]`, `values[i]` while
    /// `boundaries[i-1] < step <= boundaries[i]`, and the last value after the last boundary.
    PiecewiseConstant {
        boundaries: Vec<f64>,
        values: Vec<f64>,
    },
    /// `(initial - end) * (1 - step / decay_steps) ^ power + end`, `step` held at
    /// `decay_steps`, or with `cycle` the decay length the first multiple of `decay_steps`
    /// not below `step`.
    Polynomial {
        initial: f64,
        decay_steps: f64,
        end: f64,
        power: f64,
        cycle: bool,
    },
    /// A linear warmup from `initial` to `warmup_target` over `warmup_steps` (when a target
    /// is given), then a cosine decay over `decay_steps` from the rate reached to `alpha`
    /// times it.
    Cosine {
        initial: f64,
        decay_steps: f64,
        alpha: f64,
        warmup_target: Option<f64>,
        warmup_steps: f64,
    },
    /// Cosine decay with warm restarts (SGDR): periods of `first_decay_steps * t_mul^i`
    /// steps, the i-th starting from `initial * m_mul^i`.
    CosineRestarts {
        initial: f64,
        first_decay_steps: f64,
        t_mul: f64,
        m_mul: f64,
        alpha: f64,
    },
}

/// The keyword arguments of a schedule, each a list of numbers (one for a scalar).
struct Params<'a> {
    kind: &'a str,
    params: &'a [(String, Vec<f64>)],
    used: Vec<bool>,
}

impl<'a> Params<'a> {
    fn find(&mut self, name: &str) -> Option<&'a [f64]> {
        let i = self.params.iter().position(|(n, _)| n == name)?;
        self.used[i] = true;
        Some(&self.params[i].1)
    }

    fn list(&mut self, name: &str) -> Result<Vec<f64>> {
        match self.find(name) {
            Some(v) => Ok(v.to_vec()),
            None => Err(Error::Value(format!(
                "{}: the argument `{name}` is required",
                self.kind
            ))),
        }
    }

    fn optional(&mut self, name: &str) -> Result<Option<f64>> {
        match self.find(name) {
            None => Ok(None),
            Some(&[x]) => Ok(Some(x)),
            Some(v) => Err(Error::Value(format!(
                "{}: `{name}` must be a number. Received: a list of {}",
                self.kind,
                v.len()
            ))),
        }
    }

    fn number(&mut self, name: &str, default: Option<f64>) -> Result<f64> {
        match (self.optional(name)?, default) {
            (Some(x), _) => Ok(x),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(Error::Value(format!(
                "{}: the argument `{name}` is required",
                self.kind
            ))),
        }
    }

    /// A number that must be > 0 (Keras' message).
    fn positive(&mut self, name: &str) -> Result<f64> {
        let x = self.number(name, None)?;
        // NaN fails too.
        if x.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(Error::Value(format!(
                "Argument `{name}` must be > 0. Received: {name}={x}"
            )));
        }
        Ok(x)
    }

    fn flag(&mut self, name: &str) -> Result<bool> {
        Ok(self.number(name, Some(0.0))? != 0.0)
    }

    fn finish(self) -> Result<()> {
        match self.used.iter().position(|u| !u) {
            Some(i) => Err(Error::Value(format!(
                "{}: unrecognized argument `{}`",
                self.kind, self.params[i].0
            ))),
            None => Ok(()),
        }
    }
}

impl Schedule {
    /// Builds a schedule from its kind (Keras' class name in snake case:
    /// "exponential_decay", "inverse_time_decay", "piecewise_constant_decay",
    /// "polynomial_decay", "cosine_decay", "cosine_decay_restarts") and its Keras argument
    /// names; booleans are 0/1, Keras' `None` is an absent key.
    pub fn from_spec(kind: &str, params: &[(String, Vec<f64>)]) -> Result<Schedule> {
        let mut p = Params {
            kind,
            params,
            used: vec![false; params.len()],
        };
        let s = match kind {
            "exponential_decay" | "inverse_time_decay" => {
                let initial = p.number("initial_learning_rate", None)?;
                let decay_steps = p.positive("decay_steps")?;
                let decay_rate = p.number("decay_rate", None)?;
                let staircase = p.flag("staircase")?;
                if kind == "exponential_decay" {
                    Schedule::Exponential {
                        initial,
                        decay_steps,
                        decay_rate,
                        staircase,
                    }
                } else {
                    Schedule::InverseTime {
                        initial,
                        decay_steps,
                        decay_rate,
                        staircase,
                    }
                }
            }
            "piecewise_constant_decay" => {
                let boundaries = p.list("boundaries")?;
                let values = p.list("values")?;
                if boundaries.len() + 1 != values.len() {
                    return Err(Error::Value(format!(
                        "The length of boundaries should be 1 less than the length of values. \
                         Received: boundaries of length {}, and values of length {}.",
                        boundaries.len(),
                        values.len()
                    )));
                }
                // Keras casts the boundaries to the step's integer type.
                let boundaries = boundaries.iter().map(|b| b.trunc()).collect();
                Schedule::PiecewiseConstant { boundaries, values }
            }
            "polynomial_decay" => Schedule::Polynomial {
                initial: p.number("initial_learning_rate", None)?,
                decay_steps: p.positive("decay_steps")?,
                end: p.number("end_learning_rate", Some(0.0001))?,
                power: p.number("power", Some(1.0))?,
                cycle: p.flag("cycle")?,
            },
            "cosine_decay" => Schedule::Cosine {
                initial: p.number("initial_learning_rate", None)?,
                decay_steps: p.positive("decay_steps")?,
                alpha: p.number("alpha", Some(0.0))?,
                warmup_target: p.optional("warmup_target")?,
                warmup_steps: p.number("warmup_steps", Some(0.0))?,
            },
            "cosine_decay_restarts" => Schedule::CosineRestarts {
                initial: p.number("initial_learning_rate", None)?,
                first_decay_steps: p.positive("first_decay_steps")?,
                t_mul: p.number("t_mul", Some(2.0))?,
                m_mul: p.number("m_mul", Some(1.0))?,
                alpha: p.number("alpha", Some(0.0))?,
            },
            other => {
                return Err(Error::Value(format!(
                    "Unknown learning rate schedule: {other}"
                )))
            }
        };
        p.finish()?;
        Ok(s)
    }

    /// The learning rate at `step`.
    pub fn at(&self, step: u64) -> f32 {
        self.value(step as f64) as f32
    }

    fn value(&self, step: f64) -> f64 {
        match *self {
            Schedule::Exponential {
                initial,
                decay_steps,
                decay_rate,
                staircase,
            } => {
                let p = step / decay_steps;
                initial * decay_rate.powf(if staircase { p.floor() } else { p })
            }
            Schedule::InverseTime {
                initial,
                decay_steps,
                decay_rate,
                staircase,
            } => {
                let p = step / decay_steps;
                initial / (1.0 + decay_rate * if staircase { p.floor() } else { p })
            }
            Schedule::PiecewiseConstant {
                ref boundaries,
                ref values,
            } => {
                let i = boundaries.iter().take_while(|&&b| step > b).count();
                values[i]
            }
            Schedule::Polynomial {
                initial,
                decay_steps,
                end,
                power,
                cycle,
            } => {
                let (step, steps) = if cycle {
                    let multiplier = if step == 0.0 {
                        1.0
                    } else {
                        (step / decay_steps).ceil()
                    };
                    (step, decay_steps * multiplier)
                } else {
                    (step.min(decay_steps), decay_steps)
                };
                (initial - end) * (1.0 - step / steps).powf(power) + end
            }
            Schedule::Cosine {
                initial,
                decay_steps,
                alpha,
                warmup_target,
                warmup_steps,
            } => {
                let decay = |step: f64, from: f64| {
                    let cosine = 0.5 * (1.0 + (PI * step / decay_steps).cos());
                    from * ((1.0 - alpha) * cosine + alpha)
                };
                match warmup_target {
                    None => decay(step.min(decay_steps), initial),
                    Some(target) => {
                        let step = step.min(decay_steps + warmup_steps);
                        if step < warmup_steps {
                            (target - initial) * (step / warmup_steps) + initial
                        } else {
                            decay(step - warmup_steps, target)
                        }
                    }
                }
            }
            Schedule::CosineRestarts {
                initial,
                first_decay_steps,
                t_mul,
                m_mul,
                alpha,
            } => {
                let fraction = step / first_decay_steps;
                let (i_restart, fraction) = if t_mul == 1.0 {
                    let i = fraction.floor();
                    (i, fraction - i)
                } else {
                    let i = ((1.0 - fraction * (1.0 - t_mul)).ln() / t_mul.ln()).floor();
                    let sum_r = (1.0 - t_mul.powf(i)) / (1.0 - t_mul);
                    (i, (fraction - sum_r) / t_mul.powf(i))
                };
                let cosine = 0.5 * m_mul.powf(i_restart) * (1.0 + (PI * fraction).cos());
                initial * ((1.0 - alpha) * cosine + alpha)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str, params: &[(&str, &[f64])]) -> Result<Schedule> {
        let params: Vec<(String, Vec<f64>)> = params
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect();
        Schedule::from_spec(kind, &params)
    }

    fn close(got: f32, want: f64) {
        assert!(
            (f64::from(got) - want).abs() <= 1e-6 * want.abs().max(1e-3),
            "got {got}, want {want}"
        );
    }

    #[test]
    fn exponential_and_inverse_time_decay_follow_keras_formulas() {
        let args: &[(&str, &[f64])] = &[
            ("initial_learning_rate", &[0.1]),
            ("decay_steps", &[4.0]),
            ("decay_rate", &[0.5]),
        ];
        let e = spec("exponential_decay", args).unwrap();
        close(e.at(2), 0.1 * 0.5f64.powf(0.5));
        let stairs = [args, &[("staircase", &[1.0][..])]].concat();
        let e = spec("exponential_decay", &stairs).unwrap();
        close(e.at(7), 0.05);
        let t = spec("inverse_time_decay", args).unwrap();
        close(t.at(6), 0.1 / (1.0 + 0.5 * 1.5));
        let t = spec("inverse_time_decay", &stairs).unwrap();
        close(t.at(6), 0.1 / 1.5);
    }

    #[test]
    fn piecewise_constant_is_left_closed_at_each_boundary() {
        let s = spec(
            "piecewise_constant_decay",
            &[("boundaries", &[3.0, 6.0]), ("values", &[1.0, 0.5, 0.1])],
        )
        .unwrap();
        let got: Vec<f32> = (0..9).map(|t| s.at(t)).collect();
        assert_eq!(got, [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.1, 0.1]);
        let e = spec(
            "piecewise_constant_decay",
            &[("boundaries", &[3.0]), ("values", &[1.0])],
        )
        .unwrap_err();
        assert!(e.to_string().contains("length of boundaries"), "{e}");
    }

    #[test]
    fn polynomial_decay_holds_or_cycles_after_decay_steps() {
        let args: &[(&str, &[f64])] = &[
            ("initial_learning_rate", &[1.0]),
            ("decay_steps", &[10.0]),
            ("end_learning_rate", &[0.1]),
            ("power", &[2.0]),
        ];
        let s = spec("polynomial_decay", args).unwrap();
        close(s.at(5), 0.9 * 0.25 + 0.1);
        close(s.at(25), 0.1);
        let s = spec(
            "polynomial_decay",
            &[args, &[("cycle", &[1.0][..])]].concat(),
        )
        .unwrap();
        close(s.at(0), 1.0);
        close(s.at(15), 0.9 * (1.0 - 15.0 / 20.0f64).powi(2) + 0.1);
    }

    #[test]
    fn cosine_decay_with_and_without_warmup() {
        let s = spec(
            "cosine_decay",
            &[
                ("initial_learning_rate", &[0.2]),
                ("decay_steps", &[10.0]),
                ("alpha", &[0.1]),
            ],
        )
        .unwrap();
        close(s.at(5), 0.2 * (0.9 * 0.5 + 0.1));
        close(s.at(50), 0.2 * 0.1);
        let s = spec(
            "cosine_decay",
            &[
                ("initial_learning_rate", &[0.0]),
                ("decay_steps", &[10.0]),
                ("warmup_target", &[1.0]),
                ("warmup_steps", &[4.0]),
            ],
        )
        .unwrap();
        close(s.at(1), 0.25);
        close(s.at(4), 1.0);
        close(s.at(9), 0.5);
        close(s.at(100), 0.0);
    }

    #[test]
    fn cosine_restarts_lengthen_and_scale_each_period() {
        let s = spec(
            "cosine_decay_restarts",
            &[
                ("initial_learning_rate", &[1.0]),
                ("first_decay_steps", &[10.0]),
                ("m_mul", &[0.5]),
            ],
        )
        .unwrap();
        close(s.at(0), 1.0);
        close(s.at(5), 0.5);
        // The second period starts at step 10, lasts 20 steps, from 0.5.
        close(s.at(10), 0.5);
        close(s.at(20), 0.25);
        let s = spec(
            "cosine_decay_restarts",
            &[
                ("initial_learning_rate", &[1.0]),
                ("first_decay_steps", &[4.0]),
                ("t_mul", &[1.0]),
            ],
        )
        .unwrap();
        close(s.at(6), 0.5);
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = spec(
            "exponential_decay",
            &[
                ("initial_learning_rate", &[0.1]),
                ("decay_steps", &[0.0]),
                ("decay_rate", &[0.5]),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("decay_steps=0"), "{e}");
        let e = spec("cosine_decay", &[("initial_learning_rate", &[0.1])]).unwrap_err();
        assert!(e.to_string().contains("`decay_steps`"), "{e}");
        let e = spec(
            "cosine_decay",
            &[
                ("initial_learning_rate", &[0.1]),
                ("decay_steps", &[1.0]),
                ("beta", &[1.0]),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("`beta`"), "{e}");
    }
}
