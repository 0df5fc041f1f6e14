// Batch normalization (ops/norm.rs): x viewed as [outer, c, inner], a value's channel the
// middle index. p: [n, c, inner, outer, eps, scale, center] (n: the threads of a 1-D
// launch, or the values per channel in a per-channel sum).

const NW: u32 = 64u;
var<workgroup> part: array<f32, 64>;

// The index of the k-th value of channel ch.
fn at(k: u32, ch: u32) -> u32 {
    let c = p[1];
    let inner = p[2];
    return ((k / inner) * c + ch) * inner + k % inner;
}

fn channel_of(i: u32) -> u32 {
    return (i / p[2]) % p[1];
}

fn tree_sum(t: u32) {
    for (var s = NW / 2u; s > 0u; s = s / 2u) {
        workgroupBarrier();
        if t < s {
            part[t] = part[t] + part[t + s];
        }
    }
    workgroupBarrier();
}

// out[ch] = mean over the channel of (in0 - in1[ch])^2; a workgroup per channel.
@compute @workgroup_size(64)
fn variance(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let ch = wid.x + wid.y * nwg.x;
    let t = lid.x;
    var s = 0.0;
    if ch < p[1] {
        let m = in1[ch];
        for (var k = t; k < p[0]; k += NW) {
            let d = in0[at(k, ch)] - m;
            s += d * d;
        }
    }
    part[t] = s;
    tree_sum(t);
    if t == 0u && ch < p[1] {
        out[ch] = part[0] / f32(p[0]);
    }
}

// out[ch] = Σ in3 (in0 - in1[ch]) / sqrt(in2[ch] + eps): x, mean, var, dy.
@compute @workgroup_size(64)
fn norm_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let ch = wid.x + wid.y * nwg.x;
    let t = lid.x;
    var s = 0.0;
    if ch < p[1] {
        let m = in1[ch];
        for (var k = t; k < p[0]; k += NW) {
            let i = at(k, ch);
            s += (in0[i] - m) * in3[i];
        }
    }
    part[t] = s;
    tree_sum(t);
    if t == 0u && ch < p[1] {
        out[ch] = part[0] / sqrt(in2[ch] + pf(4u));
    }
}

// The per-channel coefficients m, s, t, k (out, 4c) of the forward pass from mean, var,
// gamma and beta (in0..in3; a missing gamma or beta is bound to mean and not read).
@compute @workgroup_size(256)
fn norm_coefficients(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let ch = flat(gid, nwg);
    let c = p[1];
    if ch >= c {
        return;
    }
    let inv = 1.0 / sqrt(in1[ch] + pf(4u));
    var a = inv;
    if p[5] != 0u {
        a = in2[ch] * inv;
    }
    var b = 0.0;
    if p[6] != 0u {
        b = in3[ch];
    }
    out[ch] = in0[ch];
    out[c + ch] = a;
    out[2u * c + ch] = b;
    out[3u * c + ch] = 0.0;
}

// Turns the coefficients in out into the input gradient's with batch statistics, from
// var, Σdy and Σdy·x̂ (in0..in2): t = s Σdy / n, k = s Σdy·x̂ / (n sqrt(var + eps)).
@compute @workgroup_size(256)
fn norm_grad_coefficients(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let ch = flat(gid, nwg);
    let c = p[1];
    if ch >= c {
        return;
    }
    let n = f32(p[2] * p[3]);
    let inv = 1.0 / sqrt(in0[ch] + pf(4u));
    let a = out[c + ch];
    out[2u * c + ch] = a * in1[ch] / n;
    out[3u * c + ch] = a * inv * in2[ch] / n;
}

// out = (x - m) s + t: x, coefficients.
@compute @workgroup_size(256)
fn norm_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let c = p[1];
    let ch = channel_of(i);
    out[i] = (in0[i] - in1[ch]) * in1[c + ch] + in1[2u * c + ch];
}

// out = s dy - t - (x - m) k: x, dy, coefficients.
@compute @workgroup_size(256)
fn norm_grad_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let c = p[1];
    let ch = channel_of(i);
    out[i] = in2[c + ch] * in1[i] - in2[2u * c + ch] - (in0[i] - in2[ch]) * in2[3u * c + ch];
}
