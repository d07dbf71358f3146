//! A named background thread with a stop request that also wakes it ([`StopSignal`]), and a
//! bounded wait for its end: what the compactor and the background pruner share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use parking_lot::Mutex;

/// How a stop request ended.
pub(crate) enum Stopped {
    /// The thread ended and was joined by this call.
    Joined,
    /// The thread had already been joined by an earlier call.
    AlreadyJoined,
    /// The thread did not end within the deadline; it goes on in the background.
    TimedOut,
}

/// A running background thread.
pub(crate) struct Worker {
    stop: StopSignal,
    stop_sender: Mutex<Option<Sender<()>>>,
    done: Receiver<()>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Worker {
    /// Starts `body` on a thread named `name`; `body` gets the stop signal to poll and sleep on.
    pub(crate) fn spawn(
        name: &str,
        body: impl FnOnce(&StopSignal) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (stop_sender, stop_requested) = bounded::<()>(0);
        let (done_sender, done) = bounded::<()>(1);
        let stop = StopSignal::new(Arc::new(AtomicBool::new(false)), stop_requested);
        let thread_stop = stop.clone();
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                body(&thread_stop);
                let _ = done_sender.send(());
            })?;
        Ok(Self {
            stop,
            stop_sender: Mutex::new(Some(stop_sender)),
            done,
            handle: Mutex::new(Some(handle)),
        })
    }

    /// The signal the thread polls; true once a stop was requested.
    pub(crate) fn stop_signal(&self) -> &StopSignal {
        &self.stop
    }

    /// Requests a stop (waking the thread from any sleep on its stop signal) and waits up to
    /// `deadline` for the thread to end.
    pub(crate) fn stop_and_wait(&self, deadline: Duration) -> Stopped {
        self.stop.request();
        drop(self.stop_sender.lock().take());
        match self.done.recv_timeout(deadline) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => match self.handle.lock().take() {
                Some(handle) => {
                    // The thread has signalled its end; joining cannot block for long. Its body
                    // catches what can panic, so the join result carries nothing to report.
                    let _ = handle.join();
                    Stopped::Joined
                }
                None => Stopped::AlreadyJoined,
            },
            Err(RecvTimeoutError::Timeout) => Stopped::TimedOut,
        }
    }
}

/// A stop request that also interrupts sleeps: the compactor's worker sleeps on it between
/// slices so that shutdown never waits out a pause.
#[derive(Debug, Clone)]
pub struct StopSignal {
    flag: Arc<AtomicBool>,
    wake: Receiver<()>,
}

impl StopSignal {
    /// A signal that never fires (synchronous compaction).
    pub fn never() -> Self {
        Self {
            flag: Arc::new(AtomicBool::new(false)),
            wake: crossbeam_channel::never(),
        }
    }

    /// A signal that fires when `flag` is set; `wake` must disconnect (its sender dropped) at
    /// the same time so sleepers wake at once.
    pub(crate) fn new(flag: Arc<AtomicBool>, wake: Receiver<()>) -> Self {
        Self { flag, wake }
    }

    /// Requests the stop (sleepers wake once the sender side of `wake` is dropped too).
    pub(crate) fn request(&self) {
        self.flag.store(true, Ordering::Release);
    }

    /// The channel that disconnects when a stop is requested, for `select!`.
    pub(crate) fn requests(&self) -> &Receiver<()> {
        &self.wake
    }

    /// True once a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Sleeps up to `duration`; returns true (early) when a stop was requested.
    pub fn sleep(&self, duration: Duration) -> bool {
        if self.is_stopped() {
            return true;
        }
        match self.wake.recv_timeout(duration) {
            Err(RecvTimeoutError::Timeout) => self.is_stopped(),
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stop_signal_interrupts_sleep() {
        let flag = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        let stop = StopSignal::new(Arc::clone(&flag), rx);
        assert!(!stop.sleep(Duration::from_millis(1)));
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            flag.store(true, Ordering::Release);
            drop(tx);
        });
        let started = std::time::Instant::now();
        assert!(stop.sleep(Duration::from_secs(30)));
        assert!(started.elapsed() < Duration::from_secs(20));
        waker.join().unwrap();
    }
}
