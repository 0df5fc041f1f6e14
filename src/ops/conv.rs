//! Convolution over 1, 2 or 3 spatial axes by im2col + GEMM, in either data format.
//!
//! A sample is `(spatial.., channels)` (channels_last) or `(channels, spatial..)`
//! (channels_first); the kernel keeps Keras' layout `(k.., in, out)` in both. Spatial axes are
//! padded in front with 1s to three, so one kernel serves Conv1D, Conv2D and Conv3D.
//!
//! The forward pass gathers each output position's receptive field into a row of `cols`
//! (`P x KK`, `KK = prod(k) * in`) and multiplies by the kernel seen as `KK x out`. The input
//! gradient is the transposed product scattered back (col2im); the kernel gradient is
//! `colsᵀ · dy`. `cols` lives in the program's planned scratch buffer (see [`scratch_len`]):
//! a chunk of samples is gathered at once (in parallel over samples) so that channels_last
//! products are one large GEMM, threaded by the GEMM crate.
//!
//! Two faster paths take the channels_last layers they suit: Winograd F(2x2, 3x3) for 3x3
//! stride-1 kernels with channel counts in multiples of 16 (`winograd`: 2.25 times fewer
//! multiply-adds), and an implicit GEMM that reads the windows through offsets instead of
//! gathering them (`implicit`: output channels in multiples of 16).

use rayon::prelude::*;
use smallvec::{smallvec, SmallVec};

use super::matmul::{gemm_strided, gemm_strided_serial};
use super::{In, Op, PAR_THRESHOLD};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};

/// Keras' padding modes (`'full'` is Keras 1's `border_mode='full'`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    Valid,
    Same,
    Full,
}

/// Where the channel axis sits and how many spatial axes a sample has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    /// 1, 2 or 3.
    pub rank: usize,
    pub channels_first: bool,
}

impl Layout {
    /// `(spatial padded to three, channels)` of per-sample dims.
    pub fn split(&self, dims: &[usize]) -> Option<([usize; 3], usize)> {
        if dims.len() != self.rank + 1 || !(1..=3).contains(&self.rank) {
            return None;
        }
        let (sp, c) = if self.channels_first {
            (&dims[1..], dims[0])
        } else {
            (&dims[..self.rank], dims[self.rank])
        };
        let mut s = [1; 3];
        s[3 - self.rank..].copy_from_slice(sp);
        Some((s, c))
    }

    pub fn join(&self, sp: [usize; 3], c: usize) -> Vec<usize> {
        let sp = &sp[3 - self.rank..];
        if self.channels_first {
            std::iter::once(c).chain(sp.iter().copied()).collect()
        } else {
            sp.iter().copied().chain(std::iter::once(c)).collect()
        }
    }

    fn describe(&self) -> String {
        let sp = ["", "steps", "rows, cols", "dim1, dim2, dim3"][self.rank.min(3)];
        if self.channels_first {
            format!("(batch, channels, {sp})")
        } else {
            format!("(batch, {sp}, channels)")
        }
    }
}

/// Output length and padding before, Keras' `conv_output_length` rules; `None` when a
/// 'valid' window does not fit.
pub fn out_len(
    padding: Padding,
    n: usize,
    k: usize,
    stride: usize,
    dilation: usize,
) -> Option<(usize, usize)> {
    let dk = (k - 1) * dilation + 1;
    match padding {
        Padding::Valid => (n >= dk).then(|| ((n - dk) / stride + 1, 0)),
        Padding::Same => {
            let out = n.div_ceil(stride);
            let total = ((out - 1) * stride + dk).saturating_sub(n);
            Some((out, total / 2))
        }
        Padding::Full => Some(((n + dk - 2) / stride + 1, dk - 1)),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvSpec {
    pub layout: Layout,
    /// Kernel spatial sizes, padded in front with 1s to three.
    pub kernel: [usize; 3],
    pub strides: [usize; 3],
    pub dilation: [usize; 3],
    pub padding: Padding,
}

/// Concrete sizes of one convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geo {
    pub sp_in: [usize; 3],
    pub cin: usize,
    pub sp_out: [usize; 3],
    /// Padding before, per axis.
    pub pad: [usize; 3],
}

impl Geo {
    /// Input positions per sample.
    pub fn s_in(&self) -> usize {
        self.sp_in.iter().product()
    }
    /// Output positions per sample.
    pub fn p(&self) -> usize {
        self.sp_out.iter().product()
    }
}

impl ConvSpec {
    fn kk(&self, cin: usize) -> usize {
        self.kernel.iter().product::<usize>() * cin
    }

    /// The sizes of this convolution on an input of per-sample dims `x_dims`.
    pub(crate) fn geometry(&self, x_dims: &[usize]) -> Result<Geo> {
        let Some((sp_in, cin)) = self.layout.split(x_dims) else {
            return crate::value_error!(
                "convolution: expected an input of rank {} {}, received shape {:?} per sample",
                self.layout.rank + 2,
                self.layout.describe(),
                x_dims
            );
        };
        let mut sp_out = [1; 3];
        let mut pad = [0; 3];
        for a in 0..3 {
            let Some((o, p)) = out_len(
                self.padding,
                sp_in[a],
                self.kernel[a],
                self.strides[a],
                self.dilation[a],
            ) else {
                return crate::value_error!(
                    "convolution: the kernel {:?} (dilation {:?}) is larger than the input's spatial size {:?} with padding='valid'",
                    &self.kernel[3 - self.layout.rank..],
                    &self.dilation[3 - self.layout.rank..],
                    &sp_in[3 - self.layout.rank..]
                );
            };
            sp_out[a] = o;
            pad[a] = p;
        }
        Ok(Geo {
            sp_in,
            cin,
            sp_out,
            pad,
        })
    }

    fn kernel_dims(&self, cin: usize, cout: usize) -> Vec<usize> {
        let mut d: Vec<usize> = self.kernel[3 - self.layout.rank..].to_vec();
        d.extend([cin, cout]);
        d
    }
}

/// Output shape of `conv(x, k)`, plus `bias` (shape `(out,)`) when given.
pub fn infer(spec: &ConvSpec, x: &Shape, k: &Shape, bias: Option<&Shape>) -> Result<Shape> {
    if !x.batched || k.batched || k.dims.len() != spec.layout.rank + 2 {
        return crate::value_error!(
            "convolution: expected a batched input and a kernel of rank {}, received {} and {}",
            spec.layout.rank + 2,
            x.display(),
            k.display()
        );
    }
    let cout = k.dims[spec.layout.rank + 1];
    let g = spec.geometry(&x.dims)?;
    let want = spec.kernel_dims(g.cin, cout);
    if k.dims != want {
        return crate::value_error!(
            "convolution: kernel of shape {:?} does not fit an input with {} channels: expected {:?}",
            k.dims,
            g.cin,
            want
        );
    }
    if let Some(b) = bias.filter(|b| b.batched || b.dims != [cout]) {
        return crate::value_error!(
            "convolution: expected a bias of shape ({cout},), received {}",
            b.display()
        );
    }
    Ok(Shape::batched(&spec.layout.join(g.sp_out, cout)))
}

pub fn infer_grad_input(spec: &ConvSpec, x: &Shape, dy: &Shape, k: &Shape) -> Result<Shape> {
    let y = infer(spec, x, k, None)?;
    if &y != dy {
        return crate::value_error!(
            "convolution gradient: expected dy of shape {}, got {}",
            y.display(),
            dy.display()
        );
    }
    Ok(x.clone())
}

pub fn infer_grad_kernel(spec: &ConvSpec, x: &Shape, dy: &Shape) -> Result<Shape> {
    let Some((_, cout)) = spec.layout.split(&dy.dims) else {
        return crate::value_error!(
            "convolution gradient: dy of shape {} has the wrong rank",
            dy.display()
        );
    };
    let g = spec.geometry(&x.dims)?;
    if dy.dims != spec.layout.join(g.sp_out, cout) || x.batched != dy.batched {
        return crate::value_error!(
            "convolution gradient: dy of shape {} does not match the input {}",
            dy.display(),
            x.display()
        );
    }
    Ok(Shape::fixed(&spec.kernel_dims(g.cin, cout)))
}

/// Gradients for `(x, k[, bias])`; the bias gets `dy` summed over all but the channel axis.
pub fn vjp(
    g: &mut Graph,
    spec: &ConvSpec,
    inputs: &[NodeId],
    dy: NodeId,
) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let (x, k) = (inputs[0], inputs[1]);
    let xs = g.shape(x).clone();
    let dx = g.push(Op::ConvGradInput(spec.clone(), xs), &[dy, k])?;
    let dk = g.push(Op::ConvGradKernel(spec.clone()), &[x, dy])?;
    let mut out = smallvec![Some(dx), Some(dk)];
    if let Some(&b) = inputs.get(2) {
        let cout = g.shape(b).dims[0];
        let axis = if spec.layout.channels_first {
            1
        } else {
            spec.layout.rank + 1
        };
        out.push(Some(super::norm::channel_sum(g, dy, cout, axis)?));
    }
    Ok(out)
}

/// The VJP of `ConvGradInput` (the transposed convolution, `Conv*DTranspose`'s forward
/// pass): it is linear in `dy` and in the kernel, `z = Aₖᵀ dy`, so with `gz` its gradient,
/// `d dy = Aₖ gz = conv(gz, k)` and `dk = ConvGradKernel(gz, dy)`.
pub fn vjp_grad_input(
    g: &mut Graph,
    spec: &ConvSpec,
    dy: NodeId,
    k: NodeId,
    gz: NodeId,
) -> Result<SmallVec<[Option<NodeId>; 3]>> {
    let d_dy = g.push(Op::Conv(spec.clone()), &[gz, k])?;
    let dk = g.push(Op::ConvGradKernel(spec.clone()), &[gz, dy])?;
    Ok(smallvec![Some(d_dy), Some(dk)])
}

/// Bound on the im2col scratch per op, in floats (16 MiB): big enough for GEMMs of many
/// thousand rows, small enough to stay out of the way of the model's own buffers.
const SCRATCH_TARGET: usize = 1 << 22;

/// The kernel gradient splits its rows over two threads from this many multiply-adds, with at
/// least this many rows a side.
const SPLIT_MADDS: usize = 4_000_000;
const SPLIT_MIN_ROWS: usize = 256;

/// Samples gathered per chunk, from the per-sample `cols` size and the batch.
fn chunk_samples(per_sample: usize, batch: usize) -> usize {
    (SCRATCH_TARGET / per_sample.max(1)).clamp(1, batch.max(1))
}

/// Scratch floats the op needs for a batch: `cols` for a chunk of samples.
pub fn scratch_len(spec: &ConvSpec, x_dims: &[usize]) -> usize {
    let Ok(g) = spec.geometry(&x_dims[1..]) else {
        return 0;
    };
    let per = g.p() * spec.kk(g.cin);
    per * chunk_samples(per, x_dims[0])
}

/// Whether the forward pass and the kernel gradient take the implicit path.
fn implicit_forward(spec: &ConvSpec, g: &Geo, cout: usize, batch: usize) -> bool {
    implicit::eligible(spec, cout)
        && implicit::fits(
            implicit::Frame::forward(spec, g)
                .sp
                .iter()
                .product::<usize>()
                * g.cin
                * batch,
        )
}

/// Whether the input gradient takes the implicit path.
fn implicit_grad_input(spec: &ConvSpec, g: &Geo, cout: usize, batch: usize) -> bool {
    implicit::eligible_grad_input(spec, g.cin)
        && implicit::fits(
            implicit::Frame::backward(spec, g)
                .sp
                .iter()
                .product::<usize>()
                * cout
                * batch,
        )
}

/// Scratch floats of the forward pass on `x_dims` with kernel `k_dims`.
pub fn forward_scratch_len(spec: &ConvSpec, x_dims: &[usize], k_dims: &[usize]) -> usize {
    let cols = scratch_len(spec, x_dims);
    match (spec.geometry(&x_dims[1..]), k_dims.last()) {
        (Ok(g), Some(&cout)) if winograd::eligible(spec, g.cin, cout) => {
            winograd::forward_scratch(&g, cout, x_dims[0])
        }
        (Ok(g), Some(&cout)) if implicit_forward(spec, &g, cout, x_dims[0]) => {
            implicit::forward_scratch(spec, &g, x_dims[0])
        }
        _ => cols,
    }
}

/// Worker threads a per-sample pass over `batch` samples uses (each with its own scratch).
fn workers_for(batch: usize) -> usize {
    rayon::current_num_threads().clamp(1, 8).min(batch.max(1))
}

/// Whether the input gradient takes the per-sample path: each worker makes one sample's
/// `dcols` in its own scratch and scatters it while it is still in cache (channels last, a
/// sample's columns within 1 MiB). It wins over the implicit path where the input has at
/// most 32 channels, the implicit product's narrow width (the mnist_cnn's second layer: 16
/// ms against 24 for its input gradient; about even at 64 channels and more).
fn in_cache_grad_input(spec: &ConvSpec, g: &Geo, batch: usize) -> bool {
    let per = g.p() * spec.kk(g.cin);
    !spec.layout.channels_first && batch >= 2 && g.cin <= 32 && per <= 1 << 18
}

/// Scratch floats of the input gradient of an input shaped `x_dims`, kernel `k_dims`.
pub fn grad_input_scratch_len(spec: &ConvSpec, x_dims: &[usize], k_dims: &[usize]) -> usize {
    let k_len = k_dims.iter().product::<usize>();
    let cols = scratch_len(spec, x_dims) + k_len;
    match (spec.geometry(&x_dims[1..]), k_dims.last()) {
        (Ok(g), Some(&cout)) if winograd::eligible(spec, g.cin, cout) => {
            winograd::grad_input_scratch(&g, cout, x_dims[0])
        }
        (Ok(g), _) if in_cache_grad_input(spec, &g, x_dims[0]) => {
            g.p() * spec.kk(g.cin) * workers_for(x_dims[0]) + k_len
        }
        (Ok(g), Some(&cout)) if implicit_grad_input(spec, &g, cout, x_dims[0]) => {
            implicit::grad_input_scratch(spec, &g, cout, x_dims[0])
        }
        _ => cols,
    }
}

/// Scratch floats of the kernel gradient (`k_dims` its output's dims).
pub fn grad_kernel_scratch_len(spec: &ConvSpec, x_dims: &[usize], k_dims: &[usize]) -> usize {
    // The im2col path also keeps a second partial sum of the kernel's size.
    let cols = scratch_len(spec, x_dims) + k_dims.iter().product::<usize>();
    match (spec.geometry(&x_dims[1..]), k_dims.last()) {
        (Ok(g), Some(&cout)) if winograd::eligible(spec, g.cin, cout) => {
            winograd::grad_kernel_scratch(&g, cout, x_dims[0])
        }
        (Ok(g), Some(&cout)) if implicit_forward(spec, &g, cout, x_dims[0]) => {
            implicit::forward_scratch(spec, &g, x_dims[0])
        }
        _ => cols,
    }
}

/// Visits each output position's receptive field: `f(p, col, Some(s))` for an in-range input
/// position `s` (spatial index) or `None` for padding, with `col` the field's index in
/// kernel order `(kz, ky, kx)`.
#[inline]
fn for_each_tap(spec: &ConvSpec, g: &Geo, mut f: impl FnMut(usize, usize, Option<usize>)) {
    let [kd, kh, kw] = spec.kernel;
    let [sd, sh, sw] = spec.strides;
    let [dd, dh, dw] = spec.dilation;
    let [id, ih, iw] = g.sp_in;
    let mut p = 0;
    for oz in 0..g.sp_out[0] {
        for oy in 0..g.sp_out[1] {
            for ox in 0..g.sp_out[2] {
                let mut col = 0;
                for kz in 0..kd {
                    let iz = (oz * sd + kz * dd).wrapping_sub(g.pad[0]);
                    for ky in 0..kh {
                        let iy = (oy * sh + ky * dh).wrapping_sub(g.pad[1]);
                        for kx in 0..kw {
                            let ix = (ox * sw + kx * dw).wrapping_sub(g.pad[2]);
                            let inside = iz < id && iy < ih && ix < iw;
                            f(p, col, inside.then(|| (iz * ih + iy) * iw + ix));
                            col += 1;
                        }
                    }
                }
                p += 1;
            }
        }
    }
}

/// Visits each output position's kernel rows (fixed `kz`, `ky`): `f(p, col, row, ix0)` with
/// `col` the row's first tap index, `row` the spatial index of input `(iz, iy, 0)` (`None`
/// when the row lies in padding) and `ix0` the input column of the row's first tap.
#[inline]
fn for_each_kernel_row(
    spec: &ConvSpec,
    g: &Geo,
    mut f: impl FnMut(usize, usize, Option<usize>, isize),
) {
    let [kd, kh, kw] = spec.kernel;
    let [sd, sh, sw] = spec.strides;
    let [dd, dh, _] = spec.dilation;
    let [id, ih, iw] = g.sp_in;
    let mut p = 0;
    for oz in 0..g.sp_out[0] {
        for oy in 0..g.sp_out[1] {
            for ox in 0..g.sp_out[2] {
                let ix0 = (ox * sw) as isize - g.pad[2] as isize;
                let mut col = 0;
                for kz in 0..kd {
                    let iz = (oz * sd + kz * dd).wrapping_sub(g.pad[0]);
                    for ky in 0..kh {
                        let iy = (oy * sh + ky * dh).wrapping_sub(g.pad[1]);
                        f(
                            p,
                            col,
                            (iz < id && iy < ih).then(|| (iz * ih + iy) * iw),
                            ix0,
                        );
                        col += kw;
                    }
                }
                p += 1;
            }
        }
    }
}

/// One sample's receptive fields into `cols` (`P x KK`, channel fastest within a tap).
fn im2col(spec: &ConvSpec, g: &Geo, x: &[f32], cols: &mut [f32]) {
    let (c, kk) = (g.cin, spec.kk(g.cin));
    if !spec.layout.channels_first && spec.dilation[2] == 1 {
        // channels_last rows: a kernel row's taps are one contiguous span of the input.
        let (kw, iw) = (spec.kernel[2], g.sp_in[2] as isize);
        for_each_kernel_row(spec, g, |p, col, row, ix0| {
            let dst = &mut cols[p * kk + col * c..][..kw * c];
            match row {
                None => dst.fill(0.0),
                Some(r) if ix0 >= 0 && ix0 + kw as isize <= iw => {
                    dst.copy_from_slice(&x[(r + ix0 as usize) * c..][..kw * c])
                }
                Some(r) => {
                    for (kx, d) in dst.chunks_mut(c).enumerate() {
                        let ix = ix0 + kx as isize;
                        if ix >= 0 && ix < iw {
                            d.copy_from_slice(&x[(r + ix as usize) * c..][..c]);
                        } else {
                            d.fill(0.0);
                        }
                    }
                }
            }
        });
        return;
    }
    let s = g.s_in();
    for_each_tap(spec, g, |p, col, at| {
        let dst = &mut cols[p * kk + col * c..][..c];
        match at {
            None => dst.fill(0.0),
            Some(i) if !spec.layout.channels_first => dst.copy_from_slice(&x[i * c..][..c]),
            Some(i) => {
                for (ci, d) in dst.iter_mut().enumerate() {
                    *d = x[ci * s + i];
                }
            }
        }
    });
}

/// The adjoint of [`im2col`]: adds each row of `cols` back into `dx` (zeroed first).
fn col2im(spec: &ConvSpec, g: &Geo, cols: &[f32], dx: &mut [f32]) {
    dx.fill(0.0);
    let (c, kk) = (g.cin, spec.kk(g.cin));
    if !spec.layout.channels_first && spec.dilation[2] == 1 {
        let (kw, iw) = (spec.kernel[2], g.sp_in[2] as isize);
        for_each_kernel_row(spec, g, |p, col, row, ix0| {
            let Some(r) = row else { return };
            let src = &cols[p * kk + col * c..][..kw * c];
            let lo = (-ix0).clamp(0, kw as isize) as usize;
            let hi = (iw - ix0).clamp(0, kw as isize) as usize;
            if lo < hi {
                let start = (r as isize + ix0 + lo as isize) as usize * c;
                for (d, v) in dx[start..][..(hi - lo) * c]
                    .iter_mut()
                    .zip(&src[lo * c..hi * c])
                {
                    *d += v;
                }
            }
        });
        return;
    }
    let s = g.s_in();
    for_each_tap(spec, g, |p, col, at| {
        let Some(i) = at else { return };
        let src = &cols[p * kk + col * c..][..c];
        if spec.layout.channels_first {
            for (ci, v) in src.iter().enumerate() {
                dx[ci * s + i] += v;
            }
        } else {
            for (d, v) in dx[i * c..][..c].iter_mut().zip(src) {
                *d += v;
            }
        }
    });
}

/// Runs `f(sample, chunk)` on samples `b0..b0+n` in parallel when the work is large.
fn per_sample<T: Send, U: Sync>(
    out: &mut [T],
    out_per: usize,
    src: &[U],
    src_per: usize,
    work: usize,
    f: impl Fn(&[U], &mut [T]) + Sync + Send,
) {
    if work >= PAR_THRESHOLD && out.len() > out_per {
        out.par_chunks_mut(out_per)
            .zip(src.par_chunks(src_per))
            .for_each(|(o, s)| f(s, o));
    } else {
        out.chunks_mut(out_per)
            .zip(src.chunks(src_per))
            .for_each(|(o, s)| f(s, o));
    }
}

fn geo_of(spec: &ConvSpec, x_dims: &[usize]) -> Geo {
    spec.geometry(&x_dims[1..])
        .expect("shapes checked when the node was built")
}

/// `y = conv(x, k) + bias`: the output starts as the bias and the product accumulates onto it,
/// which saves a separate broadcasting pass over the output. With `relu` (`Op::ConvRelu`) the
/// output is clamped at zero where it is stored (the implicit path) or as each chunk is done.
pub fn forward(
    spec: &ConvSpec,
    x: &In<'_>,
    k: &In<'_>,
    bias: Option<&In<'_>>,
    out: &mut [f32],
    scratch: &mut [f32],
    relu: bool,
) {
    let cout = *k.dims.last().expect("kernel rank checked");
    let g = geo_of(spec, x.dims);
    let (kk, p, batch) = (spec.kk(g.cin), g.p(), x.dims[0]);
    if winograd::eligible(spec, g.cin, cout) {
        let bias = bias.map(|b| b.data);
        winograd::forward(&g, x.data, k.data, cout, out, bias, relu, scratch);
        return;
    }
    if implicit_forward(spec, &g, cout, batch) {
        if let Some(b) = bias {
            out.chunks_mut(cout)
                .for_each(|row| row.copy_from_slice(b.data));
        }
        let epilogue = (bias.is_some(), relu);
        implicit::forward(spec, &g, x.data, k.data, cout, out, epilogue, scratch);
        return;
    }
    let per = p * kk;
    let chunk = chunk_samples(per, batch);
    let (xs, ys) = (g.s_in() * g.cin, p * cout);
    for b0 in (0..batch).step_by(chunk) {
        let n = chunk.min(batch - b0);
        let cols = &mut scratch[..n * per];
        per_sample(
            cols,
            per,
            &x.data[b0 * xs..(b0 + n) * xs],
            xs,
            n * per,
            |xb, c| im2col(spec, &g, xb, c),
        );
        let y = &mut out[b0 * ys..(b0 + n) * ys];
        if let Some(b) = bias {
            if spec.layout.channels_first {
                for (row, &v) in y.chunks_mut(p).zip(b.data.iter().cycle()) {
                    row.fill(v);
                }
            } else {
                y.chunks_mut(cout)
                    .for_each(|row| row.copy_from_slice(b.data));
            }
        }
        let acc = bias.is_some();
        if spec.layout.channels_first {
            // y_b (cout x P) = kᵀ · cols_bᵀ
            for (yb, cb) in y.chunks_mut(ys).zip(cols.chunks(per)) {
                gemm_strided(cout, p, kk, k.data, 1, cout, cb, 1, kk, yb, acc);
            }
        } else {
            gemm_strided(n * p, cout, kk, cols, kk, 1, k.data, cout, 1, y, acc);
        }
        if relu {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

/// `dx` from `(dy, k)`: `dcols = dy · kᵀ`, scattered back by col2im.
pub fn grad_input(
    spec: &ConvSpec,
    dy: &In<'_>,
    k: &In<'_>,
    out: &mut [f32],
    out_dims: &[usize],
    scratch: &mut [f32],
) {
    let cout = *k.dims.last().expect("kernel rank checked");
    let g = geo_of(spec, out_dims);
    let (kk, p, batch) = (spec.kk(g.cin), g.p(), out_dims[0]);
    let per = p * kk;
    let (xs, ys) = (g.s_in() * g.cin, p * cout);
    if winograd::eligible(spec, g.cin, cout) {
        winograd::grad_input(&g, dy.data, k.data, cout, out, scratch);
        return;
    }
    if in_cache_grad_input(spec, &g, batch) {
        let workers = workers_for(batch);
        let (parts, kt) = scratch.split_at_mut(per * workers);
        let kt = &mut kt[..kk * cout];
        super::matmul::transpose(k.data, kk, cout, kt);
        let kt = &*kt;
        // Each worker thread owns one part of the scratch: a lock it never waits on.
        let parts: SmallVec<[std::sync::Mutex<&mut [f32]>; 8]> =
            parts.chunks_mut(per).map(std::sync::Mutex::new).collect();
        out.par_chunks_mut(xs)
            .zip(dy.data.par_chunks(ys))
            .for_each(|(dxb, dyb)| {
                let w = rayon::current_thread_index().unwrap_or(0) % workers;
                let mut cols = parts[w].lock().unwrap_or_else(|e| e.into_inner());
                gemm_strided_serial(p, kk, cout, dyb, cout, 1, kt, kk, 1, &mut cols, false);
                col2im(spec, &g, &cols, dxb);
            });
        return;
    }
    if implicit_grad_input(spec, &g, cout, batch) {
        implicit::grad_input(spec, &g, dy.data, k.data, cout, out, scratch);
        return;
    }
    let chunk = chunk_samples(per, batch);
    // channels_last multiplies by kᵀ: transposed once (it is small), so that the product
    // reads contiguous rows of its right operand and takes the row kernel (`smallgemm`).
    let (scratch, kt) = scratch.split_at_mut(per * chunk);
    let kt = &mut kt[..kk * cout];
    if !spec.layout.channels_first {
        super::matmul::transpose(k.data, kk, cout, kt);
    }
    for b0 in (0..batch).step_by(chunk) {
        let n = chunk.min(batch - b0);
        let cols = &mut scratch[..n * per];
        let dyc = &dy.data[b0 * ys..(b0 + n) * ys];
        if spec.layout.channels_first {
            for (cb, db) in cols.chunks_mut(per).zip(dyc.chunks(ys)) {
                gemm_strided(p, kk, cout, db, 1, p, k.data, 1, cout, cb, false);
            }
        } else {
            gemm_strided(n * p, kk, cout, dyc, cout, 1, kt, kk, 1, cols, false);
        }
        let dx = &mut out[b0 * xs..(b0 + n) * xs];
        per_sample(dx, xs, cols, per, n * per, |cb, dxb| {
            col2im(spec, &g, cb, dxb)
        });
    }
}

/// `dk` from `(x, dy)`: the sum over samples of `colsᵀ · dy`.
pub fn grad_kernel(
    spec: &ConvSpec,
    x: &In<'_>,
    dy: &In<'_>,
    out: &mut [f32],
    out_dims: &[usize],
    scratch: &mut [f32],
) {
    let cout = *out_dims.last().expect("kernel rank checked");
    let g = geo_of(spec, x.dims);
    let (kk, p, batch) = (spec.kk(g.cin), g.p(), x.dims[0]);
    if winograd::eligible(spec, g.cin, cout) {
        winograd::grad_kernel(&g, x.data, dy.data, cout, out, scratch);
        return;
    }
    if implicit_forward(spec, &g, cout, batch) {
        implicit::grad_kernel(spec, &g, x.data, dy.data, cout, out, scratch);
        return;
    }
    let per = p * kk;
    let chunk = chunk_samples(per, batch);
    let (xs, ys) = (g.s_in() * g.cin, p * cout);
    let (scratch, part) = scratch.split_at_mut(per * chunk);
    out.fill(0.0);
    for b0 in (0..batch).step_by(chunk) {
        let n = chunk.min(batch - b0);
        let cols = &mut scratch[..n * per];
        per_sample(
            cols,
            per,
            &x.data[b0 * xs..(b0 + n) * xs],
            xs,
            n * per,
            |xb, c| im2col(spec, &g, xb, c),
        );
        let dyc = &dy.data[b0 * ys..(b0 + n) * ys];
        if spec.layout.channels_first {
            for (cb, db) in cols.chunks(per).zip(dyc.chunks(ys)) {
                gemm_strided(kk, cout, p, cb, 1, kk, db, 1, p, out, true);
            }
        } else if kk * cout * n * p >= SPLIT_MADDS && n * p >= 2 * SPLIT_MIN_ROWS {
            // dk is small (kk x cout) and the sum runs over many rows: the GEMM's own
            // threading splits the output and finds little to share, so split the rows
            // between two threads, each with its own accumulator, and add.
            let rows = n * p;
            let half = rows / 2;
            let (c0, c1) = cols.split_at(half * kk);
            let (d0, d1) = dyc.split_at(half * cout);
            let part = &mut part[..kk * cout];
            rayon::join(
                || gemm_strided_serial(kk, cout, half, c0, 1, kk, d0, cout, 1, out, true),
                || gemm_strided_serial(kk, cout, rows - half, c1, 1, kk, d1, cout, 1, part, false),
            );
            out.iter_mut().zip(part.iter()).for_each(|(o, &v)| *o += v);
        } else {
            gemm_strided(kk, cout, n * p, cols, 1, kk, dyc, cout, 1, out, true);
        }
    }
}

mod implicit;
mod winograd;

#[cfg(test)]
pub(crate) mod tests;
