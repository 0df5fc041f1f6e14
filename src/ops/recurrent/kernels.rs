//! The CPU kernels of the recurrent ops: the timestep loop (`forward.rs`), backpropagation
//! through time and the recurrent kernel's gradient (`backward.rs`), and here what they share
//! plus the packed-buffer slices. Batch rows are independent, so each loop runs on
//! contiguous chunks of rows (in parallel when the work pays for it); per-step temporaries
//! live in a per-thread scratch that grows once.

use std::cell::RefCell;

use super::{RnnSpec, Slice};
use crate::ops::In;

mod backward;
mod forward;

pub use backward::{backward, kernel_grad};
pub use forward::forward;

/// `c = a·b` (or `+=`) on strided views given as raw pointers, on the calling thread
/// ([`crate::ops::matmul::gemm_raw`]).
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
    let v = crate::ops::matmul::View {
        a,
        a_rs,
        a_cs,
        b,
        b_rs,
        c,
        c_rs,
    };
    // On the calling thread: the timestep loop splits its batch rows itself.
    crate::ops::matmul::gemm_raw(m, n, k, v, b_cs, accumulate, false);
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
/// 2-core Zen 4: with rayon's sleeping workers, the tutorial's stacked LSTM (2M per layer and
/// batch) ran faster on one thread, since waking a second one cost more than the work it took
/// over; the fit loops' polling workers (`pool::busy`) wake at once, and split in two it
/// runs 13% faster (0.97 against 1.12 ms a step, best of 4 interleaved runs).
const PAR_WORK: usize = 1 << 20;

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
