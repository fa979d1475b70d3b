//! The shape both operator-facing listeners share (the UAPI socket, the metrics endpoint): a
//! thread accepts clients and reads their requests, so that a slow client never holds up
//! handshakes; the control loop takes each complete request with [`Service::poll`] and answers
//! it with the state it owns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub struct Service<R> {
    requests: mpsc::Receiver<R>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<R: Send + 'static> Service<R> {
    /// Starts thread `name` calling `accept` until the service is dropped; `accept` serves
    /// one waiting client (sending its requests) and returns false when none was waiting.
    pub fn spawn(
        name: &str,
        mut accept: impl FnMut(&mpsc::Sender<R>, &AtomicBool) -> bool + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, requests) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new().name(name.into()).spawn({
            let stop = stop.clone();
            move || {
                while !stop.load(Ordering::Relaxed) {
                    if !accept(&tx, &stop) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        })?;
        Ok(Self {
            requests,
            stop,
            thread: Some(thread),
        })
    }

    /// The next complete request, if one is waiting.
    pub fn poll(&self) -> Option<R> {
        self.requests.try_recv().ok()
    }
}

impl<R> Drop for Service<R> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
