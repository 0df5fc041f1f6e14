//! Backpropagation through time: the reverse loop writes the gradient of every step's gate
//! pre-activations (carrying `dh`, `dc` between steps), and the recurrent kernel's gradient is
//! one GEMM per step reducing over the batch.

use rayon::prelude::*;
use smallvec::{smallvec, SmallVec};

use super::super::math::{self, derivative_into};
use super::super::{Cell, RnnSpec};
use super::{chunk_rows, extent, fill_initial, gemm_raw, with_scratch, Masks, PAR_WORK};
use crate::ops::In;

pub fn backward(spec: &RnnSpec, ins: &[In<'_>], out: &mut [f32]) {
    let rk = ins[0].data;
    let (batch, steps) = (ins[1].dims[0], ins[1].dims[1]);
    let packed = ins[1].data;
    let dpacked = ins[2].data;
    let n_init = if spec.has_init { spec.n_states() } else { 0 };
    let init: SmallVec<[&[f32]; 2]> = ins[3..3 + n_init].iter().map(|i| i.data).collect();
    let mask = spec.has_mask.then(|| ins[3 + n_init].data);
    let rec_mask = spec.has_rec_mask.then(|| ins[ins.len() - 1].data);
    let (sw, gw) = (spec.packed_width(), spec.grad_width());
    let gsteps = spec.grad_steps(steps);
    assert!(rk.len() == spec.units * spec.gu());
    let rows = chunk_rows(batch, steps, spec);
    out.par_chunks_mut(rows * gsteps * gw)
        .enumerate()
        .for_each(|(ci, o)| {
            let b0 = ci * rows;
            let nb = o.len() / (gsteps * gw);
            let range = b0 * steps * sw..(b0 + nb) * steps * sw;
            let ms = mask.map(|m| &m[b0 * steps..(b0 + nb) * steps]);
            let rms = rec_mask.map(|m| &m[b0 * spec.units..(b0 + nb) * spec.units]);
            with_scratch(
                3 * nb * spec.units + nb * sw + spec.units * spec.gu(),
                |scratch| {
                    let (prev0, rest) = scratch.split_at_mut(nb * sw);
                    fill_initial(spec, &init, b0, prev0);
                    backward_chunk(
                        spec,
                        steps,
                        rk,
                        &packed[range.clone()],
                        &dpacked[range],
                        (ms, rms),
                        o,
                        prev0,
                        rest,
                    )
                },
            );
        });
}

/// The reverse loop over one chunk of rows; like [`forward_chunk`], also built for AVX-512.
#[allow(clippy::too_many_arguments)]
fn backward_chunk(
    spec: &RnnSpec,
    steps: usize,
    rk: &[f32],
    packed: &[f32],
    dpacked: &[f32],
    masks: Masks<'_>,
    grad: &mut [f32],
    prev0: &[f32],
    scratch: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if math::wide() {
        // SAFETY: the CPU supports AVX-512F (checked by `wide`).
        return unsafe {
            backward_chunk_avx512(
                spec, steps, rk, packed, dpacked, masks, grad, prev0, scratch,
            )
        };
    }
    backward_chunk_body(
        spec, steps, rk, packed, dpacked, masks, grad, prev0, scratch,
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn backward_chunk_avx512(
    spec: &RnnSpec,
    steps: usize,
    rk: &[f32],
    packed: &[f32],
    dpacked: &[f32],
    masks: Masks<'_>,
    grad: &mut [f32],
    prev0: &[f32],
    scratch: &mut [f32],
) {
    backward_chunk_body(
        spec, steps, rk, packed, dpacked, masks, grad, prev0, scratch,
    )
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_chunk_body(
    spec: &RnnSpec,
    steps: usize,
    rk: &[f32],
    packed: &[f32],
    dpacked: &[f32],
    (mask, rec_mask): (Option<&[f32]>, Option<&[f32]>),
    grad: &mut [f32],
    prev0: &[f32],
    scratch: &mut [f32],
) {
    let u = spec.units;
    let (gu, sw, gw) = (spec.gu(), spec.packed_width(), spec.grad_width());
    let gsteps = spec.grad_steps(steps);
    let nb = grad.len() / (gsteps * gw);
    let (prs, grs) = (steps * sw, gsteps * gw);
    let (dh, rest) = scratch.split_at_mut(nb * u);
    let (dc, rest) = rest.split_at_mut(nb * u);
    let (tmp, rt) = rest.split_at_mut(nb * u);
    dh.fill(0.0);
    dc.fill(0.0);
    // The recurrent kernel transposed once, `(G*u, u)`: the per-step products with it then
    // read contiguous rows (see `smallgemm`).
    for (i, row) in rk.chunks(gu).enumerate() {
        for (p, &v) in row.iter().enumerate() {
            rt[p * u + i] = v;
        }
    }
    let rt = &*rt;
    assert!(rt.len() == gu * u);
    let (act, ra) = (spec.act, spec.rec_act);
    // Offset, inside a gradient step, of the block that multiplies the recurrent kernel.
    let rec_off = gw - gu;
    for s in (0..steps).rev() {
        let t = spec.time(s, steps);
        for b in 0..nb {
            let cur = &packed[b * prs + s * sw..][..sw];
            let prev = if s > 0 {
                &packed[b * prs + (s - 1) * sw..][..sw]
            } else {
                &prev0[b * sw..][..sw]
            };
            let dcur = &dpacked[b * prs + s * sw..][..sw];
            let g = &mut grad[b * grs + t * gw..][..gw];
            let dh = &mut dh[b * u..][..u];
            let dc = &mut dc[b * u..][..u];
            dh.iter_mut().zip(&dcur[..u]).for_each(|(d, &v)| *d += v);
            if spec.cell == Cell::Lstm {
                dc.iter_mut()
                    .zip(&dcur[u..2 * u])
                    .for_each(|(d, &v)| *d += v);
            }
            if mask.is_some_and(|m| m[b * steps + t] <= 0.5) {
                g.fill(0.0);
                continue;
            }
            match spec.cell {
                Cell::Simple => {
                    derivative_into(act, &cur[..u], &mut g[..u]);
                    for j in 0..u {
                        g[j] *= dh[j];
                    }
                    dh.fill(0.0);
                }
                Cell::Lstm => {
                    let tc = &cur[2 * u..3 * u];
                    let (i, f, gv, o) = (
                        &cur[3 * u..4 * u],
                        &cur[4 * u..5 * u],
                        &cur[5 * u..6 * u],
                        &cur[6 * u..],
                    );
                    let cp = &prev[u..2 * u];
                    // dc += dh * o * act'(c), with act'(c) staged in the o slot.
                    derivative_into(act, tc, &mut g[3 * u..]);
                    for j in 0..u {
                        dc[j] += dh[j] * o[j] * g[3 * u + j];
                    }
                    derivative_into(ra, &cur[3 * u..5 * u], &mut g[..2 * u]);
                    derivative_into(act, gv, &mut g[2 * u..3 * u]);
                    derivative_into(ra, o, &mut g[3 * u..]);
                    for j in 0..u {
                        let dcv = dc[j];
                        g[j] *= dcv * gv[j];
                        g[u + j] *= dcv * cp[j];
                        g[2 * u + j] *= dcv * i[j];
                        g[3 * u + j] *= dh[j] * tc[j];
                        dc[j] = dcv * f[j];
                    }
                    dh.fill(0.0);
                }
                Cell::Gru { reset_after } => {
                    let (z, r, hh, e) = (
                        &cur[u..2 * u],
                        &cur[2 * u..3 * u],
                        &cur[3 * u..4 * u],
                        &cur[4 * u..5 * u],
                    );
                    let hp = &prev[..u];
                    derivative_into(ra, z, &mut g[..u]);
                    derivative_into(act, hh, &mut g[2 * u..3 * u]);
                    for j in 0..u {
                        g[j] *= dh[j] * (hp[j] - hh[j]);
                        g[2 * u + j] *= dh[j] * (1.0 - z[j]);
                        dh[j] *= z[j];
                    }
                    if reset_after {
                        derivative_into(ra, r, &mut g[u..2 * u]);
                        for j in 0..u {
                            g[u + j] *= g[2 * u + j] * e[j];
                        }
                        // The recurrent block: same z and r parts, candidate part times r.
                        g.copy_within(..2 * u, gu);
                        for j in 0..u {
                            g[gu + 2 * u + j] = g[2 * u + j] * r[j];
                        }
                    } else {
                        // Set once d(e) is known (below); zero when h_prev is zero.
                        g[u..2 * u].fill(0.0);
                    }
                }
            }
        }
        if s == 0 && !spec.has_init {
            continue;
        }
        // Reset-before GRU: the candidate saw `r * h_prev`, so r's gradient and part of
        // h_prev's need `d(e) = d(hh_pre) · R_hᵀ` first.
        if spec.cell == (Cell::Gru { reset_after: false }) {
            assert!(extent(t * gw + 2 * u, nb, grs, u, 1) <= grad.len() && tmp.len() >= nb * u);
            // SAFETY: bounds asserted (`rt` has G*u rows of u); `tmp` is a separate buffer from
            // `grad` and `rt`.
            unsafe {
                gemm_raw(
                    nb,
                    u,
                    u,
                    tmp.as_mut_ptr(),
                    u,
                    grad.as_ptr().add(t * gw + 2 * u),
                    grs,
                    1,
                    rt.as_ptr().add(2 * u * u),
                    u,
                    1,
                    false,
                );
            }
            for b in 0..nb {
                if mask.is_some_and(|m| m[b * steps + t] <= 0.5) {
                    continue;
                }
                let cur = &packed[b * prs + s * sw..][..sw];
                let prev = if s > 0 {
                    &packed[b * prs + (s - 1) * sw..][..u]
                } else {
                    &prev0[b * sw..][..u]
                };
                let g = &mut grad[b * grs + t * gw..][..gw];
                let r = &cur[2 * u..3 * u];
                derivative_into(ra, r, &mut g[u..2 * u]);
                let de = &tmp[b * u..][..u];
                let dh = &mut dh[b * u..][..u];
                if let Some(m) = rec_mask {
                    // The candidate saw `r * (h_prev * mask)`, kept at the end of the step.
                    let (hm, m) = (&cur[sw - u..], &m[b * u..][..u]);
                    for j in 0..u {
                        g[u + j] *= de[j] * hm[j];
                        dh[j] += de[j] * r[j] * m[j];
                    }
                } else {
                    for j in 0..u {
                        g[u + j] *= de[j] * prev[j];
                        dh[j] += de[j] * r[j];
                    }
                }
            }
        }
        let n_rec = if spec.cell == (Cell::Gru { reset_after: false }) {
            2 * u
        } else {
            gu
        };
        assert!(extent(t * gw + rec_off, nb, grs, n_rec, 1) <= grad.len() && dh.len() >= nb * u);
        assert!(tmp.len() >= nb * u);
        // With recurrent dropout the product's gradient lands in `tmp` and is masked into dh.
        let dst = if rec_mask.is_some() {
            tmp.as_mut_ptr()
        } else {
            dh.as_mut_ptr()
        };
        // SAFETY: bounds asserted (`rt` holds n_rec <= G*u rows of u); `dh` and `tmp` are
        // scratch, disjoint from `grad` and `rt`.
        unsafe {
            gemm_raw(
                nb,
                u,
                n_rec,
                dst,
                u,
                grad.as_ptr().add(t * gw + rec_off),
                grs,
                1,
                rt.as_ptr(),
                u,
                1,
                rec_mask.is_none(),
            );
        }
        if let Some(m) = rec_mask {
            for ((d, &v), &mv) in dh.iter_mut().zip(&tmp[..nb * u]).zip(m) {
                *d += v * mv;
            }
        }
    }
    if spec.has_init {
        // The extra last step: the initial states' gradients, what the carries hold now.
        for b in 0..nb {
            let g = &mut grad[b * grs + steps * gw..][..gw];
            g.fill(0.0);
            g[..u].copy_from_slice(&dh[b * u..][..u]);
            if spec.cell == Cell::Lstm {
                g[u..2 * u].copy_from_slice(&dc[b * u..][..u]);
            }
        }
    }
}

/// One product of [`kernel_grad`]: the left operand's source, its offset at a step and its
/// column stride; then the first column of the result and the number of columns.
type LeftBlock<'a> = (&'a [f32], usize, usize, usize, usize);

/// `d recurrent_kernel = Σ_s left_sᵀ · grad_s`, with `left_s = h_{s-1}` (and `r * h_{s-1}` for
/// a reset-before GRU's candidate): one GEMM per step reducing over the batch.
pub fn kernel_grad(spec: &RnnSpec, ins: &[In<'_>], out: &mut [f32]) {
    let (packed, grad) = (&ins[0], &ins[1]);
    // The initial h: the first step's left operand (without recurrent dropout, which keeps
    // its masked copy in the packed step itself).
    let h0 = spec.has_init.then(|| ins[2].data);
    let (batch, steps) = (packed.dims[0], packed.dims[1]);
    let u = spec.units;
    let (gu, sw, gw) = (spec.gu(), spec.packed_width(), spec.grad_width());
    let (prs, grs) = (steps * sw, spec.grad_steps(steps) * gw);
    let rec_off = gw - gu;
    // Rows of the result (units of the left operand) are independent: split them across
    // threads when the product is large enough to pay for it.
    let threads = rayon::current_num_threads().max(1);
    let rows = if threads > 1 && u >= 32 && u * gu * batch * steps >= PAR_WORK {
        u.div_ceil(threads)
    } else {
        u
    };
    out.par_chunks_mut(rows * gu)
        .enumerate()
        .for_each(|(ci, o)| {
            let r0 = ci * rows;
            let m = o.len() / gu;
            o.fill(0.0);
            let first = usize::from(h0.is_none());
            for s in first..steps {
                let t = spec.time(s, steps);
                // `h` of the step before: in the packed buffer, or the initial state.
                let hprev = match (s, h0) {
                    (0, Some(h0)) => (h0, 0, u),
                    _ => (packed.data, (s.max(1) - 1) * sw, prs),
                };
                let blocks: SmallVec<[LeftBlock<'_>; 2]> = match spec.cell {
                    // (left operand: source, offset at step s, column stride; first column,
                    // columns)
                    Cell::Gru { reset_after: false } if spec.has_rec_mask => smallvec![
                        (packed.data, spec.left_offset(s), prs, 0, 2 * u),
                        (packed.data, s * sw + 4 * u, prs, 2 * u, u)
                    ],
                    Cell::Gru { reset_after: false } => smallvec![
                        (hprev.0, hprev.1, hprev.2, 0, 2 * u),
                        (packed.data, s * sw + 4 * u, prs, 2 * u, u)
                    ],
                    _ if spec.has_rec_mask => {
                        smallvec![(packed.data, spec.left_offset(s), prs, 0, gu)]
                    }
                    _ => smallvec![(hprev.0, hprev.1, hprev.2, 0, gu)],
                };
                for (src, a_off, a_cs, c0, n) in blocks {
                    let (a_off, g_off) = (a_off + r0, t * gw + rec_off + c0);
                    assert!(extent(a_off, m, 1, batch, a_cs) <= src.len());
                    assert!(
                        extent(g_off, batch, grs, n, 1) <= grad.data.len()
                            && extent(c0, m, gu, n, 1) <= o.len()
                    );
                    // SAFETY: bounds asserted; `o` is part of the node's own buffer, disjoint
                    // from the inputs.
                    unsafe {
                        gemm_raw(
                            m,
                            n,
                            batch,
                            o.as_mut_ptr().add(c0),
                            gu,
                            src.as_ptr().add(a_off),
                            1,
                            a_cs,
                            grad.data.as_ptr().add(g_off),
                            grs,
                            1,
                            true,
                        );
                    }
                }
            }
        });
}
