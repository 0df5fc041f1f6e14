// Convolution as an implicit GEMM: the tiling of matmul.wgsl (64 x 64 tiles of C, 256
// threads with 4 x 4 outputs each, 16-deep slices staged in workgroup memory), but the tiles
// are gathered straight from the tensors, so the im2col matrix is never stored.
//
// With P output positions and S input positions a sample, T kernel taps, `cols` the im2col
// matrix ((b, p) x (t, ci), zero where a tap falls in the padding), the three products are:
//   conv:        y  ((b, p) x co)  = cols       · k   (k as (t, ci) x co, Keras' layout)
//   grad_kernel: dk ((t, ci) x co) = colsᵀ      · dy  (the sum over samples and positions)
//   grad_input:  dx ((b, s) x ci)  = gather(dy) · kᵀ  (the col2im of dy · kᵀ turned into a
//                gather: input position s meets output position o through tap t when
//                o * stride + t * dilation - pad = s on every axis)
// Each output is one thread's fixed-order sum: no atomics, the same result every run.
//
// p: [M, N, K, mode (0 conv, 1 grad_input, 2 grad_kernel), cin, cout, channels_first,
//     has_bias, P, S, in(3), out(3), kernel(3), stride(3), dilation(3), pad(3)]
// Row tiles run over wid.y and wid.z (a grid taller than the device allows folds into z).

const TILE: u32 = 64u;
const DEPTH: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [DEPTH][TILE]
var<workgroup> b_tile: array<f32, 1024>; // [DEPTH][TILE]

fn sp_in(a: u32) -> u32 { return p[10u + a]; }
fn sp_out(a: u32) -> u32 { return p[13u + a]; }
fn ksize(a: u32) -> u32 { return p[16u + a]; }
fn stride(a: u32) -> u32 { return p[19u + a]; }
fn dilation(a: u32) -> u32 { return p[22u + a]; }
fn pad(a: u32) -> u32 { return p[25u + a]; }

// (z, y, x) of flat index `i` over dims d.
fn unflatten(i: u32, d: vec3<u32>) -> vec3<u32> {
    return vec3<u32>(i / (d.y * d.z), (i / d.z) % d.y, i % d.z);
}

fn taps_of(t: u32) -> vec3<u32> {
    return unflatten(t, vec3<u32>(ksize(0u), ksize(1u), ksize(2u)));
}

// x (in0) under tap t of output position o of sample b, channel ci; 0 in the padding.
fn x_tap(b: u32, o: u32, t: u32, ci: u32) -> f32 {
    let os = unflatten(o, vec3<u32>(sp_out(0u), sp_out(1u), sp_out(2u)));
    let ks = taps_of(t);
    var s = 0u;
    for (var a = 0u; a < 3u; a++) {
        let i = i32(os[a] * stride(a) + ks[a] * dilation(a)) - i32(pad(a));
        if i < 0 || i >= i32(sp_in(a)) {
            return 0.0;
        }
        s = s * sp_in(a) + u32(i);
    }
    let cin = p[4];
    let big_s = p[9];
    if p[6] == 1u {
        return in0[(b * cin + ci) * big_s + s];
    }
    return in0[(b * big_s + s) * cin + ci];
}

// Offset of dy's element (sample b, output position o, channel co).
fn dy_index(b: u32, o: u32, co: u32) -> u32 {
    let cout = p[5];
    let big_p = p[8];
    if p[6] == 1u {
        return (b * cout + co) * big_p + o;
    }
    return (b * big_p + o) * cout + co;
}

// dy (in0) at the output position that tap t of the kernel joins to input position s of
// sample b, channel co; 0 where no output position does.
fn dy_tap(b: u32, s: u32, t: u32, co: u32) -> f32 {
    let ss = unflatten(s, vec3<u32>(sp_in(0u), sp_in(1u), sp_in(2u)));
    let ks = taps_of(t);
    var o = 0u;
    for (var a = 0u; a < 3u; a++) {
        let q = i32(ss[a] + pad(a)) - i32(ks[a] * dilation(a));
        let st = i32(stride(a));
        if q < 0 || q % st != 0 || q / st >= i32(sp_out(a)) {
            return 0.0;
        }
        o = o * sp_out(a) + u32(q / st);
    }
    return in0[dy_index(b, o, co)];
}

// A'[m, k] of the mode's product.
fn a_at(m: u32, k: u32) -> f32 {
    let cin = p[4];
    let cout = p[5];
    switch p[3] {
        case 0u: {
            return x_tap(m / p[8], m % p[8], k / cin, k % cin);
        }
        case 1u: {
            return dy_tap(m / p[9], m % p[9], k / cout, k % cout);
        }
        default: {
            return x_tap(k / p[8], k % p[8], m / cin, m % cin);
        }
    }
}

// B'[k, n] of the mode's product.
fn b_at(k: u32, n: u32) -> f32 {
    let cin = p[4];
    let cout = p[5];
    switch p[3] {
        case 0u: {
            return in1[k * cout + n];
        }
        case 1u: {
            // k = (t, co), n = ci: the kernel's element (t, ci, co).
            return in1[((k / cout) * cin + n) * cout + k % cout];
        }
        default: {
            // dy (in1) at k = (b, o), n = co.
            let big_p = p[8];
            if p[6] == 1u {
                return in1[((k / big_p) * cout + n) * big_p + k % big_p];
            }
            return in1[k * cout + n];
        }
    }
}

// Where C[m, n] goes in `out`.
fn out_index(m: u32, n: u32) -> u32 {
    let cf = p[6] == 1u;
    switch p[3] {
        case 0u: {
            let big_p = p[8];
            if cf {
                return ((m / big_p) * p[5] + n) * big_p + m % big_p;
            }
            return m * p[5] + n;
        }
        case 1u: {
            let big_s = p[9];
            if cf {
                return ((m / big_s) * p[4] + n) * big_s + m % big_s;
            }
            return m * p[4] + n;
        }
        default: {
            return m * p[5] + n;
        }
    }
}

@compute @workgroup_size(16, 16)
fn conv(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let m_len = p[0];
    let n_len = p[1];
    let k_len = p[2];
    let row0 = (wid.y + wid.z * nwg.y) * TILE;
    if row0 >= m_len {
        return;
    }
    let col0 = wid.x * TILE;
    let tid = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < k_len; k0 += DEPTH) {
        for (var l = 0u; l < 4u; l++) {
            let e = tid + l * 256u;
            let t = e % TILE;
            let kk = e / TILE;
            let gk = k0 + kk;
            let gm = row0 + t;
            var av = 0.0;
            if gm < m_len && gk < k_len {
                av = a_at(gm, gk);
            }
            a_tile[kk * TILE + t] = av;
            let gn = col0 + t;
            var bv = 0.0;
            if gk < k_len && gn < n_len {
                bv = b_at(gk, gn);
            }
            b_tile[kk * TILE + t] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < DEPTH; kk++) {
            let ab = kk * TILE + lid.y * 4u;
            let bb = kk * TILE + lid.x * 4u;
            let a = vec4<f32>(a_tile[ab], a_tile[ab + 1u], a_tile[ab + 2u], a_tile[ab + 3u]);
            let b = vec4<f32>(b_tile[bb], b_tile[bb + 1u], b_tile[bb + 2u], b_tile[bb + 3u]);
            for (var i = 0u; i < 4u; i++) {
                acc[i * 4u + 0u] += a[i] * b.x;
                acc[i * 4u + 1u] += a[i] * b.y;
                acc[i * 4u + 2u] += a[i] * b.z;
                acc[i * 4u + 3u] += a[i] * b.w;
            }
        }
        workgroupBarrier();
    }
    let bias = p[3] == 0u && p[7] == 1u;
    for (var i = 0u; i < 4u; i++) {
        let m = row0 + lid.y * 4u + i;
        if m >= m_len {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = col0 + lid.x * 4u + j;
            if n < n_len {
                var v = acc[i * 4u + j];
                if bias {
                    v += in2[n];
                }
                out[out_index(m, n)] = v;
            }
        }
    }
}
