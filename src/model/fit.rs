//! The fit, evaluate and predict loops. They run entirely in Rust: batches are gathered
//! into buffers the model keeps (one per x array, per y array and per output's sample
//! weights), so a steady-state epoch allocates nothing. A hook is called after every batch
//! (the Python binding uses it for progress, callbacks and Ctrl-C).

use smallvec::SmallVec;

use super::{Batch, Model, Pass};
use crate::error::Result;
use crate::initializers::Rng;

/// Training or evaluation data: `n` rows of each x array (one per model input) and each y
/// array (one per output, empty for an output without targets), row-major, and optional
/// sample weights per output.
pub struct Dataset<'a> {
    pub x: Vec<&'a [f32]>,
    pub y: Vec<&'a [f32]>,
    pub sw: Vec<Option<&'a [f32]>>,
    pub n: usize,
}

impl<'a> Dataset<'a> {
    /// The data of a one-input, one-output model.
    pub fn single(x: &'a [f32], y: &'a [f32], sw: Option<&'a [f32]>, n: usize) -> Dataset<'a> {
        Dataset {
            x: vec![x],
            y: vec![y],
            sw: vec![sw],
            n,
        }
    }
}

/// What the per-batch hook sees: the logs over the epoch's batches so far (flat, as
/// `Model::log_dims` lays them out).
pub struct BatchEnd<'a> {
    pub batch: usize,
    pub batches: usize,
    pub logs: &'a [f64],
}

/// The logs over the epoch (see `Model::log_names`; flat, as `Model::log_dims` lays them
/// out: a loss is the mean over the samples, a metric its value from the epoch's sums).
pub type EpochLogs = Vec<f64>;

type Logs = SmallVec<[f64; 8]>;
/// Per-array sizes and slices; inline for up to 8 inputs or outputs.
type Sizes = SmallVec<[usize; 8]>;
type Slices<'a> = SmallVec<[&'a [f32]; 8]>;

/// What the batch loop does with each batch.
enum Work<'o, 'a> {
    /// Runs the training graph (a training step, or a test batch) and sums its logs.
    Logs(Pass),
    /// Writes each output's rows into `outs` (`per` values a row).
    Predict {
        outs: &'o mut [&'a mut [f32]],
        per: Sizes,
    },
}

/// What the loops call after every batch.
pub trait Hook {
    /// Whether the next `batch_end` needs current logs (on a GPU, reading them back is a
    /// synchronisation, so a hook that only checks for Ctrl-C says no).
    fn wants_logs(&mut self, _batch: usize, _batches: usize) -> bool {
        true
    }

    fn batch_end(&mut self, b: &BatchEnd<'_>) -> Result<()>;
}

/// A hook that does nothing (Rust callers without progress or callbacks).
pub struct NoHook;

impl Hook for NoHook {
    fn wants_logs(&mut self, _batch: usize, _batches: usize) -> bool {
        false
    }

    fn batch_end(&mut self, _b: &BatchEnd<'_>) -> Result<()> {
        Ok(())
    }
}

fn check_batch_size(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return crate::value_error!("Invalid value received for argument `batch_size`. Expected an integer > 0. Received: batch_size=0");
    }
    Ok(())
}

/// `x`, or `x[i]` when the model has several arrays of that kind.
fn array_name(what: &str, i: usize, count: usize) -> String {
    if count == 1 {
        what.to_string()
    } else {
        format!("{what}[{i}]")
    }
}

impl Model {
    /// Validates a batch handed over whole (`train_on_batch`, `test_on_batch`).
    pub fn fit_check(&self, d: &Dataset<'_>) -> Result<()> {
        self.check_dataset(d, true).map(|_| ())
    }

    /// Values per sample of each x array.
    fn x_sizes(&self) -> Sizes {
        (0..self.inputs.len())
            .map(|i| self.input_shape(i).dims.iter().product())
            .collect()
    }

    fn check_dataset(&self, d: &Dataset<'_>, with_y: bool) -> Result<(Sizes, Sizes)> {
        if d.n == 0 {
            return crate::value_error!("Expected a non-empty dataset, received 0 samples");
        }
        let xper = self.x_sizes();
        if d.x.len() != xper.len() {
            return crate::value_error!(
                "x: the model has {} inputs, received {} arrays",
                xper.len(),
                d.x.len()
            );
        }
        for (i, (x, &per)) in d.x.iter().zip(&xper).enumerate() {
            if x.len() != d.n * per {
                return crate::value_error!(
                    "{}: expected {per} values per sample, received {} for {} samples",
                    array_name("x", i, xper.len()),
                    x.len(),
                    d.n
                );
            }
        }
        if !with_y {
            return Ok((xper, Sizes::new()));
        }
        let n_out = self.outputs.len();
        if d.y.len() != n_out || d.sw.len() != n_out {
            return crate::value_error!(
                "y: the model has {n_out} outputs, received {} target arrays and {} sample-weight entries",
                d.y.len(),
                d.sw.len()
            );
        }
        let mut yper = Sizes::new();
        for i in 0..n_out {
            let per: usize = if self.has_labels(i)? {
                self.label_dims(i)?.iter().product()
            } else {
                0
            };
            if d.y[i].len() != d.n * per {
                return crate::value_error!(
                    "{}: expected {per} values per sample, received {} for {} samples",
                    array_name("y", i, n_out),
                    d.y[i].len(),
                    d.n
                );
            }
            if let Some(sw) = d.sw[i] {
                if sw.len() != d.n {
                    return crate::value_error!(
                        "{}: expected {} values, received {}",
                        array_name("sample_weight", i, n_out),
                        d.n,
                        sw.len()
                    );
                }
            }
            yper.push(per);
        }
        Ok((xper, yper))
    }

    /// Sizes the reused buffers for `rows` rows of every array (they only grow).
    fn ensure_buffers(&mut self, rows: usize, xper: &[usize], yper: &[usize]) {
        fn fit(bufs: &mut Vec<Vec<f32>>, lens: impl ExactSizeIterator<Item = usize>, fill: f32) {
            if bufs.len() < lens.len() {
                bufs.resize_with(lens.len(), Vec::new);
            }
            for (b, len) in bufs.iter_mut().zip(lens) {
                if b.len() < len {
                    b.resize(len, fill);
                }
            }
        }
        fit(&mut self.bx, xper.iter().map(|p| rows * p), 0.0);
        fit(&mut self.by, yper.iter().map(|p| rows * p), 0.0);
        fit(&mut self.bw, (0..self.outputs.len()).map(|_| rows), 1.0);
    }

    /// One pass over the data in batches (shuffled when asked), updating the weights.
    pub fn fit_epoch(
        &mut self,
        d: &Dataset<'_>,
        batch_size: usize,
        shuffle: bool,
        hook: &mut dyn Hook,
    ) -> Result<EpochLogs> {
        self.epoch += 1;
        let mut order: Vec<usize> = (0..d.n).collect();
        if shuffle {
            let mut rng = Rng::new(self.seed ^ self.epoch.wrapping_mul(0x9e37_79b9));
            for i in (1..d.n).rev() {
                order.swap(i, rng.below(i + 1));
            }
        }
        self.run_batches(Work::Logs(Pass::Train), d, batch_size, Some(&order), hook)
    }

    /// The logs over the data in inference mode (batch-size-weighted means).
    pub fn evaluate(
        &mut self,
        d: &Dataset<'_>,
        batch_size: usize,
        hook: &mut dyn Hook,
    ) -> Result<EpochLogs> {
        self.run_batches(Work::Logs(Pass::Test), d, batch_size, None, hook)
    }

    /// The batch loop of `fit_epoch`, `evaluate` and `predict`: rows in `order` (or in
    /// sequence) are gathered into the model's reused buffers (or on the GPU, from a dataset
    /// kept there), and each batch runs the training graph, its logs accumulating on the
    /// model's device (read back when the hook asks for them and at the end), or the forward
    /// graph, its outputs written to the caller's buffers.
    fn run_batches(
        &mut self,
        mut work: Work<'_, '_>,
        d: &Dataset<'_>,
        batch_size: usize,
        order: Option<&[usize]>,
        hook: &mut dyn Hook,
    ) -> Result<EpochLogs> {
        check_batch_size(batch_size)?;
        let with_y = matches!(work, Work::Logs(_));
        let (xper, yper) = self.check_dataset(d, with_y)?;
        let bs = batch_size.min(d.n);
        if order.is_some() {
            self.ensure_buffers(bs, &xper, &yper);
        } else {
            self.ensure_buffers(bs, &[], &[]);
        }
        let (n_logs, resident) = if with_y {
            self.ensure_train_graph()?;
            self.reset_log_sums()?;
            (self.log_width()?, self.resident_index(d)?)
        } else {
            (0, None)
        };
        if let Some(index) = resident {
            match order {
                Some(order) => self.set_resident_order(index, order),
                None => self.set_resident_order(index, &(0..d.n).collect::<Vec<_>>()),
            }
        }
        let batches = d.n.div_ceil(bs);
        let mut running: Logs = SmallVec::from_elem(0.0, n_logs);
        let mut bx = std::mem::take(&mut self.bx);
        let mut by = std::mem::take(&mut self.by);
        let mut bw = std::mem::take(&mut self.bw);
        let mut seen = 0;
        let result = (|| -> Result<()> {
            for b in 0..batches {
                let (lo, hi) = (b * bs, ((b + 1) * bs).min(d.n));
                let m = hi - lo;
                let (xs, ys, sws): (Slices<'_>, Slices<'_>, Slices<'_>);
                let data = match (resident, order) {
                    // The rows are gathered on the GPU.
                    (Some(index), _) => Batch::Resident { index, start: lo },
                    (None, Some(order)) => {
                        let rows = &order[lo..hi];
                        for ((buf, src), &p) in bx.iter_mut().zip(&d.x).zip(&xper) {
                            gather_rows(buf, src, p, rows);
                        }
                        for ((buf, src), &p) in by.iter_mut().zip(&d.y).zip(&yper) {
                            gather_rows(buf, src, p, rows);
                        }
                        for (buf, sw) in bw.iter_mut().zip(&d.sw) {
                            for (k, &r) in rows.iter().enumerate() {
                                buf[k] = sw.map_or(1.0, |w| w[r]);
                            }
                        }
                        xs = bx.iter().zip(&xper).map(|(v, p)| &v[..m * p]).collect();
                        ys = by.iter().zip(&yper).map(|(v, p)| &v[..m * p]).collect();
                        sws = bw.iter().zip(&d.sw).map(|(v, _)| &v[..m]).collect();
                        Batch::Host {
                            xs: &xs,
                            ys: &ys,
                            sws: &sws,
                        }
                    }
                    (None, None) => {
                        for (buf, sw) in bw.iter_mut().zip(&d.sw) {
                            match sw {
                                Some(w) => buf[..m].copy_from_slice(&w[lo..hi]),
                                None => buf[..m].fill(1.0),
                            }
                        }
                        xs =
                            d.x.iter()
                                .zip(&xper)
                                .map(|(v, p)| &v[lo * p..hi * p])
                                .collect();
                        ys =
                            d.y.iter()
                                .zip(&yper)
                                .map(|(v, p)| &v[lo * p..hi * p])
                                .collect();
                        sws = bw.iter().zip(&d.sw).map(|(v, _)| &v[..m]).collect();
                        Batch::Host {
                            xs: &xs,
                            ys: &ys,
                            sws: &sws,
                        }
                    }
                };
                seen += m;
                match &mut work {
                    Work::Logs(pass) => {
                        self.step(*pass, data, m)?;
                        if hook.wants_logs(b, batches) {
                            self.read_logs(&mut running, seen)?;
                        }
                    }
                    Work::Predict { outs, per } => {
                        let Batch::Host { xs, .. } = data else {
                            unreachable!("prediction reads host arrays")
                        };
                        let mut o: SmallVec<[&mut [f32]; 8]> = outs
                            .iter_mut()
                            .zip(per.iter())
                            .map(|(v, p)| &mut v[lo * p..hi * p])
                            .collect();
                        self.predict_batch(xs, m, &mut o)?;
                    }
                }
                hook.batch_end(&BatchEnd {
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
        if with_y {
            self.read_logs(&mut running, seen)?;
        }
        Ok(running.to_vec())
    }

    /// Every output for `n` rows of the inputs `xs`; output `i` is written row-major into
    /// `outs[i]`.
    pub fn predict(
        &mut self,
        xs: &[&[f32]],
        n: usize,
        batch_size: usize,
        outs: &mut [&mut [f32]],
        hook: &mut dyn Hook,
    ) -> Result<()> {
        let oper: Sizes = (0..self.outputs.len())
            .map(|i| self.output_shape(i).dims.iter().product())
            .collect();
        if outs.len() != oper.len() {
            return crate::value_error!(
                "predict: the model has {} outputs, received {} buffers",
                oper.len(),
                outs.len()
            );
        }
        for (i, (out, &p)) in outs.iter().zip(&oper).enumerate() {
            if out.len() != n * p {
                return crate::value_error!(
                    "predict: output buffer {i} holds {} values, expected {}",
                    out.len(),
                    n * p
                );
            }
        }
        let d = Dataset {
            x: xs.to_vec(),
            y: Vec::new(),
            sw: Vec::new(),
            n,
        };
        self.run_batches(
            Work::Predict { outs, per: oper },
            &d,
            batch_size,
            None,
            hook,
        )?;
        Ok(())
    }
}

/// Copies rows `rows` of `src` (`per` values each) to the front of `buf`.
fn gather_rows(buf: &mut [f32], src: &[f32], per: usize, rows: &[usize]) {
    for (k, &r) in rows.iter().enumerate() {
        buf[k * per..(k + 1) * per].copy_from_slice(&src[r * per..(r + 1) * per]);
    }
}
