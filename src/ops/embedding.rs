//! Row gather from a table (Embedding) and its VJP, a scatter-add of rows. Indices travel as
//! f32 holding integers (exact below 2^24); the Python layer rejects an index outside the
//! table before running, and the kernel yields NaN rows for one instead of reading out of
//! bounds.
//!
//! ```
//! use rustkeras::graph::{Graph, Shape};
//! use rustkeras::ops::Op;
//!
//! let mut g = Graph::new();
//! let idx = g.input(Shape::batched(&[10]));
//! let table = g.declare_var(&[1000, 64]);
//! let table = g.param(table);
//! let y = g.push(Op::Gather, &[table, idx]).unwrap();
//! assert_eq!(g.shape(y), &Shape::batched(&[10, 64]));
//! ```

use smallvec::{smallvec, SmallVec};

use super::{In, Op};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

/// `(table (V, D), idx (..)) -> (.., D)`.
pub fn infer(table: &Shape, idx: &Shape) -> Result<Shape> {
    if table.batched || table.dims.len() != 2 {
        return crate::value_error!(
            "gather: the table must be a 2-D weight, received {}",
            table.display()
        );
    }
    let mut dims = idx.dims.clone();
    dims.push(table.dims[1]);
    Ok(Shape {
        batched: idx.batched,
        dims,
    })
}

pub fn vjp(
    g: &mut Graph,
    table: NodeId,
    idx: NodeId,
    dy: NodeId,
) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let shape = g.shape(table).clone();
    let dt = g.push(Op::ScatterAddRows(shape), &[dy, idx])?;
    Ok(smallvec![Some(dt), None])
}

fn row(v: f32, rows: usize) -> Option<usize> {
    (v >= 0.0 && v < rows as f32 && v.fract() == 0.0).then_some(v as usize)
}

pub fn gather(table: &In<'_>, idx: &[f32], out: &mut [f32]) {
    let (rows, d) = (table.dims[0], table.dims[1]);
    for (o, &i) in out.chunks_mut(d).zip(idx) {
        match row(i, rows) {
            Some(r) => o.copy_from_slice(&table.data[r * d..(r + 1) * d]),
            None => o.fill(f32::NAN),
        }
    }
}

/// `out[idx[k]] += dy[k]` for every index position `k`.
pub fn scatter_add_rows(dy: &[f32], idx: &[f32], out: &mut [f32], out_dims: &[usize]) {
    let (rows, d) = (out_dims[0], out_dims[1]);
    out.fill(0.0);
    for (g, &i) in dy.chunks(d).zip(idx) {
        match row(i, rows) {
            Some(r) => out[r * d..(r + 1) * d]
                .iter_mut()
                .zip(g)
                .for_each(|(o, &v)| *o += v),
            None => out.fill(f32::NAN),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::autodiff::tests::{b, case, check, f};
    use crate::graph::{Graph, Shape};
    use crate::ops::{Ctx, Op};
    use crate::program::Program;

    #[test]
    fn gather_picks_rows_and_marks_bad_indices() {
        let mut g = Graph::new();
        let idx = g.input(Shape::batched(&[3]));
        let v = g.declare_var(&[4, 2]);
        let t = g.param(v);
        let y = g.push(Op::Gather, &[t, idx]).unwrap();
        assert_eq!(g.shape(y), &Shape::batched(&[3, 2]));
        let mut p = Program::plan(&g, &[y], 1).unwrap();
        let table: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let ctx = Ctx {
            training: false,
            seed: 0,
            step: 0,
        };
        p.run(&[&table], &[&[3.0, 0.0, 7.0]], &ctx).unwrap();
        let out = p.value(y);
        assert_eq!(&out[..4], &[6.0, 7.0, 0.0, 1.0]);
        assert!(out[4].is_nan() && out[5].is_nan());
    }

    #[test]
    fn gather_gradient_scatters_and_adds_repeated_rows() {
        // Every index is 2 (built from the batched input times zero), so the table's
        // gradient adds all rows into row 2; the index input gets no gradient.
        check(case(&[f(&[5, 3]), b(&[4])], |g, x| {
            let zero = g.scalar(0.0);
            let idx = g.mul(x[1], zero).unwrap();
            let idx = g.unary(crate::ops::UnaryOp::AddScalar(2.0), idx).unwrap();
            let y = g.push(Op::Gather, &[x[0], idx]).unwrap();
            g.unary(crate::ops::UnaryOp::Tanh, y).unwrap()
        }));
    }
}
