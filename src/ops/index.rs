//! Index ops: `iota` (each element's index along an axis), and along the last axis argmax,
//! picking one entry per row by an index tensor (and its scatter VJP), and top-k membership.
//! Indices travel as f32 holding integers; an index outside the axis yields NaN instead of
//! reading out of bounds.

use super::In;
use crate::error::Result;
use crate::graph::Shape;

pub fn infer_argmax(x: &Shape) -> Result<Shape> {
    if x.dims.is_empty() {
        return crate::value_error!("argmax needs a feature axis, got shape {}", x.display());
    }
    Ok(Shape {
        batched: x.batched,
        dims: x.dims[..x.dims.len() - 1].to_vec(),
    })
}

pub fn infer_take(x: &Shape, idx: &Shape) -> Result<Shape> {
    let rows = infer_argmax(x)?;
    if &rows != idx {
        return crate::value_error!(
            "index shape {} does not match {} without its last axis",
            idx.display(),
            x.display()
        );
    }
    Ok(rows)
}

fn width(x: &In<'_>) -> usize {
    *x.dims.last().expect("rank checked at build")
}

fn index(v: f32, c: usize) -> Option<usize> {
    (v >= 0.0 && v < c as f32 && v.fract() == 0.0).then_some(v as usize)
}

pub fn argmax(x: &In<'_>, out: &mut [f32]) {
    let c = width(x);
    for (o, r) in out.iter_mut().zip(x.data.chunks(c)) {
        let mut best = 0;
        for (j, &v) in r.iter().enumerate() {
            if v > r[best] {
                best = j;
            }
        }
        *o = best as f32;
    }
}

pub fn take_last(x: &In<'_>, idx: &[f32], out: &mut [f32]) {
    let c = width(x);
    for ((o, r), &i) in out.iter_mut().zip(x.data.chunks(c)).zip(idx) {
        *o = index(i, c).map_or(f32::NAN, |i| r[i]);
    }
}

pub fn scatter_last(dy: &[f32], idx: &[f32], out: &mut [f32], out_dims: &[usize]) {
    let c = *out_dims.last().expect("rank checked at build");
    out.fill(0.0);
    for ((r, &d), &i) in out.chunks_mut(c).zip(dy).zip(idx) {
        match index(i, c) {
            Some(i) => r[i] = d,
            None => r.fill(f32::NAN),
        }
    }
}

pub fn in_top_k(pred: &In<'_>, target: &[f32], k: usize, out: &mut [f32]) {
    let c = width(pred);
    for ((o, r), &t) in out.iter_mut().zip(pred.data.chunks(c)).zip(target) {
        *o = match index(t, c) {
            Some(t) => f32::from(r.iter().filter(|&&v| v > r[t]).count() < k),
            None => f32::NAN,
        };
    }
}

/// `out[i]` is `i`'s index along `axis` of `out_dims`.
pub fn iota(axis: usize, out: &mut [f32], out_dims: &[usize]) {
    let len = out_dims[axis];
    let inner: usize = out_dims[axis + 1..].iter().product();
    for (i, o) in out.iter_mut().enumerate() {
        *o = ((i / inner) % len) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Graph;

    #[test]
    fn iota_counts_along_its_axis() {
        let mut out = [0.0; 6];
        iota(0, &mut out, &[2, 3]);
        assert_eq!(out, [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        iota(1, &mut out, &[2, 3]);
        assert_eq!(out, [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
        let mut g = Graph::new();
        let i = g.iota(&[2, 3], 1).unwrap();
        assert_eq!(g.shape(i), &Shape::fixed(&[2, 3]));
        assert!(g.iota(&[2, 3], 2).is_err());
        assert!(g.iota(&[], 0).is_err());
    }
}
