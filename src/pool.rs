//! Keeping rayon's other workers awake through a loop of short parallel kernels.
//!
//! A training step alternates products split across the pool with short serial work (an
//! activation, a dropout mask, the loss). Rayon puts an idle worker to sleep after a few tens
//! of microseconds, and waking it takes about as long again, so on a batch-32 MLP every
//! product started with its second half waiting for a sleeping thread: a 32x784x512 product
//! ran at 176 GFLOP/s back to back and at 115 after a 40 us gap (two Zen 4 cores).
//! [`busy`] runs a loop while the other workers poll for work instead of sleeping.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Runs `f` on this thread while every other worker of the pool looks for work to steal
/// until `f` returns, yielding its core to the OS between polls so that a machine busy with
/// other work loses little. Outside the pool, or with one worker, just runs `f`.
pub fn busy<R>(f: impl FnOnce() -> R) -> R {
    let Some(me) = rayon::current_thread_index() else {
        return f();
    };
    if rayon::current_num_threads() < 2 {
        return f();
    }
    let done = AtomicBool::new(false);
    rayon::in_place_scope(|scope| {
        scope.spawn_broadcast(|_, ctx| {
            // This thread's own copy runs when it next looks for work (inside a join of
            // `f`, or after it): it must not poll, or `f` could never resume. Nor may a
            // worker running another loop (a second model training in another thread):
            // polling there would hold that loop until this one ends.
            if ctx.index() != me && !LOOPING.get() {
                poll(&done);
            }
        });
        let r = {
            let _looping = Looping::enter();
            f()
        };
        done.store(true, Ordering::Release);
        r
    })
}

thread_local! {
    /// Whether this thread is running a loop under [`busy`].
    static LOOPING: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as running a loop until dropped (also when the loop panics).
struct Looping(bool);

impl Looping {
    fn enter() -> Looping {
        Looping(LOOPING.replace(true))
    }
}

impl Drop for Looping {
    fn drop(&mut self) {
        LOOPING.set(self.0);
    }
}

/// Idle polls between two looks at the clock (and two `sched_yield`s).
const POLLS: u32 = 64;
/// An idle stretch this long between two looks means the OS ran something else on this core:
/// the machine is busy, and polling would only take time from the loop's own threads.
const PREEMPTED: Duration = Duration::from_millis(1);

/// Runs stolen jobs until `done`; between idle polls, spins briefly, and every [`POLLS`]th
/// idle poll hands the core to the OS (`sched_yield`, which returns at once on an otherwise
/// idle core). Stops early, leaving the worker to rayon's own sleep, once it sees it was
/// preempted: with another process on the second core, polling made a batch-32 MLP step
/// 19% slower than rayon's sleeping workers.
fn poll(done: &AtomicBool) {
    let mut idle = 0u32;
    let mut last = Instant::now();
    while !done.load(Ordering::Acquire) {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => {
                idle = 0;
                last = Instant::now();
            }
            _ => {
                idle = idle.wrapping_add(1);
                if idle.is_multiple_of(POLLS) {
                    let now = Instant::now();
                    if now.duration_since(last) > PREEMPTED {
                        return;
                    }
                    last = now;
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn runs_the_loop_and_its_parallel_work_then_lets_the_pool_go() {
        let total = rayon::scope(|_| {
            busy(|| {
                (0..200)
                    .map(|i| (0..10_000u64).into_par_iter().map(|x| x * i).sum::<u64>())
                    .sum::<u64>()
            })
        });
        assert_eq!(
            total,
            (0..200u64).sum::<u64>() * (0..10_000u64).sum::<u64>()
        );
        // Outside the pool it is a plain call.
        assert_eq!(busy(|| 7), 7);
    }

    #[test]
    fn loops_from_several_threads_all_finish() {
        let sums: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3u64)
                .map(|t| {
                    s.spawn(move || {
                        rayon::scope(|_| {
                            busy(|| {
                                (0..100)
                                    .map(|i| {
                                        (0..20_000u64)
                                            .into_par_iter()
                                            .map(|x| x ^ (i + t))
                                            .sum::<u64>()
                                    })
                                    .sum::<u64>()
                            })
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        for (t, got) in sums.into_iter().enumerate() {
            let want: u64 = (0..100)
                .map(|i| (0..20_000u64).map(|x| x ^ (i + t as u64)).sum::<u64>())
                .sum();
            assert_eq!(got, want);
        }
    }
}
