//! The convolution kernels against the CPU's: forward, input and kernel gradients on awkward
//! shapes (odd sizes, strides, dilation, every padding, both data formats, 1-D to 3-D, tiles
//! cut at their edges), a transposed convolution differentiated end to end, and a small CNN
//! trained on both devices.

use super::{compare, data, gpu};
use crate::autodiff::gradients;
use crate::graph::{Graph, NodeId, Shape};
use crate::model::{CompileSpec, Model, OutputSpec};
use crate::ops::conv::tests::spec;
use crate::ops::conv::{ConvSpec, Padding};
use crate::ops::{Op, ReduceKind, UnaryOp};

/// One case: the spec, the per-sample input dims, output channels, a bias or not, the batch.
struct Case {
    spec: ConvSpec,
    x: Vec<usize>,
    cout: usize,
    bias: bool,
    batch: usize,
}

fn cases() -> Vec<Case> {
    use Padding::*;
    let c = |spec, x: &[usize], cout, bias, batch| Case {
        spec,
        x: x.to_vec(),
        cout,
        bias,
        batch,
    };
    vec![
        c(spec(1, false, &[3], &[2], &[1], Same), &[11, 3], 4, true, 3),
        c(spec(1, true, &[2], &[1], &[3], Valid), &[5, 9], 2, false, 2),
        c(spec(1, false, &[4], &[3], &[2], Full), &[7, 2], 3, true, 2),
        c(
            spec(2, false, &[3, 2], &[2, 1], &[1, 2], Same),
            &[7, 6, 3],
            5,
            true,
            2,
        ),
        c(
            spec(2, true, &[3, 3], &[1, 2], &[1, 1], Valid),
            &[2, 8, 7],
            3,
            true,
            3,
        ),
        c(
            spec(2, true, &[2, 3], &[2, 2], &[2, 1], Same),
            &[3, 6, 5],
            4,
            false,
            2,
        ),
        c(
            spec(2, false, &[2, 3], &[1, 1], &[1, 1], Full),
            &[4, 5, 2],
            3,
            false,
            2,
        ),
        // Tiles cut at every edge: 243 rows, 70 columns, a depth of 153.
        c(
            spec(2, false, &[3, 3], &[1, 1], &[1, 1], Same),
            &[9, 9, 17],
            70,
            true,
            3,
        ),
        c(
            spec(3, true, &[2, 3, 2], &[1, 2, 1], &[2, 1, 1], Same),
            &[2, 5, 6, 4],
            3,
            true,
            2,
        ),
        c(
            spec(3, false, &[2, 2, 2], &[2, 2, 2], &[1, 1, 1], Valid),
            &[5, 4, 3, 2],
            3,
            false,
            2,
        ),
    ]
}

#[test]
fn convolutions_and_their_gradients_match_the_cpu() {
    for (i, case) in cases().iter().enumerate() {
        let sp = &case.spec;
        let cin = if sp.layout.channels_first {
            case.x[0]
        } else {
            *case.x.last().expect("non-empty dims")
        };
        let mut kdims = sp.kernel[3 - sp.layout.rank..].to_vec();
        kdims.extend([cin, case.cout]);
        let mut g = Graph::new();
        let x = g.input(Shape::batched(&case.x));
        let kv = g.declare_var(&kdims);
        let k = g.param(kv);
        let mut ins = vec![x, k];
        if case.bias {
            let bv = g.declare_var(&[case.cout]);
            ins.push(g.param(bv));
        }
        let y = g.push(Op::Conv(sp.clone()), &ins).unwrap();
        let y_relu = g.push(Op::ConvRelu(sp.clone()), &ins).unwrap();
        let dy = g.input(g.shape(y).clone());
        let dx = g
            .push(
                Op::ConvGradInput(sp.clone(), Shape::batched(&case.x)),
                &[dy, k],
            )
            .unwrap();
        let dk = g.push(Op::ConvGradKernel(sp.clone()), &[x, dy]).unwrap();
        let b = case.batch;
        let feeds = vec![
            data(
                b * case.x.iter().product::<usize>(),
                50 + i as u64,
                -1.0,
                1.0,
            ),
            data(g.shape(dy).numel(b), 60 + i as u64, -1.0, 1.0),
        ];
        let mut vars = vec![data(kdims.iter().product(), 70 + i as u64, -1.0, 1.0)];
        if case.bias {
            vars.push(data(case.cout, 80 + i as u64, -1.0, 1.0));
        }
        compare(&g, &[y, y_relu, dx, dk], b, &feeds, &vars, false, 1e-4);
    }
}

/// `Conv2DTranspose` as the Python layer builds it (the input gradient of a strided
/// convolution, plus a bias), with every gradient autodiff takes through it.
#[test]
fn a_transposed_convolution_trains_like_the_cpu() {
    for cf in [false, true] {
        let sp = spec(2, cf, &[3, 2], &[2, 2], &[1, 1], Padding::Same);
        // Upsampling (3, 4) with 5 channels to (5, 7) with 2 channels: the layer's kernel
        // is (k.., filters, in).
        let (z_dims, out_dims) = if cf {
            (vec![5, 3, 4], vec![2, 5, 7])
        } else {
            (vec![3, 4, 5], vec![5, 7, 2])
        };
        let mut g = Graph::new();
        let z = g.input(Shape::batched(&z_dims));
        let kv = g.declare_var(&[3, 2, 2, 5]);
        let bv = g.declare_var(&[2]);
        let (k, bias) = (g.param(kv), g.param(bv));
        let t = g
            .push(Op::ConvGradInput(sp, Shape::batched(&out_dims)), &[z, k])
            .unwrap();
        let bias_b = if cf {
            g.reshape(bias, &[2, 1, 1]).unwrap()
        } else {
            bias
        };
        let t = g.add(t, bias_b).unwrap();
        let h = g.unary(UnaryOp::Tanh, t).unwrap();
        let sq = g.unary(UnaryOp::Square, h).unwrap();
        let loss = g.reduce_all(ReduceKind::Sum, sq).unwrap();
        let grads = gradients(&mut g, loss, &[z, k, bias]).unwrap();
        let mut outs: Vec<NodeId> = vec![t, loss];
        outs.extend(grads);
        let batch = 3;
        let feeds = vec![data(batch * 60, 90, -1.0, 1.0)];
        let vars = vec![data(60, 91, -0.5, 0.5), data(2, 92, -0.5, 0.5)];
        compare(&g, &outs, batch, &feeds, &vars, false, 1e-4);
    }
    // 'valid' with the stride past the kernel (Conv1DTranspose(2, 2, strides=3)): some
    // outputs meet no tap and are the bias alone.
    let sp = spec(1, false, &[2], &[3], &[1], Padding::Valid);
    let mut g = Graph::new();
    let z = g.input(Shape::batched(&[4, 3]));
    let kv = g.declare_var(&[2, 2, 3]);
    let k = g.param(kv);
    let t = g
        .push(Op::ConvGradInput(sp, Shape::batched(&[12, 2])), &[z, k])
        .unwrap();
    let sq = g.unary(UnaryOp::Square, t).unwrap();
    let loss = g.reduce_all(ReduceKind::Sum, sq).unwrap();
    let mut outs = vec![t, loss];
    outs.extend(gradients(&mut g, loss, &[z, k]).unwrap());
    let feeds = vec![data(2 * 12, 93, -1.0, 1.0)];
    compare(
        &g,
        &outs,
        2,
        &feeds,
        &[data(12, 94, -0.5, 0.5)],
        false,
        1e-4,
    );
}

/// conv 3x3 (relu) -> flatten -> dense -> softmax on 6x6 two-channel images.
fn cnn(channels_first: bool) -> Model {
    let sp = spec(2, channels_first, &[3, 3], &[1, 1], &[1, 1], Padding::Valid);
    let x_dims: &[usize] = if channels_first {
        &[2, 6, 6]
    } else {
        &[6, 6, 2]
    };
    let mut g = Graph::new();
    let x = g.input(Shape::batched(x_dims));
    let k = g.declare_var(&[3, 3, 2, 4]);
    let b = g.declare_var(&[4]);
    let w = g.declare_var(&[64, 3]);
    let c = g.declare_var(&[3]);
    let (kn, bn, wn, cn) = (g.param(k), g.param(b), g.param(w), g.param(c));
    let h = g.push(Op::Conv(sp), &[x, kn, bn]).unwrap();
    let h = g.unary(UnaryOp::Relu, h).unwrap();
    let h = g.reshape(h, &[64]).unwrap();
    let y = g.matmul(h, wn, false, false).unwrap();
    let y = g.add(y, cn).unwrap();
    let y = g.push(Op::Softmax, &[y]).unwrap();
    let mut m = Model::new(g, vec![x], vec![y], 2).unwrap();
    for (v, n, seed) in [(k, 72, 1), (b, 4, 2), (w, 192, 3), (c, 3, 4)] {
        m.set_var(v, &data(n, 100 + seed, -0.3, 0.3)).unwrap();
    }
    m
}

#[test]
fn a_small_cnn_follows_the_cpus_loss_curve() {
    let n = 12;
    let x = data(n * 72, 110, -1.0, 1.0);
    let y: Vec<f32> = (0..n).map(|i| (i % 3) as f32).collect();
    let sw = vec![1.0f32; n];
    for cf in [false, true] {
        let mut curves = Vec::new();
        let mut weights = Vec::new();
        for on_gpu in [false, true] {
            let mut m = cnn(cf);
            if on_gpu {
                m.set_device(gpu()).unwrap();
            }
            m.compile(CompileSpec {
                outputs: vec![OutputSpec {
                    loss: Some("sparse_categorical_crossentropy".into()),
                    loss_weight: 1.0,
                    metrics: vec![],
                    ..Default::default()
                }],
                optimizer_kind: "sgd".into(),
                optimizer_params: vec![("learning_rate".into(), 0.2)],
                regularizers: vec![],
            })
            .unwrap();
            let mut curve = Vec::new();
            for _ in 0..4 {
                let mut logs = [0.0];
                m.train_batch(&[&x], &[&y], &[&sw], n, &mut logs).unwrap();
                curve.push(logs[0] as f32);
            }
            curves.push(curve);
            weights.push(m.var(0));
        }
        assert!(
            curves[0][3] < curves[0][0],
            "the CPU's loss falls: {curves:?}"
        );
        for (what, a, b) in [
            ("loss curve", &curves[0], &curves[1]),
            ("conv kernel", &weights[0], &weights[1]),
        ] {
            for (i, (p, q)) in a.iter().zip(b.iter()).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-4 * p.abs().max(q.abs()).max(1e-2),
                    "channels_first={cf} {what} element {i}: cpu {p}, gpu {q}"
                );
            }
        }
    }
}
