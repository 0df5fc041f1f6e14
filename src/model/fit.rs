//! The fit, evaluate and predict loops. They run entirely in Rust: batches are gathered
//! into buffers the model keeps, so a steady-state epoch allocates nothing. A hook is called
//! after every batch (the Python binding uses it for progress, callbacks and Ctrl-C).

use smallvec::SmallVec;

use super::Model;
use crate::error::Result;
use crate::initializers::Rng;

/// Training or evaluation data: `n` rows of x and y (row-major), optional sample weights.
pub struct Dataset<'a> {
    pub x: &'a [f32],
    pub y: &'a [f32],
    pub sw: Option<&'a [f32]>,
    pub n: usize,
}

/// What the per-batch hook sees: running, batch-size-weighted means of loss and metrics.
pub struct BatchEnd<'a> {
    pub batch: usize,
    pub batches: usize,
    pub logs: &'a [f64],
}

/// Loss, then each metric, averaged over the epoch's samples.
pub type EpochLogs = Vec<f64>;

type Logs = SmallVec<[f64; 8]>;

/// Adds a batch of `m` rows to the sums and updates the running (batch-size-weighted) means.
fn accumulate(sums: &mut Logs, running: &mut Logs, batch: &[f64], m: usize, seen: usize) {
    for ((s, r), &l) in sums.iter_mut().zip(running.iter_mut()).zip(batch) {
        *s += l * m as f64;
        *r = *s / seen as f64;
    }
}

impl Model {
    /// Validates a batch handed over whole (`train_on_batch`, `test_on_batch`).
    pub fn fit_check(&self, d: &Dataset<'_>) -> Result<()> {
        self.check_dataset(d, true).map(|_| ())
    }

    fn check_dataset(&self, d: &Dataset<'_>, with_y: bool) -> Result<(usize, usize)> {
        let xper: usize = self.input_shape().dims.iter().product();
        if d.n == 0 {
            return crate::value_error!("Expected a non-empty dataset, received 0 samples");
        }
        if d.x.len() != d.n * xper {
            return crate::value_error!(
                "x: expected {} values per sample, received {} for {} samples",
                xper,
                d.x.len(),
                d.n
            );
        }
        let yper: usize = if with_y {
            self.label_dims()?.iter().product()
        } else {
            0
        };
        if with_y && d.y.len() != d.n * yper {
            return crate::value_error!(
                "y: expected {} values per sample, received {} for {} samples",
                yper,
                d.y.len(),
                d.n
            );
        }
        if let Some(sw) = d.sw {
            if sw.len() != d.n {
                return crate::value_error!(
                    "sample_weight: expected {} values, received {}",
                    d.n,
                    sw.len()
                );
            }
        }
        Ok((xper, yper))
    }

    fn ensure_buffers(&mut self, rows: usize, xper: usize, yper: usize) {
        if self.bx.len() < rows * xper {
            self.bx.resize(rows * xper, 0.0);
        }
        if self.by.len() < rows * yper {
            self.by.resize(rows * yper, 0.0);
        }
        if self.bw.len() < rows {
            self.bw.resize(rows, 1.0);
        }
    }

    /// One pass over the data in batches (shuffled when asked), updating the weights.
    pub fn fit_epoch(
        &mut self,
        d: &Dataset<'_>,
        batch_size: usize,
        shuffle: bool,
        hook: &mut dyn FnMut(&BatchEnd<'_>) -> Result<()>,
    ) -> Result<EpochLogs> {
        if batch_size == 0 {
            return crate::value_error!("Invalid value received for argument `batch_size`. Expected an integer > 0. Received: batch_size=0");
        }
        let (xper, yper) = self.check_dataset(d, true)?;
        let n_logs = self.log_names()?.len();
        let bs = batch_size.min(d.n);
        self.ensure_buffers(bs, xper, yper);
        self.epoch += 1;
        let mut order: Vec<usize> = (0..d.n).collect();
        if shuffle {
            let mut rng = Rng::new(self.seed ^ self.epoch.wrapping_mul(0x9e37_79b9));
            for i in (1..d.n).rev() {
                order.swap(i, rng.below(i + 1));
            }
        }
        let batches = d.n.div_ceil(bs);
        let mut sums: Logs = SmallVec::from_elem(0.0, n_logs);
        let mut batch_logs: Logs = SmallVec::from_elem(0.0, n_logs);
        let mut running: Logs = SmallVec::from_elem(0.0, n_logs);
        let mut bx = std::mem::take(&mut self.bx);
        let mut by = std::mem::take(&mut self.by);
        let mut bw = std::mem::take(&mut self.bw);
        let mut seen = 0;
        let result = (|| -> Result<()> {
            for b in 0..batches {
                let rows = &order[b * bs..((b + 1) * bs).min(d.n)];
                let m = rows.len();
                for (k, &r) in rows.iter().enumerate() {
                    bx[k * xper..(k + 1) * xper].copy_from_slice(&d.x[r * xper..(r + 1) * xper]);
                    by[k * yper..(k + 1) * yper].copy_from_slice(&d.y[r * yper..(r + 1) * yper]);
                    bw[k] = d.sw.map_or(1.0, |w| w[r]);
                }
                self.train_batch(
                    &bx[..m * xper],
                    &by[..m * yper],
                    &bw[..m],
                    m,
                    &mut batch_logs,
                )?;
                seen += m;
                accumulate(&mut sums, &mut running, &batch_logs, m, seen);
                hook(&BatchEnd {
                    batch: b,
                    batches,
                    logs: &running,
                })?;
            }
            Ok(())
        })();
        self.bx = bx;
        self.by = by;
        self.bw = bw;
        result?;
        Ok(running.to_vec())
    }

    /// Loss and metrics over the data in inference mode (batch-size-weighted means).
    pub fn evaluate(
        &mut self,
        d: &Dataset<'_>,
        batch_size: usize,
        hook: &mut dyn FnMut(&BatchEnd<'_>) -> Result<()>,
    ) -> Result<EpochLogs> {
        if batch_size == 0 {
            return crate::value_error!("Invalid value received for argument `batch_size`. Expected an integer > 0. Received: batch_size=0");
        }
        let (xper, yper) = self.check_dataset(d, true)?;
        let n_logs = self.log_names()?.len();
        let bs = batch_size.min(d.n);
        self.ensure_buffers(bs, 0, 0);
        let batches = d.n.div_ceil(bs);
        let mut sums: Logs = SmallVec::from_elem(0.0, n_logs);
        let mut batch_logs: Logs = SmallVec::from_elem(0.0, n_logs);
        let mut running: Logs = SmallVec::from_elem(0.0, n_logs);
        let mut bw = std::mem::take(&mut self.bw);
        let mut seen = 0;
        let result = (|| -> Result<()> {
            for b in 0..batches {
                let (lo, hi) = (b * bs, ((b + 1) * bs).min(d.n));
                let m = hi - lo;
                match d.sw {
                    Some(w) => bw[..m].copy_from_slice(&w[lo..hi]),
                    None => bw[..m].fill(1.0),
                }
                let (x, y) = (&d.x[lo * xper..hi * xper], &d.y[lo * yper..hi * yper]);
                self.test_batch(x, y, &bw[..m], m, &mut batch_logs)?;
                seen += m;
                accumulate(&mut sums, &mut running, &batch_logs, m, seen);
                hook(&BatchEnd {
                    batch: b,
                    batches,
                    logs: &running,
                })?;
            }
            Ok(())
        })();
        self.bw = bw;
        result?;
        Ok(running.to_vec())
    }

    /// Model outputs for `n` rows of `x`, written row-major into `out`.
    pub fn predict(
        &mut self,
        x: &[f32],
        n: usize,
        batch_size: usize,
        out: &mut [f32],
        hook: &mut dyn FnMut(&BatchEnd<'_>) -> Result<()>,
    ) -> Result<()> {
        if batch_size == 0 {
            return crate::value_error!("Invalid value received for argument `batch_size`. Expected an integer > 0. Received: batch_size=0");
        }
        let (xper, _) = self.check_dataset(
            &Dataset {
                x,
                y: &[],
                sw: None,
                n,
            },
            false,
        )?;
        let oper: usize = self.output_shape().dims.iter().product();
        if out.len() != n * oper {
            return crate::value_error!(
                "predict: output buffer holds {} values, expected {}",
                out.len(),
                n * oper
            );
        }
        let bs = batch_size.min(n);
        let batches = n.div_ceil(bs);
        for b in 0..batches {
            let (lo, hi) = (b * bs, ((b + 1) * bs).min(n));
            self.predict_batch(
                &x[lo * xper..hi * xper],
                hi - lo,
                &mut out[lo * oper..hi * oper],
            )?;
            hook(&BatchEnd {
                batch: b,
                batches,
                logs: &[],
            })?;
        }
        Ok(())
    }
}
