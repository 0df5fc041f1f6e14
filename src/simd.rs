//! The element-wise loops compiled for the widest vectors the CPU has, chosen at run time.
//!
//! The library is built for the x86-64 baseline (SSE2, 4 lanes) so that one wheel runs
//! everywhere; the matrix products pick their own kernels at run time (the `gemm` crate),
//! but the loops of the optimizers, dropout and the element-wise ops would stay on 4-lane
//! code. [`dispatch`] runs a closure inside a function compiled for AVX-512 where the CPU
//! has it, so the closure (inlined there) is vectorised 16 lanes wide.
//!
//! Results do not depend on the choice: Rust never fuses a multiply and an add into an FMA
//! on its own, and `+ - * / sqrt` are correctly rounded at every width, so the wide and the
//! baseline builds compute bit-identical values.

/// Whether this CPU has 16-lane vectors (AVX-512F), detected once.
#[cfg(target_arch = "x86_64")]
pub fn wide() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    static WIDE: AtomicU8 = AtomicU8::new(0);
    match WIDE.load(Ordering::Relaxed) {
        0 => {
            let yes = std::arch::is_x86_feature_detected!("avx512f");
            WIDE.store(1 + u8::from(yes), Ordering::Relaxed);
            yes
        }
        v => v == 2,
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub fn wide() -> bool {
    false
}

/// Runs `f` compiled for AVX-512 where the CPU has it, else as built. `f` and what it calls
/// must inline into it (`#[inline(always)]` on the helpers it calls) for the wide build to
/// reach the loops.
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX-512F (checked by `wide`), the only feature enabled there.
        return unsafe { avx512(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_matches_the_baseline_bit_for_bit() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let run = |x: &[f32]| -> Vec<f32> {
            x.iter()
                .map(|&v| 0.001 * v / (v * v * 0.1 + 1e-7).sqrt() + v * 0.9)
                .collect()
        };
        let wide = dispatch(|| run(&x));
        assert_eq!(wide, run(&x));
    }
}
