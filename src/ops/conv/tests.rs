//! Convolution tests: forward against a direct convolution, every VJP against finite differences.

use super::*;
use crate::autodiff::tests::{b, case, check, f};
use crate::ops::random::uniform;

/// A spec of `rank` spatial axes from per-axis sizes of that rank (also the GPU tests').
pub(crate) fn spec(
    rank: usize,
    cf: bool,
    k: &[usize],
    s: &[usize],
    d: &[usize],
    padding: Padding,
) -> ConvSpec {
    let pad3 = |v: &[usize]| {
        let mut a = [1; 3];
        a[3 - rank..].copy_from_slice(v);
        a
    };
    ConvSpec {
        layout: Layout {
            rank,
            channels_first: cf,
        },
        kernel: pad3(k),
        strides: pad3(s),
        dilation: pad3(d),
        padding,
    }
}

/// `n` values uniform in [-0.5, 0.5), from `seed`.
fn fill(n: usize, seed: u64) -> Vec<f32> {
    (0..n).map(|i| uniform(seed, i as u64) - 0.5).collect()
}

/// Direct convolution with explicit indices, the reference for the im2col kernels.
fn naive(sp: &ConvSpec, xd: &[usize], x: &[f32], k: &[f32], cout: usize) -> (Vec<usize>, Vec<f32>) {
    let g = sp.geometry(&xd[1..]).unwrap();
    let at_x = |bi: usize, s: [usize; 3], c: usize| {
        let si = (s[0] * g.sp_in[1] + s[1]) * g.sp_in[2] + s[2];
        let off = if sp.layout.channels_first {
            c * g.s_in() + si
        } else {
            si * g.cin + c
        };
        x[bi * g.s_in() * g.cin + off]
    };
    let mut y = vec![0.0; xd[0] * g.p() * cout];
    for bi in 0..xd[0] {
        for o in 0..g.p() {
            let os = [
                o / (g.sp_out[1] * g.sp_out[2]),
                o / g.sp_out[2] % g.sp_out[1],
                o % g.sp_out[2],
            ];
            for co in 0..cout {
                let mut acc = 0.0;
                for t in 0..sp.kernel.iter().product::<usize>() {
                    let ks = [
                        t / (sp.kernel[1] * sp.kernel[2]),
                        t / sp.kernel[2] % sp.kernel[1],
                        t % sp.kernel[2],
                    ];
                    let mut s = [0usize; 3];
                    let mut ok = true;
                    for a in 0..3 {
                        let v = (os[a] * sp.strides[a] + ks[a] * sp.dilation[a]) as isize
                            - g.pad[a] as isize;
                        ok &= v >= 0 && (v as usize) < g.sp_in[a];
                        s[a] = v.max(0) as usize;
                    }
                    if ok {
                        for ci in 0..g.cin {
                            acc += at_x(bi, s, ci) * k[(t * g.cin + ci) * cout + co];
                        }
                    }
                }
                let off = if sp.layout.channels_first {
                    co * g.p() + o
                } else {
                    o * cout + co
                };
                y[bi * g.p() * cout + off] = acc;
            }
        }
    }
    let mut dims = vec![xd[0]];
    dims.extend(sp.layout.join(g.sp_out, cout));
    (dims, y)
}

fn run_forward(sp: &ConvSpec, xd: &[usize], cout: usize) {
    let g = sp.geometry(&xd[1..]).unwrap();
    let kd = sp.kernel_dims(g.cin, cout);
    let x: Vec<f32> = (0..xd.iter().product::<usize>())
        .map(|i| uniform(1, i as u64) - 0.5)
        .collect();
    let k: Vec<f32> = (0..kd.iter().product::<usize>())
        .map(|i| uniform(2, i as u64) - 0.5)
        .collect();
    let (yd, want) = naive(sp, xd, &x, &k, cout);
    let mut got = vec![0.0; want.len()];
    let mut scratch = vec![0.0; scratch_len(sp, xd)];
    let x_in = In { data: &x, dims: xd };
    let k_in = In {
        data: &k,
        dims: &kd,
    };
    forward(sp, &x_in, &k_in, None, &mut got, &mut scratch, false);
    let s = infer(sp, &Shape::batched(&xd[1..]), &Shape::fixed(&kd), None).unwrap();
    assert_eq!(s.concrete(xd[0]), yd);
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-4, "{sp:?}: {a} vs {b}");
    }
    // With a bias, added on the channel axis, and the fused ReLU.
    let bias: Vec<f32> = (0..cout).map(|c| c as f32 - 1.5).collect();
    forward(
        sp,
        &x_in,
        &k_in,
        Some(&In {
            data: &bias,
            dims: &[cout],
        }),
        &mut got,
        &mut scratch,
        true,
    );
    let p = g.p();
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let c = if sp.layout.channels_first {
            i / p % cout
        } else {
            i % cout
        };
        assert!(
            (a - (b + bias[c]).max(0.0)).abs() < 1e-4,
            "{sp:?} with bias and relu: {a} vs relu({b} + {})",
            bias[c]
        );
    }
}

#[test]
fn forward_matches_direct_convolution() {
    for cf in [false, true] {
        for padding in [Padding::Valid, Padding::Same, Padding::Full] {
            run_forward(
                &spec(2, cf, &[3, 2], &[1, 1], &[1, 1], padding),
                &if cf { [2, 3, 6, 5] } else { [2, 6, 5, 3] },
                4,
            );
            run_forward(
                &spec(2, cf, &[3, 3], &[2, 3], &[1, 1], padding),
                &if cf { [2, 2, 7, 8] } else { [2, 7, 8, 2] },
                3,
            );
            run_forward(
                &spec(2, cf, &[2, 3], &[1, 1], &[2, 2], padding),
                &if cf { [1, 2, 7, 8] } else { [1, 7, 8, 2] },
                2,
            );
            run_forward(
                &spec(1, cf, &[3], &[2], &[1], padding),
                &if cf { [3, 4, 9] } else { [3, 9, 4] },
                5,
            );
            run_forward(
                &spec(3, cf, &[2, 2, 3], &[1, 2, 1], &[1, 1, 1], padding),
                &if cf { [2, 2, 4, 5, 4] } else { [2, 4, 5, 4, 2] },
                3,
            );
        }
    }
}

#[test]
fn transposed_convolution_gradients_match_finite_differences() {
    let tconv = |sp: ConvSpec, out: Shape| {
        move |g: &mut Graph, x: &[NodeId]| {
            g.push(Op::ConvGradInput(sp.clone(), out.clone()), &[x[0], x[1]])
                .unwrap()
        }
    };
    // 2x2 stride 2 'valid': 3x2 -> 6x4; 3x3 stride 1 'same' channels_first.
    let sp = spec(2, false, &[2, 2], &[2, 2], &[1, 1], Padding::Valid);
    check(case(
        &[b(&[3, 2, 2]), f(&[2, 2, 3, 2])],
        tconv(sp, Shape::batched(&[6, 4, 3])),
    ));
    let sp = spec(2, true, &[3, 3], &[1, 1], &[1, 1], Padding::Same);
    check(case(
        &[b(&[2, 3, 3]), f(&[3, 3, 2, 2])],
        tconv(sp, Shape::batched(&[2, 3, 3])),
    ));
    let sp = spec(1, false, &[3], &[2], &[1], Padding::Same);
    check(case(
        &[b(&[3, 2]), f(&[3, 3, 2])],
        tconv(sp, Shape::batched(&[6, 3])),
    ));
}

#[test]
fn output_lengths_follow_keras() {
    assert_eq!(out_len(Padding::Valid, 28, 3, 1, 1), Some((26, 0)));
    assert_eq!(out_len(Padding::Same, 28, 3, 2, 1), Some((14, 0)));
    assert_eq!(out_len(Padding::Same, 7, 4, 1, 1), Some((7, 1)));
    assert_eq!(out_len(Padding::Full, 5, 3, 1, 1), Some((7, 2)));
    assert_eq!(out_len(Padding::Valid, 4, 3, 1, 2), None);
}

#[test]
fn bad_kernels_and_inputs_are_errors() {
    let sp = spec(2, false, &[3, 3], &[1, 1], &[1, 1], Padding::Valid);
    assert!(infer(
        &sp,
        &Shape::batched(&[2, 2, 1]),
        &Shape::fixed(&[3, 3, 1, 4]),
        None
    )
    .is_err());
    assert!(infer(
        &sp,
        &Shape::batched(&[5, 5, 2]),
        &Shape::fixed(&[3, 3, 1, 4]),
        None
    )
    .is_err());
    assert!(infer(
        &sp,
        &Shape::batched(&[5, 5]),
        &Shape::fixed(&[3, 3, 1, 4]),
        None
    )
    .is_err());
}

#[test]
fn gradients_match_finite_differences() {
    let biased = |sp: ConvSpec| {
        move |g: &mut Graph, x: &[NodeId]| {
            g.push(Op::Conv(sp.clone()), &[x[0], x[1], x[2]]).unwrap()
        }
    };
    check(case(
        &[b(&[5, 4, 2]), f(&[3, 2, 2, 3]), f(&[3])],
        biased(spec(2, false, &[3, 2], &[1, 1], &[1, 1], Padding::Valid)),
    ));
    check(case(
        &[b(&[2, 5, 4]), f(&[2, 2, 2, 3]), f(&[3])],
        biased(spec(2, true, &[2, 2], &[1, 2], &[1, 1], Padding::Same)),
    ));
    let conv = |sp: ConvSpec| {
        move |g: &mut Graph, x: &[NodeId]| g.push(Op::Conv(sp.clone()), &[x[0], x[1]]).unwrap()
    };
    check(case(
        &[b(&[5, 4, 2]), f(&[3, 2, 2, 3])],
        conv(spec(2, false, &[3, 2], &[1, 1], &[1, 1], Padding::Valid)),
    ));
    check(case(
        &[b(&[5, 6, 2]), f(&[2, 2, 2, 2])],
        conv(spec(2, false, &[2, 2], &[2, 2], &[1, 1], Padding::Same)),
    ));
    check(case(
        &[b(&[2, 5, 4]), f(&[2, 2, 2, 3])],
        conv(spec(2, true, &[2, 2], &[1, 2], &[2, 1], Padding::Same)),
    ));
    check(case(
        &[b(&[2, 3, 3]), f(&[2, 2, 2, 2])],
        conv(spec(2, true, &[2, 2], &[1, 1], &[1, 1], Padding::Full)),
    ));
    check(case(
        &[b(&[7, 2]), f(&[3, 2, 2])],
        conv(spec(1, false, &[3], &[2], &[1], Padding::Valid)),
    ));
    check(case(
        &[b(&[2, 3, 3, 3]), f(&[2, 2, 2, 2, 2])],
        conv(spec(
            3,
            true,
            &[2, 2, 2],
            &[1, 1, 1],
            &[1, 1, 1],
            Padding::Same,
        )),
    ));
}

#[test]
fn a_large_kernel_gradient_split_across_threads_matches_the_direct_sum() {
    // Big enough (rows and multiply-adds) to take the two-thread split in `grad_kernel`.
    let sp = spec(2, false, &[3, 3], &[1, 1], &[1, 1], Padding::Valid);
    let (n, h, w, cin, cout) = (2, 40, 40, 16, 16);
    let xd = [n, h, w, cin];
    let (oh, ow) = (h - 2, w - 2);
    let x: Vec<f32> = (0..n * h * w * cin)
        .map(|i| uniform(5, i as u64) - 0.5)
        .collect();
    let dy: Vec<f32> = (0..n * oh * ow * cout)
        .map(|i| uniform(6, i as u64) - 0.5)
        .collect();
    let kd = [3, 3, cin, cout];
    let mut got = vec![0.0; 9 * cin * cout];
    let mut scratch = vec![0.0; scratch_len(&sp, &xd) + got.len()];
    grad_kernel(
        &sp,
        &In {
            data: &x,
            dims: &xd,
        },
        &In {
            data: &dy,
            dims: &[n, oh, ow, cout],
        },
        &mut got,
        &kd,
        &mut scratch,
    );
    for ky in 0..3 {
        for kx in 0..3 {
            for ci in 0..cin {
                for co in 0..cout {
                    let mut want = 0.0f64;
                    for b in 0..n {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let xv = x[((b * h + oy + ky) * w + ox + kx) * cin + ci];
                                want += (xv * dy[((b * oh + oy) * ow + ox) * cout + co]) as f64;
                            }
                        }
                    }
                    let g = got[((ky * 3 + kx) * cin + ci) * cout + co] as f64;
                    assert!(
                        (g - want).abs() < 1e-3 * (1.0 + want.abs()),
                        "{g} vs {want}"
                    );
                }
            }
        }
    }
}

/// The implicit path (channels_last, output channels a multiple of 16: see `implicit.rs`)
/// against the direct convolution, and its two gradients by their adjoint identities:
/// `<conv(v, k), dy> = <v, dx(dy, k)>` and `<conv(x, v), dy> = <v, dk(x, dy)>` for random `v`
/// (exact for a linear map, up to rounding).
#[test]
fn the_implicit_path_matches_the_direct_convolution_and_its_adjoints() {
    let cases: Vec<(ConvSpec, Vec<usize>, usize)> = vec![
        (
            spec(2, false, &[2, 3], &[1, 1], &[1, 1], Padding::Valid),
            vec![3, 8, 7, 16],
            32,
        ),
        (
            spec(2, false, &[3, 3], &[1, 1], &[1, 2], Padding::Same),
            vec![2, 6, 5, 16],
            16,
        ),
        (
            spec(2, false, &[3, 2], &[1, 1], &[2, 1], Padding::Full),
            vec![2, 6, 5, 16],
            16,
        ),
        (
            spec(2, false, &[3, 3], &[2, 1], &[1, 1], Padding::Same),
            vec![2, 7, 6, 3],
            48,
        ),
        (
            spec(2, false, &[3, 3], &[1, 1], &[1, 1], Padding::Valid),
            vec![4, 9, 9, 1],
            32,
        ),
        (
            spec(1, false, &[5], &[1], &[2], Padding::Same),
            vec![3, 13, 16],
            16,
        ),
        (
            spec(3, false, &[2, 3, 2], &[1, 1, 1], &[1, 1, 1], Padding::Same),
            vec![2, 3, 4, 5, 16],
            16,
        ),
        // More than 32 input channels: the input gradient's implicit path (32 and fewer
        // take the per-sample one).
        (
            spec(2, false, &[3, 4], &[1, 1], &[1, 1], Padding::Same),
            vec![2, 6, 5, 48],
            16,
        ),
        (
            spec(2, false, &[2, 3], &[1, 1], &[1, 1], Padding::Valid),
            vec![3, 8, 7, 64],
            32,
        ),
    ];
    for (sp, xd, cout) in &cases {
        let (g, cout) = (sp.geometry(&xd[1..]).unwrap(), *cout);
        assert!(!winograd::eligible(sp, g.cin, cout), "{sp:?} is Winograd's");
        assert!(implicit_forward(sp, &g, cout, xd[0]) || !crate::simd::wide());
        assert_eq!(in_cache_grad_input(sp, &g, xd[0]), g.cin <= 32);
        if g.cin > 32 {
            assert!(implicit_grad_input(sp, &g, cout, xd[0]) || !crate::simd::wide());
        }
    }
    check_against_direct(cases);
}

/// Winograd F(2x2, 3x3) (3x3, stride 1, channels_last, both channel counts multiples of 16:
/// see `winograd.rs`) on every padding, odd output sizes (tiles half outside), blocks of tiles
/// spread over the pool, and channel counts of one to several vectors.
#[test]
fn the_winograd_path_matches_the_direct_convolution_and_its_adjoints() {
    let sq = |padding| spec(2, false, &[3, 3], &[1, 1], &[1, 1], padding);
    let cases: Vec<(ConvSpec, Vec<usize>, usize)> = vec![
        (sq(Padding::Valid), vec![3, 8, 7, 16], 32),
        (sq(Padding::Same), vec![2, 6, 5, 32], 16),
        (sq(Padding::Full), vec![2, 5, 4, 16], 48),
        (sq(Padding::Same), vec![1, 3, 3, 64], 16),
        (sq(Padding::Valid), vec![2, 3, 3, 16], 16),
        // 100 tiles in blocks of 48: three blocks, on every thread of the pool.
        (sq(Padding::Same), vec![4, 10, 10, 64], 64),
    ];
    for (sp, xd, cout) in &cases {
        let g = sp.geometry(&xd[1..]).unwrap();
        assert!(winograd::eligible(sp, g.cin, *cout) || !crate::simd::wide());
    }
    // The kernel gradient sums over tiles in parts fixed by the data: bit for bit the same
    // on one thread as on three.
    let (sp, xd, cout) = cases.last().cloned().unwrap();
    let g = sp.geometry(&xd[1..]).unwrap();
    let kd = sp.kernel_dims(g.cin, cout);
    let (x, dy) = (fill(xd.iter().product(), 1), fill(xd[0] * g.p() * cout, 2));
    let yd = [&[xd[0]][..], &sp.layout.join(g.sp_out, cout)].concat();
    let dk_on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut dk = vec![0.0; kd.iter().product()];
            let mut scratch = vec![0.0; grad_kernel_scratch_len(&sp, &xd, &kd)];
            let x_in = In {
                data: &x,
                dims: &xd,
            };
            let dy_in = In {
                data: &dy,
                dims: &yd,
            };
            grad_kernel(&sp, &x_in, &dy_in, &mut dk, &kd, &mut scratch);
            dk
        })
    };
    assert_eq!(dk_on(1), dk_on(3));
    check_against_direct(cases);
}

/// Checks the forward pass (with and without the fused ReLU) against the direct convolution,
/// and its two gradients by their adjoint identities: `<conv(v, k), dy> = <v, dx(dy, k)>` and
/// `<conv(x, v), dy> = <v, dk(x, dy)>` for random `v` (exact for a linear map, up to rounding).
fn check_against_direct(cases: Vec<(ConvSpec, Vec<usize>, usize)>) {
    let dot = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum::<f64>()
    };
    for (sp, xd, cout) in cases {
        let g = sp.geometry(&xd[1..]).unwrap();
        let kd = sp.kernel_dims(g.cin, cout);
        let (x, k) = (fill(xd.iter().product(), 1), fill(kd.iter().product(), 2));
        let (yd, want) = naive(&sp, &xd, &x, &k, cout);
        let x_in = In {
            data: &x,
            dims: &xd,
        };
        let k_in = In {
            data: &k,
            dims: &kd,
        };
        let mut y = vec![0.0; want.len()];
        let mut scratch = vec![0.0; forward_scratch_len(&sp, &xd, &kd)];
        forward(&sp, &x_in, &k_in, None, &mut y, &mut scratch, false);
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() < 1e-4, "{sp:?}: {a} vs {b}");
        }
        // With the fused ReLU, clamped where it is stored.
        forward(&sp, &x_in, &k_in, None, &mut y, &mut scratch, true);
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b.max(0.0)).abs() < 1e-4, "{sp:?} relu: {a} vs {b}");
        }
        let dy = fill(want.len(), 3);
        let dy_in = In {
            data: &dy,
            dims: &yd,
        };
        // dx, checked against a random direction in x.
        let mut dx = vec![0.0; x.len()];
        let mut scratch = vec![0.0; grad_input_scratch_len(&sp, &xd, &kd)];
        grad_input(&sp, &dy_in, &k_in, &mut dx, &xd, &mut scratch);
        let v = fill(x.len(), 4);
        let (_, cv) = naive(&sp, &xd, &v, &k, cout);
        let (l, r) = (dot(&cv, &dy), dot(&v, &dx));
        assert!(
            (l - r).abs() < 1e-4 * l.abs().max(1.0),
            "{sp:?} dx: {l} vs {r}"
        );
        // dk, checked against a random direction in k.
        let mut dk = vec![0.0; k.len()];
        let mut scratch = vec![0.0; grad_kernel_scratch_len(&sp, &xd, &kd)];
        grad_kernel(&sp, &x_in, &dy_in, &mut dk, &kd, &mut scratch);
        let v = fill(k.len(), 5);
        let (_, cv) = naive(&sp, &xd, &x, &v, cout);
        let (l, r) = (dot(&cv, &dy), dot(&v, &dk));
        assert!(
            (l - r).abs() < 1e-4 * l.abs().max(1.0),
            "{sp:?} dk: {l} vs {r}"
        );
    }
}

/// The fused `ConvRelu` against `Conv` then `Relu`: the same output and gradients of the
/// input, kernel and bias (the ReLU's gradient read from the output instead of the input).
#[test]
fn the_fused_relu_matches_the_composed_convolution_and_relu() {
    use crate::ops::{Ctx, ReduceKind, UnaryOp};
    use crate::program::Program;
    for (sp, xd, cout) in [
        (
            spec(2, false, &[3, 3], &[1, 1], &[1, 1], Padding::Valid),
            vec![4, 7, 6, 16],
            32,
        ),
        (
            spec(2, true, &[2, 3], &[1, 2], &[1, 1], Padding::Same),
            vec![3, 4, 6, 5],
            3,
        ),
        (
            spec(1, false, &[3], &[1], &[1], Padding::Same),
            vec![2, 9, 3],
            5,
        ),
    ] {
        let g0 = sp.geometry(&xd[1..]).unwrap();
        let kd = sp.kernel_dims(g0.cin, cout);
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&xd[1..]));
        let kv = g.declare_var(&kd);
        let k = g.param(kv);
        let bv = g.declare_var(&[cout]);
        let bias = g.param(bv);
        let fused = g.push(Op::ConvRelu(sp.clone()), &[x, k, bias]).unwrap();
        let plain = g.push(Op::Conv(sp.clone()), &[x, k, bias]).unwrap();
        let composed = g.unary(UnaryOp::Relu, plain).unwrap();
        let w = g.input(g.shape(fused).clone());
        let mut grads = Vec::new();
        for y in [fused, composed] {
            let p = g.mul(y, w).unwrap();
            let loss = g.reduce_all(ReduceKind::Sum, p).unwrap();
            grads.extend(crate::autodiff::gradients(&mut g, loss, &[x, k, bias]).unwrap());
        }
        let batch = xd[0];
        let xv = fill(xd.iter().product(), 1);
        let wv = fill(g.shape(w).numel(batch), 2);
        let (kvv, bvv) = (fill(kd.iter().product(), 3), fill(cout, 4));
        let mut outs = vec![fused, composed];
        outs.extend(&grads);
        let mut prog = Program::plan(&g, &outs, batch).unwrap();
        prog.run(&[&kvv, &bvv], &[&xv, &wv], &Ctx::default())
            .unwrap();
        let pairs = [
            (fused, composed),
            (grads[0], grads[3]),
            (grads[1], grads[4]),
            (grads[2], grads[5]),
        ];
        for (a, b) in pairs {
            for (u, v) in prog.value(a).iter().zip(prog.value(b)) {
                assert!((u - v).abs() < 1e-5 * (1.0 + v.abs()), "{sp:?}: {u} vs {v}");
            }
        }
        assert!(prog.value(fused).contains(&0.0) && prog.value(fused).iter().any(|&v| v > 0.0));
    }
}
