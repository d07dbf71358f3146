//! The single-flight gate: at most one compaction queued or running across every compactor
//! sharing it. Claimed by one compare-and-swap (never blocks), released when the claim drops.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

const IDLE: u8 = 0;
const QUEUED: u8 = 1;
const RUNNING: u8 = 2;

/// Why a task was not accepted because another one holds the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// A task is waiting in a queue (the spec's "queue full").
    QueueFull,
    /// A task is running (the spec's "already in progress").
    InFlight,
}

/// A gate that admits one compaction at a time. Clones share the gate, so compactors built with
/// [`crate::compaction::Compactor::with_single_flight`] on clones of one gate never run two tasks at once.
#[derive(Clone, Default)]
pub struct SingleFlight {
    inner: Arc<FlightInner>,
}

#[derive(Default)]
struct FlightInner {
    state: AtomicU8,
    idle_lock: Mutex<()>,
    idle: Condvar,
}

impl fmt::Debug for SingleFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleFlight")
            .field("state", &self.inner.state.load(Ordering::Acquire))
            .finish()
    }
}

impl SingleFlight {
    /// A free gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Claims the gate with one compare-and-swap; never blocks.
    pub fn try_claim(&self) -> Result<FlightClaim, Busy> {
        match self
            .inner
            .state
            .compare_exchange(IDLE, QUEUED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(FlightClaim {
                inner: Arc::clone(&self.inner),
            }),
            Err(RUNNING) => Err(Busy::InFlight),
            Err(_) => Err(Busy::QueueFull),
        }
    }

    /// True when no task is queued or running.
    pub fn is_idle(&self) -> bool {
        self.inner.state.load(Ordering::Acquire) == IDLE
    }

    /// Waits until the gate is free or `timeout` passes; returns true if it is free.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.inner.idle_lock.lock();
        while !self.is_idle() {
            if self.inner.idle.wait_until(&mut guard, deadline).timed_out() {
                return self.is_idle();
            }
        }
        true
    }
}

/// Proof of holding the [`SingleFlight`] gate; dropping it frees the gate.
pub struct FlightClaim {
    inner: Arc<FlightInner>,
}

impl FlightClaim {
    pub(crate) fn mark_running(&self) {
        self.inner.state.store(RUNNING, Ordering::Release);
    }
}

impl Drop for FlightClaim {
    fn drop(&mut self) {
        self.inner.state.store(IDLE, Ordering::Release);
        let _guard = self.inner.idle_lock.lock();
        self.inner.idle.notify_all();
    }
}
