// Embedding: the row gather and its VJP, a deterministic scatter-add of rows.
//
// Indices travel as floats holding integers. An index is valid when it is a whole number
// in [0, rows); the CPU kernels give NaN rows (gather) or a NaN table (scatter) for any
// other, and so do these.

// Built at run time: naga refuses NaN literals.
fn nan() -> f32 {
    var bits = 0x7fc00000u;
    return bitcast<f32>(bits);
}

// The row `v` names in a table of `rows` rows, or `rows` when `v` is not a valid index.
fn row_of(v: f32, rows: u32) -> u32 {
    if v >= 0.0 && v < f32(rows) && fract(v) == 0.0 {
        return u32(v);
    }
    return rows;
}

// out[i, :] = in0[in1[i], :] (table in0 of (rows, d), indices in1).
// p: [n (= indices * d), rows, d]
@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let d = p[2];
    let r = row_of(in1[i / d], p[1]);
    if r < p[1] {
        out[i] = in0[r * d + i % d];
    } else {
        out[i] = nan();
    }
}

// The scatter sorts (row, position) pairs, then sums each row's contiguous run in position
// order. The pairs live in a scratch buffer `out` of 2 * m floats (m, the index count
// rounded up to a power of two): rows in [0, m), positions in [m, 2m), both as floats
// (exact below 2^24).

// Pair k holds (row of in0[k], k); an invalid index sorts after every row (key `rows`),
// and the padding pairs after those (key `rows + 1`).
// p: [m, n (indices), rows]
@compute @workgroup_size(256)
fn sort_init(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = flat(gid, nwg);
    let m = p[0];
    if k >= m {
        return;
    }
    var key = p[2] + 1u;
    if k < p[1] {
        key = row_of(in0[k], p[2]);
    }
    out[k] = f32(key);
    out[m + k] = f32(k);
}

// One compare-exchange step of a bitonic sort of the pairs in `out`, ascending by (row,
// position); positions are distinct, so the order is total and the result unique.
// p: [m, size, stride]
@compute @workgroup_size(256)
fn sort_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let m = p[0];
    let j = i ^ p[2];
    if i >= m || j <= i {
        return;
    }
    let ki = out[i];
    let kj = out[j];
    let pi = out[m + i];
    let pj = out[m + j];
    let greater = ki > kj || (ki == kj && pi > pj);
    let ascending = (i & p[1]) == 0u;
    if greater == ascending {
        out[i] = kj;
        out[j] = ki;
        out[m + i] = pj;
        out[m + j] = pi;
    }
}

// out[r, c] = sum of in0[k, c] over the positions k with index r, added in position order
// from 0 (the CPU's order); all NaN when any index is invalid. in1: the sorted pairs.
// p: [n_out (= rows * d), rows, d, n (indices), m]
@compute @workgroup_size(256)
fn scatter_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = flat(gid, nwg);
    if o >= p[0] {
        return;
    }
    let d = p[2];
    let n = p[3];
    let m = p[4];
    let r = f32(o / d);
    let c = o % d;
    // Invalid indices sort after the valid ones: the last real pair tells.
    if n > 0u && in1[n - 1u] >= f32(p[1]) {
        out[o] = nan();
        return;
    }
    // The first pair whose row is >= r.
    var lo = 0u;
    var hi = n;
    while lo < hi {
        let mid = (lo + hi) / 2u;
        if in1[mid] < r {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    var acc = 0.0;
    for (var k = lo; k < n && in1[k] == r; k++) {
        acc += in0[u32(in1[m + k]) * d + c];
    }
    out[o] = acc;
}
