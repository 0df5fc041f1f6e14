//! The CPU kernels of the recurrent ops: the timestep loop (forward), backpropagation
//! through time, the recurrent kernel's gradient, and the packed-buffer slices. Batch rows
//! are independent, so each loop runs on contiguous chunks of rows (in parallel when the
//! work pays for it); per-step temporaries live in a per-thread scratch that grows once.

use std::cell::RefCell;

use rayon::prelude::*;
use smallvec::{smallvec, SmallVec};

use super::math::{self, activate_in_place, derivative_into};
use super::{smallgemm, Cell, RnnSpec, Slice};
use crate::ops::In;

/// `c = a·b` (or `+=`) on strided views given as raw pointers.
///
/// # Safety
/// Every element `a[i*a_rs + p*a_cs]`, `b[p*b_rs + j*b_cs]`, `c[i*c_rs + j]` for `i < m`,
/// `j < n`, `p < k` must be in bounds of live allocations, and `c`'s elements must not
/// overlap `a`'s or `b`'s.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    c_rs: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    b_cs: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    if b_cs == 1 && smallgemm::gemm_rows(m, n, k, c, c_rs, a, a_rs, a_cs, b, b_rs, accumulate) {
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        c_rs as isize,
        accumulate,
        a,
        a_cs as isize,
        a_rs as isize,
        b,
        b_cs as isize,
        b_rs as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// Index one past the last element a strided `rows x cols` view touches.
fn extent(off: usize, rows: usize, rs: usize, cols: usize, cs: usize) -> usize {
    off + (rows - 1) * rs + (cols - 1) * cs + 1
}

thread_local! {
    /// Per-thread scratch for the backward carries (`dh`, `dc`, a GEMM temporary); it grows
    /// to the largest chunk once and is reused, so steady-state training allocates nothing.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Multiply-adds of recurrent products below which one op runs on one thread. Measured on a
/// 2-core Zen 4 with other load: the tutorial's stacked LSTM (2M per layer and batch) ran
/// 1.2-1.6x faster on one thread than split in two, since waking a second thread for every
/// op costs more than the work it takes over; Embedding + LSTM(128) (168M) gains from two.
const PAR_WORK: usize = 8 << 20;

/// Rows per parallel chunk: two or more chunks only when each has enough work to pay for a
/// rayon task.
fn chunk_rows(batch: usize, steps: usize, spec: &RnnSpec) -> usize {
    let work = batch * steps * spec.units * spec.gu();
    let threads = rayon::current_num_threads().max(1);
    if threads == 1 || batch < 16 || work < PAR_WORK {
        batch.max(1)
    } else {
        batch.div_ceil(threads.min(batch / 8).max(1))
    }
}

pub fn forward(spec: &RnnSpec, ins: &[In<'_>], out: &mut [f32]) {
    let x = &ins[0];
    let (batch, steps) = (x.dims[0], x.dims[1]);
    let rk = ins[1].data;
    let mut k = 2;
    let bias = spec.has_bias.then(|| {
        k += 1;
        ins[k - 1].data
    });
    let init: SmallVec<[&[f32]; 2]> = if spec.has_init {
        k += spec.n_states();
        ins[k - spec.n_states()..k].iter().map(|i| i.data).collect()
    } else {
        SmallVec::new()
    };
    let mask = spec.has_mask.then(|| ins[k].data);
    let rec_mask = spec.has_rec_mask.then(|| ins[ins.len() - 1].data);
    let (gu, s_w, u) = (spec.gu(), spec.packed_width(), spec.units);
    let rows = chunk_rows(batch, steps, spec);
    out.par_chunks_mut(rows * steps * s_w)
        .enumerate()
        .for_each(|(ci, o)| {
            let b0 = ci * rows;
            let nb = o.len() / (steps * s_w);
            let xs = &x.data[b0 * steps * gu..(b0 + nb) * steps * gu];
            let ms = mask.map(|m| &m[b0 * steps..(b0 + nb) * steps]);
            let rms = rec_mask.map(|m| &m[b0 * u..(b0 + nb) * u]);
            with_scratch(nb * s_w, |prev0| {
                fill_initial(spec, &init, b0, prev0);
                forward_chunk(spec, steps, xs, rk, bias, (ms, rms), o, prev0)
            });
        });
}

/// The packed "step before the first" of each row of a chunk starting at row `b0`: zeros, or
/// the initial `h` (and LSTM's `c`) where they are inputs.
fn fill_initial(spec: &RnnSpec, init: &[&[f32]], b0: usize, prev0: &mut [f32]) {
    let (u, sw) = (spec.units, spec.packed_width());
    prev0.fill(0.0);
    for (k, state) in init.iter().enumerate() {
        for (b, row) in prev0.chunks_mut(sw).enumerate() {
            row[k * u..][..u].copy_from_slice(&state[(b0 + b) * u..][..u]);
        }
    }
}

type Masks<'a> = (Option<&'a [f32]>, Option<&'a [f32]>);

/// The timestep loop over one chunk of rows; built a second time for AVX-512 (the gate math
/// then runs 16 lanes wide) and chosen at run time.
#[allow(clippy::too_many_arguments)]
fn forward_chunk(
    spec: &RnnSpec,
    steps: usize,
    x: &[f32],
    rk: &[f32],
    bias: Option<&[f32]>,
    masks: Masks<'_>,
    out: &mut [f32],
    prev0: &[f32],
) {
    #[cfg(target_arch = "x86_64")]
    if math::wide() {
        // SAFETY: the CPU supports AVX-512F (checked by `wide`).
        return unsafe { forward_chunk_avx512(spec, steps, x, rk, bias, masks, out, prev0) };
    }
    forward_chunk_body(spec, steps, x, rk, bias, masks, out, prev0)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_chunk_avx512(
    spec: &RnnSpec,
    steps: usize,
    x: &[f32],
    rk: &[f32],
    bias: Option<&[f32]>,
    masks: Masks<'_>,
    out: &mut [f32],
    prev0: &[f32],
) {
    forward_chunk_body(spec, steps, x, rk, bias, masks, out, prev0)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_chunk_body(
    spec: &RnnSpec,
    steps: usize,
    x: &[f32],
    rk: &[f32],
    bias: Option<&[f32]>,
    (mask, rec_mask): (Option<&[f32]>, Option<&[f32]>),
    out: &mut [f32],
    prev0: &[f32],
) {
    let u = spec.units;
    let (gu, sw) = (spec.gu(), spec.packed_width());
    let nb = out.len() / (steps * sw);
    let rs = steps * sw;
    let go = spec.gate_offset();
    let bias_in = bias.map(|b| &b[..gu]);
    let bias_rec = bias.filter(|b| b.len() == 2 * gu).map(|b| &b[gu..]);
    assert!(x.len() == nb * steps * gu && rk.len() == u * gu);
    for s in 0..steps {
        let t = spec.time(s, steps);
        // Gate pre-activations from the input projection (and input bias).
        for b in 0..nb {
            let dst = &mut out[b * rs + s * sw + go..][..gu];
            dst.copy_from_slice(&x[(b * steps + t) * gu..][..gu]);
            if let Some(bi) = bias_in {
                dst.iter_mut().zip(bi).for_each(|(d, &v)| *d += v);
            }
        }
        if let Some(m) = rec_mask {
            let lo = spec.left_offset(s);
            for b in 0..nb {
                let (before, cur) = out[b * rs..(b + 1) * rs].split_at_mut(lo);
                let hp = if s > 0 {
                    &before[(s - 1) * sw..][..u]
                } else {
                    &prev0[b * sw..][..u]
                };
                for ((l, &h), &mv) in cur[..u].iter_mut().zip(hp).zip(&m[b * u..(b + 1) * u]) {
                    *l = h * mv;
                }
            }
        }
        if s > 0 || spec.has_init {
            let base = out.as_mut_ptr();
            // The left operand: h of step s-1 or its masked copy at the end of step s (row
            // stride rs), or for the first step the initial h (row stride sw, in `prev0`).
            let (hprev, lrs) = if s == 0 && !spec.has_rec_mask {
                assert!(prev0.len() >= nb * sw);
                (prev0.as_ptr(), sw)
            } else {
                let lo = spec.left_offset(s);
                assert!(extent(lo, nb, rs, u, 1) <= out.len());
                // SAFETY: in bounds (asserted).
                (unsafe { base.add(lo) as *const f32 }, rs)
            };
            assert!(extent(s * sw + go, nb, rs, gu, 1) <= out.len());
            // SAFETY: the bounds are asserted above; the left operand (in `prev0`, or a range
            // of each row disjoint from it) and the gate block of step s do not overlap.
            unsafe {
                match spec.cell {
                    Cell::Simple | Cell::Lstm => gemm_raw(
                        nb,
                        gu,
                        u,
                        base.add(s * sw + go),
                        rs,
                        hprev,
                        lrs,
                        1,
                        rk.as_ptr(),
                        gu,
                        1,
                        true,
                    ),
                    Cell::Gru { reset_after } => {
                        gemm_raw(
                            nb,
                            2 * u,
                            u,
                            base.add(s * sw + go),
                            rs,
                            hprev,
                            lrs,
                            1,
                            rk.as_ptr(),
                            gu,
                            1,
                            true,
                        );
                        if reset_after {
                            gemm_raw(
                                nb,
                                u,
                                u,
                                base.add(s * sw + 4 * u),
                                rs,
                                hprev,
                                lrs,
                                1,
                                rk.as_ptr().add(2 * u),
                                gu,
                                1,
                                false,
                            );
                        }
                    }
                }
            }
        } else if spec.cell == (Cell::Gru { reset_after: true }) {
            for b in 0..nb {
                out[b * rs + 4 * u..][..u].fill(0.0);
            }
        }
        for b in 0..nb {
            let row = &mut out[b * rs..(b + 1) * rs];
            let (before, cur) = row.split_at_mut(s * sw);
            let cur = &mut cur[..sw];
            let prev = if s > 0 {
                &before[(s - 1) * sw..]
            } else {
                &prev0[b * sw..][..sw]
            };
            if mask.is_some_and(|m| m[b * steps + t] <= 0.5) {
                let keep = sw.min(2 * u);
                cur[..keep].copy_from_slice(&prev[..keep]);
                continue;
            }
            step_cell(spec, cur, prev, bias_rec, rk, s > 0 || spec.has_init);
        }
    }
}

/// The gate math of one step for one batch row, in place on the packed step `cur` whose gate
/// block holds the pre-activations (input part plus, except GRU's candidate, the recurrent
/// part); `prev` is the previous packed step (zeros before the first).
#[inline(always)]
fn step_cell(
    spec: &RnnSpec,
    cur: &mut [f32],
    prev: &[f32],
    bias_rec: Option<&[f32]>,
    rk: &[f32],
    has_prev: bool,
) {
    let u = spec.units;
    let (act, ra) = (spec.act, spec.rec_act);
    match spec.cell {
        Cell::Simple => activate_in_place(act, &mut cur[..u]),
        Cell::Lstm => {
            let (h, rest) = cur.split_at_mut(u);
            let (c, rest) = rest.split_at_mut(u);
            let (tc, gates) = rest.split_at_mut(u);
            // (The masked copy of h_prev, with recurrent dropout, follows the gates.)
            let gates = &mut gates[..4 * u];
            activate_in_place(ra, &mut gates[..2 * u]);
            activate_in_place(act, &mut gates[2 * u..3 * u]);
            activate_in_place(ra, &mut gates[3 * u..]);
            let (i, rest) = gates.split_at(u);
            let (f, rest) = rest.split_at(u);
            let (g, o) = rest.split_at(u);
            let cp = &prev[u..2 * u];
            for j in 0..u {
                c[j] = f[j] * cp[j] + i[j] * g[j];
            }
            tc.copy_from_slice(c);
            activate_in_place(act, tc);
            for j in 0..u {
                h[j] = o[j] * tc[j];
            }
        }
        Cell::Gru { reset_after } => {
            let (h, rest) = cur.split_at_mut(u);
            let (zr, rest) = rest.split_at_mut(2 * u);
            let (gh, rest) = rest.split_at_mut(u);
            // With recurrent dropout the masked copy of h_prev follows `e`.
            let (e, hm) = rest.split_at_mut(u);
            if let Some(br) = bias_rec {
                zr.iter_mut().zip(&br[..2 * u]).for_each(|(d, &v)| *d += v);
                e.iter_mut().zip(&br[2 * u..]).for_each(|(d, &v)| *d += v);
            }
            activate_in_place(ra, zr);
            let (z, r) = zr.split_at(u);
            let hp = &prev[..u];
            if reset_after {
                for j in 0..u {
                    gh[j] += r[j] * e[j];
                }
            } else {
                // The candidate reads `r * h_prev`, with h_prev under the recurrent dropout mask.
                let hl = if spec.has_rec_mask { &hm[..u] } else { hp };
                for j in 0..u {
                    e[j] = r[j] * hl[j];
                }
                if has_prev {
                    // The candidate's recurrent part uses `r * h_prev`: a row-vector product.
                    for (p, &ev) in e.iter().enumerate() {
                        let w = &rk[p * 3 * u + 2 * u..][..u];
                        gh.iter_mut().zip(w).for_each(|(d, &w)| *d += ev * w);
                    }
                }
            }
            activate_in_place(act, gh);
            for j in 0..u {
                h[j] = z[j] * hp[j] + (1.0 - z[j]) * gh[j];
            }
        }
    }
}

/// Runs `f` on this thread's scratch, grown to `len` floats (once; reused afterwards).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        if scratch.len() < len {
            scratch.resize(len, 0.0);
        }
        f(&mut scratch[..len])
    })
}

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

/// Position of output step `s` in the source when reading in reverse.
fn src_step(sl: &Slice, s: usize, steps: usize) -> usize {
    if sl.reverse {
        steps - 1 - s
    } else {
        s
    }
}

pub fn slice(sl: &Slice, x: &In<'_>, out: &mut [f32]) {
    let (steps, w) = (x.dims[1], x.dims[2]);
    match sl.step {
        None => {
            let n = sl.take.unwrap_or(steps);
            for (o, r) in out.chunks_mut(n * sl.len).zip(x.data.chunks(steps * w)) {
                for s in 0..n {
                    let src = src_step(sl, s, steps);
                    o[s * sl.len..][..sl.len].copy_from_slice(&r[src * w + sl.offset..][..sl.len]);
                }
            }
        }
        Some(s) => {
            for (o, r) in out.chunks_mut(sl.len).zip(x.data.chunks(steps * w)) {
                o.copy_from_slice(&r[s * w + sl.offset..][..sl.len]);
            }
        }
    }
}

/// The VJP of [`slice`]: `dy` placed into zeros shaped like the sliced tensor.
pub fn unslice(sl: &Slice, dy: &[f32], out: &mut [f32], out_dims: &[usize]) {
    let (steps, w) = (out_dims[1], out_dims[2]);
    out.fill(0.0);
    match sl.step {
        None => {
            let n = sl.take.unwrap_or(steps);
            for (o, d) in out.chunks_mut(steps * w).zip(dy.chunks(n * sl.len)) {
                for s in 0..n {
                    let dst = src_step(sl, s, steps);
                    o[dst * w + sl.offset..][..sl.len].copy_from_slice(&d[s * sl.len..][..sl.len]);
                }
            }
        }
        Some(s) => {
            for (o, d) in out.chunks_mut(steps * w).zip(dy.chunks(sl.len)) {
                o[s * w + sl.offset..][..sl.len].copy_from_slice(d);
            }
        }
    }
}
