//! Shape ops: reshape, and broadcasting to or summing down to a shape (each other's VJP).

use super::elementwise::{broadcast_shape, broadcast_strides, for_each_broadcast};
use super::{In, Op};
use crate::error::Result;
use crate::graph::Shape;

pub fn infer_to(op: &Op, x: &Shape, target: &Shape) -> Result<Shape> {
    // Either direction must be a valid broadcast from the smaller to the larger shape.
    let (small, big) = if matches!(op, Op::SumTo(_)) {
        (target, x)
    } else {
        (x, target)
    };
    let b = broadcast_shape(small, big)?;
    if &b != big {
        return crate::value_error!("cannot broadcast {} to {}", small.display(), big.display());
    }
    Ok(target.clone())
}

pub fn infer_reshape(x: &Shape, dims: &[usize]) -> Result<Shape> {
    let (a, b): (usize, usize) = (x.dims.iter().product(), dims.iter().product());
    if a != b {
        return crate::value_error!(
            "Reshape: total size of the new shape {dims:?} ({b}) must equal the size of the input {} ({a} per sample)",
            x.display()
        );
    }
    Ok(Shape {
        batched: x.batched,
        dims: dims.to_vec(),
    })
}

pub fn infer_to_batched(x: &Shape) -> Result<Shape> {
    if x.batched || x.dims.is_empty() {
        return crate::value_error!(
            "ToBatched: expected a fixed tensor (batch, ..), received {}",
            x.display()
        );
    }
    Ok(Shape::batched(&x.dims[1..]))
}

pub fn infer_from_batched(x: &Shape, batch: usize) -> Result<Shape> {
    if !x.batched || batch == 0 {
        return crate::value_error!(
            "FromBatched({batch}): expected a batched tensor, received {}",
            x.display()
        );
    }
    let mut dims = vec![batch];
    dims.extend_from_slice(&x.dims);
    Ok(Shape::fixed(&dims))
}

/// The batch size a node fixes, if any: planning for another one is an error.
pub fn fixed_batch(op: &super::Op, in0: Option<&Shape>) -> Option<usize> {
    match op {
        super::Op::ToBatched => in0.map(|s| s.dims[0]),
        super::Op::FromBatched(b) => Some(*b),
        _ => None,
    }
}

pub fn infer_transpose(x: &Shape, perm: &[usize]) -> Result<Shape> {
    let mut seen = vec![false; x.dims.len()];
    if perm.len() != x.dims.len()
        || perm
            .iter()
            .any(|&p| p >= seen.len() || std::mem::replace(&mut seen[p], true))
    {
        return crate::value_error!(
            "transpose: {perm:?} is not a permutation of the {} per-sample axes of {}",
            x.dims.len(),
            x.display()
        );
    }
    Ok(Shape {
        batched: x.batched,
        dims: perm.iter().map(|&p| x.dims[p]).collect(),
    })
}

/// The permutation that undoes `perm`.
pub fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

/// `out[.., j, ..] = x[.., perm[j], ..]` over the per-sample axes.
pub fn transpose(x: &In<'_>, perm: &[usize], out: &mut [f32], out_dims: &[usize]) {
    let lead = x.dims.len() - perm.len();
    let mut in_strides = vec![0; x.dims.len()];
    let mut s = 1;
    for i in (0..x.dims.len()).rev() {
        in_strides[i] = s;
        s *= x.dims[i];
    }
    let mut strides: Vec<usize> = in_strides[..lead].to_vec();
    strides.extend(perm.iter().map(|&p| in_strides[lead + p]));
    for_each_broadcast(out_dims, [&strides], |o, [i]| out[o] = x.data[i]);
}

/// Pads `dims` with leading 1s to `rank`.
fn aligned(dims: &[usize], rank: usize) -> smallvec::SmallVec<[usize; 6]> {
    let mut v: smallvec::SmallVec<[usize; 6]> = smallvec::smallvec![1; rank - dims.len()];
    v.extend_from_slice(dims);
    v
}

pub fn broadcast_to(x: &In<'_>, out: &mut [f32], out_dims: &[usize]) {
    if x.data.len() == out.len() {
        out.copy_from_slice(x.data);
    } else if x.data.len() == 1 {
        out.fill(x.data[0]);
    } else {
        let s = broadcast_strides(&aligned(x.dims, out_dims.len()), out_dims);
        for_each_broadcast(out_dims, [&s], |o, [i]| out[o] = x.data[i]);
    }
}

/// `broadcast_to`, divided by how many times each element was repeated (the VJP of a mean).
pub fn broadcast_mean(x: &In<'_>, out: &mut [f32], out_dims: &[usize]) {
    broadcast_to(x, out, out_dims);
    let f = x.data.len() as f32 / out.len() as f32;
    out.iter_mut().for_each(|v| *v *= f);
}

pub fn sum_to(x: &In<'_>, out: &mut [f32], out_dims: &[usize]) {
    let n = out.len();
    if x.data.len() == n {
        out.copy_from_slice(x.data);
    } else if n == 1 {
        out[0] = x.data.iter().sum();
    } else if x.dims.ends_with(out_dims) {
        // Summing leading axes away (a bias gradient): add rows.
        out.copy_from_slice(&x.data[..n]);
        for r in x.data.chunks(n).skip(1) {
            out.iter_mut().zip(r).for_each(|(o, &v)| *o += v);
        }
    } else {
        let s = broadcast_strides(&aligned(out_dims, x.dims.len()), x.dims);
        out.fill(0.0);
        for_each_broadcast(x.dims, [&s], |i, [o]| out[o] += x.data[i]);
    }
}
