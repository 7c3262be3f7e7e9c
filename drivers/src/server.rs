//! TCP server plumbing on top of the drivers: Tornado's `bind_sockets` (a host name to one
//! listener per address family), N share-nothing loops on N threads with SO_REUSEPORT, and a
//! graceful stop on SIGINT/SIGTERM. It only uses the `IoLoop` API and the `Driver` trait.

use crate::{new_driver, Driver, DriverConfig, DriverError};
use eddy_core::{IoLoop, ListenOptions, ListenerId, Remote, StreamId};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long [`serve_threads`] lets streams flush after a stop signal.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// How often a graceful stop checks whether every stream has finished.
const FLUSH_POLL: Duration = Duration::from_millis(10);

/// The addresses to listen on for `host`: one per address family, first of each as resolved.
///
/// An empty host or `"*"` means every interface (`0.0.0.0` and `::`), like Tornado's
/// `bind_sockets(port, address=None)`.
pub fn resolve_listen_addrs(host: &str, port: u16) -> Result<Vec<SocketAddr>, DriverError> {
    if host.is_empty() || host == "*" {
        return Ok(vec![
            (Ipv4Addr::UNSPECIFIED, port).into(),
            (Ipv6Addr::UNSPECIFIED, port).into(),
        ]);
    }
    let resolved = (host, port)
        .to_socket_addrs()
        .map_err(|source| DriverError::Resolve {
            host: host.to_string(),
            source,
        })?;
    let mut out: Vec<SocketAddr> = Vec::new();
    for a in resolved {
        if !out.iter().any(|o| o.is_ipv4() == a.is_ipv4()) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err(DriverError::Resolve {
            host: host.to_string(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        });
    }
    Ok(out)
}

/// Listens on every address `host` resolves to (one per family), all on the same port even
/// when `port` is 0, and binds now. Returns the listeners; on failure none is left open.
///
/// Like Tornado, an unavailable `::1` for `"localhost"` is skipped, not an error.
pub fn listen_host<F>(
    driver: &mut dyn Driver,
    io: &mut IoLoop,
    host: &str,
    port: u16,
    options: ListenOptions,
    on_accept: F,
) -> Result<Vec<ListenerId>, DriverError>
where
    F: FnMut(&mut IoLoop, StreamId, SocketAddr) + Clone + 'static,
{
    let mut bound_port = None;
    let mut ids = Vec::new();
    for mut addr in resolve_listen_addrs(host, port)? {
        if let Some(p) = bound_port {
            addr.set_port(p);
        }
        let id = io.listen(addr, options, on_accept.clone());
        driver.perform_actions(io)?;
        match (io.listener_addr(id), io.listener_error(id)) {
            (Some(local), _) => {
                bound_port.get_or_insert(local.port());
                ids.push(id);
            }
            (None, Some(io::ErrorKind::AddrNotAvailable))
                if host == "localhost" && addr.is_ipv6() =>
            {
                io.close_listener(id);
            }
            (None, kind) => {
                io.close_listener(id);
                for other in ids {
                    io.close_listener(other);
                }
                driver.perform_actions(io)?;
                return Err(DriverError::Bind {
                    addr,
                    kind: kind.unwrap_or(io::ErrorKind::Other),
                });
            }
        }
    }
    driver.perform_actions(io)?;
    Ok(ids)
}

/// Stops a loop gracefully: stop accepting, ask every connection to finish its exchange in
/// progress and close ([`IoLoop::drain_streams`]: idle keep-alive HTTP connections close at
/// once, busy ones after their response), wait for them for at most `grace`, then close
/// what is left and stop the loop.
pub fn graceful_stop(io: &mut IoLoop, grace: Duration) {
    let listeners: Vec<ListenerId> = io.listener_ids().collect();
    for id in listeners {
        io.close_listener(id);
    }
    io.drain_streams();
    let deadline = io.now() + grace;
    check_drained(io, deadline);
}

fn check_drained(io: &mut IoLoop, deadline: eddy_core::Instant) {
    // A protocol's stream is done when it has closed; a plain callback stream when its
    // queued writes are out.
    let open = io
        .stream_ids()
        .filter(|&id| io.has_stream_handler(id) || io.writing(id))
        .count();
    if open == 0 || io.now() >= deadline {
        if open > 0 {
            tracing::warn!(
                open,
                "grace period over; closing the connections still open"
            );
        }
        io.close_all();
        io.stop();
        return;
    }
    io.call_later(FLUSH_POLL, move |io| check_drained(io, deadline));
}

/// N loops on N threads, each accepting on its own SO_REUSEPORT socket; see [`spawn_threads`].
pub struct ThreadServer {
    addr: SocketAddr,
    remotes: Vec<Remote>,
    handles: Vec<JoinHandle<Result<(), DriverError>>>,
}

impl std::fmt::Debug for ThreadServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadServer")
            .field("addr", &self.addr)
            .field("threads", &self.handles.len())
            .finish()
    }
}

impl ThreadServer {
    /// The address every thread listens on (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Number of loop threads.
    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// Handles for queuing work onto each loop.
    pub fn remotes(&self) -> &[Remote] {
        &self.remotes
    }

    /// Asks every loop to stop gracefully (see [`graceful_stop`]); returns at once.
    pub fn shutdown(&self, grace: Duration) {
        for r in &self.remotes {
            r.add_callback(move |io| graceful_stop(io, grace));
        }
    }

    /// Waits for every loop thread; the first error (or panic) wins.
    pub fn join(self) -> Result<(), DriverError> {
        let mut result = Ok(());
        for (index, h) in self.handles.into_iter().enumerate() {
            let r = h.join().unwrap_or_else(|_| {
                Err(DriverError::Thread {
                    index,
                    message: "panicked".into(),
                })
            });
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Blocks until SIGINT or SIGTERM (or until every loop has exited by itself), then
    /// stops gracefully within `grace` and joins; a second signal cuts the grace short.
    pub fn wait_for_signals(self, grace: Duration) -> Result<(), DriverError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals =
            signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(DriverError::Signals)?;
        let handle = signals.handle();
        // Bounded wait: each pass sleeps 50 ms, so exits of the loops are noticed too.
        // A second signal while flushing means "now": the grace period is cut to zero.
        let mut stopping = false;
        while !self.handles.iter().all(|h| h.is_finished()) {
            if let Some(sig) = signals.pending().next() {
                if stopping {
                    tracing::warn!(signal = sig, "second signal: closing streams now");
                    self.shutdown(Duration::ZERO);
                } else {
                    tracing::info!(signal = sig, "stopping: closing listeners, flushing");
                    self.shutdown(grace);
                    stopping = true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        handle.close();
        self.join()
    }
}

/// Starts `threads` loops, each on its own thread with its own driver, and runs
/// `setup(io, addr)` on each; `setup` should listen on `addr` (SO_REUSEPORT is forced on).
///
/// Thread 0 starts first; if `addr` has port 0, the others get the port it bound, so all
/// share one port and the kernel spreads connections among them. Returns once every loop
/// listens; errors in any setup (no listener, bind failure) stop the others and are returned.
pub fn spawn_threads<F>(
    config: &DriverConfig,
    threads: usize,
    addr: SocketAddr,
    setup: F,
) -> Result<ThreadServer, DriverError>
where
    F: Fn(&mut IoLoop, SocketAddr) + Send + Sync + 'static,
{
    let threads = threads.max(1);
    let setup = Arc::new(setup);
    let config = DriverConfig {
        force_reuse_port: true,
        ..config.clone()
    };
    let mut server = ThreadServer {
        addr,
        remotes: Vec::new(),
        handles: Vec::new(),
    };
    for index in 0..threads {
        let (tx, rx) = mpsc::channel();
        let (setup, config, bind) = (setup.clone(), config.clone(), server.addr);
        let spawned = std::thread::Builder::new()
            .name(format!("eddy-loop-{index}"))
            .spawn(move || loop_thread(&config, bind, &*setup, &tx));
        let handle = match spawned {
            Ok(h) => h,
            Err(e) => {
                server.shutdown(Duration::ZERO);
                let _ = server.join();
                return Err(DriverError::Thread {
                    index,
                    message: e.to_string(),
                });
            }
        };
        server.handles.push(handle);
        let started = rx.recv().unwrap_or_else(|_| {
            Err(DriverError::Thread {
                index,
                message: "exited during setup".into(),
            })
        });
        match started {
            Ok((local, remote)) => {
                server.addr = local;
                server.remotes.push(remote);
            }
            Err(e) => {
                server.shutdown(Duration::ZERO);
                let _ = server.join();
                return Err(e);
            }
        }
    }
    Ok(server)
}

/// Serves on `threads` loops until SIGINT/SIGTERM, then stops gracefully: the one-call
/// multi-core server (driver from `EDDY_DRIVER`, grace [`DEFAULT_GRACE`]).
pub fn serve_threads<F>(threads: usize, addr: SocketAddr, setup: F) -> Result<(), DriverError>
where
    F: Fn(&mut IoLoop, SocketAddr) + Send + Sync + 'static,
{
    let config = DriverConfig::from_env()?;
    let server = spawn_threads(&config, threads, addr, setup)?;
    tracing::info!(addr = %server.local_addr(), threads = server.threads(), driver = config.kind.name(), "serving");
    server.wait_for_signals(DEFAULT_GRACE)
}

/// [`spawn_threads`] with an async setup: `setup(addr)` runs as a task on each loop and
/// should bind a [`TcpListener`](eddy_core::task::TcpListener) (or an `HttpServer`) on `addr`.
pub fn spawn_threads_async<F, Fut>(
    config: &DriverConfig,
    threads: usize,
    addr: SocketAddr,
    setup: F,
) -> Result<ThreadServer, DriverError>
where
    F: Fn(SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    spawn_threads(config, threads, addr, move |io, addr| {
        io.spawn_detached(setup(addr));
    })
}

/// [`serve_threads`] with an async setup (see [`spawn_threads_async`]).
pub fn serve_threads_async<F, Fut>(
    threads: usize,
    addr: SocketAddr,
    setup: F,
) -> Result<(), DriverError>
where
    F: Fn(SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    serve_threads(threads, addr, move |io, addr| {
        io.spawn_detached(setup(addr));
    })
}

type Started = Result<(SocketAddr, Remote), DriverError>;

fn loop_thread(
    config: &DriverConfig,
    addr: SocketAddr,
    setup: &(dyn Fn(&mut IoLoop, SocketAddr) + Send + Sync),
    started: &mpsc::Sender<Started>,
) -> Result<(), DriverError> {
    let mut io = IoLoop::new(config.loop_config);
    let mut driver = match new_driver(config) {
        Ok(d) => d,
        Err(e) => {
            let _ = started.send(Err(e));
            return Ok(());
        }
    };
    setup(&mut io, addr);
    driver.perform_actions(&mut io)?;
    // An async setup binds from a task: turn the loop until a listener answers (bounded).
    for _ in 0..200 {
        if io
            .listener_ids()
            .any(|id| io.listener_addr(id).is_some() || io.listener_error(id).is_some())
            || (io.listener_ids().next().is_none() && io.task_count() == 0)
        {
            break;
        }
        driver.turn(&mut io, Some(Duration::from_millis(5)))?;
    }
    let listeners: Vec<ListenerId> = io.listener_ids().collect();
    let mut local = None;
    for id in &listeners {
        if let Some(kind) = io.listener_error(*id) {
            let _ = started.send(Err(DriverError::Bind { addr, kind }));
            return Ok(());
        }
        local = local.or(io.listener_addr(*id));
    }
    let Some(local) = local else {
        let _ = started.send(Err(DriverError::NoListener));
        return Ok(());
    };
    let _ = started.send(Ok((local, io.remote())));
    let result = driver.run_until_stopped(&mut io);
    if let Err(e) = &result {
        tracing::error!(error = %e, addr = %local, "loop thread stopped on an error");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_host_means_every_interface_of_both_families() {
        let addrs = resolve_listen_addrs("", 8080).unwrap();
        assert_eq!(addrs.len(), 2);
        assert!(addrs
            .iter()
            .all(|a| a.port() == 8080 && a.ip().is_unspecified()));
    }

    #[test]
    fn literal_addresses_resolve_to_themselves() {
        let addrs = resolve_listen_addrs("127.0.0.1", 0).unwrap();
        assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
    }
}
