//! The API's connection layer: at most [`MAX_CONNECTIONS`] open at once, headers bounded in
//! size, count and time, idle keep-alive connections closed after [`HEADER_TIMEOUT`], and when
//! every place is taken a new connection evicts the oldest idle one, so local processes holding
//! idle sockets cannot keep `members` from answering. Bodies, the token and the request
//! timeout are checked per request in `server.rs` before any handler runs.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

/// Connections open at most; a new one past that evicts the oldest idle one.
pub const MAX_CONNECTIONS: usize = 128;
/// Time to send a request's headers; also how long an idle keep-alive connection stays open.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of request line and headers at most (hyper's smallest read buffer).
pub const MAX_HEADER_BYTES: usize = 8_192;
/// Headers per request at most.
pub const MAX_HEADERS: usize = 32;
/// How long open connections may take to finish once the API shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Connections refused or evicted, for `/metrics`.
pub static EVICTED: AtomicU64 = AtomicU64::new(0);

struct Entry {
    opened: Instant,
    busy: Arc<AtomicUsize>,
    close: Arc<Notify>,
}

#[derive(Default)]
struct Registry {
    open: Mutex<BTreeMap<u64, Entry>>,
    emptied: Notify,
}

impl Registry {
    fn entries(&self) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
        match self.open.lock() {
            Ok(entries) => entries,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Makes room for one more connection: true if there is room (evicting the oldest idle
    /// connection if needed), false if every connection is busy with a request.
    fn make_room(&self) -> bool {
        let mut entries = self.entries();
        if entries.len() < MAX_CONNECTIONS {
            return true;
        }
        let oldest_idle = entries
            .iter()
            .filter(|(_, e)| e.busy.load(Ordering::Relaxed) == 0)
            .min_by_key(|(_, e)| e.opened)
            .map(|(id, _)| *id);
        match oldest_idle.and_then(|id| entries.remove(&id)) {
            Some(evicted) => {
                evicted.close.notify_one();
                EVICTED.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        let mut entries = self.entries();
        entries.remove(&id);
        if entries.is_empty() {
            self.emptied.notify_waiters();
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open connections finish
/// (at most [`SHUTDOWN_GRACE`]).
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) {
    let registry = Arc::new(Registry::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let service = TowerToHyperService::new(router);
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let (stream, from) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if !registry.make_room() {
            EVICTED.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%from, "API connection refused: every connection is busy");
            continue;
        }
        next_id += 1;
        let id = next_id;
        let busy = Arc::new(AtomicUsize::new(0));
        let close = Arc::new(Notify::new());
        registry.entries().insert(
            id,
            Entry {
                opened: Instant::now(),
                busy: busy.clone(),
                close: close.clone(),
            },
        );
        let service = service.clone();
        let registry = registry.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let tracked = hyper::service::service_fn(move |request| {
                let busy = BusyGuard::enter(busy.clone());
                let answer = service.call(request);
                async move {
                    let answer = answer.await;
                    drop(busy);
                    answer
                }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .max_headers(MAX_HEADERS)
                .serve_connection(TokioIo::new(stream), tracked);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%from, error = %e, "API connection ended");
                    }
                }
                () = close.notified() => tracing::debug!(%from, "idle API connection evicted"),
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
                }
            }
            registry.remove(id);
        });
    }
    let _ = stop_tx.send(true);
    let emptied = registry.emptied.notified();
    if !registry.entries().is_empty() {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, emptied).await;
    }
}

/// Marks a connection busy while one of its requests is being answered.
struct BusyGuard(Arc<AtomicUsize>);

impl BusyGuard {
    fn enter(busy: Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::Relaxed);
        Self(busy)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
