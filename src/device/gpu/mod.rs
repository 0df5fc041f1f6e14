//! The wgpu device: context (adapter, queue, pipeline cache, buffer pool), device memory,
//! and the op kernels as WGSL compute shaders.
//!
//! A program on the GPU is recorded once, when it is planned: every step becomes one or a
//! few `Dispatch`es whose bind groups point at fixed buffers (the program's slot arena,
//! the model's variables, the feed buffers) and whose shape parameters sit in one parameter
//! buffer written at planning time. Running a step only encodes the dispatches into one
//! command encoder; what changes from step to step (training flag, seed, step counter) is a
//! small uniform written before the submission. Nothing is read back unless asked.
//!
//! Shaders share one binding convention (see `HEADER`): `p` (parameter words, read-only),
//! `run` (the run's context), `out`, then inputs `in0..in3`. Every data binding is declared
//! `read_write`, because wgpu forbids one buffer to be bound both read-only and writable in
//! a dispatch, and a program's slots share one arena buffer.

pub mod buffer;
pub mod context;
pub(crate) mod kernels;

use std::sync::Arc;

pub use buffer::GpuBuffer;
pub use context::{adapters, AdapterDesc, GpuContext};

/// Bindings and helpers every shader starts with.
pub(crate) const HEADER: &str = r#"
@group(0) @binding(0) var<storage, read> p: array<u32>;
struct Run { training: u32, seed_lo: u32, seed_hi: u32, step_lo: u32, step_hi: u32, pad0: u32, pad1: u32, pad2: u32, s: array<vec4<f32>, 6> };
@group(0) @binding(1) var<uniform> run: Run;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> in0: array<f32>;
@group(0) @binding(4) var<storage, read_write> in1: array<f32>;
@group(0) @binding(5) var<storage, read_write> in2: array<f32>;
@group(0) @binding(6) var<storage, read_write> in3: array<f32>;

// The flat thread index of a 1-D launch split over x and y (256 threads a workgroup).
fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}
fn pf(i: u32) -> f32 {
    return bitcast<f32>(p[i]);
}
// Scalar i of the run's per-step scalars (an optimizer's learning rate, ...).
fn rs(i: u32) -> f32 {
    return run.s[i / 4u][i % 4u];
}
"#;

/// A shader: its name (the pipeline cache's key) and its WGSL body (after `HEADER`).
#[derive(Clone, Copy)]
pub(crate) struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

/// One recorded kernel launch.
pub(crate) struct Dispatch {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
}

impl Dispatch {
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups[0], self.groups[1], self.groups[2]);
    }
}

/// Per-step scalars a run may pass its kernels (`rs(i)` in WGSL).
pub const RUN_SCALARS: usize = 24;

/// The per-run context the `run` uniform holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunCtx {
    pub training: bool,
    pub seed: u64,
    pub step: u64,
    pub scalars: [f32; RUN_SCALARS],
}

impl RunCtx {
    fn words(&self) -> [u32; 8 + RUN_SCALARS] {
        let mut w = [0u32; 8 + RUN_SCALARS];
        w[..5].copy_from_slice(&[
            u32::from(self.training),
            self.seed as u32,
            (self.seed >> 32) as u32,
            self.step as u32,
            (self.step >> 32) as u32,
        ]);
        for (o, s) in w[8..].iter_mut().zip(&self.scalars) {
            *o = s.to_bits();
        }
        w
    }
}

struct Pending {
    pipeline: Arc<wgpu::ComputePipeline>,
    inputs: usize,
    params: (usize, usize),
    out: GpuBuffer,
    ins: Vec<GpuBuffer>,
    groups: [u32; 3],
}

/// Collects a program's dispatches while it is planned; `finish` uploads the parameter
/// words and creates the bind groups.
pub(crate) struct Recorder<'a> {
    pub ctx: &'a Arc<GpuContext>,
    words: Vec<u32>,
    pending: Vec<Pending>,
    /// Buffers private to the program (see [`Recorder::scratch`]).
    keep: Vec<GpuBuffer>,
}

/// Threads per workgroup of the 1-D kernels.
pub(crate) const WG: usize = 256;

impl<'a> Recorder<'a> {
    pub fn new(ctx: &'a Arc<GpuContext>) -> Recorder<'a> {
        Recorder {
            ctx,
            words: Vec::new(),
            pending: Vec::new(),
            keep: Vec::new(),
        }
    }

    /// Workgroups for `threads` threads of a 1-D kernel, split over x and y (see `flat`).
    pub fn groups_for(&self, threads: usize) -> [u32; 3] {
        let g = threads.div_ceil(WG).max(1);
        let max = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        if g <= max {
            [g as u32, 1, 1]
        } else {
            let x = max;
            [x as u32, g.div_ceil(x) as u32, 1]
        }
    }

    /// A zeroed buffer of `len` floats that lives as long as the recorded program: working
    /// memory a kernel carries between its own dispatches (the recurrent loops' states, the
    /// embedding gradient's sort keys).
    pub fn scratch(&mut self, len: usize) -> crate::Result<GpuBuffer> {
        let b = self.ctx.alloc(len)?;
        self.keep.push(b.clone());
        Ok(b)
    }

    /// Records `entry` of `shader` over `threads` threads (a 1-D kernel).
    pub fn launch(
        &mut self,
        shader: Shader,
        entry: &'static str,
        params: &[u32],
        out: &GpuBuffer,
        ins: &[&GpuBuffer],
        threads: usize,
    ) {
        let groups = self.groups_for(threads);
        self.launch_groups(shader, entry, params, out, ins, groups)
    }

    /// Records `entry` of `shader` over an explicit workgroup grid.
    pub fn launch_groups(
        &mut self,
        shader: Shader,
        entry: &'static str,
        params: &[u32],
        out: &GpuBuffer,
        ins: &[&GpuBuffer],
        groups: [u32; 3],
    ) {
        assert!(ins.len() <= context::MAX_INPUTS, "too many kernel inputs");
        let source = SOURCES.with_header(shader);
        let pipeline = self.ctx.pipeline(shader.name, source, entry, ins.len());
        // Each dispatch's words start on a binding-offset boundary.
        let align = (self.ctx.offset_alignment() / 4) as usize;
        let start = self.words.len().div_ceil(align) * align;
        self.words.resize(start, 0);
        self.words.extend_from_slice(params);
        if params.is_empty() {
            self.words.push(0);
        }
        self.pending.push(Pending {
            pipeline,
            inputs: ins.len(),
            params: (start, params.len().max(1)),
            out: out.clone(),
            ins: ins.iter().map(|&b| b.clone()).collect(),
            groups,
        });
    }

    /// Uploads the parameter words and binds every recorded dispatch; `run` is the uniform
    /// buffer the program writes its [`RunCtx`] into. Returns the parameter buffer and the
    /// scratch buffers, which must live as long as the dispatches.
    pub fn finish(self, run: &wgpu::Buffer) -> crate::Result<(Vec<GpuBuffer>, Vec<Dispatch>)> {
        if self.pending.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let floats: Vec<f32> = self.words.iter().map(|&w| f32::from_bits(w)).collect();
        let params = self.ctx.upload(&floats)?;
        let dispatches = self
            .pending
            .into_iter()
            .map(|d| {
                let pview = params.view(d.params.0, d.params.1);
                let mut entries = vec![
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: pview.binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: run.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: d.out.binding(),
                    },
                ];
                for (i, b) in d.ins.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry {
                        binding: 3 + i as u32,
                        resource: b.binding(),
                    });
                }
                let bind_group = self
                    .ctx
                    .device
                    .create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: self.ctx.layout(d.inputs),
                        entries: &entries,
                    });
                Dispatch {
                    pipeline: d.pipeline,
                    bind_group,
                    groups: d.groups,
                }
            })
            .collect();
        let mut keep = self.keep;
        keep.push(params);
        Ok((keep, dispatches))
    }
}

/// Shader sources with the header prepended, built once per shader.
struct Sources {
    cache: std::sync::Mutex<std::collections::HashMap<&'static str, &'static str>>,
}

static SOURCES: std::sync::LazyLock<Sources> = std::sync::LazyLock::new(|| Sources {
    cache: std::sync::Mutex::new(std::collections::HashMap::new()),
});

impl Sources {
    fn with_header(&self, s: Shader) -> &'static str {
        let mut c = self.cache.lock().expect("shader sources");
        c.entry(s.name)
            .or_insert_with(|| Box::leak(format!("{HEADER}\n{}", s.source).into_boxed_str()))
    }
}

/// A recorded program's runnable form: its dispatches and the uniform with the run context.
pub(crate) struct GpuSteps {
    pub run: wgpu::Buffer,
    pub dispatches: Vec<Dispatch>,
    /// The parameter words and the kernels' scratch, bound by the dispatches.
    _buffers: Vec<GpuBuffer>,
}

impl GpuSteps {
    pub fn run_buffer(ctx: &GpuContext) -> wgpu::Buffer {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("run context"),
            size: ((8 + RUN_SCALARS) * 4) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    pub fn from_recorder(rec: Recorder<'_>, run: wgpu::Buffer) -> crate::Result<GpuSteps> {
        let (buffers, dispatches) = rec.finish(&run)?;
        Ok(GpuSteps {
            run,
            dispatches,
            _buffers: buffers,
        })
    }

    /// Writes the run context and encodes every dispatch into `enc`, in one compute pass.
    pub fn encode(&self, ctx: &GpuContext, run: &RunCtx, enc: &mut wgpu::CommandEncoder) {
        if self.dispatches.is_empty() {
            return;
        }
        ctx.queue
            .write_buffer(&self.run, 0, bytemuck::cast_slice(&run.words()));
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: None,
        });
        for d in &self.dispatches {
            d.encode(&mut pass);
        }
    }
}

/// GFLOP/s of the matmul kernel on an `n x n x n` product whose operands live on the GPU,
/// over `iters` runs after one warm-up run (for `bench/gpu/run.sh`).
pub fn bench_gemm(n: usize, iters: usize) -> crate::Result<f64> {
    let ctx = GpuContext::shared()?;
    let a = ctx.upload(&vec![1.0f32; n * n])?;
    let b = ctx.upload(&vec![0.5f32; n * n])?;
    let c = ctx.alloc(n * n)?;
    let mut rec = Recorder::new(&ctx);
    let dims = [n, n];
    kernels::record(
        &mut rec,
        &crate::ops::Op::MatMul {
            ta: false,
            tb: false,
        },
        &crate::graph::Shape::fixed(&dims),
        &[(a.clone(), &dims[..]), (b.clone(), &dims[..])],
        &c,
        &dims,
    )?;
    let steps = GpuSteps::from_recorder(rec, GpuSteps::run_buffer(&ctx))?;
    let run = RunCtx::default();
    let go = |times: usize| {
        let mut enc = ctx.encoder();
        for _ in 0..times {
            steps.encode(&ctx, &run, &mut enc);
        }
        ctx.submit(enc);
        ctx.wait();
    };
    go(1);
    let iters = iters.max(1);
    let t = std::time::Instant::now();
    go(iters);
    let secs = t.elapsed().as_secs_f64();
    let check = ctx.read(&c, 1)[0];
    if (check - 0.5 * n as f32).abs() > 1e-3 * n as f32 {
        return crate::value_error!(
            "the GPU matmul returned {check}, expected {}",
            0.5 * n as f32
        );
    }
    Ok(2.0 * (n as f64).powi(3) * iters as f64 / secs / 1e9)
}

#[cfg(test)]
mod tests;
