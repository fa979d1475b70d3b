//! The shape both operator-facing listeners share (the UAPI socket, the metrics endpoint): a
//! thread accepts clients and each is read on a thread of its own, so that a slow client never
//! holds up handshakes nor another client; the control loop takes each complete request with
//! [`Service::poll`] and answers it with the state it owns.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// Clients served at once, each on its own thread: one slow or silent client holds up only
/// itself (it times out), never the others. Past this, new connections are closed at once,
/// so a flood of idle connections costs bounded threads and memory.
pub const MAX_CLIENTS: usize = 8;

#[derive(Debug)]
pub struct Service<R> {
    requests: mpsc::Receiver<R>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<R: Send + 'static> Service<R> {
    /// Starts thread `name`, which takes clients from `accept` (`None`: none waiting) until
    /// the service is dropped and serves each on a thread of its own with `serve` (sending
    /// its requests), at most [`MAX_CLIENTS`] at once.
    pub fn spawn<C: Send + 'static>(
        name: &str,
        mut accept: impl FnMut() -> Option<C> + Send + 'static,
        serve: impl Fn(C, &mpsc::Sender<R>, &AtomicBool) + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let (tx, requests) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let serve = Arc::new(serve);
        let active = Arc::new(AtomicUsize::new(0));
        let client_name = format!("{name}-client");
        let thread = std::thread::Builder::new().name(name.into()).spawn({
            let stop = stop.clone();
            move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(client) = accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    if active.load(Ordering::Acquire) >= MAX_CLIENTS {
                        // Closed unanswered: the busy ones are someone's problem already.
                        drop(client);
                        continue;
                    }
                    active.fetch_add(1, Ordering::AcqRel);
                    let (tx, stop, serve, mine) =
                        (tx.clone(), stop.clone(), serve.clone(), active.clone());
                    let spawned =
                        std::thread::Builder::new()
                            .name(client_name.clone())
                            .spawn(move || {
                                serve(client, &tx, &stop);
                                mine.fetch_sub(1, Ordering::AcqRel);
                            });
                    if spawned.is_err() {
                        active.fetch_sub(1, Ordering::AcqRel);
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
