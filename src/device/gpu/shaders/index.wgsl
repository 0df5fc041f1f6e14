// Index ops: the indices of the top k along the last axis, and picking by index tensors
// (numpy's take and take_along_axis) with their scatter-add gradients.
//
// Indices travel as floats holding integers. An index is valid when it is a whole number in
// [-len, len), a negative one counting from the end; the CPU kernels (`ops/take.rs`) give NaN
// for any other where it is read, and so do these. Scatters gather instead of scattering:
// each output element sums its contributions in index order, the CPU's order, without float
// atomics.

// Built at run time: naga refuses NaN literals.
fn nan() -> f32 {
    var bits = 0x7fc00000u;
    return bitcast<f32>(bits);
}

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// The element index `v` names on an axis of `len`, or `len` when `v` is not a valid index.
// (Written with ordered comparisons only, which are false for NaN.)
fn wrap(v: f32, len: u32) -> u32 {
    let n = f32(len);
    if !(v >= -n && v < n && fract(v) == 0.0) {
        return len;
    }
    return u32(select(v, v + n, v < 0.0));
}

// Whether element (a, i) comes before (b, j) in the top-k order: larger first, NaN before
// every number, ties by the lower index.
fn before(a: f32, i: u32, b: f32, j: u32) -> bool {
    let na = is_nan(a);
    let nb = is_nan(b);
    if na != nb {
        return na;
    }
    if !na && a != b {
        return a > b;
    }
    return i < j;
}

// One thread per input element: its rank in its row's order is the number of elements that
// come before it; the elements of rank < k write their index there. p: [n, c, k]
@compute @workgroup_size(256)
fn top_k(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if e >= p[0] {
        return;
    }
    let c = p[1];
    let r = e / c;
    let j = e % c;
    let v = in0[e];
    var rank = 0u;
    for (var i = 0u; i < c; i++) {
        if before(in0[r * c + i], i, v, j) {
            rank += 1u;
        }
    }
    if rank < p[2] {
        out[r * p[2] + rank] = f32(j);
    }
}

// out[r, j] = in0[r, in1[r, j]] (x rows of c, index rows of m). p: [n, c, m]
@compute @workgroup_size(256)
fn take_along(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if e >= p[0] {
        return;
    }
    let c = p[1];
    let a = wrap(in1[e], c);
    if a < c {
        out[e] = in0[(e / p[2]) * c + a];
    } else {
        out[e] = nan();
    }
}

// out[r, col] = sum of in0[r, j] (dy) over the j with in1[r, j] naming col; a NaN row when
// any of its indices is invalid. p: [n, c, m]
@compute @workgroup_size(256)
fn scatter_along(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if e >= p[0] {
        return;
    }
    let c = p[1];
    let m = p[2];
    let r = e / c;
    let col = e % c;
    var acc = 0.0;
    for (var j = 0u; j < m; j++) {
        let a = wrap(in1[r * m + j], c);
        if a == c {
            out[e] = nan();
            return;
        }
        if a == col {
            acc += in0[r * m + j];
        }
    }
    out[e] = acc;
}

// numpy's take: x seen as (outer, len, inner), m indices, out as (outer, m, inner).
// p: [n, len, inner, m]
@compute @workgroup_size(256)
fn take(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if e >= p[0] {
        return;
    }
    let len = p[1];
    let inner = p[2];
    let m = p[3];
    let i = e % inner;
    let t = e / inner;
    let a = wrap(in1[t % m], len);
    if a < len {
        out[e] = in0[((t / m) * len + a) * inner + i];
    } else {
        out[e] = nan();
    }
}

// The gradient of `take`, one thread per element (o, a, i) of x: the sum of dy[o, j, i] over
// the indices j naming a, NaN throughout when any index is invalid. in0 = dy, in1 = indices.
// p: [n, len, inner, m]
@compute @workgroup_size(256)
fn take_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat(gid, nwg);
    if e >= p[0] {
        return;
    }
    let len = p[1];
    let inner = p[2];
    let m = p[3];
    let i = e % inner;
    let t = e / inner;
    let a = t % len;
    let o = t / len;
    var acc = 0.0;
    for (var j = 0u; j < m; j++) {
        let w = wrap(in1[j], len);
        if w == len {
            out[e] = nan();
            return;
        }
        if w == a {
            acc += in0[(o * m + j) * inner + i];
        }
    }
    out[e] = acc;
}

// Indices made non-negative (NaN for an invalid one), for the embedding's sorted scatter.
// p: [m, len]
@compute @workgroup_size(256)
fn wrap_indices(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat(gid, nwg);
    if j >= p[0] {
        return;
    }
    let a = wrap(in0[j], p[1]);
    if a < p[1] {
        out[j] = f32(a);
    } else {
        out[j] = nan();
    }
}
