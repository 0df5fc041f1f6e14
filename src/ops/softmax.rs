//! Softmax over the last axis, fused (max-shifted exp and normalisation in one pass per row).

use rayon::prelude::*;

use super::In;
use crate::error::Result;
use crate::graph::Shape;

pub fn infer(x: &Shape) -> Result<Shape> {
    if x.dims.is_empty() {
        return crate::value_error!("softmax needs a feature axis, got shape {}", x.display());
    }
    Ok(x.clone())
}

fn rows_of(x: &In<'_>) -> usize {
    *x.dims.last().expect("rank checked at build")
}

pub fn forward(x: &In<'_>, out: &mut [f32]) {
    let c = rows_of(x);
    let row = |(o, r): (&mut [f32], &[f32])| {
        let m = r
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, super::unary::nan_max);
        let mut s = 0.0;
        for (o, &v) in o.iter_mut().zip(r) {
            *o = (v - m).exp();
            s += *o;
        }
        let inv = 1.0 / s;
        o.iter_mut().for_each(|v| *v *= inv);
    };
    if out.len() >= super::PAR_THRESHOLD {
        out.par_chunks_mut(c)
            .zip(x.data.par_chunks(c))
            .for_each(row);
    } else {
        out.chunks_mut(c).zip(x.data.chunks(c)).for_each(row);
    }
}

/// `dx = y * (dy - sum(dy * y))` per row.
pub fn backward(y: &In<'_>, dy: &[f32], out: &mut [f32]) {
    let c = rows_of(y);
    for ((o, y), d) in out.chunks_mut(c).zip(y.data.chunks(c)).zip(dy.chunks(c)) {
        let dot: f32 = y.iter().zip(d).map(|(a, b)| a * b).sum();
        for ((o, &y), &d) in o.iter_mut().zip(y).zip(d) {
            *o = y * (d - dot);
        }
    }
}
