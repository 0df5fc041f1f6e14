//! The channels_last convolution without im2col: each product reads its left operand through
//! offsets ([`smallgemm::gemm_gather`]) instead of a gathered `cols` matrix, which on the
//! mnist_cnn's second layer meant writing and reading back 85 MB per pass.
//!
//! Windows are addressed in a *frame*: the input itself where no padding is needed, else a
//! zero-bordered copy, so that every tap of every window is a plain offset. With `c`
//! channels, a window's origin (output `o`, sample `s`) is `s·|frame| + Σ o·stride·pitch`
//! and a tap's offset `Σ k·dilation·pitch + channel`; the forward pass gathers rows by
//! window and columns by tap, the kernel gradient the other way round, and the input
//! gradient (stride 1) is the forward pass of the zero-framed output gradient with the
//! kernel flipped and its channel axes swapped.
//!
//! Eligible: channels_last, AVX-512, and the product's column count (output channels;
//! input channels for the input gradient) a multiple of 16. The rest keeps im2col.

use super::{ConvSpec, Geo};
use crate::ops::smallgemm::gemm_gather;

/// A zero frame around the input: its spatial size and where the input sits in it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Frame {
    pub sp: [usize; 3],
    pub front: [usize; 3],
}

impl Frame {
    fn len(&self) -> usize {
        self.sp.iter().product()
    }

    /// The forward pass's frame: every window `o·stride - pad + k·dilation` shifted by `pad`.
    pub fn forward(spec: &ConvSpec, g: &Geo) -> Frame {
        let sp = std::array::from_fn(|a| {
            let reach =
                (g.sp_out[a] - 1) * spec.strides[a] + (spec.kernel[a] - 1) * spec.dilation[a] + 1;
            reach.max(g.sp_in[a] + g.pad[a])
        });
        Frame { sp, front: g.pad }
    }

    /// The input gradient's frame around the output gradient (stride 1): the flipped
    /// kernel's windows start `dilation·(k - 1) - pad` before it.
    pub fn backward(spec: &ConvSpec, g: &Geo) -> Frame {
        let span: [usize; 3] = std::array::from_fn(|a| (spec.kernel[a] - 1) * spec.dilation[a]);
        let front: [usize; 3] = std::array::from_fn(|a| span[a] - g.pad[a]);
        let sp = std::array::from_fn(|a| (g.sp_out[a] + front[a]).max(g.sp_in[a] + span[a]));
        Frame { sp, front }
    }

    /// Whether the data already is its own frame (nothing to pad).
    fn is_identity(&self, sp: [usize; 3]) -> bool {
        self.front == [0; 3] && self.sp == sp
    }
}

/// Whether `spec` takes this path for a product with `cols` columns.
pub(super) fn eligible(spec: &ConvSpec, cols: usize) -> bool {
    !spec.layout.channels_first && cols.is_multiple_of(16) && cols > 0 && crate::simd::wide()
}

/// Whether the input gradient takes this path (also needs stride 1).
pub(super) fn eligible_grad_input(spec: &ConvSpec, cin: usize) -> bool {
    spec.strides == [1; 3] && eligible(spec, cin)
}

/// Floats of scratch the frame of `batch` samples of `c` channels takes, 0 if none is needed.
pub(super) fn frame_len(frame: &Frame, sp: [usize; 3], c: usize, batch: usize) -> usize {
    if frame.is_identity(sp) {
        0
    } else {
        frame.len() * c * batch
    }
}

/// `x` (`batch` samples of spatial size `sp`, `c` channels) in its frame: `x` itself, or a
/// zero-bordered copy in `buf`, written once (rows copied, borders zeroed), sample by sample
/// in parallel.
fn framed<'a>(
    x: &'a [f32],
    sp: [usize; 3],
    c: usize,
    frame: &Frame,
    buf: &'a mut [f32],
) -> &'a [f32] {
    use rayon::prelude::*;
    if frame.is_identity(sp) {
        return x;
    }
    let per_x = sp.iter().product::<usize>() * c;
    let batch = x.len() / per_x.max(1);
    let per = frame.len() * c;
    let buf = &mut buf[..per * batch];
    let [fd, fh, fw] = frame.sp;
    let [z0, y0, x0] = frame.front;
    let row = sp[2] * c;
    let fill = |(xs, fs): (&[f32], &mut [f32])| {
        for (fz, plane) in fs.chunks_mut(fh * fw * c).enumerate().take(fd) {
            for (fy, out) in plane.chunks_mut(fw * c).enumerate() {
                let (z, y) = (fz.wrapping_sub(z0), fy.wrapping_sub(y0));
                if z < sp[0] && y < sp[1] {
                    out[..x0 * c].fill(0.0);
                    out[x0 * c..x0 * c + row].copy_from_slice(&xs[(z * sp[1] + y) * row..][..row]);
                    out[x0 * c + row..].fill(0.0);
                } else {
                    out.fill(0.0);
                }
            }
        }
    };
    if buf.len() >= crate::ops::PAR_THRESHOLD {
        x.par_chunks(per_x)
            .zip(buf.par_chunks_mut(per))
            .for_each(fill);
    } else {
        x.chunks(per_x).zip(buf.chunks_mut(per)).for_each(fill);
    }
    buf
}

/// Offsets of the taps `(kz, ky, kx, channel)` in a frame, in the kernel's row order.
fn tap_offsets(spec: &ConvSpec, frame: &Frame, c: usize, out: &mut [u32]) {
    let [_, fh, fw] = frame.sp;
    let mut i = 0;
    for kz in 0..spec.kernel[0] {
        for ky in 0..spec.kernel[1] {
            for kx in 0..spec.kernel[2] {
                let base = (((kz * spec.dilation[0]) * fh + ky * spec.dilation[1]) * fw
                    + kx * spec.dilation[2])
                    * c;
                for ch in 0..c {
                    out[i] = offset(base + ch);
                    i += 1;
                }
            }
        }
    }
}

/// Offsets of the windows' origins in a frame, sample by sample, for outputs of spatial size
/// `sp_out` taken every `strides`.
fn window_offsets(
    frame: &Frame,
    c: usize,
    sp_out: [usize; 3],
    strides: [usize; 3],
    out: &mut [u32],
) {
    let [_, fh, fw] = frame.sp;
    let per = frame.len() * c;
    let p: usize = sp_out.iter().product();
    for (s, o) in out.chunks_mut(p).enumerate() {
        let mut i = 0;
        for oz in 0..sp_out[0] {
            for oy in 0..sp_out[1] {
                for ox in 0..sp_out[2] {
                    o[i] = offset(
                        s * per
                            + (((oz * strides[0]) * fh + oy * strides[1]) * fw + ox * strides[2])
                                * c,
                    );
                    i += 1;
                }
            }
        }
    }
}

fn offset(v: usize) -> u32 {
    u32::try_from(v).expect("convolution frames are checked to stay under 2^32 floats")
}

/// The frames this path would need stay addressable with 32-bit offsets.
pub(super) fn fits(len: usize) -> bool {
    len < u32::MAX as usize
}

/// `c (+)= gather(a; ro, co) · b` (clamped at zero with `relu`), split over the pool: by rows while there are many, else
/// by columns (`n` a multiple of 16). No split changes a sum's order.
#[allow(clippy::too_many_arguments)]
fn run(
    n: usize,
    a: &[f32],
    ro: &[u32],
    co: &[u32],
    b: &[f32],
    c: &mut [f32],
    (accumulate, relu): (bool, bool),
    depth: u32,
) {
    if depth > 0 && ro.len() >= 64 {
        let half = (ro.len() / 2).div_ceil(4) * 4;
        let (c0, c1) = c.split_at_mut(half * n);
        let (r0, r1) = ro.split_at(half);
        rayon::join(
            || run(n, a, r0, co, b, c0, (accumulate, relu), depth - 1),
            || run(n, a, r1, co, b, c1, (accumulate, relu), depth - 1),
        );
        return;
    }
    // SAFETY: the offsets index into `a` by construction (frames and windows computed from
    // the same geometry, checked below in debug builds), `b` has `co.len()` rows of `n`, and
    // `c` has `ro.len()` rows of `n`.
    debug_assert!(
        ro.iter().max().map_or(0, |&r| r as usize) + co.iter().max().map_or(0, |&o| o as usize)
            < a.len()
    );
    debug_assert!(b.len() >= co.len() * n && c.len() >= ro.len() * n);
    let done = unsafe {
        gemm_gather(
            n,
            a.as_ptr(),
            ro,
            co,
            b.as_ptr(),
            n,
            c.as_mut_ptr(),
            n,
            accumulate,
            relu,
        )
    };
    assert!(
        done,
        "convolution: the implicit path was chosen on a CPU or shape it does not suit"
    );
}

fn depth_for(madds: usize) -> u32 {
    if madds >= crate::ops::matmul::PAR_MADDS {
        rayon::current_num_threads()
            .next_power_of_two()
            .trailing_zeros()
    } else {
        0
    }
}

/// Scratch floats of the forward pass (frame, window and tap offsets).
pub(super) fn forward_scratch(spec: &ConvSpec, g: &Geo, batch: usize) -> usize {
    let frame = Frame::forward(spec, g);
    frame_len(&frame, g.sp_in, g.cin, batch) + g.p() * batch + spec.kk(g.cin)
}

/// `x` in its frame with the offsets of every window and tap in it, laid out in `scratch`
/// (as [`forward_scratch`] counts it): what the forward pass and the kernel gradient share.
fn windows_and_taps<'a>(
    spec: &ConvSpec,
    g: &Geo,
    x: &'a [f32],
    scratch: &'a mut [f32],
) -> (&'a [f32], &'a [u32], &'a [u32]) {
    let batch = x.len() / (g.s_in() * g.cin).max(1);
    let frame = Frame::forward(spec, g);
    let fl = frame_len(&frame, g.sp_in, g.cin, batch);
    let (buf, rest) = scratch.split_at_mut(fl);
    let (windows, rest) = rest.split_at_mut(g.p() * batch);
    let taps = &mut rest[..spec.kk(g.cin)];
    let (windows, taps): (&mut [u32], &mut [u32]) = (
        bytemuck::cast_slice_mut(windows),
        bytemuck::cast_slice_mut(taps),
    );
    window_offsets(&frame, g.cin, g.sp_out, spec.strides, windows);
    tap_offsets(spec, &frame, g.cin, taps);
    (framed(x, g.sp_in, g.cin, &frame, buf), windows, taps)
}

/// `y (+)= conv(x, k)` (`y` holds the bias when `accumulate`), clamped at zero as it is
/// stored with `relu`: rows are windows.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    spec: &ConvSpec,
    g: &Geo,
    x: &[f32],
    k: &[f32],
    cout: usize,
    y: &mut [f32],
    (accumulate, relu): (bool, bool),
    scratch: &mut [f32],
) {
    let (xf, windows, taps) = windows_and_taps(spec, g, x, scratch);
    let depth = depth_for(windows.len() * taps.len() * cout);
    run(cout, xf, windows, taps, k, y, (accumulate, relu), depth);
}

/// `dk = Σ windows(x)ᵀ · dy`: rows are taps, the sum runs over every window of the batch.
/// Its scratch is the forward pass's.
pub(super) fn grad_kernel(
    spec: &ConvSpec,
    g: &Geo,
    x: &[f32],
    dy: &[f32],
    cout: usize,
    dk: &mut [f32],
    scratch: &mut [f32],
) {
    let (xf, windows, taps) = windows_and_taps(spec, g, x, scratch);
    let depth = depth_for(windows.len() * taps.len() * cout);
    run(cout, xf, taps, windows, dy, dk, (false, false), depth);
}

/// Scratch floats of the input gradient (output gradient's frame, flipped kernel, offsets).
pub(super) fn grad_input_scratch(spec: &ConvSpec, g: &Geo, cout: usize, batch: usize) -> usize {
    let frame = Frame::backward(spec, g);
    let taps: usize = spec.kernel.iter().product();
    frame.len() * cout * batch + taps * cout * g.cin + g.s_in() * batch + taps * cout
}

/// `dx = conv(frame(dy), flip(k)ᵀ)` for stride 1.
#[allow(clippy::too_many_arguments)]
pub(super) fn grad_input(
    spec: &ConvSpec,
    g: &Geo,
    dy: &[f32],
    k: &[f32],
    cout: usize,
    dx: &mut [f32],
    scratch: &mut [f32],
) {
    let batch = dx.len() / (g.s_in() * g.cin).max(1);
    let frame = Frame::backward(spec, g);
    let taps: usize = spec.kernel.iter().product();
    let (buf, rest) = scratch.split_at_mut(frame.len() * cout * batch);
    let (kf, rest) = rest.split_at_mut(taps * cout * g.cin);
    let (ro, rest) = rest.split_at_mut(g.s_in() * batch);
    let co = &mut rest[..taps * cout];
    // The flipped kernel with its channel axes swapped: row (t', j) = k[T-1-t', :, j].
    for t in 0..taps {
        let src = &k[(taps - 1 - t) * g.cin * cout..][..g.cin * cout];
        for j in 0..cout {
            let dst = &mut kf[(t * cout + j) * g.cin..][..g.cin];
            for (ci, d) in dst.iter_mut().enumerate() {
                *d = src[ci * cout + j];
            }
        }
    }
    let (ro, co): (&mut [u32], &mut [u32]) =
        (bytemuck::cast_slice_mut(ro), bytemuck::cast_slice_mut(co));
    let dyf = framed(dy, g.sp_out, cout, &frame, buf);
    window_offsets(&frame, cout, g.sp_in, [1; 3], ro);
    tap_offsets(spec, &frame, cout, co);
    run(
        g.cin,
        dyf,
        ro,
        co,
        kf,
        dx,
        (false, false),
        depth_for(ro.len() * co.len() * g.cin),
    );
}
