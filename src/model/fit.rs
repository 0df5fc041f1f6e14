//! The fit, evaluate and predict loops. They run entirely in Rust: batches are gathered
//! into buffers the model keeps (one per x array, per y array and per output's sample
//! weights), so a steady-state epoch allocates nothing.
//!
//! A pass over a dataset (an epoch, an evaluation, a prediction) is an [`Epoch`] that the
//! caller holds: `Model::begin_pass` starts it, `Model::run_pass` runs some of its batches
//! and `Model::end_pass` returns its logs. Between two `run_pass` calls the model is free,
//! so that callbacks can read and change it; a [`Hook`] called after every batch decides
//! when `run_pass` returns (the Python binding checks for Ctrl-C there, and pauses for the
//! progress bar and for callbacks). `fit_epoch`, `evaluate` and `predict` run a whole pass.
//!
//! ```
//! use rustkeras::graph::{Graph, Shape};
//! use rustkeras::model::{CompileSpec, Control, Dataset, Hook, Model, OutputSpec, PassKind};
//!
//! let mut g = Graph::new();
//! let x = g.input(Shape::batched(&[1]));
//! let w = g.declare_var(&[1, 1]);
//! let wn = g.param(w);
//! let y = g.matmul(x, wn, false, false).unwrap();
//! let mut m = Model::new(g, vec![x], vec![y], 0).unwrap();
//! m.compile(CompileSpec {
//!     outputs: vec![OutputSpec::loss("mse")],
//!     optimizer_kind: "sgd".into(),
//!     optimizer_params: vec![("learning_rate".into(), 0.1)],
//!     regularizers: vec![],
//! })
//! .unwrap();
//!
//! /// Pauses after every batch, as the Python binding does for a batch callback.
//! struct EachBatch;
//! impl Hook for EachBatch {
//!     fn batch_end(&mut self, _: usize, _: usize) -> rustkeras::Result<Control> {
//!         Ok(Control::Pause)
//!     }
//! }
//!
//! let (xs, ys) = ([1.0f32, 2.0, 3.0, 4.0], [2.0f32, 4.0, 6.0, 8.0]);
//! let d = Dataset::single(&xs, &ys, None, 4);
//! let mut epoch = m.begin_pass(PassKind::Train, &d, 2, false).unwrap();
//! while !epoch.is_done() {
//!     m.run_pass(&mut epoch, &d, &mut [], usize::MAX, &mut EachBatch).unwrap();
//!     // The model is free here: halve the learning rate after every batch.
//!     let o = m.optimizer_mut().unwrap();
//!     o.set_learning_rate(o.learning_rate() / 2.0);
//! }
//! assert_eq!(epoch.batch(), 2);
//! let logs = m.end_pass(epoch).unwrap();
//! assert!(logs[0] > 0.0);
//! ```

use std::sync::{Arc, Weak};

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

/// The logs over the pass (see `Model::log_names`; flat, as `Model::log_dims` lays them
/// out: a loss is the mean over the samples, a metric its value from the pass's sums).
pub type EpochLogs = Vec<f64>;

/// Per-array sizes and slices; inline for up to 8 inputs or outputs.
type Sizes = SmallVec<[usize; 8]>;
type Slices<'a> = SmallVec<[&'a [f32]; 8]>;

/// What a pass over a dataset does with each batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassKind {
    /// An epoch of `fit`: one training step per batch, rows in the epoch's order.
    Train,
    /// `evaluate`: the logs in inference mode, rows in sequence.
    Test,
    /// `predict`: every output for each row, in sequence.
    Predict,
}

/// What a hook tells the batch loop after a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Run the next batch.
    Continue,
    /// Return to the caller after this batch; the pass resumes at the next one.
    Pause,
}

/// What the batch loop calls after every batch, while it holds the model: a hook only
/// decides whether the loop goes on (and may fail, e.g. on Ctrl-C). Code that needs the
/// model (callbacks) runs between two `Model::run_pass` calls instead.
pub trait Hook {
    fn batch_end(&mut self, batch: usize, batches: usize) -> Result<Control>;
}

/// A hook that lets the loop run to the end (Rust callers without progress or callbacks).
pub struct NoHook;

impl Hook for NoHook {
    fn batch_end(&mut self, _batch: usize, _batches: usize) -> Result<Control> {
        Ok(Control::Continue)
    }
}

/// A pass over a dataset in progress (an epoch of `fit`, an `evaluate`, a `predict`): its
/// row order, the next batch and the rows seen. It lives outside the model, so that the
/// caller can run the batches in chunks and use the model freely in between. The running
/// log sums stay on the model's device; the pass's token tells the model whose they are
/// (see `Model::claim_log_sums`).
pub struct Epoch {
    kind: PassKind,
    /// The rows of a training epoch, shuffled or in sequence (None: in sequence).
    order: Option<Vec<usize>>,
    batch_size: usize,
    n: usize,
    next: usize,
    seen: usize,
    token: Arc<()>,
}

impl Epoch {
    pub fn kind(&self) -> PassKind {
        self.kind
    }

    /// The index of the next batch to run (the number of batches run so far).
    pub fn batch(&self) -> usize {
        self.next
    }

    pub fn batches(&self) -> usize {
        self.n.div_ceil(self.batch_size)
    }

    /// The number of rows the pass covers.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// The rows of the batches run so far.
    pub fn rows_done(&self) -> usize {
        self.seen
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.batches()
    }

    /// Positions `lo..hi` of batch `b` in the pass's order.
    pub fn batch_rows(&self, b: usize) -> std::ops::Range<usize> {
        (b * self.batch_size).min(self.n)..((b + 1) * self.batch_size).min(self.n)
    }

    fn owner(&self) -> Weak<()> {
        Arc::downgrade(&self.token)
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

    /// Starts a pass over `d` in batches of `batch_size` rows (the last one may be smaller);
    /// a training pass shuffles its rows when asked, from the model's seed and epoch count.
    pub fn begin_pass(
        &mut self,
        kind: PassKind,
        d: &Dataset<'_>,
        batch_size: usize,
        shuffle: bool,
    ) -> Result<Epoch> {
        check_batch_size(batch_size)?;
        let labelled = kind != PassKind::Predict;
        self.check_dataset(d, labelled)?;
        let order = (kind == PassKind::Train).then(|| {
            self.epoch += 1;
            let mut order: Vec<usize> = (0..d.n).collect();
            if shuffle {
                let mut rng = Rng::new(self.seed ^ self.epoch.wrapping_mul(0x9e37_79b9));
                for i in (1..d.n).rev() {
                    order.swap(i, rng.below(i + 1));
                }
            }
            order
        });
        let e = Epoch {
            kind,
            order,
            batch_size: batch_size.min(d.n),
            n: d.n,
            next: 0,
            seen: 0,
            token: Arc::new(()),
        };
        if labelled {
            self.ensure_train_graph()?;
            self.claim_log_sums(&e.owner(), true)?;
        }
        Ok(e)
    }

    /// Runs the next batches of pass `e` over `d` (the dataset it began with): at most
    /// `max_batches`, fewer when the pass ends or `hook` pauses. Prediction writes each
    /// output's rows into `outs` (one buffer per output, holding all rows). Returns the
    /// number of batches run.
    pub fn run_pass(
        &mut self,
        e: &mut Epoch,
        d: &Dataset<'_>,
        outs: &mut [&mut [f32]],
        max_batches: usize,
        hook: &mut dyn Hook,
    ) -> Result<usize> {
        if d.n != e.n {
            return crate::value_error!(
                "this pass covers {} rows, received a dataset of {}",
                e.n,
                d.n
            );
        }
        let labelled = e.kind != PassKind::Predict;
        let (xper, yper) = self.check_dataset(d, labelled)?;
        let oper: Sizes = if labelled {
            Sizes::new()
        } else {
            self.check_outputs(outs, d.n)?
        };
        if e.order.is_some() {
            self.ensure_buffers(e.batch_size, &xper, &yper);
        } else {
            self.ensure_buffers(e.batch_size, &[], &[]);
        }
        let owner = e.owner();
        let resident = if labelled {
            self.ensure_train_graph()?;
            self.claim_log_sums(&owner, false)?;
            self.resident_index(d)?
        } else {
            None
        };
        if let Some(index) = resident {
            if !self.resident_order_of(index, &owner) {
                let sequence: Vec<usize>;
                let order = match &e.order {
                    Some(o) => o.as_slice(),
                    None => {
                        sequence = (0..d.n).collect();
                        &sequence
                    }
                };
                self.set_resident_order(index, order, owner.clone());
            }
        }
        let pass = match e.kind {
            PassKind::Train => Some(Pass::Train),
            PassKind::Test => Some(Pass::Test),
            PassKind::Predict => None,
        };
        let batches = e.batches();
        let last = e.next.saturating_add(max_batches).min(batches);
        let mut bx = std::mem::take(&mut self.bx);
        let mut by = std::mem::take(&mut self.by);
        let mut bw = std::mem::take(&mut self.bw);
        let start = e.next;
        let result = (|| -> Result<()> {
            while e.next < last {
                let b = e.next;
                let rows = e.batch_rows(b);
                let (lo, hi) = (rows.start, rows.end);
                let m = hi - lo;
                let (xs, ys, sws): (Slices<'_>, Slices<'_>, Slices<'_>);
                let data = match (resident, &e.order) {
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
                match pass {
                    Some(pass) => self.step(pass, data, m)?,
                    None => {
                        let Batch::Host { xs, .. } = data else {
                            unreachable!("prediction reads host arrays")
                        };
                        let mut o: SmallVec<[&mut [f32]; 8]> = outs
                            .iter_mut()
                            .zip(oper.iter())
                            .map(|(v, p)| &mut v[lo * p..hi * p])
                            .collect();
                        self.predict_batch(xs, m, &mut o)?;
                    }
                }
                e.next += 1;
                e.seen += m;
                if hook.batch_end(b, batches)? == Control::Pause {
                    break;
                }
            }
            Ok(())
        })();
        self.bx = bx;
        self.by = by;
        self.bw = bw;
        result?;
        Ok(e.next - start)
    }

    /// The logs of pass `e` so far: batch-size-weighted means over the rows run (read back
    /// from the GPU: a synchronisation). Empty for a prediction.
    pub fn pass_logs(&mut self, e: &Epoch) -> Result<EpochLogs> {
        if e.kind == PassKind::Predict {
            return Ok(Vec::new());
        }
        self.claim_log_sums(&e.owner(), false)?;
        let mut logs = vec![0.0; self.log_width()?];
        self.read_logs(&mut logs, e.seen)?;
        Ok(logs)
    }

    /// Ends pass `e` (whether or not all its batches ran) and returns its logs.
    pub fn end_pass(&mut self, e: Epoch) -> Result<EpochLogs> {
        let logs = self.pass_logs(&e)?;
        // Only the pass that holds the running sums lets them go: a prediction ending in
        // the middle of a fit's epoch (a callback's, or another thread's) leaves the fit's.
        if self.log_owner.ptr_eq(&e.owner()) {
            self.log_owner = Weak::new();
        }
        Ok(logs)
    }

    /// Runs the rest of pass `e`, whatever `hook` says.
    fn finish_pass(
        &mut self,
        mut e: Epoch,
        d: &Dataset<'_>,
        outs: &mut [&mut [f32]],
        hook: &mut dyn Hook,
    ) -> Result<EpochLogs> {
        while !e.is_done() {
            self.run_pass(&mut e, d, outs, usize::MAX, hook)?;
        }
        self.end_pass(e)
    }

    /// One pass over the data in batches (shuffled when asked), updating the weights.
    pub fn fit_epoch(
        &mut self,
        d: &Dataset<'_>,
        batch_size: usize,
        shuffle: bool,
        hook: &mut dyn Hook,
    ) -> Result<EpochLogs> {
        let e = self.begin_pass(PassKind::Train, d, batch_size, shuffle)?;
        self.finish_pass(e, d, &mut [], hook)
    }

    /// The logs over the data in inference mode (batch-size-weighted means).
    pub fn evaluate(
        &mut self,
        d: &Dataset<'_>,
        batch_size: usize,
        hook: &mut dyn Hook,
    ) -> Result<EpochLogs> {
        let e = self.begin_pass(PassKind::Test, d, batch_size, false)?;
        self.finish_pass(e, d, &mut [], hook)
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
        let d = Dataset {
            x: xs.to_vec(),
            y: Vec::new(),
            sw: Vec::new(),
            n,
        };
        let e = self.begin_pass(PassKind::Predict, &d, batch_size, false)?;
        self.check_outputs(outs, n)?;
        self.finish_pass(e, &d, outs, hook)?;
        Ok(())
    }

    /// Checks that `outs` holds one buffer of `n` rows per output; returns the values per
    /// row of each.
    fn check_outputs(&self, outs: &[&mut [f32]], n: usize) -> Result<Sizes> {
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
        Ok(oper)
    }
}

/// Copies rows `rows` of `src` (`per` values each) to the front of `buf`.
fn gather_rows(buf: &mut [f32], src: &[f32], per: usize, rows: &[usize]) {
    for (k, &r) in rows.iter().enumerate() {
        buf[k * per..(k + 1) * per].copy_from_slice(&src[r * per..(r + 1) * per]);
    }
}
