//! The wgpu context: one instance, adapter, device and queue per process, the pipeline cache
//! (each shader compiled once) and the buffer pool.
//!
//! The adapter is picked once: `RUSTKERAS_GPU_ADAPTER` selects by a case-insensitive
//! substring of the adapter's name; otherwise a discrete GPU is preferred over an integrated
//! one, then a virtual one, then a software one (Mesa's lavapipe, which is how CI runs the GPU
//! path). The device is requested with the adapter's own limits, so a real card can bind
//! buffers as large as it allows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::buffer::{BufferPool, GpuBuffer};
use crate::error::{Error, Result};

/// One adapter as `rustkeras.backend.devices()` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterDesc {
    pub name: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub kind: String,
    /// The graphics API wgpu reaches it through (`Vulkan` in this build).
    pub api: String,
}

/// Storage bindings every kernel may use: the output, up to this many inputs, and the
/// parameter words.
pub const MAX_INPUTS: usize = 4;

/// A pipeline's shader, entry point and input count.
type PipelineKey = (&'static str, &'static str, usize);

pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    /// Bind group layouts by input count (0..=MAX_INPUTS).
    layouts: Vec<wgpu::BindGroupLayout>,
    pipeline_layouts: Vec<wgpu::PipelineLayout>,
    modules: Mutex<HashMap<&'static str, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    pub(crate) pool: BufferPool,
    /// The first error wgpu reported outside an error scope (a validation error, a lost
    /// device); raised as a Python exception at the next check instead of panicking.
    errors: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuContext({})", self.info.name)
    }
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN;
    desc.flags = wgpu::InstanceFlags::empty();
    wgpu::Instance::new(desc)
}

fn kind_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "DiscreteGpu",
        wgpu::DeviceType::IntegratedGpu => "IntegratedGpu",
        wgpu::DeviceType::VirtualGpu => "VirtualGpu",
        wgpu::DeviceType::Cpu => "Cpu",
        wgpu::DeviceType::Other => "Other",
    }
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn describe(info: &wgpu::AdapterInfo) -> AdapterDesc {
    AdapterDesc {
        name: info.name.clone(),
        kind: kind_name(info.device_type).to_string(),
        api: format!("{:?}", info.backend),
    }
}

/// Every adapter wgpu finds, best first (the order `GpuContext` picks from).
pub fn adapters() -> Vec<AdapterDesc> {
    sorted_adapters(&instance())
        .iter()
        .map(|a| describe(&a.get_info()))
        .collect()
}

fn sorted_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut all = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    all.sort_by_key(|a| rank(a.get_info().device_type));
    all
}

static SHARED: OnceLock<std::result::Result<Arc<GpuContext>, String>> = OnceLock::new();

impl GpuContext {
    /// The process's GPU context, created on first use; an error says what was looked for
    /// when no usable adapter exists.
    pub fn shared() -> Result<Arc<GpuContext>> {
        SHARED
            .get_or_init(|| GpuContext::create().map(Arc::new))
            .clone()
            .map_err(Error::Value)
    }

    fn create() -> std::result::Result<GpuContext, String> {
        let instance = instance();
        let all = sorted_adapters(&instance);
        let wanted = std::env::var("RUSTKERAS_GPU_ADAPTER").ok();
        let adapter = match &wanted {
            Some(w) => all
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&w.to_lowercase()))
                .ok_or_else(|| {
                    format!(
                        "no Vulkan adapter's name contains RUSTKERAS_GPU_ADAPTER={w:?}; found: {:?}",
                        adapters().iter().map(|a| a.name.clone()).collect::<Vec<_>>()
                    )
                })?,
            None => all.into_iter().next().ok_or_else(|| {
                "no Vulkan adapter was found (looked for a GPU or Mesa's lavapipe through the \
                 Vulkan loader, libvulkan.so.1)"
                    .to_string()
            })?,
        };
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("rustkeras"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| format!("the adapter {:?} refused a device: {e}", info.name))?;
        let layouts: Vec<wgpu::BindGroupLayout> = (0..=MAX_INPUTS)
            .map(|n| bind_group_layout(&device, n))
            .collect();
        let pipeline_layouts = layouts
            .iter()
            .map(|l| {
                device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: None,
                    bind_group_layouts: &[Some(l)],
                    immediate_size: 0,
                })
            })
            .collect();
        let pool = BufferPool::new(device.clone(), queue.clone());
        let errors: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut first) = sink.lock() {
                first.get_or_insert_with(|| e.to_string());
            }
        }));
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            layouts,
            pipeline_layouts,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            pool,
            errors,
        })
    }

    /// The first GPU error since the last check, as a `ValueError`.
    pub fn check(&self) -> Result<()> {
        match self.errors.lock().ok().and_then(|mut e| e.take()) {
            Some(e) => crate::value_error!("the GPU ({}) reported an error: {e}", self.info.name),
            None => Ok(()),
        }
    }

    pub fn adapter(&self) -> AdapterDesc {
        describe(&self.info)
    }

    /// The compute pipeline of `entry` in the shader `source` (named `shader`), for kernels
    /// with `inputs` input bindings; compiled once per process.
    pub(crate) fn pipeline(
        &self,
        shader: &'static str,
        source: &'static str,
        entry: &'static str,
        inputs: usize,
    ) -> Arc<wgpu::ComputePipeline> {
        let key = (shader, entry, inputs);
        if let Some(p) = self.pipelines.lock().expect("pipeline cache").get(&key) {
            return p.clone();
        }
        let module = self
            .modules
            .lock()
            .expect("shader cache")
            .entry(shader)
            .or_insert_with(|| {
                Arc::new(
                    self.device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(shader),
                            source: wgpu::ShaderSource::Wgsl(source.into()),
                        }),
                )
            })
            .clone();
        let p = Arc::new(
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&self.pipeline_layouts[inputs]),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                }),
        );
        self.pipelines
            .lock()
            .expect("pipeline cache")
            .insert(key, p.clone());
        p
    }

    pub(crate) fn layout(&self, inputs: usize) -> &wgpu::BindGroupLayout {
        &self.layouts[inputs]
    }

    /// Bytes a storage binding's offset must be a multiple of.
    pub(crate) fn offset_alignment(&self) -> u64 {
        u64::from(self.limits.min_storage_buffer_offset_alignment).max(16)
    }

    /// The most floats one binding may view.
    pub fn max_binding_floats(&self) -> usize {
        (self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
            / 4) as usize
    }

    /// A buffer of `len` floats from the pool, zeroed.
    pub fn alloc(&self, len: usize) -> Result<GpuBuffer> {
        if len > self.max_binding_floats() {
            return crate::value_error!(
                "a tensor of {len} floats is larger than the GPU ({}) can bind ({} floats); use a smaller batch size",
                self.info.name,
                self.max_binding_floats()
            );
        }
        Ok(self.pool.take(len.max(1)))
    }

    /// A buffer holding `data`.
    pub fn upload(&self, data: &[f32]) -> Result<GpuBuffer> {
        let b = self.alloc(data.len())?;
        self.write(&b, data);
        Ok(b)
    }

    /// Overwrites the first `data.len()` floats of `b` (queued before the next submission).
    pub fn write(&self, b: &GpuBuffer, data: &[f32]) {
        if !data.is_empty() {
            self.queue
                .write_buffer(b.buffer(), b.offset(), bytemuck::cast_slice(data));
        }
    }

    /// Reads `len` floats of `b` back to the host (waits for the queue).
    pub fn read(&self, b: &GpuBuffer, len: usize) -> Vec<f32> {
        let mut out = vec![0.0; len];
        self.read_many(&mut [(b, &mut out[..])]);
        out
    }

    /// Reads several buffers back with one submission and one wait.
    pub fn read_many(&self, reads: &mut [(&GpuBuffer, &mut [f32])]) {
        let total: u64 = reads.iter().map(|(_, d)| (d.len() * 4) as u64).sum();
        if total == 0 {
            return;
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: total,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let mut at = 0u64;
        for (b, d) in reads.iter() {
            let n = (d.len() * 4) as u64;
            if n > 0 {
                enc.copy_buffer_to_buffer(b.buffer(), b.offset(), &staging, at, n);
            }
            at += n;
        }
        self.queue.submit([enc.finish()]);
        let slice = staging.slice(..);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        self.wait();
        let Ok(data) = slice.get_mapped_range() else {
            // The map failed (a lost device): leave the destinations as they are.
            return;
        };
        let floats: &[f32] = bytemuck::cast_slice(&data);
        let mut at = 0usize;
        for (_, d) in reads.iter_mut() {
            let n = d.len();
            d.copy_from_slice(&floats[at..at + n]);
            at += n;
        }
        drop(data);
        staging.unmap();
    }

    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }

    pub fn submit(&self, enc: wgpu::CommandEncoder) {
        self.queue.submit([enc.finish()]);
    }

    /// Blocks until every submitted command has run.
    pub fn wait(&self) {
        // A lost device is reported by the next submission's validation; nothing to do here.
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
    }
}

fn bind_group_layout(device: &wgpu::Device, inputs: usize) -> wgpu::BindGroupLayout {
    let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    // 0: parameter words, 1: the run's context (training flag, seed, step), 2: output,
    // 3..: inputs.
    let mut entries = vec![
        storage(0, true),
        wgpu::BindGroupLayoutEntry {
            binding: 1,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        },
        storage(2, false),
    ];
    for i in 0..inputs {
        entries.push(storage(3 + i as u32, false));
    }
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: None,
        entries: &entries,
    })
}
