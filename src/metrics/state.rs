//! A metric used on its own (Keras' `m.update_state(y, p); m.result(); m.reset_state()`):
//! each update runs the metric's sums graph on the CPU, planned once per shape of the data,
//! and adds the batch's sums to the state.
//!
//! ```
//! use rustkeras::metrics::{MetricSpec, MetricState};
//!
//! let mut m = MetricState::new(MetricSpec::from_name("precision").unwrap().unwrap());
//! // Keras' example: precision of [1, 0, 1, 1] against [0, 1, 1, 1] is 2/3.
//! m.update(&[0., 1., 1., 1.], &[4], &[1., 0., 1., 1.], &[4], None).unwrap();
//! assert!((m.result().unwrap()[0] - 2.0 / 3.0).abs() < 1e-12);
//! m.reset();
//! m.update(&[0., 1., 1., 1.], &[4], &[1., 0., 1., 1.], &[4], Some(&[0., 0., 1., 0.])).unwrap();
//! assert_eq!(m.result().unwrap(), vec![1.0]);
//! ```

use super::{Finalize, MetricSpec};
use crate::error::Result;
use crate::graph::{Graph, NodeId, Shape};
use crate::ops::Ctx;
use crate::program::Program;

/// The dims of a batch's targets and predictions (batch axis first) and whether it has
/// sample weights: what a planned program is for.
type Key = (Vec<usize>, Vec<usize>, bool);

/// A metric's running sums, updated batch by batch on the CPU.
pub struct MetricState {
    spec: MetricSpec,
    finalize: Finalize,
    constants: Vec<Vec<f32>>,
    /// Empty until the first update fixes the sums' length.
    sums: Vec<f64>,
    /// Per-sample dims of the last update's predictions (the value's shape depends on them).
    pred_dims: Option<Vec<usize>>,
    /// The program of the last batch's shapes (a metric's graph is small: another shape
    /// plans anew).
    program: Option<(Key, Program, NodeId)>,
}

impl MetricState {
    pub fn new(spec: MetricSpec) -> MetricState {
        MetricState {
            finalize: spec.finalize(),
            constants: spec.constants().into_iter().map(|(_, v)| v).collect(),
            spec,
            sums: Vec::new(),
            pred_dims: None,
            program: None,
        }
    }

    pub fn spec(&self) -> &MetricSpec {
        &self.spec
    }

    /// Adds a batch: `y_true` of dims `true_dims` and `y_pred` of dims `pred_dims` (both
    /// with the batch axis first, of the same length), and optionally one sample weight per
    /// sample.
    pub fn update(
        &mut self,
        y_true: &[f32],
        true_dims: &[usize],
        y_pred: &[f32],
        pred_dims: &[usize],
        sample_weight: Option<&[f32]>,
    ) -> Result<()> {
        let (Some(&n), Some(&np)) = (true_dims.first(), pred_dims.first()) else {
            return crate::value_error!(
                "update_state: y_true and y_pred need a batch axis, received shapes {true_dims:?} and {pred_dims:?}"
            );
        };
        if n != np || n == 0 {
            return crate::value_error!(
                "update_state: y_true and y_pred must hold the same number of samples (at least 1), received shapes {true_dims:?} and {pred_dims:?}"
            );
        }
        for (what, data, dims) in [("y_true", y_true, true_dims), ("y_pred", y_pred, pred_dims)] {
            if data.len() != dims.iter().product::<usize>() {
                return crate::value_error!(
                    "update_state: {what} holds {} values, its shape {dims:?} needs {}",
                    data.len(),
                    dims.iter().product::<usize>()
                );
            }
        }
        if let Some(w) = sample_weight {
            if w.len() != n {
                return crate::value_error!(
                    "update_state: expected one sample weight per sample ({n}), received {}",
                    w.len()
                );
            }
        }
        let per_pred = &pred_dims[1..];
        let key: Key = (
            true_dims.to_vec(),
            pred_dims.to_vec(),
            sample_weight.is_some(),
        );
        if self.program.as_ref().map(|(k, ..)| k) != Some(&key) {
            let mut g = Graph::new();
            let t = g.input(Shape::batched(&true_dims[1..]));
            let p = g.input(Shape::batched(per_pred));
            let sw = key.2.then(|| g.input(Shape::batched(&[])));
            let consts: Vec<NodeId> = self
                .spec
                .constants()
                .iter()
                .map(|(shape, _)| {
                    let v = g.declare_var(shape);
                    g.param(v)
                })
                .collect();
            let out = self.spec.sums(&mut g, t, p, sw, &consts)?;
            let prog = Program::plan(&g, &[out], n)?;
            self.program = Some((key, prog, out));
        }
        let (_, prog, out) = self.program.as_mut().expect("planned above");
        let vars: Vec<&[f32]> = self.constants.iter().map(|c| c.as_slice()).collect();
        let mut feeds: Vec<&[f32]> = vec![y_true, y_pred];
        if let Some(w) = sample_weight {
            feeds.push(w);
        }
        prog.run(&vars, &feeds, &Ctx::default())?;
        let v = prog.value(*out);
        if self.sums.is_empty() {
            self.sums = vec![0.0; v.len()];
        }
        if self.sums.len() != v.len() {
            return crate::value_error!(
                "update_state: this batch's shapes give {} sums where earlier batches gave {}; reset_state() first",
                v.len(),
                self.sums.len()
            );
        }
        for (s, &x) in self.sums.iter_mut().zip(v) {
            *s += f64::from(x);
        }
        self.pred_dims = Some(per_pred.to_vec());
        Ok(())
    }

    /// The metric's value over the batches since the last reset (a scalar is one value);
    /// before any update, the value of zero sums, as Keras' zero variables give.
    pub fn result(&self) -> Result<Vec<f64>> {
        let (dims, empty);
        let sums = match &self.pred_dims {
            Some(d) => {
                dims = d.as_slice();
                &self.sums
            }
            None => {
                let len = match &self.spec {
                    MetricSpec::Count(c) => c.confusion.thresholds.len(),
                    MetricSpec::Precision(c) | MetricSpec::Recall(c) => 2 * c.thresholds.len(),
                    MetricSpec::Auc(a) => 4 * a.confusion.thresholds.len(),
                    MetricSpec::FBeta(f) if f.average == super::fscore::Average::None => {
                        return crate::value_error!(
                            "FBetaScore: result() before update_state() has no value: the number of classes comes from the data"
                        )
                    }
                    MetricSpec::FBeta(_) => 4,
                    _ => 2,
                };
                dims = &[];
                empty = vec![0.0; len];
                &empty
            }
        };
        let mut out = vec![0.0; self.spec.result_dims(dims).iter().product()];
        self.finalize.read(sums, 0, &mut out);
        Ok(out)
    }

    /// The dims of the value (`[]` for a scalar), for predictions shaped as the last
    /// update's.
    pub fn result_dims(&self) -> Vec<usize> {
        self.spec
            .result_dims(self.pred_dims.as_deref().unwrap_or(&[]))
    }

    /// Zeroes the sums; the next update may bring data of other shapes.
    pub fn reset(&mut self) {
        self.sums.clear();
        self.pred_dims = None;
    }
}
