//! The recurrent ops on the GPU (`shaders/recurrent.wgsl`). The sequence length is known when
//! a program is planned, so the timestep loop is unrolled there: each step is one to three
//! dispatches naming their step in the parameter words. A node's scratch (a buffer private to
//! the program) holds the packed "step before the first" with the initial states, copies of
//! the masks and, backward, the carried `dh` and `dc`; one prologue dispatch refreshes it per
//! run. Everything else is the CPU's layout (see `ops/recurrent.rs`), so the two devices'
//! buffers are interchangeable.

use super::{unary_code, GpuBuffer, Recorder, Shader};
use crate::error::Result;
use crate::ops::recurrent::{Cell, RnnSpec, Slice};

const RECURRENT: Shader = Shader {
    name: "recurrent",
    source: include_str!("../shaders/recurrent.wgsl"),
};

const HAS_BIAS: u32 = 1;
const HAS_MASK: u32 = 2;
const HAS_REC_MASK: u32 = 4;
const HAS_INIT: u32 = 8;
const GO_BACKWARDS: u32 = 16;

/// The node's geometry and the words every step kernel starts with.
struct Plan {
    spec: RnnSpec,
    batch: usize,
    steps: usize,
    /// Offsets in the scratch: recurrent dropout mask, timestep mask, `dh`, `dc`.
    offs: [usize; 4],
    scratch_len: usize,
}

impl Plan {
    fn new(spec: &RnnSpec, batch: usize, steps: usize) -> Plan {
        let (u, sw) = (spec.units, spec.packed_width());
        let rmask = batch * sw;
        let mask = rmask + batch * u;
        let dh = mask + batch * steps;
        let dc = dh + batch * u;
        Plan {
            spec: *spec,
            batch,
            steps,
            offs: [rmask, mask, dh, dc],
            scratch_len: dc + batch * u,
        }
    }

    fn cell(&self) -> u32 {
        match self.spec.cell {
            Cell::Simple => 0,
            Cell::Lstm => 1,
            Cell::Gru { reset_after: true } => 2,
            Cell::Gru { reset_after: false } => 3,
        }
    }

    fn flags(&self) -> u32 {
        let s = &self.spec;
        [
            (s.has_bias, HAS_BIAS),
            (s.has_mask, HAS_MASK),
            (s.has_rec_mask, HAS_REC_MASK),
            (s.has_init, HAS_INIT),
            (s.go_backwards, GO_BACKWARDS),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| f)
        .sum()
    }

    /// The parameter words of step `s` (see the shader's header).
    fn words(&self, s: usize) -> Vec<u32> {
        let spec = &self.spec;
        let gw = spec.grad_width();
        let gsteps = self.steps + usize::from(spec.has_init);
        let t = if spec.go_backwards {
            self.steps - 1 - s
        } else {
            s
        };
        [
            self.batch,
            self.steps,
            spec.units,
            spec.gu(),
            spec.packed_width(),
            s,
            t,
            self.cell() as usize,
            unary_code(spec.act).0 as usize,
            unary_code(spec.rec_act).0 as usize,
            self.flags() as usize,
            gw,
            gsteps * gw,
            self.offs[0],
            self.offs[1],
            self.offs[2],
            self.offs[3],
        ]
        .iter()
        .map(|&v| v as u32)
        .collect()
    }

    /// Allocates the node's scratch and records the dispatch that fills it for a run.
    fn prologue(
        &self,
        rec: &mut Recorder<'_>,
        init: &[&GpuBuffer],
        rec_mask: Option<&GpuBuffer>,
        mask: Option<&GpuBuffer>,
        dummy: &GpuBuffer,
    ) -> Result<GpuBuffer> {
        let scratch = rec.scratch(self.scratch_len)?;
        let p = [
            self.scratch_len,
            self.batch,
            self.spec.units,
            self.spec.packed_width(),
            self.steps,
            self.flags() as usize,
            self.cell() as usize,
            self.offs[0],
            self.offs[1],
        ]
        .map(|v| v as u32);
        let ins = [
            init.first().copied().unwrap_or(dummy),
            init.get(1).copied().unwrap_or(dummy),
            rec_mask.unwrap_or(dummy),
            mask.unwrap_or(dummy),
        ];
        rec.launch(
            RECURRENT,
            "rnn_prologue",
            &p,
            &scratch,
            &ins,
            self.scratch_len,
        );
        Ok(scratch)
    }
}

/// The optional inputs after the fixed ones, in the op's order: `[bias]`, `[h0, [c0]]`,
/// `[mask]`, `[recurrent mask]`.
struct Optional<'a> {
    bias: Option<&'a GpuBuffer>,
    init: Vec<&'a GpuBuffer>,
    mask: Option<&'a GpuBuffer>,
    rec_mask: Option<&'a GpuBuffer>,
}

fn optional<'a>(spec: &RnnSpec, rest: &'a [(GpuBuffer, &[usize])], bias: bool) -> Optional<'a> {
    let mut it = rest.iter().map(|(b, _)| b);
    let bias = if bias && spec.has_bias {
        it.next()
    } else {
        None
    };
    let n_init = if spec.has_init { spec.n_states() } else { 0 };
    let init = it.by_ref().take(n_init).collect();
    let mask = if spec.has_mask { it.next() } else { None };
    let rec_mask = if spec.has_rec_mask { it.next() } else { None };
    Optional {
        bias,
        init,
        mask,
        rec_mask,
    }
}

/// [`Op::Rnn`](crate::ops::Op::Rnn): inputs `(projection, recurrent_kernel, [bias], [h0, [c0]],
/// [mask], [recurrent mask])`, output the packed buffer.
pub(crate) fn forward(
    rec: &mut Recorder<'_>,
    spec: &RnnSpec,
    ins: &[(GpuBuffer, &[usize])],
    out: &GpuBuffer,
) -> Result<()> {
    let (x, rk) = (&ins[0].0, &ins[1].0);
    let (batch, steps) = (ins[0].1[0], ins[0].1[1]);
    let plan = Plan::new(spec, batch, steps);
    let o = optional(spec, &ins[2..], true);
    let scratch = plan.prologue(rec, &o.init, o.rec_mask, o.mask, x)?;
    let bias = o.bias.unwrap_or(x);
    let step_ins = [x, rk, bias, &scratch];
    let (u, gu) = (spec.units, spec.gu());
    for s in 0..steps {
        let p = plan.words(s);
        if spec.has_rec_mask {
            rec.launch(RECURRENT, "rnn_rec_mask", &p, out, &step_ins, batch * u);
        }
        rec.launch(RECURRENT, "rnn_project", &p, out, &step_ins, batch * gu);
        rec.launch(RECURRENT, "rnn_gates", &p, out, &step_ins, batch * u);
        if spec.cell == (Cell::Gru { reset_after: false }) {
            rec.launch(
                RECURRENT,
                "rnn_gru_candidate",
                &p,
                out,
                &step_ins,
                batch * u,
            );
        }
    }
    Ok(())
}

/// [`Op::RnnGrad`](crate::ops::Op::RnnGrad): inputs `(recurrent_kernel, packed, d_packed,
/// [h0, [c0]], [mask], [recurrent mask])`, output the gradient of every step's gate
/// pre-activations (and, with initial states, their gradients in one more step).
pub(crate) fn backward(
    rec: &mut Recorder<'_>,
    spec: &RnnSpec,
    ins: &[(GpuBuffer, &[usize])],
    out: &GpuBuffer,
) -> Result<()> {
    let (rk, packed, dpacked) = (&ins[0].0, &ins[1].0, &ins[2].0);
    let (batch, steps) = (ins[1].1[0], ins[1].1[1]);
    let plan = Plan::new(spec, batch, steps);
    let o = optional(spec, &ins[3..], false);
    let scratch = plan.prologue(rec, &o.init, o.rec_mask, o.mask, packed)?;
    let step_ins = [packed, dpacked, rk, &scratch];
    let u = spec.units;
    for s in (0..steps).rev() {
        let p = plan.words(s);
        rec.launch(RECURRENT, "rnn_back_cell", &p, out, &step_ins, batch * u);
        if s == 0 && !spec.has_init {
            continue;
        }
        if spec.cell == (Cell::Gru { reset_after: false }) {
            rec.launch(RECURRENT, "rnn_back_reset", &p, out, &step_ins, batch * u);
        }
        rec.launch(RECURRENT, "rnn_back_carry", &p, out, &step_ins, batch * u);
    }
    if spec.has_init {
        let p = plan.words(0);
        let n = batch * spec.grad_width();
        rec.launch(RECURRENT, "rnn_back_init", &p, out, &step_ins, n);
    }
    Ok(())
}

/// [`Op::RnnKernelGrad`](crate::ops::Op::RnnKernelGrad): inputs `(packed, grad, [h0])`.
pub(crate) fn kernel_grad(
    rec: &mut Recorder<'_>,
    spec: &RnnSpec,
    ins: &[(GpuBuffer, &[usize])],
    out: &GpuBuffer,
) -> Result<()> {
    let (batch, steps) = (ins[0].1[0], ins[0].1[1]);
    let plan = Plan::new(spec, batch, steps);
    let (packed, grad) = (&ins[0].0, &ins[1].0);
    let h0 = ins.get(2).map_or(packed, |(b, _)| b);
    let n = spec.units * spec.gu();
    rec.launch(
        RECURRENT,
        "rnn_kernel_grad",
        &plan.words(0),
        out,
        &[packed, grad, h0],
        n,
    );
    Ok(())
}

/// Every step (`u32::MAX`) or the one a slice reads.
fn slice_words(sl: &Slice, n: usize, src_dims: &[usize]) -> [u32; 8] {
    let (steps, w) = (src_dims[1], src_dims[2]);
    [
        n as u32,
        steps as u32,
        w as u32,
        sl.offset as u32,
        sl.len as u32,
        sl.take.unwrap_or(steps) as u32,
        sl.step.map_or(u32::MAX, |s| s as u32),
        u32::from(sl.reverse),
    ]
}

/// [`Op::RnnSlice`](crate::ops::Op::RnnSlice): part of a `(batch, steps, width)` buffer.
pub(crate) fn slice(
    rec: &mut Recorder<'_>,
    sl: &Slice,
    x: &GpuBuffer,
    x_dims: &[usize],
    out: &GpuBuffer,
    n: usize,
) {
    let p = slice_words(sl, n, x_dims);
    rec.launch(RECURRENT, "rnn_slice", &p, out, &[x], n);
}

/// [`Op::RnnUnslice`](crate::ops::Op::RnnUnslice): `dy` placed into zeros of `out_dims`.
pub(crate) fn unslice(
    rec: &mut Recorder<'_>,
    sl: &Slice,
    dy: &GpuBuffer,
    out: &GpuBuffer,
    out_dims: &[usize],
) {
    let n = out_dims.iter().product();
    let p = slice_words(sl, n, out_dims);
    rec.launch(RECURRENT, "rnn_unslice", &p, out, &[dy], n);
}
