// Elementwise kernels, one thread per output element. Parameter words (`p`) per entry point
// are documented above each; floats travel as their bits.

const SELU_ALPHA: f32 = 1.6732632;
const SELU_SCALE: f32 = 1.050701;
const INV_SQRT2: f32 = 0.70710677;
const INV_SQRT_2PI: f32 = 0.3989423;
const LN_2: f32 = 0.6931472;

fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        return x;
    }
    if x < -20.0 {
        return exp(x);
    }
    return log(1.0 + exp(x));
}

fn expm1(x: f32) -> f32 {
    if abs(x) < 1e-2 {
        return x + 0.5 * x * x + x * x * x / 6.0;
    }
    return exp(x) - 1.0;
}

// Abramowitz & Stegun 7.1.26, as the CPU kernel computes it.
fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let y = 1.0 - poly * exp(-x * x);
    return select(-y, y, x >= 0.0);
}

// Built at run time: naga's constant evaluator refuses NaN and infinite literals.
fn nan() -> f32 {
    var bits = 0x7fc00000u;
    return bitcast<f32>(bits);
}

fn inf() -> f32 {
    var bits = 0x7f800000u;
    return bitcast<f32>(bits);
}

// Whether x is +0 or -0, tested on the bits so that no compiler's float rules can differ.
fn is_zero(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0u;
}

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn log1p(x: f32) -> f32 {
    let u = 1.0 + x;
    if u == 1.0 {
        return x;
    }
    if u == 0.0 || u == inf() {
        return log(u);
    }
    // ln(u) * x / (u - 1) cancels the rounding of 1 + x (Goldberg's correction).
    return log(u) * x / (u - 1.0);
}

// numpy's float power (C's powf): a negative base with a whole exponent keeps the sign an
// odd exponent gives, with a fractional one it is NaN; x^0 and 1^y are 1; zero and infinite
// bases and exponents follow C's special cases.
fn power(a: f32, b: f32) -> f32 {
    if b == 0.0 || a == 1.0 {
        return 1.0;
    }
    // Explicit: lavapipe's exp2 and log2 do not carry NaN through.
    if is_nan(a) || is_nan(b) {
        return nan();
    }
    let m = abs(a);
    if abs(b) == inf() {
        if m == 1.0 {
            return 1.0;
        }
        return select(0.0, inf(), (m > 1.0) == (b > 0.0));
    }
    var r = 0.0;
    if m == 0.0 {
        r = select(inf(), 0.0, b > 0.0);
    } else if m == inf() {
        r = select(0.0, inf(), b > 0.0);
    } else {
        r = exp2(b * log2(m));
    }
    let negative = (bitcast<u32>(a) >> 31u) == 1u;
    if negative {
        if fract(b) != 0.0 {
            return select(nan(), r, m == 0.0 || m == inf());
        }
        if abs(b) < 16777216.0 && abs(b) % 2.0 == 1.0 {
            return -r;
        }
    }
    return r;
}

fn sign_of(x: f32) -> f32 {
    if x > 0.0 {
        return 1.0;
    }
    if x < 0.0 {
        return -1.0;
    }
    return 0.0;
}

// Whether op `code` with parameter `a` maps NaN to NaN: all but the comparisons and
// roundings to a constant (binary_step, logical_not) and `x^0`. Spelt out, since WGSL leaves
// NaN operands of max, min and clamp unspecified and lavapipe's exp and log do not carry NaN.
fn keeps_nan(code: u32, a: f32) -> bool {
    return !(code == 22u || code == 35u || (code == 34u && a == 0.0));
}

// Unary op codes: the order of `kernels::unary_code`.
fn unary(code: u32, x: f32, a: f32, b: f32) -> f32 {
    if is_nan(x) && keeps_nan(code, a) {
        return x;
    }
    switch code {
        case 0u: { return x; }
        case 1u: { return max(x, 0.0); }
        case 2u: { return sigmoid(x); }
        case 3u: { return clamp(x / 6.0 + 0.5, 0.0, 1.0); }
        case 4u: { return tanh(x); }
        case 5u: { return exp(x); }
        case 6u: { return log(x); }
        case 7u: { return -x; }
        case 8u: { return a * x; }
        case 9u: { return x + a; }
        case 10u: { return x * x; }
        case 11u: { return sqrt(x); }
        case 12u: { return abs(x); }
        case 13u: { return sign_of(x); }
        case 14u: { return softplus(x); }
        case 15u: { return x / (1.0 + abs(x)); }
        case 16u: { return select(a * expm1(x), x, x > 0.0); }
        case 17u: { return SELU_SCALE * select(SELU_ALPHA * expm1(x), x, x > 0.0); }
        case 18u: { return select(a * x, x, x >= 0.0); }
        case 19u: { return x * sigmoid(x); }
        case 20u: { return 0.5 * x * (1.0 + erf(x * INV_SQRT2)); }
        case 21u: { return atan(x); }
        case 22u: { return select(0.0, 1.0, x >= 0.0); }
        case 23u: { return min(max(x, a), b); }
        case 24u: { return 1.0 / x; }
        case 25u: { return round(x); }
        case 26u: { return abs(x) + softplus(-2.0 * abs(x)) - LN_2; }
        case 27u: { return floor(x); }
        case 28u: { return ceil(x); }
        case 29u: { return trunc(x); }
        case 30u: { return log1p(x); }
        case 31u: { return expm1(x); }
        case 32u: { return sin(x); }
        case 33u: { return cos(x); }
        case 34u: { return power(x, a); }
        case 35u: { return select(0.0, 1.0, is_zero(x)); }
        default: { return x; }
    }
}

// The slope at NaN is NaN, as on the CPU, except where it is a constant.
fn derivative(code: u32, x: f32, a: f32, b: f32) -> f32 {
    let constant = code == 0u || code == 7u || code == 8u || code == 9u || code == 13u
        || code == 25u || code == 27u || code == 28u || code == 29u || !keeps_nan(code, a);
    if is_nan(x) && !constant {
        return x;
    }
    switch code {
        case 0u, 9u: { return 1.0; }
        case 1u: { return select(0.0, 1.0, x > 0.0); }
        case 2u: { let s = sigmoid(x); return s * (1.0 - s); }
        case 3u: { return select(0.0, 1.0 / 6.0, x > -3.0 && x < 3.0); }
        case 4u: { let t = tanh(x); return 1.0 - t * t; }
        case 5u: { return exp(x); }
        case 6u: { return 1.0 / x; }
        case 7u: { return -1.0; }
        case 8u: { return a; }
        case 10u: { return 2.0 * x; }
        case 11u: { return 0.5 / sqrt(x); }
        case 12u: { return sign_of(x); }
        case 13u, 22u, 25u, 27u, 28u, 29u, 35u: { return 0.0; }
        case 14u: { return sigmoid(x); }
        case 15u: { let d = 1.0 + abs(x); return 1.0 / (d * d); }
        case 16u: { return select(a * exp(x), 1.0, x > 0.0); }
        case 17u: { return SELU_SCALE * select(SELU_ALPHA * exp(x), 1.0, x > 0.0); }
        case 18u: { return select(a, 1.0, x >= 0.0); }
        case 19u: { let s = sigmoid(x); return s + x * s * (1.0 - s); }
        case 20u: { return 0.5 * (1.0 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x); }
        case 21u: { return 1.0 / (1.0 + x * x); }
        case 23u: { return select(0.0, 1.0, x >= a && x <= b); }
        case 24u: { return -1.0 / (x * x); }
        case 26u: { return tanh(x); }
        case 30u: { return 1.0 / (1.0 + x); }
        case 31u: { return exp(x); }
        case 32u: { return cos(x); }
        case 33u: { return -sin(x); }
        case 34u: { return select(a * power(x, a - 1.0), 0.0, a == 0.0); }
        default: { return 0.0; }
    }
}

// p: [n, code, a, b]
@compute @workgroup_size(256)
fn unary_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    out[i] = unary(p[1], in0[i], pf(2u), pf(3u));
}

// p: [n, code, a, b]; in0 = x, in1 = dy
@compute @workgroup_size(256)
fn unary_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    out[i] = derivative(p[1], in0[i], pf(2u), pf(3u)) * in1[i];
}

// +0 or -0 with the sign of s.
fn signed_zero(s: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(s) & 0x80000000u);
}

// C's fmod. WGSL's `%` is `a - b * trunc(a / b)`, which is NaN for an infinite divisor
// where fmod gives `a`.
fn fmod(a: f32, b: f32) -> f32 {
    if abs(b) == inf() && abs(a) != inf() {
        return a;
    }
    return a % b;
}

// numpy's float divmod, (a // b, a % b), as `ops/elementwise.rs` computes it.
fn divmod(a: f32, b: f32) -> vec2<f32> {
    var m = fmod(a, b);
    if b == 0.0 {
        return vec2<f32>(a / b, nan());
    }
    var div = (a - m) / b;
    if !is_zero(m) {
        if (b < 0.0) != (m < 0.0) {
            m += b;
            div -= 1.0;
        }
    } else {
        m = signed_zero(b);
    }
    var q = signed_zero(a / b);
    if !is_zero(div) {
        q = floor(div);
        if div - q > 0.5 {
            q += 1.0;
        }
    }
    return vec2<f32>(q, m);
}

fn binary(code: u32, a: f32, b: f32) -> f32 {
    switch code {
        case 0u: { return a + b; }
        case 1u: { return a - b; }
        case 2u: { return a * b; }
        case 3u: { return a / b; }
        case 4u: { return select(max(a, b), nan(), is_nan(a) || is_nan(b)); }
        case 5u: { return select(min(a, b), nan(), is_nan(a) || is_nan(b)); }
        case 6u: { return select(0.0, 1.0, a == b); }
        case 7u: { return select(0.0, 1.0, a > b); }
        case 8u: { return select(0.0, 1.0, a >= b); }
        case 9u: { return select(1.0, 0.0, a == b); }
        case 10u: { return select(0.0, 1.0, a < b); }
        case 11u: { return select(0.0, 1.0, a <= b); }
        case 12u: { return power(a, b); }
        case 13u: { return divmod(a, b).y; }
        case 14u: { return divmod(a, b).x; }
        default: { return 0.0; }
    }
}

// p: [n, code, rank, dims[8], a_strides[8], b_strides[8]] (output dims, right-aligned
// broadcast strides of each operand, 0 on a broadcast axis)
@compute @workgroup_size(256)
fn binary_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let rank = p[2];
    var rest = i;
    var ia = 0u;
    var ib = 0u;
    for (var k = 0u; k < rank; k++) {
        let ax = rank - 1u - k;
        let d = p[3u + ax];
        let c = rest % d;
        rest = rest / d;
        ia += c * p[11u + ax];
        ib += c * p[19u + ax];
    }
    out[i] = binary(p[1], in0[ia], in1[ib]);
}

// out = in1 where in0 (the condition) is not zero, else in2, each read through its
// broadcast strides; a NaN condition is not zero.
// p: [n, rank, dims[8], cond_strides[8], a_strides[8], b_strides[8]]
@compute @workgroup_size(256)
fn where_select(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let rank = p[1];
    var rest = i;
    var ic = 0u;
    var ia = 0u;
    var ib = 0u;
    for (var k = 0u; k < rank; k++) {
        let ax = rank - 1u - k;
        let d = p[2u + ax];
        let c = rest % d;
        rest = rest / d;
        ic += c * p[10u + ax];
        ia += c * p[18u + ax];
        ib += c * p[26u + ax];
    }
    if is_zero(in0[ic]) {
        out[i] = in2[ib];
    } else {
        out[i] = in1[ia];
    }
}

// p: [n, value]
@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    out[i] = pf(1u);
}

// Each element's index along an axis of `len`, followed by `inner` elements. p: [n, len, inner]
@compute @workgroup_size(256)
fn iota(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    out[i] = f32((i / p[2]) % p[1]);
}

// `in0` in training, `in1` at inference. p: [n]
@compute @workgroup_size(256)
fn train_select(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    if run.training != 0u {
        out[i] = in0[i];
    } else {
        out[i] = in1[i];
    }
}

// A strided copy: for each index of a view of `rank` dims,
// out[out_off + sum(idx * out_strides)] = scale * in0[in_off + sum(idx * in_strides)].
// p: [n, rank, in_off, out_off, scale, dims[8], in_strides[8], out_strides[8]]
@compute @workgroup_size(256)
fn copy_strided(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let rank = p[1];
    var rest = i;
    var src = p[2];
    var dst = p[3];
    for (var k = 0u; k < rank; k++) {
        let ax = rank - 1u - k;
        let d = p[5u + ax];
        let c = rest % d;
        rest = rest / d;
        src += c * p[13u + ax];
        dst += c * p[21u + ax];
    }
    out[dst] = pf(4u) * in0[src];
}

// A stateful update: out = m * out + (1 - m) * in0 (m = 0 assigns). p: [n, m]
@compute @workgroup_size(256)
fn blend(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let m = pf(1u);
    if m == 0.0 {
        out[i] = in0[i];
    } else {
        out[i] = m * out[i] + (1.0 - m) * in0[i];
    }
}

// Philox4x32-10 (Salmon et al., 2011), with 32x32 -> 64-bit products built from 16-bit halves.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let hl = a_hi * b_lo;
    let lh = a_lo * b_hi;
    let hh = a_hi * b_hi;
    let cross = (ll >> 16u) + (hl & 0xffffu) + (lh & 0xffffu);
    let hi = hh + (hl >> 16u) + (lh >> 16u) + (cross >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var r = 0u; r < 10u; r++) {
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

// Inverted dropout (also its backward pass on the gradient): element i drops when the 16-bit
// half i % 2 of word (i / 2) % 4 of Philox(counter = (i / 8, step, key), key = seed) is below
// `threshold` (rate * 2^16), as `ops/random.rs` draws on the CPU. p: [n, threshold, key_word, scale]
@compute @workgroup_size(256)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    if run.training == 0u {
        out[i] = in0[i];
        return;
    }
    let words = philox(vec4<u32>(i / 8u, run.step_lo, run.step_hi, p[2]), vec2<u32>(run.seed_lo, run.seed_hi));
    let draw = (words[(i / 2u) % 4u] >> (16u * (i % 2u))) & 0xffffu;
    out[i] = select(in0[i] * pf(3u), 0.0, draw < p[1]);
}

// Copies rows of a resident dataset into a batch: out[r * per + j] = in0[idx[r] * per + j],
// with the row indices (whole floats, exact below 2^24) in in1 from the batch's start, which
// the run passes as scalar 0 (it changes every batch). p: [n, per]
@compute @workgroup_size(256)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let per = p[1];
    let r = i / per;
    let row = u32(in1[u32(rs(0u)) + r]);
    out[i] = in0[row * per + i % per];
}

// Adds a batch's log sums (a loss weighted by its row count) to the running sums:
// out[k + i] += m * in0[i] for i < n. p: [k, m, n]
@compute @workgroup_size(256)
fn accumulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[2] {
        return;
    }
    out[p[0] + i] = out[p[0] + i] + pf(1u) * in0[i];
}
