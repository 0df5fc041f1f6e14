//! Reading an optimizer's arguments: Keras 3 names, Keras 3 defaults, and Keras-style
//! errors naming the argument, what was expected and what was received.

use crate::error::{Error, Result};

/// The `(name, value)` pairs of `Optimizer::from_spec`, consumed one name at a time so that
/// whatever is left at the end was not recognized.
pub(crate) struct Args {
    items: Vec<(String, f64)>,
}

impl Args {
    pub fn new(params: &[(String, f64)]) -> Result<Args> {
        for (i, (name, _)) in params.iter().enumerate() {
            if params[..i].iter().any(|(n, _)| n == name) {
                return Err(Error::Value(format!(
                    "Argument `{name}` was given more than once."
                )));
            }
        }
        Ok(Args {
            items: params.to_vec(),
        })
    }

    /// Removes and returns the argument `name`, if given.
    pub fn take(&mut self, name: &str) -> Option<f64> {
        let i = self.items.iter().position(|(n, _)| n == name)?;
        Some(self.items.remove(i).1)
    }

    /// A float argument within `[lo, hi]`, or `default` when absent.
    pub fn float_in(&mut self, name: &str, default: f64, lo: f64, hi: f64) -> Result<f64> {
        match self.take(name) {
            None => Ok(default),
            Some(x) => check_range(name, x, lo, hi),
        }
    }

    /// An optional float argument `>= 0` (Keras' `None` is the argument's absence).
    pub fn optional_non_negative(&mut self, name: &str) -> Result<Option<f64>> {
        self.take(name)
            .map(|x| check_range(name, x, 0.0, f64::INFINITY))
            .transpose()
    }

    /// A boolean passed as 0 or 1.
    pub fn flag(&mut self, name: &str, default: bool) -> Result<bool> {
        match self.take(name) {
            None => Ok(default),
            Some(0.0) => Ok(false),
            Some(1.0) => Ok(true),
            Some(x) => invalid(name, x, "a boolean (0 or 1)"),
        }
    }

    /// An optional integer argument `>= min`.
    pub fn optional_integer(&mut self, name: &str, min: u64) -> Result<Option<u64>> {
        match self.take(name) {
            None => Ok(None),
            Some(x) if x.fract() == 0.0 && x >= min as f64 && x < 9.0e15 => Ok(Some(x as u64)),
            Some(x) => invalid(name, x, &format!("an integer >= {min}")),
        }
    }

    /// Fails, as Keras does, on any argument left over.
    pub fn finish(self) -> Result<()> {
        if self.items.is_empty() {
            return Ok(());
        }
        let listed: Vec<String> = self
            .items
            .iter()
            .map(|(n, x)| format!("'{n}': {}", format_number(*x)))
            .collect();
        Err(Error::Value(format!(
            "Argument(s) not recognized: {{{}}}",
            listed.join(", ")
        )))
    }
}

fn check_range(name: &str, x: f64, lo: f64, hi: f64) -> Result<f64> {
    if x.is_finite() && x >= lo && x <= hi {
        return Ok(x);
    }
    let expected = if hi.is_infinite() {
        format!("a float >= {}", format_number(lo))
    } else {
        format!(
            "a float between {} and {}",
            format_number(lo),
            format_number(hi)
        )
    };
    invalid(name, x, &expected)
}

fn invalid<T>(name: &str, x: f64, expected: &str) -> Result<T> {
    Err(Error::Value(format!(
        "Invalid value received for argument `{name}`. Expected {expected}. Received: {name}={}",
        format_number(x)
    )))
}

/// Numbers as Python prints them closely enough for a message: `-1`, `0.5`, `1e-7`, `nan`.
pub(crate) fn format_number(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{}", x as i64)
    } else {
        format!("{x:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(p: &[(&str, f64)]) -> Args {
        let owned: Vec<(String, f64)> = p.iter().map(|(n, x)| (n.to_string(), *x)).collect();
        Args::new(&owned).unwrap()
    }

    #[test]
    fn range_error_names_argument() {
        let e = args(&[("rho", 1.5)])
            .float_in("rho", 0.9, 0.0, 1.0)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid value received for argument `rho`. Expected a float between 0 and 1. \
             Received: rho=1.5"
        );
    }

    #[test]
    fn leftovers_are_not_recognized() {
        let mut a = args(&[("learning_rate", 0.1), ("bogus", 2.0)]);
        assert_eq!(a.take("learning_rate"), Some(0.1));
        assert_eq!(
            a.finish().unwrap_err().to_string(),
            "Argument(s) not recognized: {'bogus': 2}"
        );
    }

    #[test]
    fn numbers_print_like_python() {
        assert_eq!(format_number(-1.0), "-1");
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_number(f64::NAN), "nan");
    }
}
