// Reductions and row-wise kernels. Reductions run one 64-thread workgroup per output
// element and combine partial results in a fixed tree, so results do not depend on
// scheduling (short ones, one thread per output element). Workgroup grids wider than the device allows are split over x and y.

const RW: u32 = 64u;
var<workgroup> part: array<f32, 64>;

fn neg_inf() -> f32 {
    var bits = 0xff800000u;
    return bitcast<f32>(bits);
}

fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// Where a reduction of `kind` starts: -inf for max, +inf for min, 1 for a product, else 0.
fn identity(kind: u32) -> f32 {
    switch kind {
        case 2u: { return neg_inf(); }
        case 4u: { return -neg_inf(); }
        case 5u: { return 1.0; }
        default: { return 0.0; }
    }
}

// Max and min carry NaN, as the CPU's do (spelt out: WGSL leaves a NaN operand of max and
// min unspecified).
fn combine(kind: u32, a: f32, b: f32) -> f32 {
    switch kind {
        case 2u: { return select(a, b, b > a || is_nan(b)); }
        case 4u: { return select(a, b, b < a || is_nan(b)); }
        case 5u: { return a * b; }
        default: { return a + b; }
    }
}

// Tree-combines `part` into part[0]; every thread must call it.
fn tree(kind: u32, t: u32) {
    for (var s = RW / 2u; s > 0u; s = s / 2u) {
        workgroupBarrier();
        if t < s {
            part[t] = combine(kind, part[t], part[t + s]);
        }
    }
    workgroupBarrier();
}

// out[o] = reduce over the reduced index set of in0.
// p: [n_out, kind (0 sum, 1 mean, 2 max, 3 sum of squares, 4 min, 5 product), count, scale,
//     out_rank, red_rank,
//     out_dims[8], out_strides[8], red_dims[8], red_strides[8]]
// (strides are the input's; the output is contiguous over out_dims)
@compute @workgroup_size(64)
fn reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let o = group_index(wid, nwg);
    let t = lid.x;
    let kind = p[1];
    let count = p[2];
    var base = 0u;
    if o < p[0] {
        var rest = o;
        let r = p[4];
        for (var k = 0u; k < r; k++) {
            let ax = r - 1u - k;
            let d = p[6u + ax];
            base += (rest % d) * p[14u + ax];
            rest = rest / d;
        }
    }
    var acc = identity(kind);
    if o < p[0] {
        let rr = p[5];
        for (var j = t; j < count; j += RW) {
            var rest = j;
            var off = base;
            for (var k = 0u; k < rr; k++) {
                let ax = rr - 1u - k;
                let d = p[22u + ax];
                off += (rest % d) * p[30u + ax];
                rest = rest / d;
            }
            let v = in0[off];
            acc = combine(kind, acc, select(v, v * v, kind == 3u));
        }
    }
    part[t] = acc;
    tree(kind, t);
    if t == 0u && o < p[0] {
        var v = part[0];
        if kind == 1u {
            v = v * pf(3u);
        }
        out[o] = v;
    }
}

// `reduce` for short reductions: one thread per output element, combining in index order
// (the CPU's order), so a small count does not leave most of a workgroup idle. Same p.
@compute @workgroup_size(256)
fn reduce_serial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = flat(gid, nwg);
    if o >= p[0] {
        return;
    }
    let kind = p[1];
    var base = 0u;
    var rest = o;
    let r = p[4];
    for (var k = 0u; k < r; k++) {
        let ax = r - 1u - k;
        let d = p[6u + ax];
        base += (rest % d) * p[14u + ax];
        rest = rest / d;
    }
    var acc = identity(kind);
    let rr = p[5];
    for (var j = 0u; j < p[2]; j++) {
        var rest = j;
        var off = base;
        for (var k = 0u; k < rr; k++) {
            let ax = rr - 1u - k;
            let d = p[22u + ax];
            off += (rest % d) * p[30u + ax];
            rest = rest / d;
        }
        let v = in0[off];
        acc = combine(kind, acc, select(v, v * v, kind == 3u));
    }
    if kind == 1u {
        acc = acc * pf(3u);
    }
    out[o] = acc;
}

// The gradient of a product reduction, one thread per reduced group: out[e] = dy[group] *
// (product of the group's other elements), as an exclusive prefix product times an exclusive
// suffix product (no division, so exact at zeros). in0 = x, in1 = dy; same p as `reduce`
// (out is shaped like x, so it shares x's offsets).
@compute @workgroup_size(256)
fn prod_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = flat(gid, nwg);
    if o >= p[0] {
        return;
    }
    var base = 0u;
    var rest = o;
    let r = p[4];
    for (var k = 0u; k < r; k++) {
        let ax = r - 1u - k;
        let d = p[6u + ax];
        base += (rest % d) * p[14u + ax];
        rest = rest / d;
    }
    let rr = p[5];
    let count = p[2];
    var acc = 1.0;
    for (var j = 0u; j < count; j++) {
        let off = base + red_offset(j, rr);
        out[off] = acc;
        acc *= in0[off];
    }
    acc = in1[o];
    for (var jj = 0u; jj < count; jj++) {
        let off = base + red_offset(count - 1u - jj, rr);
        out[off] = out[off] * acc;
        acc *= in0[off];
    }
}

// The input offset of reduced element j (over the reduced dims and strides of `reduce`'s p).
fn red_offset(j: u32, rr: u32) -> u32 {
    var rest = j;
    var off = 0u;
    for (var k = 0u; k < rr; k++) {
        let ax = rr - 1u - k;
        let d = p[22u + ax];
        off += (rest % d) * p[30u + ax];
        rest = rest / d;
    }
    return off;
}

// A cumulative sum (kind 0) or product (kind 1) along an axis of `len`, one thread per line
// (`lines` = outer * inner), in the CPU's order; from the end when `reverse` is 1.
// p: [lines, len, inner, kind, reverse]
@compute @workgroup_size(256)
fn cumulative(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let l = flat(gid, nwg);
    if l >= p[0] {
        return;
    }
    let len = p[1];
    let inner = p[2];
    let base = (l / inner) * len * inner + l % inner;
    var acc = 0.0;
    for (var s = 0u; s < len; s++) {
        var a = s;
        if p[4] == 1u {
            a = len - 1u - s;
        }
        let e = base + a * inner;
        let v = in0[e];
        if s == 0u {
            acc = v;
        } else if p[3] == 0u {
            acc = acc + v;
        } else {
            acc = acc * v;
        }
        out[e] = acc;
    }
}

// Softmax over rows of `c`. p: [rows, c]
@compute @workgroup_size(64)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = group_index(wid, nwg);
    let t = lid.x;
    let c = p[1];
    let live = r < p[0];
    let base = r * c;
    var m = neg_inf();
    if live {
        for (var j = t; j < c; j += RW) {
            m = combine(2u, m, in0[base + j]);
        }
    }
    part[t] = m;
    tree(2u, t);
    m = part[0];
    // A NaN or an infinite maximum makes the row NaN, as `exp(x - max)` does on the CPU
    // (spelt out: lavapipe's exp does not carry NaN).
    let undefined = is_nan(m) || abs(m) == -neg_inf();
    workgroupBarrier();
    var s = 0.0;
    if live {
        for (var j = t; j < c; j += RW) {
            let e = exp(in0[base + j] - m);
            out[base + j] = e;
            s += e;
        }
    }
    part[t] = s;
    tree(0u, t);
    let inv = 1.0 / part[0];
    if live {
        for (var j = t; j < c; j += RW) {
            out[base + j] = select(out[base + j] * inv, nan(), undefined);
        }
    }
}

// dx = y * (dy - sum(dy * y)) per row; in0 = y, in1 = dy. p: [rows, c]
@compute @workgroup_size(64)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = group_index(wid, nwg);
    let t = lid.x;
    let c = p[1];
    let live = r < p[0];
    let base = r * c;
    var s = 0.0;
    if live {
        for (var j = t; j < c; j += RW) {
            s += in0[base + j] * in1[base + j];
        }
    }
    part[t] = s;
    tree(0u, t);
    let dot = part[0];
    if live {
        for (var j = t; j < c; j += RW) {
            out[base + j] = in0[base + j] * (in1[base + j] - dot);
        }
    }
}

// An index held as a float, when it is a whole number inside [0, c).
fn valid_index(v: f32, c: u32) -> bool {
    return v >= 0.0 && v < f32(c) && fract(v) == 0.0;
}

// Built at run time: naga's constant evaluator refuses NaN and infinite literals.
fn nan() -> f32 {
    var bits = 0x7fc00000u;
    return bitcast<f32>(bits);
}

// One thread per row. p: [rows, c]
@compute @workgroup_size(256)
fn argmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat(gid, nwg);
    if r >= p[0] {
        return;
    }
    let c = p[1];
    var best = 0u;
    for (var j = 1u; j < c; j++) {
        if in0[r * c + j] > in0[r * c + best] {
            best = j;
        }
    }
    out[r] = f32(best);
}

// out[r] = in0[r, in1[r]]. p: [rows, c]
@compute @workgroup_size(256)
fn take_last(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat(gid, nwg);
    if r >= p[0] {
        return;
    }
    let c = p[1];
    let i = in1[r];
    if valid_index(i, c) {
        out[r] = in0[r * c + u32(i)];
    } else {
        out[r] = nan();
    }
}

// One thread per output element: out[r, j] = dy[r] where j == idx[r]. in0 = dy, in1 = idx.
// p: [n, c]
@compute @workgroup_size(256)
fn scatter_last(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if e >= p[0] {
        return;
    }
    let c = p[1];
    let r = e / c;
    let i = in1[r];
    if !valid_index(i, c) {
        out[e] = nan();
    } else if u32(i) == e % c {
        out[e] = in0[r];
    } else {
        out[e] = 0.0;
    }
}

// 1 where the target's score is among the top k of its row. in0 = pred, in1 = target.
// p: [rows, c, k]
@compute @workgroup_size(256)
fn in_top_k(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat(gid, nwg);
    if r >= p[0] {
        return;
    }
    let c = p[1];
    let t = in1[r];
    if !valid_index(t, c) {
        out[r] = nan();
        return;
    }
    let v = in0[r * c + u32(t)];
    var above = 0u;
    for (var j = 0u; j < c; j++) {
        if in0[r * c + j] > v {
            above += 1u;
        }
    }
    out[r] = select(0.0, 1.0, above < p[2]);
}
