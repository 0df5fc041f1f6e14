// The fused recurrent ops (see `ops/recurrent.rs` for the packed layouts and the equations,
// `kernels/recurrent.rs` for how a node becomes dispatches). The timestep loop is unrolled
// when the program is planned: every step is one to three dispatches, one thread per
// (batch row, column), each naming its step in the parameter words. Every dot product runs
// over the units in order, so results do not depend on scheduling.
//
// Step kernels' parameter words:
//   0 batch, 1 timesteps, 2 units, 3 gates*units, 4 packed width, 5 step s, 6 time t of s,
//   7 cell, 8 activation, 9 gate activation (unary codes), 10 flags, 11 gradient width,
//   12 gradient row stride, 13/14/15/16 offsets in the scratch of the recurrent dropout mask,
//   the timestep mask, the carried dh and dc.
// The scratch (`in3` of the step kernels) is `[step before the first (batch, packed width) |
// recurrent dropout mask (batch, units) | mask (batch, timesteps) | dh | dc (batch, units)]`.

const SIMPLE: u32 = 0u;
const LSTM: u32 = 1u;
const GRU_AFTER: u32 = 2u;
const GRU_BEFORE: u32 = 3u;

const HAS_BIAS: u32 = 1u;
const HAS_MASK: u32 = 2u;
const HAS_REC_MASK: u32 = 4u;
const HAS_INIT: u32 = 8u;
const GO_BACKWARDS: u32 = 16u;

fn flag(f: u32) -> bool {
    return (p[10] & f) != 0u;
}

// The CPU's formulas (ops/recurrent/math.rs): no overflow to inf for large inputs.
fn rnn_sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(clamp(-x, -87.0, 88.0)));
}

fn rnn_tanh(x: f32) -> f32 {
    let e = exp(clamp(-2.0 * abs(x), -87.0, 88.0));
    let t = (1.0 - e) / (1.0 + e);
    return select(t, -t, x < 0.0);
}

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// A supported activation by its unary code (kernels::unary_code). NaN stays NaN, as on the
// CPU (spelt out: WGSL leaves NaN operands of max and clamp unspecified).
fn act(code: u32, x: f32) -> f32 {
    if is_nan(x) {
        return x;
    }
    switch code {
        case 1u: { return max(x, 0.0); }
        case 2u: { return rnn_sigmoid(x); }
        case 3u: { return clamp(x / 6.0 + 0.5, 0.0, 1.0); }
        case 4u: { return rnn_tanh(x); }
        default: { return x; }
    }
}

// The activation's derivative from its output y (NaN where y is NaN).
fn deriv(code: u32, y: f32) -> f32 {
    if is_nan(y) {
        return y;
    }
    switch code {
        case 1u: { return select(0.0, 1.0, y > 0.0); }
        case 2u: { return y * (1.0 - y); }
        case 3u: { return select(0.0, 1.0 / 6.0, y > 0.0 && y < 1.0); }
        case 4u: { return 1.0 - y * y; }
        default: { return 1.0; }
    }
}

// Start of batch row b of a packed buffer.
fn row(b: u32) -> u32 {
    return b * p[1] * p[4];
}

fn gate_offset() -> u32 {
    switch p[7] {
        case 0u: { return 0u; }
        case 1u: { return 3u * p[2]; }
        default: { return p[2]; }
    }
}

fn has_prev() -> bool {
    return p[5] > 0u || flag(HAS_INIT);
}

fn skipped(b: u32) -> bool {
    return flag(HAS_MASK) && in3[p[14] + b * p[1] + p[6]] <= 0.5;
}

// ---- forward: out = packed, in0 = projection, in1 = recurrent kernel, in2 = bias, in3 = scratch

// Element k of the packed step before step s of row b.
fn fwd_prev(b: u32, k: u32) -> f32 {
    let s = p[5];
    if s > 0u {
        return out[row(b) + (s - 1u) * p[4] + k];
    }
    return in3[b * p[4] + k];
}

// Element q of the recurrent product's left operand.
fn fwd_left(b: u32, q: u32) -> f32 {
    if flag(HAS_REC_MASK) {
        return out[row(b) + p[5] * p[4] + p[4] - p[2] + q];
    }
    return fwd_prev(b, q);
}

// The scratch for one run: the initial states, copies of the masks, zeroed carries.
// p: [len, batch, units, packed width, timesteps, flags, cell, rmask off, mask off];
// in0 = h0, in1 = c0, in2 = recurrent dropout mask, in3 = mask (dummies where absent).
@compute @workgroup_size(256)
fn rnn_prologue(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let u = p[2];
    let sw = p[3];
    let init = (p[5] & HAS_INIT) != 0u;
    var v = 0.0;
    if i < p[1] * sw {
        let b = i / sw;
        let k = i % sw;
        if init && k < u {
            v = in0[b * u + k];
        } else if init && p[6] == LSTM && k < 2u * u {
            v = in1[b * u + k - u];
        }
    } else if i < p[8] {
        if (p[5] & HAS_REC_MASK) != 0u {
            v = in2[i - p[7]];
        }
    } else if i < p[8] + p[1] * p[4] {
        if (p[5] & HAS_MASK) != 0u {
            v = in3[i - p[8]];
        }
    }
    out[i] = v;
}

// With recurrent dropout: `h_prev * mask` into the last u floats of step s.
@compute @workgroup_size(256)
fn rnn_rec_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let u = p[2];
    if i >= p[0] * u {
        return;
    }
    let b = i / u;
    let j = i % u;
    out[row(b) + p[5] * p[4] + p[4] - u + j] = fwd_prev(b, j) * in3[p[13] + i];
}

// Gate pre-activations of step s: input projection + input bias + h_prev · recurrent kernel
// (GRU: the candidate takes no product here; reset_after keeps it apart in `e`).
@compute @workgroup_size(256)
fn rnn_project(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let gu = p[3];
    if i >= p[0] * gu {
        return;
    }
    let b = i / gu;
    let j = i % gu;
    let u = p[2];
    let cell = p[7];
    let cur = row(b) + p[5] * p[4];
    var v = in0[(b * p[1] + p[6]) * gu + j];
    if flag(HAS_BIAS) {
        v += in2[j];
    }
    let rec_col = cell < 2u || j < 2u * u;
    if has_prev() && (rec_col || cell == GRU_AFTER) {
        var acc = 0.0;
        for (var q = 0u; q < u; q++) {
            acc += fwd_left(b, q) * in1[q * gu + j];
        }
        if rec_col {
            v += acc;
        } else {
            out[cur + 2u * u + j] = acc;
        }
    } else if cell == GRU_AFTER && !rec_col {
        out[cur + 2u * u + j] = 0.0;
    }
    out[cur + gate_offset() + j] = v;
}

// The gate math of step s, one thread per (row, unit); a reset-before GRU stops at `r * h_prev`
// (its candidate needs every unit's, see rnn_gru_candidate).
@compute @workgroup_size(256)
fn rnn_gates(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let u = p[2];
    if i >= p[0] * u {
        return;
    }
    let b = i / u;
    let j = i % u;
    let sw = p[4];
    let gu = p[3];
    let cur = row(b) + p[5] * sw;
    let a = p[8];
    let ra = p[9];
    if skipped(b) {
        // A skipped step carries h (and c) over; like the CPU, the first 2u floats.
        out[cur + j] = fwd_prev(b, j);
        if u + j < min(sw, 2u * u) {
            out[cur + u + j] = fwd_prev(b, u + j);
        }
        return;
    }
    switch p[7] {
        case 0u: {
            out[cur + j] = act(a, out[cur + j]);
        }
        case 1u: {
            let ig = act(ra, out[cur + 3u * u + j]);
            let fg = act(ra, out[cur + 4u * u + j]);
            let gg = act(a, out[cur + 5u * u + j]);
            let og = act(ra, out[cur + 6u * u + j]);
            out[cur + 3u * u + j] = ig;
            out[cur + 4u * u + j] = fg;
            out[cur + 5u * u + j] = gg;
            out[cur + 6u * u + j] = og;
            let c = fg * fwd_prev(b, u + j) + ig * gg;
            let tc = act(a, c);
            out[cur + u + j] = c;
            out[cur + 2u * u + j] = tc;
            out[cur + j] = og * tc;
        }
        default: {
            var zp = out[cur + u + j];
            var rp = out[cur + 2u * u + j];
            var e = out[cur + 4u * u + j];
            if p[7] == GRU_AFTER && flag(HAS_BIAS) {
                zp += in2[gu + j];
                rp += in2[gu + u + j];
                e += in2[gu + 2u * u + j];
            }
            let z = act(ra, zp);
            let r = act(ra, rp);
            out[cur + u + j] = z;
            out[cur + 2u * u + j] = r;
            let hp = fwd_prev(b, j);
            if p[7] == GRU_AFTER {
                let gh = act(a, out[cur + 3u * u + j] + r * e);
                out[cur + 4u * u + j] = e;
                out[cur + 3u * u + j] = gh;
                out[cur + j] = z * hp + (1.0 - z) * gh;
            } else {
                var hl = hp;
                if flag(HAS_REC_MASK) {
                    hl = out[cur + sw - u + j];
                }
                out[cur + 4u * u + j] = r * hl;
            }
        }
    }
}

// A reset-before GRU's candidate: += (r * h_prev) · R_h, then h.
@compute @workgroup_size(256)
fn rnn_gru_candidate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let u = p[2];
    if i >= p[0] * u {
        return;
    }
    let b = i / u;
    let j = i % u;
    if skipped(b) {
        return;
    }
    let gu = p[3];
    let cur = row(b) + p[5] * p[4];
    var gh = out[cur + 3u * u + j];
    if has_prev() {
        for (var q = 0u; q < u; q++) {
            gh += out[cur + 4u * u + q] * in1[q * gu + 2u * u + j];
        }
    }
    gh = act(p[8], gh);
    out[cur + 3u * u + j] = gh;
    let z = out[cur + u + j];
    out[cur + j] = z * fwd_prev(b, j) + (1.0 - z) * gh;
}

// ---- backward: out = gradient, in0 = packed, in1 = d packed, in2 = recurrent kernel,
// in3 = scratch (carries dh, dc between steps)

fn bwd_prev(b: u32, k: u32) -> f32 {
    let s = p[5];
    if s > 0u {
        return in0[row(b) + (s - 1u) * p[4] + k];
    }
    return in3[b * p[4] + k];
}

// Start of row b's gradient block at time t.
fn grad_at(b: u32) -> u32 {
    return b * p[12] + p[6] * p[11];
}

// The cell's backward at step s: adds the incoming gradient to the carries and writes the
// gradient of the gate pre-activations.
@compute @workgroup_size(256)
fn rnn_back_cell(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let u = p[2];
    if i >= p[0] * u {
        return;
    }
    let b = i / u;
    let j = i % u;
    let gu = p[3];
    let cur = row(b) + p[5] * p[4];
    let g = grad_at(b);
    let dhi = p[15] + i;
    let dci = p[16] + i;
    let a = p[8];
    let ra = p[9];
    var dh = in3[dhi] + in1[cur + j];
    var dc = in3[dci];
    if p[7] == LSTM {
        dc += in1[cur + u + j];
    }
    if skipped(b) {
        for (var k = 0u; k < p[11]; k += u) {
            out[g + k + j] = 0.0;
        }
        in3[dhi] = dh;
        in3[dci] = dc;
        return;
    }
    switch p[7] {
        case 0u: {
            out[g + j] = deriv(a, in0[cur + j]) * dh;
            dh = 0.0;
        }
        case 1u: {
            let tc = in0[cur + 2u * u + j];
            let ig = in0[cur + 3u * u + j];
            let fg = in0[cur + 4u * u + j];
            let gg = in0[cur + 5u * u + j];
            let og = in0[cur + 6u * u + j];
            dc += dh * og * deriv(a, tc);
            out[g + j] = deriv(ra, ig) * (dc * gg);
            out[g + u + j] = deriv(ra, fg) * (dc * bwd_prev(b, u + j));
            out[g + 2u * u + j] = deriv(a, gg) * (dc * ig);
            out[g + 3u * u + j] = deriv(ra, og) * (dh * tc);
            dc = dc * fg;
            dh = 0.0;
        }
        default: {
            let z = in0[cur + u + j];
            let r = in0[cur + 2u * u + j];
            let hh = in0[cur + 3u * u + j];
            let gz = deriv(ra, z) * (dh * (bwd_prev(b, j) - hh));
            let gh = deriv(a, hh) * (dh * (1.0 - z));
            dh = dh * z;
            out[g + j] = gz;
            out[g + 2u * u + j] = gh;
            if p[7] == GRU_AFTER {
                let gr = deriv(ra, r) * (gh * in0[cur + 4u * u + j]);
                out[g + u + j] = gr;
                out[g + gu + j] = gz;
                out[g + gu + u + j] = gr;
                out[g + gu + 2u * u + j] = gh * r;
            } else {
                // Set by rnn_back_reset once d(r * h_prev) is known.
                out[g + u + j] = 0.0;
            }
        }
    }
    in3[dhi] = dh;
    in3[dci] = dc;
}

// A reset-before GRU: d(r * h_prev) = d(candidate) · R_hᵀ, then r's gradient and h_prev's
// share of it.
@compute @workgroup_size(256)
fn rnn_back_reset(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let u = p[2];
    if i >= p[0] * u {
        return;
    }
    let b = i / u;
    let j = i % u;
    if skipped(b) {
        return;
    }
    let gu = p[3];
    let cur = row(b) + p[5] * p[4];
    let g = grad_at(b);
    var de = 0.0;
    for (var q = 0u; q < u; q++) {
        de += out[g + 2u * u + q] * in2[j * gu + 2u * u + q];
    }
    let r = in0[cur + 2u * u + j];
    let dr = deriv(p[9], r);
    if flag(HAS_REC_MASK) {
        out[g + u + j] = dr * (de * in0[cur + p[4] - u + j]);
        in3[p[15] + i] += de * r * in3[p[13] + i];
    } else {
        out[g + u + j] = dr * (de * bwd_prev(b, j));
        in3[p[15] + i] += de * r;
    }
}

// dh of the step before: += d(gates) · recurrent_kernelᵀ (times the dropout mask).
@compute @workgroup_size(256)
fn rnn_back_carry(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let u = p[2];
    if i >= p[0] * u {
        return;
    }
    let b = i / u;
    let j = i % u;
    let gu = p[3];
    let g = grad_at(b) + p[11] - gu;
    var n = gu;
    if p[7] == GRU_BEFORE {
        n = 2u * u;
    }
    var acc = 0.0;
    for (var q = 0u; q < n; q++) {
        acc += out[g + q] * in2[j * gu + q];
    }
    if flag(HAS_REC_MASK) {
        in3[p[15] + i] += acc * in3[p[13] + i];
    } else {
        in3[p[15] + i] += acc;
    }
}

// The extra last gradient step with initial states: [dh0 | dc0 | 0..].
@compute @workgroup_size(256)
fn rnn_back_init(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let gw = p[11];
    if i >= p[0] * gw {
        return;
    }
    let u = p[2];
    let b = i / gw;
    let k = i % gw;
    var v = 0.0;
    if k < u {
        v = in3[p[15] + b * u + k];
    } else if p[7] == LSTM && k < 2u * u {
        v = in3[p[16] + b * u + k - u];
    }
    out[b * p[12] + p[1] * gw + k] = v;
}

// The recurrent kernel's gradient, one thread per element (i, j): the sum over steps, then
// batch rows, of left[b, i] * d(gates)[b, j]. out = (units, G*u), in0 = packed,
// in1 = gradient, in2 = h0 (a dummy without initial states).
@compute @workgroup_size(256)
fn rnn_kernel_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat(gid, nwg);
    let u = p[2];
    let gu = p[3];
    if idx >= u * gu {
        return;
    }
    let i = idx / gu;
    let j = idx % gu;
    let steps = p[1];
    let sw = p[4];
    let rec_off = p[11] - gu;
    let candidate = p[7] == GRU_BEFORE && j >= 2u * u;
    var first = 1u;
    if flag(HAS_INIT) {
        first = 0u;
    }
    var acc = 0.0;
    for (var s = first; s < steps; s++) {
        var t = s;
        if flag(GO_BACKWARDS) {
            t = steps - 1u - s;
        }
        for (var b = 0u; b < p[0]; b++) {
            let cur = row(b) + s * sw;
            var left = 0.0;
            if candidate {
                left = in0[cur + 4u * u + i];
            } else if flag(HAS_REC_MASK) {
                left = in0[cur + sw - u + i];
            } else if s == 0u {
                left = in2[b * u + i];
            } else {
                left = in0[cur - sw + i];
            }
            acc += left * in1[b * p[12] + t * p[11] + rec_off + j];
        }
    }
    out[idx] = acc;
}

// ---- slices of a (batch, steps, width) buffer.
// p: [n, steps, width, offset, len, taken steps, step (0xffffffff: every step), reverse]

@compute @workgroup_size(256)
fn rnn_slice(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let len = p[4];
    let k = i % len;
    var b = 0u;
    var src = p[6];
    if p[6] == 0xffffffffu {
        let s = (i / len) % p[5];
        b = i / (len * p[5]);
        src = select(s, p[1] - 1u - s, p[7] != 0u);
    } else {
        b = i / len;
    }
    out[i] = in0[(b * p[1] + src) * p[2] + p[3] + k];
}

// The VJP of rnn_slice: dy placed into zeros of the sliced shape (n = its size).
@compute @workgroup_size(256)
fn rnn_unslice(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let w = p[2];
    let len = p[4];
    let k = i % w;
    let st = (i / w) % p[1];
    let b = i / (w * p[1]);
    var v = 0.0;
    if k >= p[3] && k < p[3] + len {
        if p[6] == 0xffffffffu {
            let s = select(st, p[1] - 1u - st, p[7] != 0u);
            if s < p[5] {
                v = in0[(b * p[5] + s) * len + k - p[3]];
            }
        } else if st == p[6] {
            v = in0[b * len + k - p[3]];
        }
    }
    out[i] = v;
}
