//! The GPU kernels of each op: how an op's step becomes dispatches of the WGSL shaders in
//! `shaders/`, with the shape parameters worked out here once, when the program is planned.
//! The match in [`record`] is exhaustive: every op has a GPU kernel, and an op added later
//! does not compile until it has one (with its parity test in `tests/`).

mod conv;
mod index;
mod norm;
mod pool;
mod recurrent;

use smallvec::SmallVec;

use self::conv::ConvProduct;
use super::{GpuBuffer, Recorder, Shader};
use crate::error::{Error, Result};
use crate::graph::Shape;
use crate::ops::conv::Layout;
use crate::ops::elementwise::broadcast_strides;
use crate::ops::{BinaryOp, Op, ReduceKind, UnaryOp};

pub(crate) const ELEMENTWISE: Shader = Shader {
    name: "elementwise",
    source: include_str!("shaders/elementwise.wgsl"),
};
pub(crate) const ROWS: Shader = Shader {
    name: "rows",
    source: include_str!("shaders/rows.wgsl"),
};
pub(crate) const MATMUL: Shader = Shader {
    name: "matmul",
    source: include_str!("shaders/matmul.wgsl"),
};
pub(crate) const EMBEDDING: Shader = Shader {
    name: "embedding",
    source: include_str!("shaders/embedding.wgsl"),
};

/// Most axes a strided kernel handles.
const MAX_RANK: usize = 8;

fn unary_code(u: UnaryOp) -> (u32, f32, f32) {
    use UnaryOp::*;
    match u {
        Identity => (0, 0.0, 0.0),
        Relu => (1, 0.0, 0.0),
        Sigmoid => (2, 0.0, 0.0),
        HardSigmoid => (3, 0.0, 0.0),
        Tanh => (4, 0.0, 0.0),
        Exp => (5, 0.0, 0.0),
        Log => (6, 0.0, 0.0),
        Neg => (7, 0.0, 0.0),
        Scale(a) => (8, a, 0.0),
        AddScalar(a) => (9, a, 0.0),
        Square => (10, 0.0, 0.0),
        Sqrt => (11, 0.0, 0.0),
        Abs => (12, 0.0, 0.0),
        Sign => (13, 0.0, 0.0),
        Softplus => (14, 0.0, 0.0),
        Softsign => (15, 0.0, 0.0),
        Elu(a) => (16, a, 0.0),
        Selu => (17, 0.0, 0.0),
        LeakyRelu(a) => (18, a, 0.0),
        Swish => (19, 0.0, 0.0),
        Gelu => (20, 0.0, 0.0),
        Arctan => (21, 0.0, 0.0),
        BinaryStep => (22, 0.0, 0.0),
        Clip(lo, hi) => (23, lo, hi),
        Reciprocal => (24, 0.0, 0.0),
        Round => (25, 0.0, 0.0),
        LogCosh => (26, 0.0, 0.0),
        Floor => (27, 0.0, 0.0),
        Ceil => (28, 0.0, 0.0),
        Trunc => (29, 0.0, 0.0),
        Log1p => (30, 0.0, 0.0),
        Expm1 => (31, 0.0, 0.0),
        Sin => (32, 0.0, 0.0),
        Cos => (33, 0.0, 0.0),
        PowScalar(p) => (34, p, 0.0),
        LogicalNot => (35, 0.0, 0.0),
    }
}

fn binary_code(b: BinaryOp) -> u32 {
    match b {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::Maximum => 4,
        BinaryOp::Minimum => 5,
        BinaryOp::Equal => 6,
        BinaryOp::Greater => 7,
        BinaryOp::GreaterEqual => 8,
        BinaryOp::NotEqual => 9,
        BinaryOp::Less => 10,
        BinaryOp::LessEqual => 11,
        BinaryOp::Pow => 12,
        BinaryOp::FloorMod => 13,
        BinaryOp::FloorDiv => 14,
    }
}

fn bits(x: f32) -> u32 {
    x.to_bits()
}

fn numel(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// Row-major strides of `dims`.
fn contiguous(dims: &[usize]) -> SmallVec<[usize; 8]> {
    let mut s: SmallVec<[usize; 8]> = SmallVec::from_elem(0, dims.len());
    let mut acc = 1;
    for i in (0..dims.len()).rev() {
        s[i] = acc;
        acc *= dims[i];
    }
    s
}

/// `v` padded with zeros to `MAX_RANK` words.
fn words8(v: &[usize]) -> [u32; MAX_RANK] {
    let mut w = [0u32; MAX_RANK];
    for (o, &x) in w.iter_mut().zip(v) {
        *o = x as u32;
    }
    w
}

fn check_rank(what: &str, dims: &[usize]) -> Result<()> {
    if dims.len() > MAX_RANK {
        return Err(Error::NotImplemented(format!(
            "{what} on the GPU handles tensors of rank <= {MAX_RANK}, received rank {}",
            dims.len()
        )));
    }
    Ok(())
}

/// A strided copy of a view of `dims` (see `copy_strided` in elementwise.wgsl).
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_strided(
    rec: &mut Recorder<'_>,
    src: &GpuBuffer,
    dst: &GpuBuffer,
    dims: &[usize],
    in_strides: &[usize],
    out_strides: &[usize],
    in_off: usize,
    out_off: usize,
    scale: f32,
) -> Result<()> {
    check_rank("a strided copy", dims)?;
    let n = numel(dims);
    let mut p = vec![
        n as u32,
        dims.len() as u32,
        in_off as u32,
        out_off as u32,
        bits(scale),
    ];
    p.extend(words8(dims));
    p.extend(words8(in_strides));
    p.extend(words8(out_strides));
    rec.launch(ELEMENTWISE, "copy_strided", &p, dst, &[src], n);
    Ok(())
}

fn copy(rec: &mut Recorder<'_>, src: &GpuBuffer, dst: &GpuBuffer, n: usize) -> Result<()> {
    copy_strided(rec, src, dst, &[n], &[1], &[1], 0, 0, 1.0)
}

pub(crate) fn fill(rec: &mut Recorder<'_>, dst: &GpuBuffer, n: usize, value: f32) {
    rec.launch(ELEMENTWISE, "fill", &[n as u32, bits(value)], dst, &[], n);
}

/// `out[0] = sum(x^2)` over all of `x` (a gradient's squared norm).
pub(crate) fn sum_of_squares(rec: &mut Recorder<'_>, x: &GpuBuffer, out: &GpuBuffer) {
    let n = x.len();
    reduce_code(rec, 3, x, &[n], &[0], out).expect("rank 1");
}

/// Reduces `x` of `dims` over `axes` (sorted) into a contiguous output.
fn reduce(
    rec: &mut Recorder<'_>,
    kind: ReduceKind,
    x: &GpuBuffer,
    dims: &[usize],
    axes: &[usize],
    out: &GpuBuffer,
) -> Result<()> {
    let code = match kind {
        ReduceKind::Sum => 0,
        ReduceKind::Mean => 1,
        ReduceKind::Max => 2,
        ReduceKind::Min => 4,
        ReduceKind::Prod => 5,
    };
    reduce_code(rec, code, x, dims, axes, out)
}

/// Reductions of at most this many elements run one thread per output element (the sums
/// of an upsampling gradient's repeats, short rows); longer ones, a workgroup each.
const SHORT_REDUCTION: usize = 32;

/// The parameter words of a reduction of `dims` over `axes` (the layout `reduce` in
/// rows.wgsl reads), with the output and reduced element counts.
fn reduce_params(code: u32, dims: &[usize], axes: &[usize]) -> Result<(Vec<u32>, usize, usize)> {
    check_rank("a reduction", dims)?;
    let strides = contiguous(dims);
    let (mut od, mut os, mut rd, mut rs) = (vec![], vec![], vec![], vec![]);
    for (i, (&d, &s)) in dims.iter().zip(&strides).enumerate() {
        if axes.contains(&i) {
            rd.push(d);
            rs.push(s);
        } else {
            od.push(d);
            os.push(s);
        }
    }
    let n_out = numel(&od);
    let count = numel(&rd);
    let mut p = vec![
        n_out as u32,
        code,
        count as u32,
        bits(1.0 / count.max(1) as f32),
        od.len() as u32,
        rd.len() as u32,
    ];
    p.extend(words8(&od));
    p.extend(words8(&os));
    p.extend(words8(&rd));
    p.extend(words8(&rs));
    Ok((p, n_out, count))
}

/// `reduce` by the shader's kind code (3: sum of squares).
fn reduce_code(
    rec: &mut Recorder<'_>,
    code: u32,
    x: &GpuBuffer,
    dims: &[usize],
    axes: &[usize],
    out: &GpuBuffer,
) -> Result<()> {
    let (p, n_out, count) = reduce_params(code, dims, axes)?;
    if count <= SHORT_REDUCTION {
        rec.launch(ROWS, "reduce_serial", &p, out, &[x], n_out);
    } else {
        let groups = workgroups(rec, n_out);
        rec.launch_groups(ROWS, "reduce", &p, out, &[x], groups);
    }
    Ok(())
}

/// The gradient of a product over `axes`: one thread per reduced group, which walks its
/// elements forward and back (see `prod_grad` in rows.wgsl).
fn reduce_prod_grad(
    rec: &mut Recorder<'_>,
    x: &GpuBuffer,
    dy: &GpuBuffer,
    dims: &[usize],
    axes: &[usize],
    out: &GpuBuffer,
) -> Result<()> {
    let (p, n_out, _) = reduce_params(5, dims, axes)?;
    rec.launch(ROWS, "prod_grad", &p, out, &[x, dy], n_out);
    Ok(())
}

/// Per-sample `dims` of a spatial op as `[batch, c, z, y, x]` (channels first) or
/// `[batch, z, y, x, c]` (channels last), the spatial axes padded in front to three.
fn spatial5(layout: &Layout, dims: &[usize]) -> ([usize; 3], usize) {
    layout
        .split(&dims[1..])
        .expect("shape checked when the node was built")
}

fn join5(layout: &Layout, batch: usize, sp: [usize; 3], c: usize) -> [usize; 5] {
    if layout.channels_first {
        [batch, c, sp[0], sp[1], sp[2]]
    } else {
        [batch, sp[0], sp[1], sp[2], c]
    }
}

/// Zero padding (positive amounts) and cropping (negative): zeros where the output reaches
/// past the input, then one strided copy of the region the two share.
fn pad(
    rec: &mut Recorder<'_>,
    spec: &crate::ops::pad::PadSpec,
    x: &GpuBuffer,
    in_dims: &[usize],
    out: &GpuBuffer,
    out_dims: &[usize],
) -> Result<()> {
    let (sp_in, c) = spatial5(&spec.layout, in_dims);
    let (sp_out, _) = spatial5(&spec.layout, out_dims);
    let (mut start_in, mut start_out, mut len) = ([0; 3], [0; 3], [0; 3]);
    for a in 0..3 {
        let b = spec.before[a];
        start_in[a] = (-b).max(0) as usize;
        start_out[a] = b.max(0) as usize;
        len[a] = sp_in[a]
            .saturating_sub(start_in[a])
            .min(sp_out[a].saturating_sub(start_out[a]));
    }
    let batch = in_dims[0];
    let region = join5(&spec.layout, batch, len, c);
    let n = numel(out_dims);
    if numel(&region) < n {
        fill(rec, out, n, 0.0);
    }
    if numel(&region) == 0 {
        return Ok(());
    }
    let is = contiguous(&join5(&spec.layout, batch, sp_in, c));
    let os = contiguous(&join5(&spec.layout, batch, sp_out, c));
    let (i0, o0) = (
        join5(&spec.layout, 0, start_in, 0),
        join5(&spec.layout, 0, start_out, 0),
    );
    let off = |start: [usize; 5], strides: &[usize]| -> usize {
        start.iter().zip(strides).map(|(a, s)| a * s).sum()
    };
    copy_strided(
        rec,
        x,
        out,
        &region,
        &is,
        &os,
        off(i0, &is),
        off(o0, &os),
        1.0,
    )
}

/// Nearest-neighbour upsampling as one strided copy: the output seen as
/// `[batch, (z, fz), (y, fy), (x, fx)]` plus the channel axis, reading the input with stride
/// 0 along each repeat axis (eight axes at most).
fn upsample(
    rec: &mut Recorder<'_>,
    spec: &crate::ops::pad::UpSampleSpec,
    x: &GpuBuffer,
    in_dims: &[usize],
    out: &GpuBuffer,
) -> Result<()> {
    let (sp, c) = spatial5(&spec.layout, in_dims);
    let is = contiguous(&join5(&spec.layout, in_dims[0], sp, c));
    let (c_axis, first_sp) = if spec.layout.channels_first {
        (1, 2)
    } else {
        (4, 1)
    };
    let (mut dims, mut strides) = (vec![in_dims[0]], vec![is[0]]);
    if spec.layout.channels_first {
        dims.push(c);
        strides.push(is[c_axis]);
    }
    for a in 0..3 {
        dims.extend([sp[a], spec.factor[a]]);
        strides.extend([is[first_sp + a], 0]);
    }
    if !spec.layout.channels_first {
        dims.push(c);
        strides.push(is[c_axis]);
    }
    copy_strided(rec, x, out, &dims, &strides, &contiguous(&dims), 0, 0, 1.0)
}

/// The table gradient of a gather, deterministic without float atomics: a bitonic sort of
/// the (row, position) pairs (`log2(m) * (log2(m) + 1) / 2` dispatches of `m` threads, `m`
/// the index count rounded up to a power of two), then one thread per table element that
/// finds its row's run by binary search and adds the run's `dy` rows in position order.
/// Work: `O(m log^2 m + V * D * log m + N * D)`, so large vocabularies cost no more than
/// writing the table once; memory: `2m` floats of scratch.
fn scatter_add_rows(
    rec: &mut Recorder<'_>,
    dy: &GpuBuffer,
    idx: &GpuBuffer,
    idx_dims: &[usize],
    out: &GpuBuffer,
    out_dims: &[usize],
) -> Result<()> {
    let (rows, d) = (out_dims[0], out_dims[1]);
    let n = numel(idx_dims);
    let total = rows * d;
    if n == 0 {
        fill(rec, out, total, 0.0);
        return Ok(());
    }
    // Rows and positions travel as floats in the scratch buffer.
    const EXACT: usize = 1 << 24;
    if n >= EXACT || rows + 1 >= EXACT {
        return Err(Error::NotImplemented(format!(
            "the GPU embedding gradient handles fewer than {EXACT} indices and table rows, received {n} indices and {rows} rows; use the 'cpu' backend"
        )));
    }
    let m = n.next_power_of_two();
    let pairs = rec.scratch(2 * m)?;
    let w = |v: usize| v as u32;
    rec.launch(
        EMBEDDING,
        "sort_init",
        &[w(m), w(n), w(rows)],
        &pairs,
        &[idx],
        m,
    );
    let mut size = 2;
    while size <= m {
        let mut stride = size / 2;
        while stride > 0 {
            rec.launch(
                EMBEDDING,
                "sort_step",
                &[w(m), w(size), w(stride)],
                &pairs,
                &[],
                m,
            );
            stride /= 2;
        }
        size *= 2;
    }
    let p = [w(total), w(rows), w(d), w(n), w(m)];
    rec.launch(EMBEDDING, "scatter_rows", &p, out, &[dy, &pairs], total);
    Ok(())
}

/// numpy's matmul: one 2-D product per workgroup layer z, the operands' offsets found from z
/// (see `batch_matmul` in matmul.wgsl).
fn batch_matmul(
    rec: &mut Recorder<'_>,
    ta: bool,
    tb: bool,
    ins: &[(GpuBuffer, &[usize])],
    out: &GpuBuffer,
    out_dims: &[usize],
) -> Result<()> {
    let p = crate::ops::batch_matmul::plan(ta, tb, ins[0].1, ins[1].1, out_dims);
    check_rank("a batched matrix product", &p.lead)?;
    let count = numel(&p.lead);
    let (gx, gy) = (p.n.div_ceil(64), p.m.div_ceil(64));
    let max = rec.ctx.limits.max_compute_workgroups_per_dimension as usize;
    if gx > max || gy > max || count > max {
        return crate::value_error!(
            "a batch of {count} {}x{} matrix products is larger than the GPU's dispatch grid allows; use a smaller batch size",
            p.m,
            p.n
        );
    }
    let [sam, sak, sbk, sbn] = p.strides;
    let mut words: Vec<u32> = [p.m, p.n, p.k, sam, sak, sbk, sbn, p.lead.len()]
        .iter()
        .map(|&v| v as u32)
        .collect();
    words.extend(words8(&p.lead));
    words.extend(words8(&p.a_lead));
    words.extend(words8(&p.b_lead));
    let groups = [gx as u32, gy as u32, count as u32];
    rec.launch_groups(
        MATMUL,
        "batch_matmul",
        &words,
        out,
        &[&ins[0].0, &ins[1].0],
        groups,
    );
    Ok(())
}

/// A grid of `n` workgroups, split over x and y when wider than the device allows.
fn workgroups(rec: &Recorder<'_>, n: usize) -> [u32; 3] {
    let max = rec.ctx.limits.max_compute_workgroups_per_dimension as usize;
    let n = n.max(1);
    if n <= max {
        [n as u32, 1, 1]
    } else {
        [max as u32, n.div_ceil(max) as u32, 1]
    }
}

/// Records the dispatches of one step: `op` reading `ins` (buffer and concrete dims each)
/// and writing `out` of `out_dims`. An op without a GPU kernel is `NotImplemented`.
pub(crate) fn record(
    rec: &mut Recorder<'_>,
    op: &Op,
    _out_shape: &Shape,
    ins: &[(GpuBuffer, &[usize])],
    out: &GpuBuffer,
    out_dims: &[usize],
) -> Result<()> {
    let n = numel(out_dims);
    let x = |i: usize| &ins[i].0;
    let dims = |i: usize| ins[i].1;
    match op {
        Op::Input(_) | Op::Param(_) => unreachable!("inputs and params are read in place"),
        Op::Scalar(v) => fill(rec, out, n, *v),
        Op::Zeros => fill(rec, out, n, 0.0),
        Op::Iota { axis } => {
            let (len, inner) = (out_dims[*axis], numel(&out_dims[axis + 1..]));
            let p = [n as u32, len as u32, inner as u32];
            rec.launch(ELEMENTWISE, "iota", &p, out, &[], n);
        }
        Op::Unary(u) => {
            let (code, a, b) = unary_code(*u);
            let p = [n as u32, code, bits(a), bits(b)];
            rec.launch(ELEMENTWISE, "unary_forward", &p, out, &[x(0)], n);
        }
        Op::UnaryGrad(u) => {
            let (code, a, b) = unary_code(*u);
            let p = [n as u32, code, bits(a), bits(b)];
            rec.launch(ELEMENTWISE, "unary_backward", &p, out, &[x(0), x(1)], n);
        }
        Op::Binary(b) => {
            check_rank("a binary op", out_dims)?;
            let sa = broadcast_strides(dims(0), out_dims);
            let sb = broadcast_strides(dims(1), out_dims);
            let mut p = vec![n as u32, binary_code(*b), out_dims.len() as u32];
            p.extend(words8(out_dims));
            p.extend(words8(&sa));
            p.extend(words8(&sb));
            rec.launch(ELEMENTWISE, "binary_forward", &p, out, &[x(0), x(1)], n);
        }
        Op::MatMul { ta, tb } => {
            let ka = *dims(0).last().expect("rank checked at build");
            let rows = numel(dims(0)) / ka.max(1);
            // [M, N, K, sam, sak, sbk, sbn]
            let p: [usize; 7] = match (ta, tb) {
                (false, false) => {
                    let n = dims(1)[1];
                    [rows, n, ka, ka, 1, n, 1]
                }
                (false, true) => {
                    let n = dims(1)[0];
                    [rows, n, ka, ka, 1, 1, ka]
                }
                (true, false) => {
                    let n = *dims(1).last().expect("rank checked at build");
                    [ka, n, rows, 1, ka, n, 1]
                }
                (true, true) => unreachable!("rejected by shape inference"),
            };
            let gy = p[0].div_ceil(64);
            let max = rec.ctx.limits.max_compute_workgroups_per_dimension as usize;
            if gy > max || p[1].div_ceil(64) > max {
                return crate::value_error!(
                    "a {}x{} matrix product is larger than the GPU's dispatch grid allows; use a smaller batch size",
                    p[0],
                    p[1]
                );
            }
            let words: Vec<u32> = p.iter().map(|&v| v as u32).collect();
            let groups = [p[1].div_ceil(64) as u32, gy as u32, 1];
            rec.launch_groups(MATMUL, "matmul", &words, out, &[x(0), x(1)], groups);
        }
        Op::BatchMatMul { ta, tb } => batch_matmul(rec, *ta, *tb, ins, out, out_dims)?,
        Op::Conv(spec) | Op::ConvRelu(spec) => {
            let cout = *dims(1).last().expect("rank checked at build");
            let bufs: SmallVec<[&GpuBuffer; 3]> = ins.iter().map(|(b, _)| b).collect();
            conv::record(rec, spec, ConvProduct::Forward, dims(0), cout, &bufs, out)?;
            if matches!(op, Op::ConvRelu(_)) {
                let (code, a, b) = unary_code(UnaryOp::Relu);
                let p = [n as u32, code, bits(a), bits(b)];
                rec.launch(ELEMENTWISE, "unary_forward", &p, out, &[out], n);
            }
        }
        Op::ConvGradInput(spec, _) => {
            let cout = *dims(1).last().expect("rank checked at build");
            let bufs = [x(0), x(1)];
            conv::record(
                rec,
                spec,
                ConvProduct::GradInput,
                out_dims,
                cout,
                &bufs,
                out,
            )?;
        }
        Op::ConvGradKernel(spec) => {
            let cout = *out_dims.last().expect("rank checked at build");
            let bufs = [x(0), x(1)];
            conv::record(
                rec,
                spec,
                ConvProduct::GradKernel,
                dims(0),
                cout,
                &bufs,
                out,
            )?;
        }
        Op::Reduce { kind, axes, .. } => reduce(rec, *kind, x(0), dims(0), axes, out)?,
        Op::ReduceProdGrad { axes } => reduce_prod_grad(rec, x(0), x(1), dims(0), axes, out)?,
        Op::Cumulative {
            kind,
            axis,
            reverse,
        } => {
            let d = dims(0);
            let (len, inner) = (d[*axis], numel(&d[axis + 1..]));
            let kind = match kind {
                crate::ops::cumulative::Cumulative::Sum => 0,
                crate::ops::cumulative::Cumulative::Prod => 1,
            };
            let lines = n / len;
            let p = [
                lines as u32,
                len as u32,
                inner as u32,
                kind,
                u32::from(*reverse),
            ];
            rec.launch(ROWS, "cumulative", &p, out, &[x(0)], lines);
        }
        Op::SumTo(_) => {
            let d = dims(0);
            let r = d.len();
            let aligned: Vec<usize> = std::iter::repeat_n(1, r - out_dims.len())
                .chain(out_dims.iter().copied())
                .collect();
            let axes: Vec<usize> = (0..r).filter(|&i| aligned[i] == 1 && d[i] != 1).collect();
            if axes.is_empty() {
                copy(rec, x(0), out, n)?;
            } else {
                reduce(rec, ReduceKind::Sum, x(0), d, &axes, out)?;
            }
        }
        Op::BroadcastTo(_) | Op::BroadcastMean(_) => {
            check_rank("a broadcast", out_dims)?;
            let d = dims(0);
            let aligned: Vec<usize> = std::iter::repeat_n(1, out_dims.len() - d.len())
                .chain(d.iter().copied())
                .collect();
            let s = broadcast_strides(&aligned, out_dims);
            let scale = if matches!(op, Op::BroadcastMean(_)) {
                numel(d) as f32 / n as f32
            } else {
                1.0
            };
            copy_strided(
                rec,
                x(0),
                out,
                out_dims,
                &s,
                &contiguous(out_dims),
                0,
                0,
                scale,
            )?;
        }
        Op::Reshape(_) | Op::ToBatched | Op::FromBatched(_) => copy(rec, x(0), out, n)?,
        Op::Transpose(perm) => {
            check_rank("a transpose", out_dims)?;
            let d = dims(0);
            let lead = d.len() - perm.len();
            let ins = contiguous(d);
            let mut strides: Vec<usize> = ins[..lead].to_vec();
            strides.extend(perm.iter().map(|&p| ins[lead + p]));
            copy_strided(
                rec,
                x(0),
                out,
                out_dims,
                &strides,
                &contiguous(out_dims),
                0,
                0,
                1.0,
            )?;
        }
        Op::Concat { axis } => {
            let os = contiguous(out_dims);
            let mut at = 0;
            for (b, d) in ins {
                copy_strided(rec, b, out, d, &contiguous(d), &os, 0, at * os[*axis], 1.0)?;
                at += d[*axis];
            }
        }
        Op::SliceAxis { axis, start, .. } => {
            let is = contiguous(dims(0));
            copy_strided(
                rec,
                x(0),
                out,
                out_dims,
                &is,
                &contiguous(out_dims),
                start * is[*axis],
                0,
                1.0,
            )?;
        }
        Op::UnsliceAxis { axis, start, .. } => {
            fill(rec, out, n, 0.0);
            let os = contiguous(out_dims);
            let d = dims(0);
            copy_strided(
                rec,
                x(0),
                out,
                d,
                &contiguous(d),
                &os,
                0,
                start * os[*axis],
                1.0,
            )?;
        }
        Op::Softmax | Op::SoftmaxGrad => {
            let c = *out_dims.last().expect("rank checked at build");
            let rows = n / c;
            let (entry, inputs): (&'static str, SmallVec<[&GpuBuffer; 2]>) =
                if matches!(op, Op::Softmax) {
                    ("softmax", smallvec::smallvec![x(0)])
                } else {
                    ("softmax_backward", smallvec::smallvec![x(0), x(1)])
                };
            let groups = workgroups(rec, rows);
            rec.launch_groups(ROWS, entry, &[rows as u32, c as u32], out, &inputs, groups);
        }
        Op::Dropout { rate, key } | Op::DropoutGrad { rate, key } => {
            let (threshold, key_word, scale) = crate::ops::random::dropout_words(*rate, *key);
            let p = [n as u32, threshold, key_word, bits(scale)];
            rec.launch(ELEMENTWISE, "dropout", &p, out, &[x(0)], n);
        }
        Op::TrainSelect => {
            rec.launch(
                ELEMENTWISE,
                "train_select",
                &[n as u32],
                out,
                &[x(0), x(1)],
                n,
            );
        }
        Op::Where => {
            check_rank("where", out_dims)?;
            let mut p = vec![n as u32, out_dims.len() as u32];
            p.extend(words8(out_dims));
            for i in 0..3 {
                p.extend(words8(&broadcast_strides(dims(i), out_dims)));
            }
            rec.launch(ELEMENTWISE, "where_select", &p, out, &[x(0), x(1), x(2)], n);
        }
        Op::ArgMax => {
            let c = *dims(0).last().expect("rank checked at build");
            rec.launch(ROWS, "argmax", &[n as u32, c as u32], out, &[x(0)], n);
        }
        Op::TakeLast => {
            let c = *dims(0).last().expect("rank checked at build");
            rec.launch(
                ROWS,
                "take_last",
                &[n as u32, c as u32],
                out,
                &[x(0), x(1)],
                n,
            );
        }
        Op::ScatterLast(_) => {
            let c = *out_dims.last().expect("rank checked at build");
            rec.launch(
                ROWS,
                "scatter_last",
                &[n as u32, c as u32],
                out,
                &[x(0), x(1)],
                n,
            );
        }
        Op::TopKIndices(k) => index::top_k(rec, x(0), dims(0), *k, out),
        Op::TakeAlong => {
            let c = *dims(0).last().expect("rank checked at build");
            let m = *dims(1).last().expect("rank checked at build");
            index::take_along(rec, x(0), c, x(1), m, out, n);
        }
        Op::ScatterAlong(_) => {
            let m = *dims(1).last().expect("rank checked at build");
            index::scatter_along(rec, x(0), x(1), m, out, out_dims);
        }
        Op::Take { axis } => {
            index::take(rec, x(0), dims(0), *axis, x(1), numel(dims(1)), out, n);
        }
        Op::TakeGrad { axis, .. } => {
            index::take_grad(rec, x(0), x(1), numel(dims(1)), *axis, out, out_dims)?;
        }
        Op::Pool(spec) => pool::forward(rec, spec, x(0), dims(0), out, n)?,
        Op::PoolGrad(spec) => pool::backward(rec, spec, x(0), dims(0), x(1), out, false)?,
        Op::PoolReluGrad(spec) => pool::backward(rec, spec, x(0), dims(0), x(1), out, true)?,
        Op::InTopK(k) => {
            let c = *dims(0).last().expect("rank checked at build");
            let p = [n as u32, c as u32, (*k).min(u32::MAX as usize) as u32];
            rec.launch(ROWS, "in_top_k", &p, out, &[x(0), x(1)], n);
        }
        Op::Rnn(spec) => recurrent::forward(rec, spec, ins, out)?,
        Op::RnnGrad(spec) => recurrent::backward(rec, spec, ins, out)?,
        Op::RnnKernelGrad(spec) => recurrent::kernel_grad(rec, spec, ins, out)?,
        Op::RnnSlice(sl) => recurrent::slice(rec, sl, x(0), dims(0), out, n),
        Op::RnnUnslice(sl, _) => recurrent::unslice(rec, sl, x(0), out, out_dims),
        Op::Gather => {
            let (rows, d) = (dims(0)[0], dims(0)[1]);
            let p = [n as u32, rows as u32, d as u32];
            rec.launch(EMBEDDING, "gather", &p, out, &[x(0), x(1)], n);
        }
        Op::ScatterAddRows(_) => scatter_add_rows(rec, x(0), x(1), dims(1), out, out_dims)?,
        Op::Variance { axis } => norm::variance(rec, *axis, x(0), dims(0), x(1), out),
        Op::BatchNorm(spec) | Op::BatchNormSums(spec) | Op::BatchNormGrad(spec) => {
            let bufs: SmallVec<[&GpuBuffer; 7]> = ins.iter().map(|(b, _)| b).collect();
            match op {
                Op::BatchNorm(_) => norm::forward(rec, spec, &bufs, dims(0), out)?,
                Op::BatchNormSums(_) => norm::sums(rec, spec, &bufs, dims(0), out),
                _ => norm::backward(rec, spec, &bufs, dims(0), out)?,
            }
        }
        Op::Pad(spec) => pad(rec, spec, x(0), dims(0), out, out_dims)?,
        Op::UpSample(spec) => upsample(rec, spec, x(0), dims(0), out)?,
    }
    Ok(())
}
