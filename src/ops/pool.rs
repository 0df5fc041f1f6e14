//! Max and average pooling over 1, 2 or 3 spatial axes, in either data format (see
//! [`super::conv::Layout`]). 'same' padding follows TensorFlow, as Keras does: padded
//! positions never win a max and are not counted in an average.
//!
//! The backward pass `PoolGrad` takes `(x, dy)`; for max pooling it finds each window's
//! first maximum again instead of storing indices, which costs one more pass over `x`
//! and no buffer.

use rayon::prelude::*;
use smallvec::SmallVec;

use super::conv::{out_len, Layout, Padding};
use super::{In, PAR_THRESHOLD};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};
use crate::ops::Op;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    Max,
    Avg,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolSpec {
    pub kind: PoolKind,
    pub layout: Layout,
    /// Window and strides, padded in front with 1s to three spatial axes.
    pub pool: [usize; 3],
    pub strides: [usize; 3],
    pub padding: Padding,
}

/// Concrete sizes of one pooling: spatial sizes padded in front with 1s to three axes, and
/// each axis' front padding.
#[derive(Clone, Copy)]
pub(crate) struct Geo {
    pub sp_in: [usize; 3],
    pub c: usize,
    pub sp_out: [usize; 3],
    pub pad: [usize; 3],
}

impl PoolSpec {
    /// The geometry of per-sample input dims `dims`.
    pub(crate) fn geometry(&self, dims: &[usize]) -> Result<Geo> {
        let Some((sp_in, c)) = self.layout.split(dims) else {
            return crate::value_error!(
                "pooling: expected an input with {} spatial axes and a channel axis, received shape {:?} per sample",
                self.layout.rank,
                dims
            );
        };
        if self.padding == Padding::Full {
            return crate::value_error!("pooling: padding='full' is not a pooling mode");
        }
        let mut sp_out = [1; 3];
        let mut pad = [0; 3];
        for a in 0..3 {
            let Some((o, p)) = out_len(self.padding, sp_in[a], self.pool[a], self.strides[a], 1)
            else {
                return crate::value_error!(
                    "pooling: the pool size {:?} is larger than the input's spatial size {:?} with padding='valid'",
                    &self.pool[3 - self.layout.rank..],
                    &sp_in[3 - self.layout.rank..]
                );
            };
            sp_out[a] = o;
            pad[a] = p;
        }
        Ok(Geo {
            sp_in,
            c,
            sp_out,
            pad,
        })
    }
}

pub fn infer(spec: &PoolSpec, x: &Shape) -> Result<Shape> {
    let g = spec.geometry(&x.dims)?;
    Ok(Shape {
        batched: x.batched,
        dims: spec.layout.join(g.sp_out, g.c),
    })
}

pub fn infer_grad(spec: &PoolSpec, x: &Shape, dy: &Shape) -> Result<Shape> {
    let y = infer(spec, x)?;
    if &y != dy {
        return crate::value_error!(
            "pooling gradient: expected dy of shape {}, got {}",
            y.display(),
            dy.display()
        );
    }
    Ok(x.clone())
}

/// Calls `f(p, window)` for every output position `p` (spatial index within a sample) with
/// the spatial indices of its window's in-range input positions.
#[inline(always)]
fn for_each_window(spec: &PoolSpec, g: &Geo, mut f: impl FnMut(usize, &[usize])) {
    let range = |o: usize, a: usize| {
        let start = (o * spec.strides[a]) as isize - g.pad[a] as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + spec.pool[a] as isize).max(0) as usize).min(g.sp_in[a]);
        lo..hi
    };
    let mut win: SmallVec<[usize; 64]> = SmallVec::new();
    let mut p = 0;
    for oz in 0..g.sp_out[0] {
        let rz = range(oz, 0);
        for oy in 0..g.sp_out[1] {
            let ry = range(oy, 1);
            for ox in 0..g.sp_out[2] {
                win.clear();
                for z in rz.clone() {
                    for y in ry.clone() {
                        win.extend(range(ox, 2).map(|x| (z * g.sp_in[1] + y) * g.sp_in[2] + x));
                    }
                }
                f(p, &win);
                p += 1;
            }
        }
    }
}

/// Whether `v` takes the place of the window's best `best` so far: it is larger, or NaN
/// (a NaN wins the window, and the first NaN stays, as numpy's `argmax`).
#[inline(always)]
fn beats(v: f32, best: f32) -> bool {
    !best.is_nan() && (v > best || v.is_nan())
}

/// Index of the first maximum of `x[s * ss + off]` over the window (the first NaN if any).
fn argmax(x: &[f32], win: &[usize], ss: usize, off: usize) -> usize {
    let mut best = win[0];
    for &s in &win[1..] {
        if beats(x[s * ss + off], x[best * ss + off]) {
            best = s;
        }
    }
    best
}

#[inline(always)]
fn pool_sample(spec: &PoolSpec, g: &Geo, x: &[f32], y: &mut [f32]) {
    let c = g.c;
    let (s_in, p_out) = (
        g.sp_in.iter().product::<usize>(),
        g.sp_out.iter().product::<usize>(),
    );
    for_each_window(
        spec,
        g,
        #[inline(always)]
        |p, win| {
            let n = win.len() as f32;
            if spec.layout.channels_first {
                for ci in 0..c {
                    let xc = &x[ci * s_in..][..s_in];
                    y[ci * p_out + p] = match spec.kind {
                        PoolKind::Max => win
                            .iter()
                            .map(|&s| xc[s])
                            .fold(f32::NEG_INFINITY, super::unary::nan_max),
                        PoolKind::Avg => win.iter().map(|&s| xc[s]).sum::<f32>() / n,
                    };
                }
            } else {
                let yo = &mut y[p * c..][..c];
                yo.fill(if spec.kind == PoolKind::Max {
                    f32::NEG_INFINITY
                } else {
                    0.0
                });
                for &s in win {
                    let xs = &x[s * c..][..c];
                    match spec.kind {
                        PoolKind::Max => yo
                            .iter_mut()
                            .zip(xs)
                            .for_each(|(a, &b)| *a = super::unary::nan_max(*a, b)),
                        PoolKind::Avg => yo.iter_mut().zip(xs).for_each(|(a, &b)| *a += b),
                    }
                }
                if spec.kind == PoolKind::Avg {
                    yo.iter_mut().for_each(|a| *a /= n);
                }
            }
        },
    );
}

#[inline(always)]
/// Whether the max pool's channels_last path runs, which applies a ReLU mask itself.
fn fast_max(spec: &PoolSpec) -> bool {
    spec.kind == PoolKind::Max && !spec.layout.channels_first
}

/// One sample's `dx`; with `relu`, the channels_last max path drops the gradient of windows
/// whose maximum is not positive (the only positions it writes are those maxima; the other
/// paths mask `dx` afterwards).
fn pool_grad_sample(spec: &PoolSpec, g: &Geo, x: &[f32], dy: &[f32], dx: &mut [f32], relu: bool) {
    dx.fill(0.0);
    let c = g.c;
    let (s_in, p_out) = (
        g.sp_in.iter().product::<usize>(),
        g.sp_out.iter().product::<usize>(),
    );
    // (spatial stride, channel stride) of x and dy within a sample.
    let ((ss, cs), (ps, pcs)) = if spec.layout.channels_first {
        ((1, s_in), (1, p_out))
    } else {
        ((c, 1), (c, 1))
    };
    for_each_window(
        spec,
        g,
        #[inline(always)]
        |p, win| match spec.kind {
            PoolKind::Max if !spec.layout.channels_first => {
                // Channels are contiguous: track each channel's best window slot in blocks, so
                // that the comparisons run across channels (vectorized) rather than along the
                // window; then add dy to each slot's row where it won (a masked, vectorized add
                // instead of a scatter).
                const BLOCK: usize = 64;
                let (mut best_v, mut best_k) = ([0.0f32; BLOCK], [0u32; BLOCK]);
                for c0 in (0..c).step_by(BLOCK) {
                    let n = BLOCK.min(c - c0);
                    best_v[..n].copy_from_slice(&x[win[0] * c + c0..][..n]);
                    best_k[..n].fill(0);
                    for (k, &s) in win.iter().enumerate().skip(1) {
                        let xs = &x[s * c + c0..][..n];
                        // Branch-free, so that it vectorizes: `beats` with non-short-circuit ops.
                        for j in 0..n {
                            let (v, b) = (xs[j], best_v[j]);
                            let take = !b.is_nan() & ((v > b) | v.is_nan());
                            best_v[j] = if take { v } else { b };
                            best_k[j] = if take { k as u32 } else { best_k[j] };
                        }
                    }
                    if relu {
                        // The ReLU's gradient at the maximum: a window whose maximum is not
                        // positive passes nothing, so it names no winning slot.
                        for (k, &b) in best_k[..n].iter_mut().zip(&best_v) {
                            *k = if b > 0.0 { *k } else { u32::MAX };
                        }
                    }
                    let d = &dy[p * c + c0..][..n];
                    for (k, &s) in win.iter().enumerate() {
                        let row = &mut dx[s * c + c0..][..n];
                        for ((o, &b), &g) in row.iter_mut().zip(&best_k[..n]).zip(d) {
                            *o += if b == k as u32 { g } else { 0.0 };
                        }
                    }
                }
            }
            PoolKind::Max => {
                for ci in 0..c {
                    let best = argmax(x, win, ss, ci * cs);
                    dx[best * ss + ci * cs] += dy[p * ps + ci * pcs];
                }
            }
            PoolKind::Avg => {
                let inv = 1.0 / win.len() as f32;
                for &s in win {
                    for ci in 0..c {
                        dx[s * ss + ci * cs] += dy[p * ps + ci * pcs] * inv;
                    }
                }
            }
        },
    );
}

/// The gradient of a ReLU's output `y` when it is `dy = PoolGrad(y, d)`, the pooling's own
/// gradient: `PoolReluGrad(y, d)`, which applies the ReLU's gradient `y > 0` in the pooling
/// gradient's pass (the separate pass over the layer's largest activation, 2 ms a step on
/// the mnist_cnn, goes away; the unfused `PoolGrad` node is left unused). `None` for any
/// other `dy`.
pub fn relu_through_pool(g: &mut Graph, y: NodeId, dy: NodeId) -> Result<Option<NodeId>> {
    let node = &g.nodes[dy];
    match &node.op {
        Op::PoolGrad(s) if node.inputs[0] == y => {
            let (s, d) = (s.clone(), node.inputs[1]);
            Ok(Some(g.push(Op::PoolReluGrad(s), &[y, d])?))
        }
        _ => Ok(None),
    }
}

fn geo_of(spec: &PoolSpec, x_dims: &[usize]) -> Geo {
    spec.geometry(&x_dims[1..])
        .expect("shapes checked when the node was built")
}

pub fn forward(spec: &PoolSpec, x: &In<'_>, out: &mut [f32]) {
    let g = geo_of(spec, x.dims);
    let xs = x.data.len() / x.dims[0].max(1);
    let ys = out.len() / x.dims[0].max(1);
    if x.data.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(ys)
            .zip(x.data.par_chunks(xs))
            .for_each(|(y, x)| crate::simd::dispatch(|| pool_sample(spec, &g, x, y)));
    } else {
        out.chunks_mut(ys)
            .zip(x.data.chunks(xs))
            .for_each(|(y, x)| crate::simd::dispatch(|| pool_sample(spec, &g, x, y)));
    }
}

/// `dx` from `(x, dy)`; with `relu` (`Op::PoolReluGrad`), times `x > 0`.
pub fn backward(spec: &PoolSpec, x: &In<'_>, dy: &In<'_>, out: &mut [f32], relu: bool) {
    let g = geo_of(spec, x.dims);
    let xs = x.data.len() / x.dims[0].max(1);
    let ys = dy.data.len() / x.dims[0].max(1);
    // Compiled for the CPU's widest vectors: the max pool's per-channel comparisons run
    // across channels.
    let run = |(dx, (x, dy)): (&mut [f32], (&[f32], &[f32]))| {
        crate::simd::dispatch(
            #[inline(always)]
            || {
                pool_grad_sample(spec, &g, x, dy, dx, relu);
                if relu && !fast_max(spec) {
                    dx.iter_mut()
                        .zip(x)
                        .for_each(|(d, &v)| *d = if v > 0.0 { *d } else { 0.0 });
                }
            },
        )
    };
    if x.data.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(xs)
            .zip(x.data.par_chunks(xs).zip(dy.data.par_chunks(ys)))
            .for_each(run);
    } else {
        out.chunks_mut(xs)
            .zip(x.data.chunks(xs).zip(dy.data.chunks(ys)))
            .for_each(run);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::autodiff::tests::{b, case, check};
    use crate::graph::{Graph, NodeId};
    use crate::ops::Op;

    pub(crate) fn spec(
        kind: PoolKind,
        rank: usize,
        cf: bool,
        pool: &[usize],
        s: &[usize],
        padding: Padding,
    ) -> PoolSpec {
        let pad3 = |v: &[usize]| {
            let mut a = [1; 3];
            a[3 - rank..].copy_from_slice(v);
            a
        };
        PoolSpec {
            kind,
            layout: Layout {
                rank,
                channels_first: cf,
            },
            pool: pad3(pool),
            strides: pad3(s),
            padding,
        }
    }

    /// A ReLU before a pooling: its gradient goes through `PoolReluGrad`, which matches
    /// `PoolGrad` times `x > 0` on every kind, layout and overlap, including windows whose
    /// values are all zero (ReLU's clamped inputs) and ties.
    #[test]
    fn the_relu_gradient_folds_into_the_pooling_gradient() {
        use crate::ops::{ReduceKind, UnaryOp};
        use crate::program::Program;
        for kind in [PoolKind::Max, PoolKind::Avg] {
            for cf in [false, true] {
                for (pool, s) in [([2, 2], [2, 2]), ([3, 2], [1, 2])] {
                    let sp = spec(kind, 2, cf, &pool, &s, Padding::Same);
                    let dims = if cf { [3, 7, 6] } else { [7, 6, 3] };
                    let mut g = Graph::new();
                    let x = g.input(Shape::batched(&dims));
                    let r = g.unary(UnaryOp::Relu, x).unwrap();
                    let y = g.push(Op::Pool(sp.clone()), &[r]).unwrap();
                    let w = g.input(g.shape(y).clone());
                    let wy = g.mul(y, w).unwrap();
                    let loss = g.reduce_all(ReduceKind::Sum, wy).unwrap();
                    let dx = crate::autodiff::gradients(&mut g, loss, &[x]).unwrap()[0];
                    assert!(matches!(g.nodes[dx].op, Op::PoolReluGrad(_)), "{sp:?}");
                    // The composed form: the pooling's gradient, then the ReLU's.
                    let dp = g.push(Op::PoolGrad(sp.clone()), &[r, w]).unwrap();
                    let composed = g.push(Op::UnaryGrad(UnaryOp::Relu), &[x, dp]).unwrap();
                    let batch = 2;
                    // Values on a coarse grid: ties, and whole windows of zeros after the ReLU.
                    let xv: Vec<f32> = (0..batch * 126)
                        .map(|i| ((i * 7 % 11) as f32 - 6.0) / 2.0)
                        .collect();
                    let wv: Vec<f32> = (0..g.shape(w).numel(batch))
                        .map(|i| (i % 5) as f32 - 1.5)
                        .collect();
                    let mut p = Program::plan(&g, &[dx, composed], batch).unwrap();
                    p.run(&[], &[&xv, &wv], &crate::ops::Ctx::default())
                        .unwrap();
                    assert_eq!(p.value(dx), p.value(composed), "{sp:?}");
                    assert!(p.value(dx).iter().any(|&v| v != 0.0));
                }
            }
        }
    }

    #[test]
    fn max_and_average_match_hand_computed_values() {
        // One sample, 1 x 5 x 1 (channels_last, 2-D with one row): windows of 2, stride 2.
        let x = [1.0, 5.0, 2.0, 3.0, 4.0];
        let dims = [1, 1, 5, 1];
        let run = |sp: &PoolSpec| {
            let s = infer(sp, &Shape::batched(&dims[1..])).unwrap();
            let mut y = vec![0.0; s.numel(1)];
            forward(
                sp,
                &In {
                    data: &x,
                    dims: &dims,
                },
                &mut y,
            );
            y
        };
        assert_eq!(
            run(&spec(
                PoolKind::Max,
                2,
                false,
                &[1, 2],
                &[1, 2],
                Padding::Valid
            )),
            [5.0, 3.0]
        );
        assert_eq!(
            run(&spec(
                PoolKind::Max,
                2,
                false,
                &[1, 2],
                &[1, 2],
                Padding::Same
            )),
            [5.0, 3.0, 4.0]
        );
        assert_eq!(
            run(&spec(
                PoolKind::Avg,
                2,
                false,
                &[1, 2],
                &[1, 2],
                Padding::Same
            )),
            [3.0, 2.5, 4.0]
        );
        // 'same' with a window of 3, stride 1: one padded position on each side, not counted.
        assert_eq!(
            run(&spec(
                PoolKind::Avg,
                2,
                false,
                &[1, 3],
                &[1, 1],
                Padding::Same
            )),
            [3.0, 8.0 / 3.0, 10.0 / 3.0, 3.0, 3.5]
        );
    }

    #[test]
    fn a_window_holding_nan_gives_nan_and_its_gradient_goes_to_the_nan() {
        let nan = f32::NAN;
        // Windows of 2, stride 2 over 1 x 6, channels_last then channels_first (one channel).
        let x = [1.0, nan, nan, 3.0, f32::NEG_INFINITY, 2.0];
        let dims = [1, 1, 6, 1];
        for cf in [false, true] {
            let sp = spec(PoolKind::Max, 2, cf, &[1, 2], &[1, 2], Padding::Valid);
            let dims = if cf { [1, 1, 1, 6] } else { dims };
            let xin = In {
                data: &x,
                dims: &dims,
            };
            let mut y = [0.0; 3];
            forward(&sp, &xin, &mut y);
            assert!(y[0].is_nan() && y[1].is_nan() && y[2] == 2.0, "{y:?}");
            let dy = [1.0, 2.0, 3.0];
            let mut dx = [0.0; 6];
            backward(
                &sp,
                &xin,
                &In {
                    data: &dy,
                    dims: &[1, 1, 3, 1][..],
                },
                &mut dx,
                false,
            );
            // The first NaN of each window wins it, as numpy's argmax.
            assert_eq!(dx, [0.0, 1.0, 2.0, 0.0, 0.0, 3.0], "channels_first {cf}");
        }
    }

    #[test]
    fn channels_first_matches_channels_last() {
        let (h, w, c) = (5, 4, 3);
        let xl: Vec<f32> = (0..h * w * c).map(|i| ((i * 37) % 23) as f32).collect();
        let mut xf = vec![0.0; xl.len()];
        for s in 0..h * w {
            for ci in 0..c {
                xf[ci * h * w + s] = xl[s * c + ci];
            }
        }
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let (l, f) = (
                spec(kind, 2, false, &[2, 3], &[2, 1], Padding::Same),
                spec(kind, 2, true, &[2, 3], &[2, 1], Padding::Same),
            );
            let sl = infer(&l, &Shape::batched(&[h, w, c])).unwrap();
            let mut yl = vec![0.0; sl.numel(1)];
            let mut yf = vec![0.0; sl.numel(1)];
            forward(
                &l,
                &In {
                    data: &xl,
                    dims: &[1, h, w, c],
                },
                &mut yl,
            );
            forward(
                &f,
                &In {
                    data: &xf,
                    dims: &[1, c, h, w],
                },
                &mut yf,
            );
            let p = yl.len() / c;
            for s in 0..p {
                for ci in 0..c {
                    assert_eq!(yl[s * c + ci], yf[ci * p + s]);
                }
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let pool = |sp: PoolSpec| {
            move |g: &mut Graph, x: &[NodeId]| g.push(Op::Pool(sp.clone()), &[x[0]]).unwrap()
        };
        for kind in [PoolKind::Max, PoolKind::Avg] {
            for (cf, dims) in [(false, [5, 4, 2]), (true, [2, 5, 4])] {
                for padding in [Padding::Valid, Padding::Same] {
                    let mut c = case(
                        &[b(&dims)],
                        pool(spec(kind, 2, cf, &[2, 3], &[2, 1], padding)),
                    );
                    c.distinct = true;
                    check(c);
                }
            }
            let mut c = case(
                &[b(&[7, 2])],
                pool(spec(kind, 1, false, &[3], &[2], Padding::Same)),
            );
            c.distinct = true;
            check(c);
            let mut c = case(
                &[b(&[2, 3, 4, 3])],
                pool(spec(kind, 3, true, &[2, 2, 2], &[1, 2, 2], Padding::Valid)),
            );
            c.distinct = true;
            check(c);
        }
    }

    #[test]
    fn too_large_a_window_is_an_error() {
        assert!(infer(
            &spec(PoolKind::Max, 2, false, &[3, 3], &[3, 3], Padding::Valid),
            &Shape::batched(&[2, 5, 1])
        )
        .is_err());
    }
}
