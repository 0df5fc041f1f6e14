//! Weight initializers by their Keras names (and the Keras 1 aliases), seeded.

use crate::error::Result;
use crate::ops::random::mix64;

/// splitmix64: small, fast and good enough for weights and shuffling.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(mix64(seed ^ 0x5851_f42d_4c95_7f2d))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    pub fn normal(&mut self) -> f64 {
        // Box-Muller; 1 - u keeps the log argument in (0, 1].
        let (u, v) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    /// A uniform index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// Keras' `compute_fans`.
pub fn fans(shape: &[usize]) -> (f64, f64) {
    match shape.len() {
        0 => (1.0, 1.0),
        1 => (shape[0] as f64, shape[0] as f64),
        2 => (shape[0] as f64, shape[1] as f64),
        r => {
            let rf: usize = shape[..r - 2].iter().product();
            ((shape[r - 2] * rf) as f64, (shape[r - 1] * rf) as f64)
        }
    }
}

/// Parameters an initializer may take (Keras' names); unset ones take Keras' defaults.
#[derive(Clone, Debug, Default)]
pub struct InitParams {
    pub value: Option<f64>,
    pub minval: Option<f64>,
    pub maxval: Option<f64>,
    pub mean: Option<f64>,
    pub stddev: Option<f64>,
    pub gain: Option<f64>,
    pub scale: Option<f64>,
}

/// The stddev correction of a normal truncated at two standard deviations.
const TRUNC_STD: f64 = 0.879_625_661_034_239_8;

pub const NAMES: &[&str] = &[
    "zeros",
    "ones",
    "constant",
    "random_uniform",
    "random_normal",
    "truncated_normal",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "identity",
];

pub fn initialize(name: &str, shape: &[usize], p: &InitParams, seed: u64) -> Result<Vec<f32>> {
    let n: usize = shape.iter().product();
    let mut rng = Rng::new(seed);
    let (fan_in, fan_out) = fans(shape);
    let uniform = |rng: &mut Rng, limit: f64| -> Vec<f32> {
        (0..n)
            .map(|_| ((2.0 * rng.uniform() - 1.0) * limit) as f32)
            .collect()
    };
    let truncated = |rng: &mut Rng, mean: f64, std: f64| -> Vec<f32> {
        (0..n)
            .map(|_| loop {
                let z = rng.normal();
                if z.abs() <= 2.0 {
                    break (mean + std * z) as f32;
                }
            })
            .collect()
    };
    Ok(match name {
        "zeros" | "zero" => vec![0.0; n],
        "ones" | "one" => vec![1.0; n],
        "constant" => vec![p.value.unwrap_or(0.0) as f32; n],
        "random_uniform" | "uniform" => {
            let (lo, hi) = (p.minval.unwrap_or(-0.05), p.maxval.unwrap_or(0.05));
            (0..n)
                .map(|_| (lo + (hi - lo) * rng.uniform()) as f32)
                .collect()
        }
        "random_normal" | "normal" => {
            let (m, s) = (p.mean.unwrap_or(0.0), p.stddev.unwrap_or(0.05));
            (0..n).map(|_| (m + s * rng.normal()) as f32).collect()
        }
        "truncated_normal" => truncated(&mut rng, p.mean.unwrap_or(0.0), p.stddev.unwrap_or(0.05)),
        "glorot_uniform" => uniform(&mut rng, (6.0 / (fan_in + fan_out)).sqrt()),
        "glorot_normal" => truncated(&mut rng, 0.0, (2.0 / (fan_in + fan_out)).sqrt() / TRUNC_STD),
        "he_uniform" => uniform(&mut rng, (6.0 / fan_in).sqrt()),
        "he_normal" => truncated(&mut rng, 0.0, (2.0 / fan_in).sqrt() / TRUNC_STD),
        "lecun_uniform" => uniform(&mut rng, (3.0 / fan_in).sqrt()),
        "lecun_normal" => truncated(&mut rng, 0.0, (1.0 / fan_in).sqrt() / TRUNC_STD),
        "orthogonal" => orthogonal(shape, p.gain.unwrap_or(1.0), &mut rng)?,
        "identity" => {
            if shape.len() != 2 {
                return crate::value_error!(
                    "Identity initializer needs a 2-D shape, received: shape={shape:?}"
                );
            }
            let g = p.gain.unwrap_or(1.0) as f32;
            let mut v = vec![0.0; n];
            for i in 0..shape[0].min(shape[1]) {
                v[i * shape[1] + i] = g;
            }
            v
        }
        other => {
            return crate::value_error!(
                "Could not interpret initializer identifier: '{other}'. Expected one of: {}",
                NAMES.join(", ")
            )
        }
    })
}

/// A (rows x cols) matrix with orthonormal rows or columns, from Gram-Schmidt on a normal
/// sample with the sign fix that makes the result uniformly distributed.
fn orthogonal(shape: &[usize], gain: f64, rng: &mut Rng) -> Result<Vec<f32>> {
    if shape.len() < 2 {
        return crate::value_error!(
            "Orthogonal initializer needs at least 2 dimensions, received: shape={shape:?}"
        );
    }
    let cols = shape[shape.len() - 1];
    let rows: usize = shape[..shape.len() - 1].iter().product();
    // Orthonormalise the k = min(rows, cols) vectors of length m = max(rows, cols).
    let (k, m) = (rows.min(cols), rows.max(cols));
    let mut q: Vec<Vec<f64>> = (0..k)
        .map(|_| (0..m).map(|_| rng.normal()).collect())
        .collect();
    for i in 0..k {
        let (done, rest) = q.split_at_mut(i);
        let qi = &mut rest[0];
        for qj in done.iter() {
            let d: f64 = qi.iter().zip(qj).map(|(a, b)| a * b).sum();
            qi.iter_mut().zip(qj).for_each(|(a, b)| *a -= d * b);
        }
        let norm = q[i].iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        q[i].iter_mut().for_each(|v| *v /= norm);
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let v = if rows >= cols { q[c][r] } else { q[r][c] };
            out[r * cols + c] = (gain * v) as f32;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glorot_uniform_stays_within_its_limit() {
        let w = initialize("glorot_uniform", &[784, 32], &InitParams::default(), 1).unwrap();
        let limit = (6.0f64 / (784.0 + 32.0)).sqrt() as f32;
        assert!(w.iter().all(|v| v.abs() <= limit));
        let mean: f32 = w.iter().sum::<f32>() / w.len() as f32;
        assert!(mean.abs() < 0.01);
    }

    #[test]
    fn orthogonal_columns_are_orthonormal() {
        let (r, c) = (6, 4);
        let w = initialize("orthogonal", &[r, c], &InitParams::default(), 3).unwrap();
        for a in 0..c {
            for b in 0..c {
                let d: f32 = (0..r).map(|i| w[i * c + a] * w[i * c + b]).sum();
                assert!((d - f32::from(a == b)).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_weights() {
        let p = InitParams::default();
        assert_eq!(
            initialize("he_normal", &[5, 5], &p, 9).unwrap(),
            initialize("he_normal", &[5, 5], &p, 9).unwrap()
        );
        assert_ne!(
            initialize("he_normal", &[5, 5], &p, 9).unwrap(),
            initialize("he_normal", &[5, 5], &p, 10).unwrap()
        );
    }
}
