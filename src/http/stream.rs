//! The streaming bridge: a generation job runs on a blocking thread (its CPU work inside the
//! service's rayon pool) and hands chunks through a bounded channel to the response body.
//! A slow client fills the channel and so pauses generation; a client that goes away drops
//! the body, the next send fails and generation stops. The job slot is held by both ends and
//! is released when the last of them finishes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::AppState;
use super::metrics::Metrics;
use crate::encode::json::JsonBody;
use crate::encode::safetensors::SafetensorsBody;
use crate::generate::Generator;
use crate::plan::{Format, Plan};

/// Bytes per safetensors chunk (each chunk is split across the rayon pool).
pub const SAFETENSORS_CHUNK: usize = 1 << 20;
/// Bytes per JSON chunk (JSON is encoded on one thread per job).
pub const JSON_CHUNK: usize = 1 << 16;
/// Chunks buffered between generation and the socket, per job.
pub const CHANNEL_CHUNKS: usize = 4;

/// Buffers a job keeps for reuse: those in the channel, the one the socket is writing and the
/// one being generated. The pool never holds more than the channel already bounds.
const POOL_CHUNKS: usize = CHANNEL_CHUNKS + 2;

/// One job's chunk buffers, handed back when the socket has written them, so a steady stream
/// allocates and zeroes no buffer per chunk (zeroing 1 MiB per chunk was a twentieth of a
/// bf16 response's server CPU).
#[derive(Clone, Default)]
struct ChunkPool(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl ChunkPool {
    /// A returned buffer, or a new empty one.
    fn take(&self) -> Vec<u8> {
        match self.0.lock() {
            Ok(mut v) => v.pop().unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// `buf` as `Bytes` that return it to this pool when the last reference drops.
    fn wrap(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: self.clone(),
        })
    }
}

/// A chunk's buffer on its way to the socket; dropping it returns the buffer to its pool.
struct Pooled {
    buf: Vec<u8>,
    pool: ChunkPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if let Ok(mut v) = self.pool.0.lock()
            && v.len() < POOL_CHUNKS
        {
            v.push(buf);
        }
    }
}

/// A held generation slot; dropping it (or `release`) frees the slot and updates the in-flight
/// gauge, once.
pub struct JobSlot {
    permit: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
    metrics: Metrics,
}

impl JobSlot {
    pub fn new(permit: OwnedSemaphorePermit, metrics: Metrics) -> JobSlot {
        metrics.job_started();
        JobSlot {
            permit: std::sync::Mutex::new(Some(permit)),
            metrics,
        }
    }

    /// Frees the slot now (a client cut off for idleness may keep its body object alive).
    pub fn release(&self) {
        let taken = match self.permit.lock() {
            Ok(mut p) => p.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if taken.is_some() {
            self.metrics.job_finished();
        }
    }
}

impl Drop for JobSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// The response body fed by a generation job.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
    /// Bytes still to come when the length is known up front (safetensors).
    remaining: Option<u64>,
    slot: Option<Arc<JobSlot>>,
    /// Set by the job only when it produced the whole body. A channel that closes without it
    /// (idle cut-off, shutdown) ends the body with an error, so hyper sends no final chunk
    /// (HTTP/1.1) or resets the stream (HTTP/2) instead of making half a document look whole.
    finished: Arc<AtomicBool>,
    /// The generator's cancellation flag: set when this body is dropped (the client went away,
    /// or hyper dropped the body of a HEAD response), so that a whole-tensor computation in
    /// progress stops at its next block instead of holding the job slot to its end.
    cancel: Arc<AtomicBool>,
}

impl Drop for ChannelBody {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => {
                if let Some(r) = self.remaining.as_mut() {
                    *r = r.saturating_sub(chunk.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(None) => {
                self.slot = None;
                match self.remaining {
                    Some(r) if r > 0 => Poll::Ready(Some(Err(std::io::Error::other(format!(
                        "generation ended {r} bytes before the announced length"
                    ))))),
                    _ if !self.finished.load(Ordering::SeqCst) => Poll::Ready(Some(Err(
                        std::io::Error::other("generation was cut off before the end"),
                    ))),
                    _ => Poll::Ready(None),
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// Starts generating `plan` in `format` and returns the body that streams it.
pub fn spawn_generation(
    state: &AppState,
    plan: Arc<Plan>,
    format: Format,
    slot: JobSlot,
    byte_range: Option<(u64, u64)>,
) -> ChannelBody {
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let slot = Arc::new(slot);
    let worker_slot = slot.clone();
    let pool = state.pool.clone();
    let metrics = state.metrics.clone();
    let span = tracing::Span::current();
    // Bytes [start, end) of the safetensors file; JSON has no ranges.
    let (start, end) = byte_range.unwrap_or((0, plan.file_bytes));
    let remaining = match format {
        Format::Safetensors => Some(end - start),
        Format::Json => None,
    };
    let finished = Arc::new(AtomicBool::new(false));
    let worker_finished = finished.clone();
    let runtime = tokio::runtime::Handle::current();
    let idle = std::time::Duration::from_secs(state.config.idle_timeout_secs);
    let total_elements = plan.total_elements;
    let file_bytes = plan.file_bytes;
    let generator = Generator::new(plan);
    let cancel = generator.cancel_flag();
    let worker_cancel = cancel.clone();
    tokio::task::spawn_blocking(move || {
        let _enter = span.enter();
        let job = worker_slot;
        let started = Instant::now();
        let mut source: Box<dyn FnMut() -> Option<Bytes> + Send> = match format {
            Format::Safetensors => {
                let mut b = SafetensorsBody::new(generator, start, end, SAFETENSORS_CHUNK);
                let pool = ChunkPool::default();
                Box::new(move || {
                    let mut buf = pool.take();
                    b.next_chunk_into(&mut buf).then(|| pool.wrap(buf))
                })
            }
            Format::Json => {
                let mut b = JsonBody::new(generator, JSON_CHUNK);
                Box::new(move || b.next_chunk().map(Bytes::from))
            }
        };
        let mut sent: u64 = 0;
        let mut complete = true;
        while let Some(chunk) = pool.install(&mut source) {
            if worker_cancel.load(Ordering::SeqCst) {
                // The body is gone; this chunk may hold a cancelled computation's stand-in.
                complete = false;
                break;
            }
            let n = chunk.len() as u64;
            // A client that reads nothing for `idle` is cut off: its slot must not be held forever.
            match runtime.block_on(tx.send_timeout(chunk, idle)) {
                Ok(()) => {}
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                    tracing::info!(
                        idle_secs = idle.as_secs(),
                        "client read nothing for the idle timeout; cut off"
                    );
                    job.release();
                    complete = false;
                    break;
                }
                Err(mpsc::error::SendTimeoutError::Closed(_)) => {
                    complete = false;
                    break;
                }
            }
            sent += n;
        }
        if complete {
            // Before `tx` drops: the body must see the flag when the channel closes.
            worker_finished.store(true, Ordering::SeqCst);
        }
        drop(tx);
        let whole = sent == file_bytes || format == Format::Json;
        let elements = if complete && whole {
            total_elements
        } else if format == Format::Safetensors && file_bytes > 0 {
            // A range or an aborted stream: elements in proportion to the bytes sent.
            (total_elements as u128 * sent as u128 / file_bytes as u128) as u64
        } else {
            0
        };
        let elapsed = started.elapsed();
        metrics.generation(
            format.as_str(),
            if complete { "complete" } else { "aborted" },
            sent,
            elements,
            elapsed,
        );
        if complete {
            tracing::debug!(
                bytes = sent,
                ms = elapsed.as_millis() as u64,
                "generation complete"
            );
        } else {
            tracing::info!(
                bytes = sent,
                ms = elapsed.as_millis() as u64,
                "client went away; generation stopped"
            );
        }
    });
    ChannelBody {
        rx,
        remaining,
        slot: Some(slot),
        finished,
        cancel,
    }
}
