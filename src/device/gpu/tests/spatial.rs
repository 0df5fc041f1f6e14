//! Zero padding, cropping and nearest-neighbour upsampling against the CPU, forward and
//! through the ops of their VJPs, for 1, 2 and 3 spatial axes in both data formats.

use super::{compare, data};
use crate::graph::{Graph, Shape};
use crate::ops::conv::Layout;
use crate::ops::pad::{vjp_pad, vjp_upsample, PadSpec, UpSampleSpec};
use crate::ops::Op;

/// Per-sample dims of `spatial` with `c` channels in `layout`.
fn dims(layout: &Layout, spatial: &[usize], c: usize) -> Vec<usize> {
    let mut sp = [1; 3];
    sp[3 - spatial.len()..].copy_from_slice(spatial);
    layout.join(sp, c)
}

/// Runs `op` on an input of `in_dims` per sample and its VJP on a fed `dy`, on both devices.
fn forward_and_vjp(
    op: Op,
    in_dims: &[usize],
    batch: usize,
    vjp: impl Fn(&mut Graph, crate::graph::NodeId) -> crate::graph::NodeId,
) {
    let mut g = Graph::new();
    let x = g.input(Shape::batched(in_dims));
    let y = g.push(op, &[x]).unwrap();
    let out_dims = g.shape(y).dims.clone();
    let dy = g.input(Shape::batched(&out_dims));
    let dx = vjp(&mut g, dy);
    assert_eq!(g.shape(dx), g.shape(x));
    let n_in = batch * in_dims.iter().product::<usize>();
    let n_out = batch * out_dims.iter().product::<usize>();
    let feeds = vec![data(n_in, 1, -1.0, 1.0), data(n_out, 2, -1.0, 1.0)];
    compare(&g, &[y, dx], batch, &feeds, &[], false, 1e-5);
}

#[test]
fn padding_and_cropping_match_the_cpu() {
    // (spatial dims, before, after) on the last axes; mixes of padding and cropping, a crop
    // that keeps one entry, and a window that misses the input entirely (all zeros).
    let cases: [(&[usize], &[isize], &[isize]); 7] = [
        (&[5], &[2], &[1]),
        (&[6], &[-2], &[-3]),
        (&[3], &[-3], &[2]),
        (&[4, 3], &[1, -1], &[-2, 2]),
        (&[3, 5], &[0, 3], &[2, -4]),
        (&[2, 3, 4], &[1, 0, -1], &[0, -2, 1]),
        (&[3, 2, 2], &[-1, 1, 1], &[-1, 0, 2]),
    ];
    for cf in [false, true] {
        for &(sp, before, after) in &cases {
            let rank = sp.len();
            let layout = Layout {
                rank,
                channels_first: cf,
            };
            let (mut b, mut a) = ([0; 3], [0; 3]);
            b[3 - rank..].copy_from_slice(before);
            a[3 - rank..].copy_from_slice(after);
            let spec = PadSpec {
                layout,
                before: b,
                after: a,
            };
            for (c, batch) in [(1, 1), (3, 2)] {
                let s = spec.clone();
                forward_and_vjp(
                    Op::Pad(spec.clone()),
                    &dims(&layout, sp, c),
                    batch,
                    |g, dy| vjp_pad(g, &s, dy).unwrap()[0].unwrap(),
                );
            }
        }
    }
}

#[test]
fn upsampling_matches_the_cpu() {
    let cases: [(&[usize], &[usize]); 6] = [
        (&[3], &[2]),
        (&[4], &[1]),
        (&[2, 3], &[3, 2]),
        (&[3, 1], &[1, 4]),
        (&[2, 2, 3], &[2, 1, 3]),
        (&[1, 3, 2], &[3, 2, 2]),
    ];
    for cf in [false, true] {
        for &(sp, factor) in &cases {
            let rank = sp.len();
            let layout = Layout {
                rank,
                channels_first: cf,
            };
            let mut f = [1; 3];
            f[3 - rank..].copy_from_slice(factor);
            let spec = UpSampleSpec { layout, factor: f };
            for (c, batch) in [(1, 1), (2, 3)] {
                let s = spec.clone();
                forward_and_vjp(
                    Op::UpSample(spec.clone()),
                    &dims(&layout, sp, c),
                    batch,
                    |g, dy| vjp_upsample(g, &s, dy).unwrap()[0].unwrap(),
                );
            }
        }
    }
}
