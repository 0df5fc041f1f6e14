//! Training data kept on the GPU. When a dataset fits, `fit` uploads it once and every batch
//! is gathered on the device by a `gather_rows` dispatch from the epoch's row order (also on
//! the device), so a step moves no data across the bus. A dataset too large to bind streams
//! instead: each batch is gathered on the host and written to the program's feed buffers.
//!
//! Datasets are recognised by the addresses and lengths of their arrays and a fingerprint of
//! a few of their values (a new array allocated where a freed one was, with other values, is
//! not mistaken for it); the cache holds the two most recent (the training and the validation
//! data of one `fit`) and is emptied when `fit` returns (`Model::release_data`), so arrays
//! changed between calls are read afresh.

use std::sync::{Arc, Weak};

use super::fit::Dataset;
use crate::device::gpu::{kernels, GpuBuffer, GpuContext, Recorder};
use crate::error::Result;

/// Most bytes of one dataset kept on the GPU (larger ones, and those of 2^24 rows or more,
/// stream).
pub(super) const DEFAULT_LIMIT: usize = 2 << 30;

pub(super) struct Resident {
    key: Vec<(usize, usize, u64)>,
    /// The training graph's feeds, in its order: each x, then labels and sample weights of
    /// each output with targets.
    pub arrays: Vec<GpuBuffer>,
    /// Values per row of each array.
    pub pers: Vec<usize>,
    /// The current row order, as whole floats (exact: datasets have fewer than 2^24 rows).
    pub order: GpuBuffer,
    /// Distinguishes uploads, so that recorded gathers know when they are stale.
    pub generation: u64,
    /// The pass whose row order `order` holds (passes over one dataset can nest).
    pub order_owner: Weak<()>,
}

/// A hash of 64 values spread over `a` (FNV-1a over their bits): cheap, and different for
/// another array that happens to reuse the same memory.
fn fingerprint(a: &[f32]) -> u64 {
    let step = (a.len() / 64).max(1);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in a.iter().step_by(step).chain(a.last()) {
        h ^= u64::from(v.to_bits());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn key_of(d: &Dataset<'_>) -> Vec<(usize, usize, u64)> {
    let one = |a: &[f32]| (a.as_ptr() as usize, a.len(), fingerprint(a));
    let sw = d.sw.iter().map(|s| s.map_or((0, 0, 0), one));
    d.x.iter().chain(&d.y).map(|a| one(a)).chain(sw).collect()
}

impl Resident {
    /// Uploads `d`'s arrays in feed order (`labelled[i]`: whether output `i` has targets);
    /// `None` when the dataset is larger than `limit` bytes or than one binding.
    pub fn upload(
        ctx: &Arc<GpuContext>,
        d: &Dataset<'_>,
        labelled: &[bool],
        limit: usize,
        generation: u64,
    ) -> Result<Option<Resident>> {
        let mut arrays: Vec<(&[f32], usize)> = d.x.iter().map(|x| (*x, x.len() / d.n)).collect();
        let ones = vec![1.0f32; d.n];
        for (i, &has) in labelled.iter().enumerate() {
            if has {
                arrays.push((d.y[i], d.y[i].len() / d.n));
                arrays.push((d.sw[i].unwrap_or(&ones), 1));
            }
        }
        let total: usize = arrays.iter().map(|(a, _)| a.len() * 4).sum();
        if total > limit
            || d.n >= 1 << 24
            || arrays
                .iter()
                .any(|(a, _)| a.len() > ctx.max_binding_floats())
        {
            return Ok(None);
        }
        let bufs = arrays
            .iter()
            .map(|(a, _)| ctx.upload(a))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Resident {
            key: key_of(d),
            arrays: bufs,
            pers: arrays.iter().map(|&(_, p)| p).collect(),
            order: ctx.alloc(d.n)?,
            generation,
            order_owner: Weak::new(),
        }))
    }

    pub fn matches(&self, d: &Dataset<'_>) -> bool {
        self.key == key_of(d)
    }

    /// Writes the row order for the coming pass.
    pub fn set_order(&self, ctx: &GpuContext, order: &[usize]) {
        let rows: Vec<f32> = order.iter().map(|&r| r as f32).collect();
        ctx.write(&self.order, &rows);
    }

    /// Records the gathers of one batch into `feeds` (the program's feed buffers, in the
    /// same order as `arrays`); the batch's first row in the order is the run scalar 0.
    pub fn record_gather(&self, rec: &mut Recorder<'_>, feeds: &[GpuBuffer]) {
        for ((src, &per), dst) in self.arrays.iter().zip(&self.pers).zip(feeds) {
            let n = dst.len();
            rec.launch(
                kernels::ELEMENTWISE,
                "gather_rows",
                &[n as u32, per as u32],
                dst,
                &[src, &self.order],
                n,
            );
        }
    }
}
