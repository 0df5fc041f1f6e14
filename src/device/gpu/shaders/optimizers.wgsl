// The fused optimizer step over one variable, one thread per element: gradient un-scaling,
// clipping, decoupled weight decay and the update rule, each element read and written once;
// before it, gradient accumulation, and after it, the weights' moving average.
// update: out = the variable, in0 = its gradient, in1 = its slots (slot k at k * len),
// in2 = squared gradient norms (variable v's at v * norm_stride).
// p: [len, rule, flags, var_index, n_vars, norm_stride]
// run scalars: 0 lr, 1 weight decay, 2 clip kind (0 none, 1 value, 2 norm, 3 global norm),
// 3 clip value, 4 1 / loss scale (1 when accumulating: `accumulate` un-scales), 5..16 the
// rule's scalars (see each rule's `gpu()`), 17 accumulation steps (0: none), 18 1 on a step
// that updates (0 on an accumulation-only step), 19 EMA momentum, 20 1 where the weights take
// their average this step, 22 1 / loss scale.

fn slot(k: u32, i: u32) -> f32 {
    return in1[k * p[0] + i];
}

fn set_slot(k: u32, i: u32, v: f32) {
    in1[k * p[0] + i] = v;
}

fn not_finite(x: f32) -> bool {
    return is_nan(x) || abs(x) > 3.4028235e38;
}

fn nan_of(x: f32) -> f32 {
    var bits = 0x7fc00000u;
    return bitcast<f32>(bits) + 0.0 * x;
}

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// Keras' gradient clipping (see `sweep.rs`'s GradOp). A NaN gradient stays NaN (spelt out:
// WGSL leaves NaN operands of clamp and max unspecified).
fn clip(g: f32) -> f32 {
    let kind = u32(rs(2u));
    let c = rs(3u);
    // The norms were taken before un-scaling.
    let unscale = rs(4u) * rs(4u);
    if kind == 1u {
        return select(clamp(g, -c, c), g, is_nan(g));
    }
    if kind == 2u {
        let ss = in2[p[3] * p[5]] * unscale;
        var norm = ss;
        if ss > 0.0 {
            norm = sqrt(ss);
        }
        var den = max(norm, c);
        if is_nan(norm) {
            den = norm;
        }
        return g * c / den;
    }
    if kind == 3u {
        var total = 0.0;
        for (var k = 0u; k < p[4]; k++) {
            total += in2[k * p[5]] * unscale;
        }
        let norm = sqrt(total);
        if not_finite(norm) {
            return nan_of(g);
        }
        return g * (c * min(1.0 / norm, 1.0 / c));
    }
    return g;
}

// Gradient accumulation (Keras' `gradient_accumulation_steps`): out = the gradient, in0 =
// its running sum (the variable's extra buffer, sum at [0, len)). On an updating step the
// gradient becomes (g + sum) / steps and the sum restarts; otherwise g joins the sum.
// p: [len]
@compute @workgroup_size(256)
fn accumulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    let g = out[i] * rs(22u);
    if rs(18u) != 0.0 {
        out[i] = (g + in0[i]) / rs(17u);
        in0[i] = 0.0;
    } else {
        in0[i] = in0[i] + g;
    }
}

// The weights' moving average (Keras' `use_ema`): out = the variable, in0 = its extra buffer
// (average at [len, 2 len)). p: [len]
@compute @workgroup_size(256)
fn average(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let n = p[0];
    if i >= n {
        return;
    }
    let m = rs(19u);
    let a = m * in0[n + i] + (1.0 - m) * out[i];
    in0[n + i] = a;
    if rs(20u) != 0.0 {
        out[i] = a;
    }
}

// The weights take their averages (at the end of `fit`). p: [len]
@compute @workgroup_size(256)
fn take_average(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] {
        return;
    }
    out[i] = in0[p[0] + i];
}

@compute @workgroup_size(256)
fn update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if i >= p[0] || rs(18u) == 0.0 {
        return;
    }
    let g = clip(in0[i] * rs(4u));
    var w = out[i];
    let wd = rs(1u);
    if wd != 0.0 {
        w -= w * wd * rs(0u);
    }
    let flags = p[2];
    switch p[1] {
        // SGD: lr, momentum; flags 1 momentum, 2 nesterov
        case 0u: {
            let lr = rs(5u);
            let mu = rs(6u);
            if (flags & 1u) == 0u {
                w -= g * lr;
            } else {
                let m = slot(0u, i) * mu - g * lr;
                set_slot(0u, i, m);
                if (flags & 2u) != 0u {
                    w += m * mu - g * lr;
                } else {
                    w += m;
                }
            }
        }
        // RMSprop: lr, rho, 1 - rho, momentum, epsilon; flags 1 momentum, 2 centered
        case 1u: {
            let v = rs(6u) * slot(0u, i) + rs(7u) * (g * g);
            set_slot(0u, i, v);
            var den = v + rs(9u);
            if (flags & 2u) != 0u {
                let a = rs(6u) * slot(2u, i) + rs(7u) * g;
                set_slot(2u, i, a);
                den = v - a * a + rs(9u);
            }
            let inc = rs(5u) * g / sqrt(den);
            if (flags & 1u) != 0u {
                let m = rs(8u) * slot(1u, i) + inc;
                set_slot(1u, i, m);
                w -= m;
            } else {
                w -= inc;
            }
        }
        // Adagrad: lr, epsilon
        case 2u: {
            let acc = slot(0u, i) + g * g;
            set_slot(0u, i, acc);
            w -= rs(5u) * g / sqrt(acc + rs(6u));
        }
        // Adadelta: lr, rho, 1 - rho, epsilon
        case 3u: {
            let rho = rs(6u);
            let rc = rs(7u);
            let eps = rs(8u);
            let eg = rho * slot(0u, i) + rc * (g * g);
            set_slot(0u, i, eg);
            let delta = -(sqrt(slot(1u, i) + eps) * g / sqrt(eg + eps));
            set_slot(1u, i, rho * slot(1u, i) + rc * (delta * delta));
            w += rs(5u) * delta;
        }
        // Adam: alpha, 1 - beta_1, 1 - beta_2, epsilon; flags 1 amsgrad
        case 4u: {
            var m = slot(0u, i);
            var v = slot(1u, i);
            m += (g - m) * rs(6u);
            v += (g * g - v) * rs(7u);
            set_slot(0u, i, m);
            set_slot(1u, i, v);
            var vi = v;
            if (flags & 1u) != 0u {
                vi = max(slot(2u, i), v);
                set_slot(2u, i, vi);
            }
            w -= m * rs(5u) / (sqrt(vi) + rs(8u));
        }
        // Adamax: lr, bias correction, 1 - beta_1, beta_2, epsilon
        case 5u: {
            var m = slot(0u, i);
            m += (g - m) * rs(7u);
            let u = max(rs(8u) * slot(1u, i), abs(g));
            set_slot(0u, i, m);
            set_slot(1u, i, u);
            w -= rs(5u) * m / (rs(6u) * (u + rs(9u)));
        }
        // Nadam: lr, u_t, u_next, 1 - u_product, 1 - u_product_next, bias correction 2,
        // 1 - beta_1, 1 - beta_2, epsilon
        case 6u: {
            var m = slot(0u, i);
            var v = slot(1u, i);
            m += (g - m) * rs(11u);
            v += (g * g - v) * rs(12u);
            set_slot(0u, i, m);
            set_slot(1u, i, v);
            let m_hat = rs(7u) * m / rs(9u) + (1.0 - rs(6u)) * g / rs(8u);
            let v_hat = v / rs(10u);
            w -= m_hat * rs(5u) / (sqrt(v_hat) + rs(13u));
        }
        default: {}
    }
    out[i] = w;
}
