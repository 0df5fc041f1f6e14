//! The core's tensor: a shape and storage on a device. CPU storage is a `Vec<f32>` that
//! converts to and from `ndarray` arrays (without a copy where the layout allows); GPU storage
//! is a range of a pooled wgpu buffer. Model variables, optimizer slots and stateful layers'
//! states are tensors on the model's device; they cross to the host only when read.
//!
//! ```
//! use ndarray::array;
//! use rustkeras::device::Device;
//! use rustkeras::tensor::Tensor;
//!
//! let t = Tensor::from_ndarray(&Device::Cpu, array![[1.0f32, 2.0], [3.0, 4.0]].into_dyn()).unwrap();
//! assert_eq!(t.shape(), &[2, 2]);
//! assert_eq!(t.to_ndarray()[[1, 0]], 3.0);
//! ```

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use crate::device::gpu::{GpuBuffer, GpuContext};
use crate::device::Device;
use crate::error::Result;

pub enum Storage {
    Cpu(Vec<f32>),
    Gpu(GpuBuffer, Arc<GpuContext>),
}

pub struct Tensor {
    shape: Vec<usize>,
    storage: Storage,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dev = match &self.storage {
            Storage::Cpu(_) => "cpu",
            Storage::Gpu(..) => "gpu",
        };
        write!(f, "Tensor({:?} on {dev})", self.shape)
    }
}

impl Tensor {
    /// Zeros of `shape` on `dev`.
    pub fn zeros(dev: &Device, shape: &[usize]) -> Result<Tensor> {
        let what = || format!("A tensor of shape {shape:?}");
        let n = crate::memory::elements(shape, &what)?;
        let storage = match dev {
            Device::Cpu => Storage::Cpu(crate::memory::zeros(n, &what)?),
            Device::Gpu(ctx) => Storage::Gpu(ctx.alloc(n)?, ctx.clone()),
        };
        Ok(Tensor {
            shape: shape.to_vec(),
            storage,
        })
    }

    /// `data` (row-major) as a tensor of `shape` on `dev`; on the CPU the vector is kept.
    pub fn from_vec(dev: &Device, shape: &[usize], data: Vec<f32>) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if data.len() != n {
            return crate::value_error!(
                "a tensor of shape {shape:?} needs {n} values, received {}",
                data.len()
            );
        }
        let storage = match dev {
            Device::Cpu => Storage::Cpu(data),
            Device::Gpu(ctx) => Storage::Gpu(ctx.upload(&data)?, ctx.clone()),
        };
        Ok(Tensor {
            shape: shape.to_vec(),
            storage,
        })
    }

    /// An `ndarray` array as a tensor; a standard-layout array moves its buffer without a copy.
    pub fn from_ndarray(dev: &Device, a: ArrayD<f32>) -> Result<Tensor> {
        let shape = a.shape().to_vec();
        let data = if a.is_standard_layout() {
            let (v, offset) = a.into_raw_vec_and_offset();
            match offset {
                Some(0) | None => v,
                Some(o) => v[o..].to_vec(),
            }
        } else {
            a.iter().copied().collect()
        };
        Tensor::from_vec(dev, &shape, data)
    }

    /// The values as an `ndarray` array (read back from the GPU when they live there).
    pub fn to_ndarray(&self) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(&self.shape), self.to_vec()).expect("shape matches length")
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The values, copied to the host.
    pub fn to_vec(&self) -> Vec<f32> {
        match &self.storage {
            Storage::Cpu(v) => v.clone(),
            Storage::Gpu(b, ctx) => ctx.read(b, self.numel()),
        }
    }

    /// The host values of a CPU tensor.
    pub fn host(&self) -> Option<&[f32]> {
        match &self.storage {
            Storage::Cpu(v) => Some(v),
            Storage::Gpu(..) => None,
        }
    }

    pub fn host_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.storage {
            Storage::Cpu(v) => Some(v),
            Storage::Gpu(..) => None,
        }
    }

    /// The device buffer of a GPU tensor.
    pub fn gpu(&self) -> Option<&GpuBuffer> {
        match &self.storage {
            Storage::Gpu(b, _) => Some(b),
            Storage::Cpu(_) => None,
        }
    }

    /// Overwrites every value.
    pub fn write(&mut self, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() {
            return crate::value_error!(
                "a tensor of shape {:?} needs {} values, received {}",
                self.shape,
                self.numel(),
                data.len()
            );
        }
        match &mut self.storage {
            Storage::Cpu(v) => v.copy_from_slice(data),
            Storage::Gpu(b, ctx) => ctx.write(b, data),
        }
        Ok(())
    }

    /// A copy of this tensor on `dev`.
    pub fn to_device(&self, dev: &Device) -> Result<Tensor> {
        Tensor::from_vec(dev, &self.shape, self.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndarray_round_trip_keeps_values_and_layout() {
        let a = ndarray::Array::from_shape_fn(IxDyn(&[2, 3]), |i| (i[0] * 3 + i[1]) as f32);
        let t = Tensor::from_ndarray(&Device::Cpu, a.clone()).unwrap();
        assert_eq!(t.host().unwrap(), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(t.to_ndarray(), a);
        let transposed = Tensor::from_ndarray(&Device::Cpu, a.t().to_owned()).unwrap();
        assert_eq!(transposed.host().unwrap(), &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let view = Tensor::from_ndarray(&Device::Cpu, a.reversed_axes()).unwrap();
        assert_eq!(view.shape(), &[3, 2]);
        assert_eq!(view.host().unwrap(), &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn a_wrong_length_is_a_value_error() {
        assert!(Tensor::from_vec(&Device::Cpu, &[2, 2], vec![1.0; 3]).is_err());
        let mut t = Tensor::zeros(&Device::Cpu, &[3]).unwrap();
        assert!(t.write(&[1.0]).is_err());
        t.write(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(t.to_vec(), [1.0, 2.0, 3.0]);
    }
}
