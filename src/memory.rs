//! Asking for large blocks of memory without aborting the process.
//!
//! Rust's global allocator aborts on failure, and Linux overcommits, so a weight of a trillion
//! floats or a batch whose activations need a terabyte would either abort the interpreter or
//! be killed later by the OOM killer. Every allocation whose size comes from the user (weights,
//! a program's activations for a batch, predict's outputs) goes through [`zeros`] or is
//! checked by [`check`] first: the byte count is computed without overflow and compared with
//! the memory the system can still hand out, and the error names what asked for it.

use crate::error::{Error, Result};

/// Below this many bytes a request is not compared with the system's free memory (reading
/// `/proc/meminfo` costs a few microseconds; small blocks are as safe as any other).
const CHECK_ABOVE: usize = 64 << 20;

/// Bytes the system can still give this process: `MemAvailable` plus free swap on Linux;
/// `usize::MAX` where that is unknown (the allocator's own failure is still caught).
pub fn available() -> usize {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return usize::MAX;
    };
    let field = |name: &str| -> Option<usize> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kb: usize = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        kb.checked_mul(1024)
    };
    match field("MemAvailable:") {
        Some(a) => a.saturating_add(field("SwapFree:").unwrap_or(0)),
        None => usize::MAX,
    }
}

/// `n` bytes in the units people read (`12.0 GB`).
pub fn human(n: u128) -> String {
    let units = ["bytes", "KB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// The element count of `dims`, or None when it overflows.
pub fn count(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// The element count of `dims`, or a memory error naming `what` when it overflows (or needs
/// more memory than is available).
pub fn elements(dims: &[usize], what: &dyn Fn() -> String) -> Result<usize> {
    let wide = dims.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128));
    check(wide, what)?;
    usize::try_from(wide).map_err(|_| refuse(wide.saturating_mul(4), usize::MAX, what))
}

fn refuse(bytes: u128, avail: usize, what: &dyn Fn() -> String) -> Error {
    let free = if avail == usize::MAX {
        "the allocator refused it".to_string()
    } else {
        format!("{} is available", human(avail as u128))
    };
    Error::Memory(format!(
        "{} needs {} of memory; {free}",
        what(),
        human(bytes)
    ))
}

/// Ok when `floats` f32 values (a u128, so that sums of large counts cannot overflow) fit in
/// the memory still available; otherwise a memory error naming `what` and both sizes.
pub fn check(floats: u128, what: &dyn Fn() -> String) -> Result<()> {
    let bytes = floats.saturating_mul(4);
    if bytes <= CHECK_ABOVE as u128 {
        return Ok(());
    }
    let avail = available();
    if bytes > avail as u128 {
        return Err(refuse(bytes, avail, what));
    }
    Ok(())
}

/// A zeroed vector of `n` floats, or a memory error naming `what` instead of an abort.
pub fn zeros(n: usize, what: &dyn Fn() -> String) -> Result<Vec<f32>> {
    check(n as u128, what)?;
    let mut v: Vec<f32> = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| refuse(n as u128 * 4, usize::MAX, what))?;
    v.resize(n, 0.0);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_beyond_memory_is_an_error_naming_it() {
        let e = zeros(usize::MAX / 8, &|| "the test's buffer".into()).unwrap_err();
        let Error::Memory(m) = e else { panic!("{e:?}") };
        assert!(m.starts_with("the test's buffer needs "), "{m}");
        assert!(check(u128::MAX, &|| "x".into()).is_err());
    }

    #[test]
    fn small_requests_and_counts() {
        assert_eq!(zeros(5, &|| String::new()).unwrap(), vec![0.0; 5]);
        assert_eq!(count(&[3, 4]), Some(12));
        assert_eq!(count(&[usize::MAX, 2]), None);
        assert_eq!(human(999), "999 bytes");
        assert_eq!(human(12_000_000_000_000), "12.0 TB");
    }
}
