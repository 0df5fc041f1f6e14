//! The timestep loop: per step one small GEMM `h_prev · recurrent_kernel` written straight
//! into the step's gate block, then the gate math fused in one pass per row.

use rayon::prelude::*;
use smallvec::SmallVec;

use super::super::math::{self, activate_in_place};
use super::super::{Cell, RnnSpec};
use super::{chunk_rows, extent, fill_initial, gemm_raw, with_scratch, Masks};
use crate::ops::In;

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
