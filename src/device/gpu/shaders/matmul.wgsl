// C (M x N) = A' (M x K) * B' (K x N), where A'[m, k] = in0[m * sam + k * sak] and
// B'[k, n] = in1[k * sbk + n * sbn], so every transpose form is a choice of strides.
// A workgroup computes a 64 x 64 tile of C with 256 threads, 4 x 4 outputs each, staging
// 16-deep slices of A and B in workgroup memory. Edges are bounds-checked.
// p: [M, N, K, sam, sak, sbk, sbn]; `batch_matmul` adds a grid of products (see there).

const TILE: u32 = 64u;
const DEPTH: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [DEPTH][TILE]
var<workgroup> b_tile: array<f32, 1024>; // [DEPTH][TILE]

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    tile(wid, lid, 0u, 0u, 0u);
}

// One product of a batch per workgroup layer z: the operands start at offsets found from z's
// position in the broadcast leading axes, the output at z * M * N.
// p: [M, N, K, sam, sak, sbk, sbn, lead_rank, lead_dims[8], a_strides[8], b_strides[8]]
// (the operands' strides over the output's leading axes, in floats, 0 where broadcast)
@compute @workgroup_size(16, 16)
fn batch_matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let rank = p[7];
    var rest = wid.z;
    var a0 = 0u;
    var b0 = 0u;
    for (var k = 0u; k < rank; k++) {
        let ax = rank - 1u - k;
        let d = p[8u + ax];
        let c = rest % d;
        rest = rest / d;
        a0 += c * p[16u + ax];
        b0 += c * p[24u + ax];
    }
    tile(wid, lid, a0, b0, wid.z * p[0] * p[1]);
}

// The 64 x 64 tile (wid.x, wid.y) of C = A' B', with A' and B' read from offsets a0 and b0
// and C written from offset c0.
fn tile(wid: vec3<u32>, lid: vec3<u32>, a0: u32, b0: u32, c0: u32) {
    let m_len = p[0];
    let n_len = p[1];
    let k_len = p[2];
    let sam = p[3];
    let sak = p[4];
    let sbk = p[5];
    let sbn = p[6];
    let row0 = wid.y * TILE;
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
                av = in0[a0 + gm * sam + gk * sak];
            }
            a_tile[kk * TILE + t] = av;
            let gn = col0 + t;
            var bv = 0.0;
            if gk < k_len && gn < n_len {
                bv = in1[b0 + gk * sbk + gn * sbn];
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
    for (var i = 0u; i < 4u; i++) {
        let m = row0 + lid.y * 4u + i;
        if m >= m_len {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = col0 + lid.x * 4u + j;
            if n < n_len {
                out[c0 + m * n_len + n] = acc[i * 4u + j];
            }
        }
    }
}
