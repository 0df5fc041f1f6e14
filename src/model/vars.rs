//! A model's variables. Each lives once, on the model's device, behind an `Arc`: a layer used
//! by several models (an encoder inside a bigger model, the branches of a Keras 1 `Merge`)
//! has one set of weights that every one of those models reads and trains, with no copies
//! between them.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use smallvec::SmallVec;

use crate::device::Device;
use crate::error::Result;
use crate::graph::VarId;
use crate::tensor::Tensor;

type Cell = Arc<RwLock<Tensor>>;

pub(crate) struct Vars {
    cells: Vec<Cell>,
}

pub(crate) type ReadGuards<'a> = SmallVec<[RwLockReadGuard<'a, Tensor>; 32]>;

fn read(c: &Cell) -> RwLockReadGuard<'_, Tensor> {
    // A panic while a guard was held cannot leave a tensor half-written (writes are whole
    // kernels or copies), so a poisoned lock is still safe to read.
    c.read().unwrap_or_else(|e| e.into_inner())
}

fn write(c: &Cell) -> RwLockWriteGuard<'_, Tensor> {
    c.write().unwrap_or_else(|e| e.into_inner())
}

impl Vars {
    /// Zeros of each shape on `device`.
    pub fn zeros(device: &Device, shapes: &[Vec<usize>]) -> Result<Vars> {
        let cells = shapes
            .iter()
            .map(|s| Ok(Arc::new(RwLock::new(Tensor::zeros(device, s)?))))
            .collect::<Result<_>>()?;
        Ok(Vars { cells })
    }

    /// Appends a variable holding `data` (of `shape`) on `device`; returns its id.
    pub fn push(&mut self, device: &Device, shape: &[usize], data: Vec<f32>) -> Result<VarId> {
        let t = Tensor::from_vec(device, shape, data)?;
        self.cells.push(Arc::new(RwLock::new(t)));
        Ok(self.cells.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Read access to every variable at once (for a program run or planning).
    pub fn read_all(&self) -> ReadGuards<'_> {
        self.cells.iter().map(read).collect()
    }

    pub fn get(&self, v: VarId) -> RwLockReadGuard<'_, Tensor> {
        read(&self.cells[v])
    }

    pub fn get_mut(&self, v: VarId) -> Option<RwLockWriteGuard<'_, Tensor>> {
        self.cells.get(v).map(write)
    }

    /// Write access to the variables `which` selects, in order (distinct cells).
    pub fn write_some(
        &self,
        which: impl Fn(VarId) -> bool,
    ) -> SmallVec<[RwLockWriteGuard<'_, Tensor>; 32]> {
        self.cells
            .iter()
            .enumerate()
            .filter(|&(v, _)| which(v))
            .map(|(_, c)| write(c))
            .collect()
    }

    /// Copies of every variable on `device`, each still shared with the same models: the
    /// tensor inside each cell is replaced.
    pub fn move_to(&self, device: &Device) -> Result<()> {
        let moved = self
            .cells
            .iter()
            .map(|c| read(c).to_device(device))
            .collect::<Result<Vec<_>>>()?;
        for (c, t) in self.cells.iter().zip(moved) {
            *write(c) = t;
        }
        Ok(())
    }

    /// Makes variable `v` the very variable `ov` of `other` (shapes must match; the cell must
    /// not already be one of this model's, which would alias two of its variables).
    pub fn share(&mut self, v: VarId, other: &Vars, ov: VarId) -> Result<()> {
        let (Some(mine), Some(theirs)) = (self.cells.get(v), other.cells.get(ov)) else {
            return crate::value_error!("share_var: variable {v} or {ov} does not exist");
        };
        if Arc::ptr_eq(mine, theirs) {
            return Ok(());
        }
        let (a, b) = (read(mine).shape().to_vec(), read(theirs).shape().to_vec());
        if a != b {
            return crate::value_error!(
                "share_var: variable {v} has shape {a:?}, the shared variable has shape {b:?}"
            );
        }
        if self.cells.iter().any(|c| Arc::ptr_eq(c, theirs)) {
            return crate::value_error!(
                "share_var: the variable is already one of this model's variables"
            );
        }
        self.cells[v] = theirs.clone();
        Ok(())
    }
}
