//! GPU memory: [`GpuBuffer`] is a range of floats inside a pooled `wgpu::Buffer`. A program
//! takes one arena buffer and hands out 256-byte-aligned ranges of it as slots; variables,
//! feeds and optimizer slots take whole buffers. A dropped buffer goes back to the pool, so
//! re-planning for another batch size reuses device memory instead of allocating more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Bytes of pooled buffers handed out and not yet returned (over every pool): a buffer is
/// counted from `take` until its last view is dropped, so that a dropped model is seen to
/// give its device memory back. Updated with relaxed atomics: it is a statistic that no
/// other memory access depends on.
static BYTES_IN_USE: AtomicU64 = AtomicU64::new(0);

/// Bytes of GPU buffers in use (taken from a pool and not yet returned to it).
pub fn bytes_in_use() -> u64 {
    BYTES_IN_USE.load(Ordering::Relaxed)
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Buffers come in size classes (floats): powers of two up to 1 Mi, then multiples of
/// 256 Ki, so that a returned buffer fits the next request of a similar size.
fn size_class(len: usize) -> usize {
    if len <= 1 << 20 {
        len.next_power_of_two().max(64)
    } else {
        len.div_ceil(1 << 18) << 18
    }
}

struct PoolInner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    free: Mutex<HashMap<usize, Vec<wgpu::Buffer>>>,
}

pub(crate) struct BufferPool {
    inner: Arc<PoolInner>,
}

impl BufferPool {
    pub fn new(device: wgpu::Device, queue: wgpu::Queue) -> BufferPool {
        BufferPool {
            inner: Arc::new(PoolInner {
                device,
                queue,
                free: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A buffer of at least `len` floats, zeroed: new from the device (which zeroes it) or
    /// recycled and cleared.
    pub fn take(&self, len: usize) -> GpuBuffer {
        let class = size_class(len);
        let recycled = self
            .inner
            .free
            .lock()
            .expect("buffer pool")
            .get_mut(&class)
            .and_then(|v| v.pop());
        let buffer = match recycled {
            Some(b) => {
                let mut enc = self
                    .inner
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
                enc.clear_buffer(&b, 0, None);
                // Queue order puts the clear before any later use of the buffer.
                self.inner.queue.submit([enc.finish()]);
                b
            }
            None => self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("rustkeras"),
                size: (class * 4) as u64,
                usage: USAGE,
                mapped_at_creation: false,
            }),
        };
        BYTES_IN_USE.fetch_add((class * 4) as u64, Ordering::Relaxed);
        GpuBuffer {
            inner: Arc::new(Pooled {
                buffer: Some(buffer),
                class,
                pool: Arc::downgrade(&self.inner),
            }),
            offset: 0,
            len,
        }
    }
}

struct Pooled {
    buffer: Option<wgpu::Buffer>,
    class: usize,
    pool: Weak<PoolInner>,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        BYTES_IN_USE.fetch_sub((self.class * 4) as u64, Ordering::Relaxed);
        if let (Some(b), Some(pool)) = (self.buffer.take(), self.pool.upgrade()) {
            if let Ok(mut free) = pool.free.lock() {
                free.entry(self.class).or_default().push(b);
            }
        }
    }
}

/// `len` floats at byte `offset` of a pooled buffer. Cloning makes another view of the same
/// memory; the buffer returns to the pool when the last view is dropped.
#[derive(Clone)]
pub struct GpuBuffer {
    inner: Arc<Pooled>,
    offset: u64,
    len: usize,
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer({} floats at byte {})", self.len, self.offset)
    }
}

impl GpuBuffer {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Byte offset in the underlying buffer.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.inner.buffer.as_ref().expect("live until dropped")
    }

    /// `len` floats starting `start` floats into this view.
    pub fn view(&self, start: usize, len: usize) -> GpuBuffer {
        assert!(start + len <= self.capacity_from(0), "view out of range");
        GpuBuffer {
            inner: self.inner.clone(),
            offset: self.offset + (start * 4) as u64,
            len,
        }
    }

    /// Floats from `start` (relative to this view) to the end of the underlying buffer.
    fn capacity_from(&self, start: usize) -> usize {
        self.inner.class - (self.offset / 4) as usize - start
    }

    /// The binding of this view (at least 4 bytes, as wgpu requires).
    pub(crate) fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer(),
            offset: self.offset,
            size: std::num::NonZeroU64::new((self.len.max(1) * 4) as u64),
        })
    }
}
