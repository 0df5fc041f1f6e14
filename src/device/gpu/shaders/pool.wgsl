// Max and average pooling over three spatial axes (1-D and 2-D pad the front axes with 1s),
// as `ops::pool` computes them: a window's in-range positions are walked in (z, y, x) order,
// padded positions never win a max and are not counted in an average, and max pooling's
// gradient goes to each window's first maximum.
//
// p (both entries): [n, channels_first, c, in[3], out[3], pool[3], strides[3], pad[3], is_max]
// where pad is the front padding of each axis and n the number of threads.

fn neg_inf() -> f32 {
    var bits = 0xff800000u;
    return bitcast<f32>(bits);
}

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// Whether `v` takes the window's best `best` so far: it is larger, or NaN (the first NaN
// wins and stays, as on the CPU; spelt out, since WGSL may drop NaN from comparisons' sense).
fn beats(v: f32, best: f32) -> bool {
    return !is_nan(best) && (v > best || is_nan(v));
}

// The in-range input positions [lo, hi) of output position `o`'s window along axis `a`.
fn window(o: u32, a: u32) -> vec2<u32> {
    let start = i32(o * p[12u + a]) - i32(p[15u + a]);
    let lo = max(start, 0);
    let hi = min(max(start + i32(p[9u + a]), 0), i32(p[3u + a]));
    return vec2<u32>(u32(lo), u32(max(hi, lo)));
}

// Spatial index of (z, y, x) in a sample's input.
fn in_pos(z: u32, y: u32, x: u32) -> u32 {
    return (z * p[4] + y) * p[5] + x;
}

// Output position `sp`'s windows along the three axes.
fn windows(sp: u32) -> array<vec2<u32>, 3> {
    let ox = sp % p[8];
    let oy = (sp / p[8]) % p[7];
    let oz = sp / (p[8] * p[7]);
    return array<vec2<u32>, 3>(window(oz, 0u), window(oy, 1u), window(ox, 2u));
}

// The input index of the first maximum of a window: x at `base + s * ss` for in-range s.
fn first_max(w: array<vec2<u32>, 3>, base: u32, ss: u32) -> u32 {
    var best_s = in_pos(w[0].x, w[1].x, w[2].x);
    var best = in0[base + best_s * ss];
    for (var z = w[0].x; z < w[0].y; z++) {
        for (var y = w[1].x; y < w[1].y; y++) {
            for (var x = w[2].x; x < w[2].y; x++) {
                let s = in_pos(z, y, x);
                let v = in0[base + s * ss];
                if beats(v, best) {
                    best = v;
                    best_s = s;
                }
            }
        }
    }
    return best_s;
}

fn count(w: array<vec2<u32>, 3>) -> u32 {
    return (w[0].y - w[0].x) * (w[1].y - w[1].x) * (w[2].y - w[2].x);
}

// One thread per output element (sample, position, channel).
@compute @workgroup_size(256)
fn pool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let cf = p[1] != 0u;
    let c = p[2];
    let s_in = p[3] * p[4] * p[5];
    let p_out = p[6] * p[7] * p[8];
    let b = i / (p_out * c);
    let r = i % (p_out * c);
    let sp = select(r / c, r % p_out, cf);
    let ci = select(r % c, r / p_out, cf);
    // (spatial stride, base) of this channel of this sample in x.
    let ss = select(c, 1u, cf);
    let base = b * s_in * c + ci * select(1u, s_in, cf);
    let w = windows(sp);
    let is_max = p[18] != 0u;
    // A max folded from -inf where a NaN wins the window, as on the CPU.
    var acc = select(0.0, neg_inf(), is_max);
    for (var z = w[0].x; z < w[0].y; z++) {
        for (var y = w[1].x; y < w[1].y; y++) {
            for (var x = w[2].x; x < w[2].y; x++) {
                let v = in0[base + in_pos(z, y, x) * ss];
                if is_max {
                    if beats(v, acc) {
                        acc = v;
                    }
                } else {
                    acc += v;
                }
            }
        }
    }
    if !is_max {
        acc = acc / f32(count(w));
    }
    out[i] = acc;
}

// The gradient with respect to x, gathered: one thread per input element walks the windows
// that contain it, in output order, and adds dy (in1) for each window that counts it (every
// one for an average, with 1 / its size; for a max, those whose first maximum it is). No
// thread writes another's element, so the sums need no atomics and are the CPU's, in order.
@compute @workgroup_size(256)
fn pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let cf = p[1] != 0u;
    let c = p[2];
    let s_in = p[3] * p[4] * p[5];
    let p_out = p[6] * p[7] * p[8];
    let b = i / (s_in * c);
    let r = i % (s_in * c);
    let s = select(r / c, r % s_in, cf);
    let ci = select(r % c, r / s_in, cf);
    let ss = select(c, 1u, cf);
    let base = b * s_in * c + ci * select(1u, s_in, cf);
    let dy_base = b * p_out * c;
    let is_max = p[18] != 0u;
    // The output positions [lo, hi] whose windows contain this element, per axis:
    // o * stride - pad <= pos < o * stride - pad + pool.
    let pos = vec3<u32>(s / (p[4] * p[5]), (s / p[5]) % p[4], s % p[5]);
    var lo: array<u32, 3>;
    var hi: array<i32, 3>;
    for (var a = 0u; a < 3u; a++) {
        let t = i32(pos[a] + p[15u + a]);
        let st = i32(p[12u + a]);
        let first = t - i32(p[9u + a]) + 1;
        lo[a] = u32(select((first + st - 1) / st, 0, first <= 0));
        hi[a] = min(t / st, i32(p[6u + a]) - 1);
    }
    var acc = 0.0;
    for (var oz = lo[0]; i32(oz) <= hi[0]; oz++) {
        for (var oy = lo[1]; i32(oy) <= hi[1]; oy++) {
            for (var ox = lo[2]; i32(ox) <= hi[2]; ox++) {
                let sp = (oz * p[7] + oy) * p[8] + ox;
                let g = in1[dy_base + select(sp * c + ci, ci * p_out + sp, cf)];
                let w = array<vec2<u32>, 3>(window(oz, 0u), window(oy, 1u), window(ox, 2u));
                if is_max {
                    if first_max(w, base, ss) == s {
                        acc += g;
                    }
                } else {
                    acc += g * (1.0 / f32(count(w)));
                }
            }
        }
    }
    // A ReLU's gradient on the pooled input (`Op::PoolReluGrad`): zero where x <= 0.
    if p[19] != 0u && !(in0[base + s * ss] > 0.0) {
        acc = 0.0;
    }
    out[i] = acc;
}
