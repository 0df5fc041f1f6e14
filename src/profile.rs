//! Opt-in timing of the CPU engine's work, op by op, for finding where a step's time goes:
//! set `RUSTKERAS_PROFILE_OPS=1` before the first step, run, then read
//! `rustkeras._core.op_profile()` (which also resets the table). Off, the cost is one
//! relaxed load per op.
//!
//! An op is keyed by its kind and output shape (`MatMul{ta:false,tb:true} [32, 512]`); the
//! optimizer's step, the loops' batch gathers and the other per-step work outside programs
//! are keyed by name. Times are wall-clock, so an op that runs on both cores counts once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static STATE: AtomicU8 = AtomicU8::new(0);
static TABLE: Mutex<Option<HashMap<String, (u64, f64)>>> = Mutex::new(None);

/// Whether `RUSTKERAS_PROFILE_OPS` was set (to anything but empty or `0`) when first asked.
#[inline]
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let on =
                std::env::var("RUSTKERAS_PROFILE_OPS").is_ok_and(|v| !v.is_empty() && v != "0");
            STATE.store(1 + u8::from(on), Ordering::Relaxed);
            on
        }
        s => s == 2,
    }
}

/// A started timer when profiling is on.
#[inline]
pub fn start() -> Option<Instant> {
    enabled().then(Instant::now)
}

/// Adds the time since `started` (if profiling) under the key `key()` builds.
pub fn record(started: Option<Instant>, key: impl FnOnce() -> String) {
    let Some(t) = started else { return };
    let secs = t.elapsed().as_secs_f64();
    let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let e = table
        .get_or_insert_with(HashMap::new)
        .entry(key())
        .or_insert((0, 0.0));
    e.0 += 1;
    e.1 += secs;
}

/// The table as `(key, calls, seconds)`, slowest first; the table starts empty again.
pub fn take() -> Vec<(String, u64, f64)> {
    let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let mut rows: Vec<_> = table
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, (n, s))| (k, n, s))
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    rows
}

/// An op's key: its kind with its parameters (up to the first nested structure) and its
/// output shape.
pub fn op_key(op: &crate::ops::Op, dims: &[usize]) -> String {
    let mut s = format!("{op:?}");
    s.retain(|c| !c.is_whitespace());
    s.truncate(60);
    format!("{s} {dims:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_with_a_timer() {
        record(None, || unreachable!("no key is built without a timer"));
        record(Some(Instant::now()), || "k".into());
        record(Some(Instant::now()), || "k".into());
        let rows = take();
        let k = rows.iter().find(|r| r.0 == "k").expect("recorded");
        assert_eq!(k.1, 2);
        assert!(take().iter().all(|r| r.0 != "k"));
    }
}
