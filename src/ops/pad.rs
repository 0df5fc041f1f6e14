//! Spatial shape ops of the convolution family: zero padding and cropping (one op, `Pad`,
//! where a negative amount crops, so that each is the other's VJP) and nearest-neighbour
//! upsampling (whose VJP sums each block of repeats, as a reshape and per-axis sums).

use rayon::prelude::*;
use smallvec::{smallvec, SmallVec};

use super::conv::Layout;
use super::{In, Op, ReduceKind, PAR_THRESHOLD};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PadSpec {
    pub layout: Layout,
    /// Amounts before and after each spatial axis (padded in front with zeros to three);
    /// negative amounts crop.
    pub before: [isize; 3],
    pub after: [isize; 3],
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpSampleSpec {
    pub layout: Layout,
    /// Repeats per spatial axis (padded in front with 1s to three).
    pub factor: [usize; 3],
}

fn split(layout: &Layout, dims: &[usize], what: &str) -> Result<([usize; 3], usize)> {
    layout.split(dims).ok_or_else(|| {
        crate::error::Error::Value(format!(
            "{what}: expected an input with {} spatial axes and a channel axis, received shape {:?} per sample",
            layout.rank, dims
        ))
    })
}

pub fn infer_pad(spec: &PadSpec, x: &Shape) -> Result<Shape> {
    let (sp, c) = split(&spec.layout, &x.dims, "padding/cropping")?;
    let mut out = [1; 3];
    for a in 0..3 {
        let n = sp[a] as isize + spec.before[a] + spec.after[a];
        if n <= 0 {
            return crate::value_error!(
                "cropping {:?} and {:?} leaves nothing of spatial axis {} of size {} (input shape {})",
                &spec.before[3 - spec.layout.rank..],
                &spec.after[3 - spec.layout.rank..],
                a + spec.layout.rank - 3,
                sp[a],
                x.display()
            );
        }
        out[a] = n as usize;
    }
    Ok(Shape {
        batched: x.batched,
        dims: spec.layout.join(out, c),
    })
}

pub fn infer_upsample(spec: &UpSampleSpec, x: &Shape) -> Result<Shape> {
    let (sp, c) = split(&spec.layout, &x.dims, "upsampling")?;
    let out: [usize; 3] = std::array::from_fn(|a| sp[a] * spec.factor[a]);
    Ok(Shape {
        batched: x.batched,
        dims: spec.layout.join(out, c),
    })
}

pub fn vjp_pad(g: &mut Graph, spec: &PadSpec, dy: NodeId) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let neg = |v: [isize; 3]| v.map(|a| -a);
    let back = PadSpec {
        layout: spec.layout,
        before: neg(spec.before),
        after: neg(spec.after),
    };
    Ok(smallvec![Some(g.push(Op::Pad(back), &[dy])?)])
}

/// The VJP of upsampling sums each block of repeats: `dy` reshaped so that every spatial
/// axis splits into (input position, repeat), then one sum per axis that repeats, innermost
/// first. Each sum runs over one axis, so it takes the reductions' contiguous path on the
/// CPU, and it needs only reshape and reduce on the GPU.
pub fn vjp_upsample(
    g: &mut Graph,
    spec: &UpSampleSpec,
    dy: NodeId,
) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let s = g.shape(dy).clone();
    let (sp, c) = split(&spec.layout, &s.dims, "upsampling")?;
    let rank = spec.layout.rank;
    let lead = usize::from(s.batched) + usize::from(spec.layout.channels_first);
    let mut dims = Vec::with_capacity(2 * rank + 1);
    if spec.layout.channels_first {
        dims.push(c);
    }
    for (&n, &f) in sp.iter().zip(&spec.factor).skip(3 - rank) {
        dims.extend([n / f, f]);
    }
    if !spec.layout.channels_first {
        dims.push(c);
    }
    let mut y = g.reshape(dy, &dims)?;
    for k in (0..rank).rev() {
        if spec.factor[3 - rank + k] > 1 {
            y = g.reduce(ReduceKind::Sum, y, &[lead + 2 * k + 1], false)?;
        }
    }
    let per_sample: [usize; 3] = std::array::from_fn(|a| sp[a] / spec.factor[a]);
    y = g.reshape(y, &spec.layout.join(per_sample, c))?;
    Ok(smallvec![Some(y)])
}

/// Copies `out[o] = x[src(o)]` (or 0 where `src` is `None`) position by position, for every
/// sample, with the channel layout handled here. `src` maps an output spatial position
/// `[z, y, x]` to an input spatial index.
fn gather(
    layout: &Layout,
    x: &In<'_>,
    out: &mut [f32],
    out_dims: &[usize],
    src: impl Fn([usize; 3]) -> Option<usize> + Sync,
) {
    let (sp_in, c) = layout
        .split(&x.dims[1..])
        .expect("shape checked when the node was built");
    let (sp_out, _) = layout
        .split(&out_dims[1..])
        .expect("shape checked when the node was built");
    let (s_in, p_out) = (
        sp_in.iter().product::<usize>(),
        sp_out.iter().product::<usize>(),
    );
    let sample = |(y, xs): (&mut [f32], &[f32])| {
        let mut p = 0;
        for z in 0..sp_out[0] {
            for yy in 0..sp_out[1] {
                for xx in 0..sp_out[2] {
                    let at = src([z, yy, xx]);
                    if layout.channels_first {
                        for ci in 0..c {
                            y[ci * p_out + p] = at.map_or(0.0, |s| xs[ci * s_in + s]);
                        }
                    } else {
                        let dst = &mut y[p * c..][..c];
                        match at {
                            Some(s) => dst.copy_from_slice(&xs[s * c..][..c]),
                            None => dst.fill(0.0),
                        }
                    }
                    p += 1;
                }
            }
        }
    };
    let (xs, ys) = (s_in * c, p_out * c);
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(ys)
            .zip(x.data.par_chunks(xs))
            .for_each(sample);
    } else {
        out.chunks_mut(ys).zip(x.data.chunks(xs)).for_each(sample);
    }
}

pub fn pad_forward(spec: &PadSpec, x: &In<'_>, out: &mut [f32], out_dims: &[usize]) {
    let (sp_in, _) = spec
        .layout
        .split(&x.dims[1..])
        .expect("shape checked when the node was built");
    gather(&spec.layout, x, out, out_dims, |o| {
        let mut s = 0;
        for a in 0..3 {
            let i = o[a] as isize - spec.before[a];
            if i < 0 || i >= sp_in[a] as isize {
                return None;
            }
            s = s * sp_in[a] + i as usize;
        }
        Some(s)
    });
}

pub fn upsample_forward(spec: &UpSampleSpec, x: &In<'_>, out: &mut [f32], out_dims: &[usize]) {
    let (sp_in, _) = spec
        .layout
        .split(&x.dims[1..])
        .expect("shape checked when the node was built");
    gather(&spec.layout, x, out, out_dims, |o| {
        Some((0..3).fold(0, |s, a| s * sp_in[a] + o[a] / spec.factor[a]))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::tests::{b, case, check};

    fn layout(rank: usize, cf: bool) -> Layout {
        Layout {
            rank,
            channels_first: cf,
        }
    }

    #[test]
    fn padding_and_cropping_place_values() {
        // 1 sample, 2 x 2 x 1 (channels_last), padded (1, 0) rows and (0, 1) cols.
        let spec = PadSpec {
            layout: layout(2, false),
            before: [0, 1, 0],
            after: [0, 0, 1],
        };
        let s = infer_pad(&spec, &Shape::batched(&[2, 2, 1])).unwrap();
        assert_eq!(s.dims, [3, 3, 1]);
        let mut y = vec![9.0; 9];
        pad_forward(
            &spec,
            &In {
                data: &[1.0, 2.0, 3.0, 4.0],
                dims: &[1, 2, 2, 1],
            },
            &mut y,
            &[1, 3, 3, 1],
        );
        assert_eq!(y, [0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0, 0.0]);
        let crop = PadSpec {
            layout: layout(1, true),
            before: [0, 0, -1],
            after: [0, 0, -2],
        };
        let mut y = vec![0.0; 2];
        pad_forward(
            &crop,
            &In {
                data: &[1.0, 2.0, 3.0, 4.0],
                dims: &[1, 1, 4],
            },
            &mut y,
            &[1, 1, 1],
        );
        assert_eq!(y[0], 2.0);
        assert!(infer_pad(&crop, &Shape::batched(&[1, 3])).is_err());
    }

    #[test]
    fn upsampling_repeats_values() {
        let spec = UpSampleSpec {
            layout: layout(1, false),
            factor: [1, 1, 2],
        };
        let mut y = vec![0.0; 8];
        upsample_forward(
            &spec,
            &In {
                data: &[1.0, 2.0, 3.0, 4.0],
                dims: &[1, 2, 2],
            },
            &mut y,
            &[1, 4, 2],
        );
        assert_eq!(y, [1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]);
    }

    #[test]
    fn gradients_match_finite_differences() {
        for cf in [false, true] {
            let dims = if cf { [2, 3, 4] } else { [3, 4, 2] };
            let pad = PadSpec {
                layout: layout(2, cf),
                before: [0, 1, -1],
                after: [0, -1, 2],
            };
            check(case(&[b(&dims)], move |g, x| {
                g.push(Op::Pad(pad.clone()), &[x[0]]).unwrap()
            }));
            let up = UpSampleSpec {
                layout: layout(2, cf),
                factor: [1, 2, 3],
            };
            check(case(&[b(&dims)], move |g, x| {
                g.push(Op::UpSample(up.clone()), &[x[0]]).unwrap()
            }));
        }
        let up3 = UpSampleSpec {
            layout: layout(3, false),
            factor: [2, 1, 2],
        };
        check(case(&[b(&[2, 2, 2, 1])], move |g, x| {
            g.push(Op::UpSample(up3.clone()), &[x[0]]).unwrap()
        }));
    }
}
