//! Index ops: `iota` (each element's index along an axis), and along the last axis argmax,
//! the indices of the top k, picking one entry per row by an index tensor (and its scatter
//! VJP), and top-k membership. Indices travel as f32 holding integers; an index outside the
//! axis yields NaN instead of reading out of bounds.

use std::cmp::Ordering;

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

pub fn infer_top_k(x: &Shape, k: usize) -> Result<Shape> {
    let Some(c) = x.last() else {
        return crate::value_error!(
            "top_k needs a last axis besides the batch axis, received shape {}",
            x.display()
        );
    };
    if k == 0 || k > c {
        return crate::value_error!(
            "top_k: k must be between 1 and the last axis ({c}) of {}, received k={k}",
            x.display()
        );
    }
    let mut out = x.clone();
    *out.dims.last_mut().expect("checked above") = k;
    Ok(out)
}

/// The top-k order of a row's elements `i` and `j`: larger first, NaN before every number
/// (NaN counts as the largest), ties (NaN with NaN, -0 with +0) by the lower index.
fn top_order(r: &[f32], i: usize, j: usize) -> Ordering {
    let (a, b) = (r[i], r[j]);
    match (a.is_nan(), b.is_nan()) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (true, true) => i.cmp(&j),
        (false, false) => b.partial_cmp(&a).expect("neither is NaN").then(i.cmp(&j)),
    }
}

/// The indices of each row's `k` largest entries, largest first, as
/// `numpy.argsort(-x, kind="stable")[..., :k]` gives them for rows without NaN (NaN counts as
/// larger than every number here). `scratch` holds one row of candidate indices.
pub fn top_k_indices(x: &In<'_>, k: usize, out: &mut [f32], scratch: &mut [f32]) {
    let c = width(x);
    let order = &mut scratch[..c];
    for (o, r) in out.chunks_mut(k).zip(x.data.chunks(c)) {
        order
            .iter_mut()
            .enumerate()
            .for_each(|(j, v)| *v = j as f32);
        // The order is total (ties fall to the index), so unstable algorithms are exact.
        let by = |a: &f32, b: &f32| top_order(r, *a as usize, *b as usize);
        if k < c {
            order.select_nth_unstable_by(k - 1, by);
        }
        order[..k].sort_unstable_by(by);
        o.copy_from_slice(&order[..k]);
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

    #[test]
    fn top_k_matches_a_stable_argsort() {
        let x = [3.0, 1.0, 3.0, -0.0, 0.0, 7.0, f32::NAN, 1.0];
        let mut scratch = [0.0; 8];
        let mut out = [0.0; 5];
        let inp = In {
            data: &x,
            dims: &[1, 8],
        };
        top_k_indices(&inp, 5, &mut out, &mut scratch);
        // NaN first, then 7, the two 3s in index order, then the first 1.
        assert_eq!(out, [6.0, 5.0, 0.0, 2.0, 1.0]);
        let mut all = [0.0; 8];
        top_k_indices(&inp, 8, &mut all, &mut scratch);
        assert_eq!(all, [6.0, 5.0, 0.0, 2.0, 1.0, 7.0, 3.0, 4.0]);
        // Every k of random rows against a stable sort of the negated values.
        let rows: Vec<f32> = (0..60).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        for k in 1..=12 {
            let mut out = vec![0.0; 5 * k];
            let inp = In {
                data: &rows,
                dims: &[5, 12],
            };
            let mut scratch = [0.0; 12];
            top_k_indices(&inp, k, &mut out, &mut scratch);
            for (r, o) in rows.chunks(12).zip(out.chunks(k)) {
                let mut want: Vec<usize> = (0..12).collect();
                want.sort_by(|&i, &j| r[j].partial_cmp(&r[i]).unwrap());
                let want: Vec<f32> = want[..k].iter().map(|&i| i as f32).collect();
                assert_eq!(o, &want[..]);
            }
        }
        assert!(infer_top_k(&Shape::batched(&[4]), 5).is_err());
        assert!(infer_top_k(&Shape::batched(&[4]), 0).is_err());
        assert!(infer_top_k(&Shape::batched(&[]), 1).is_err());
        assert_eq!(
            infer_top_k(&Shape::fixed(&[2, 4]), 3).unwrap(),
            Shape::fixed(&[2, 3])
        );
    }
}
