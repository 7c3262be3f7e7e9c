//! eddy-drivers: run an [`IoLoop`] on the operating system.
//!
//! Two drivers sit behind one trait, [`Driver`]: [`Mio`] (epoll/kqueue, edge-triggered, the
//! default) and [`Poll`] (poll(2), the portable fallback, like Tornado's select loop). Pick
//! one at start-up with [`DriverConfig::kind`] or the `EDDY_DRIVER=mio|poll` environment
//! variable ([`DriverConfig::from_env`], Tornado's `configurable_default`). A driver owns the
//! sockets and the clock; the loop owns everything else, so application code is identical on
//! the simulator. For several cores, [`spawn_threads`] runs one loop per thread, each with its
//! own SO_REUSEPORT listener, sharing nothing (Tornado's `fork_processes`, as threads).
//!
//! ```no_run
//! use eddy_core::{IoLoop, ListenOptions};
//! use eddy_drivers::{Driver, DriverConfig};
//! let mut io = IoLoop::default();
//! let mut driver = eddy_drivers::new_driver(&DriverConfig::from_env()?)?;
//! let l = io.listen("127.0.0.1:0".parse()?, ListenOptions::default(), |io, id, _peer| {
//!     let _ = io.write(id, &b"hello\n"[..]);
//! });
//! driver.perform_actions(&mut io)?; // binds now, so the port is known
//! println!("listening on {:?}", io.listener_addr(l));
//! driver.run_until_stopped(&mut io)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Platforms: Unix (Linux, macOS, the BSDs); the drivers use raw descriptors throughout.
//!
//! Closing: a stream the loop closes because of a reset or an I/O error is closed with
//! SO_LINGER 0 (an RST, no TIME_WAIT) unless [`DriverConfig::reset_on_error_close`] is off;
//! every other close is an orderly FIN.
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(not(unix))]
compile_error!("eddy-drivers supports Unix (Linux, macOS, the BSDs) only");

pub mod activation;
mod blocking;
mod clock;
mod error;
mod fs;
pub mod os;
mod reactor;
mod selector;
mod server;
mod sys;

pub use blocking::{BlockingThreads, MAX_BLOCKING_THREADS};
pub use clock::MonoClock;
pub use error::DriverError;
pub use fs::{OsFile, OsFiles, SENDFILE_MAX};
pub use server::{
    graceful_stop, listen_host, resolve_listen_addrs, serve_threads, serve_threads_async,
    spawn_threads, spawn_threads_async, ThreadServer, DEFAULT_GRACE,
};

use eddy_core::{IoLoop, LoopConfig};
use reactor::Reactor;
use selector::{MioSelector, PollSelector};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// Name of the environment variable that picks the driver (`mio` or `poll`).
pub const DRIVER_ENV: &str = "EDDY_DRIVER";

/// Which OS readiness mechanism a driver uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DriverKind {
    /// epoll (Linux) or kqueue (BSD, macOS) through mio; the default.
    #[default]
    Mio,
    /// poll(2): portable and level-triggered; O(sockets) per turn.
    Poll,
}

impl DriverKind {
    /// The driver named by `EDDY_DRIVER`, or the default when it is unset or empty.
    pub fn from_env() -> Result<DriverKind, DriverError> {
        match std::env::var(DRIVER_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(DriverKind::default()),
        }
    }

    /// The lower-case name (`"mio"`, `"poll"`).
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Mio => "mio",
            DriverKind::Poll => "poll",
        }
    }
}

impl std::str::FromStr for DriverKind {
    type Err = DriverError;
    fn from_str(s: &str) -> Result<DriverKind, DriverError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mio" | "epoll" | "kqueue" => Ok(DriverKind::Mio),
            "poll" => Ok(DriverKind::Poll),
            other => Err(DriverError::UnknownDriver(other.to_string())),
        }
    }
}

/// Start-up settings of a driver.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Which readiness mechanism.
    pub kind: DriverKind,
    /// Warn about callbacks that block the loop longer than this (Tornado's
    /// `set_blocking_signal_threshold`); `None` disables the check.
    pub slow_callback_threshold: Option<Duration>,
    /// Most readiness events taken from the OS per turn (mio).
    pub max_events: usize,
    /// First pause of accepting after EMFILE/ENFILE; doubles while it persists.
    pub accept_backoff_min: Duration,
    /// Longest pause of accepting after EMFILE/ENFILE.
    pub accept_backoff_max: Duration,
    /// Close streams that failed with a reset or I/O error with SO_LINGER 0 (an RST).
    pub reset_on_error_close: bool,
    /// Run a round of callbacks (and write its replies) after each ready socket rather than
    /// once per batch of readiness: lower latency and better overlap with the peer.
    pub round_per_event: bool,
    /// Set SO_REUSEPORT on every listener whatever its options say ([`spawn_threads`] does).
    pub force_reuse_port: bool,
    /// Settings of loops the crate creates itself ([`run_sync`], [`spawn_threads`]).
    pub loop_config: LoopConfig,
    /// Listening sockets passed in ([`activation::listen_fds`]): a loop that asks to listen
    /// on one's address serves a duplicate of it instead of binding.
    pub inherited_listeners: Vec<activation::InheritedListener>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            kind: DriverKind::default(),
            slow_callback_threshold: None,
            max_events: 1024,
            accept_backoff_min: Duration::from_millis(100),
            accept_backoff_max: Duration::from_secs(1),
            reset_on_error_close: true,
            round_per_event: true,
            force_reuse_port: false,
            loop_config: LoopConfig::default(),
            inherited_listeners: Vec::new(),
        }
    }
}

impl DriverConfig {
    /// Defaults, with the driver kind taken from `EDDY_DRIVER`.
    pub fn from_env() -> Result<DriverConfig, DriverError> {
        Ok(DriverConfig {
            kind: DriverKind::from_env()?,
            ..DriverConfig::default()
        })
    }

    /// Defaults with the given driver kind.
    pub fn with_kind(kind: DriverKind) -> DriverConfig {
        DriverConfig {
            kind,
            ..DriverConfig::default()
        }
    }
}

/// Runs an [`IoLoop`] on the OS; one driver serves one loop, on the loop's thread.
///
/// Every method takes the loop it serves; the first call installs the driver's waker (for
/// [`eddy_core::Remote`]) and slow-callback clock on it.
pub trait Driver {
    /// Which mechanism this driver uses.
    fn kind(&self) -> DriverKind;
    /// The clock the driver hands to the loop.
    fn clock(&self) -> MonoClock;
    /// Performs the loop's queued actions now (binds listeners, starts connects, writes),
    /// so that e.g. [`IoLoop::listener_addr`] answers synchronously after `io.listen`.
    fn perform_actions(&mut self, io: &mut IoLoop) -> Result<(), DriverError>;
    /// One iteration: actions, sleep at most `max_wait` (and no later than the loop's next
    /// deadline), readiness, then a round of callbacks (also one per ready socket with
    /// [`DriverConfig::round_per_event`]).
    fn turn(&mut self, io: &mut IoLoop, max_wait: Option<Duration>) -> Result<(), DriverError>;
    /// Runs until [`IoLoop::stop`], then performs the actions queued on the way out.
    fn run_until_stopped(&mut self, io: &mut IoLoop) -> Result<(), DriverError>;
    /// Sockets (streams and listeners) the driver holds open; for leak checks.
    fn open_sockets(&self) -> usize;
}

macro_rules! driver_type {
    ($(#[$doc:meta])* $name:ident, $selector:ty, $kind:expr) => {
        $(#[$doc])*
        pub struct $name(Reactor<$selector>);

        impl $name {
            /// A driver with these settings (its `kind` field is ignored).
            pub fn new(config: DriverConfig) -> Result<$name, DriverError> {
                Ok($name(Reactor::new(DriverConfig { kind: $kind, ..config })?))
            }
        }

        impl Driver for $name {
            fn kind(&self) -> DriverKind {
                self.0.config().kind
            }
            fn clock(&self) -> MonoClock {
                self.0.clock()
            }
            fn perform_actions(&mut self, io: &mut IoLoop) -> Result<(), DriverError> {
                self.0.perform_actions(io);
                Ok(())
            }
            fn turn(&mut self, io: &mut IoLoop, max_wait: Option<Duration>) -> Result<(), DriverError> {
                self.0.turn(io, max_wait)
            }
            fn run_until_stopped(&mut self, io: &mut IoLoop) -> Result<(), DriverError> {
                self.0.run_until_stopped(io)
            }
            fn open_sockets(&self) -> usize {
                self.0.open_sockets()
            }
        }
    };
}

driver_type!(
    /// The epoll/kqueue driver (through mio): edge-triggered, one registration per socket.
    Mio,
    MioSelector,
    DriverKind::Mio
);
driver_type!(
    /// The poll(2) driver: the portable fallback; level-triggered, interest rebuilt per turn.
    Poll,
    PollSelector,
    DriverKind::Poll
);

/// A driver of the configured kind.
pub fn new_driver(config: &DriverConfig) -> Result<Box<dyn Driver>, DriverError> {
    Ok(match config.kind {
        DriverKind::Mio => Box::new(Mio::new(config.clone())?),
        DriverKind::Poll => Box::new(Poll::new(config.clone())?),
    })
}

/// Hands a result out of a loop to [`run_sync`]; completing it stops the loop.
pub struct Completion<T> {
    slot: Rc<RefCell<Option<T>>>,
}

impl<T> Completion<T> {
    /// Stores the result and stops the loop.
    pub fn complete(self, io: &mut IoLoop, value: T) {
        *self.slot.borrow_mut() = Some(value);
        io.stop();
    }
}

/// Runs `f` on a fresh loop and driver and returns what it passes to its [`Completion`]
/// (Tornado's `IOLoop.run_sync`). Gives up after `timeout`, if any.
pub fn run_sync<T: 'static>(
    config: &DriverConfig,
    timeout: Option<Duration>,
    f: impl FnOnce(&mut IoLoop, Completion<T>) + 'static,
) -> Result<T, DriverError> {
    let mut io = IoLoop::new(config.loop_config);
    let mut driver = new_driver(config)?;
    let slot = Rc::new(RefCell::new(None));
    let done = Completion { slot: slot.clone() };
    io.add_callback(move |io| f(io, done));
    let timed_out = Rc::new(RefCell::new(false));
    if let Some(t) = timeout {
        let flag = timed_out.clone();
        let now = driver.clock().now();
        io.call_at(now + t, move |io| {
            *flag.borrow_mut() = true;
            io.stop();
        });
    }
    driver.run_until_stopped(&mut io)?;
    let value = slot.borrow_mut().take();
    match value {
        Some(v) => Ok(v),
        None if *timed_out.borrow() => Err(DriverError::Timeout(timeout.unwrap_or_default())),
        None => Err(DriverError::NoResult),
    }
}

/// Runs `future` as a task on a fresh loop and driver until it finishes, and returns its
/// output (Tornado's `IOLoop.run_sync` for coroutines). Gives up after `timeout`, if any.
///
/// A panic in the task is resumed on the calling thread, as if `future` had run here.
pub fn block_on<F>(
    config: &DriverConfig,
    timeout: Option<Duration>,
    future: F,
) -> Result<F::Output, DriverError>
where
    F: std::future::Future + 'static,
{
    let result = run_sync(config, timeout, move |io, done| {
        io.spawn_detached(async move {
            let handle = eddy_core::task::spawn(future);
            let output = handle.await;
            eddy_core::task::with_loop(|io| done.complete(io, output));
        });
    })?;
    match result {
        Ok(output) => Ok(output),
        Err(eddy_core::task::JoinError::Panicked { message, location }) => {
            panic!("task spawned at {location} panicked: {message}")
        }
        Err(eddy_core::task::JoinError::Cancelled) => Err(DriverError::NoResult),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_runs_a_task_with_timers_and_blocking_work_on_both_drivers() {
        for kind in [DriverKind::Mio, DriverKind::Poll] {
            let config = DriverConfig::with_kind(kind);
            let v = block_on(&config, Some(Duration::from_secs(5)), async {
                eddy_core::task::sleep(Duration::from_millis(5)).await;
                let off_loop = std::thread::current().id();
                let worker = eddy_core::task::spawn_blocking(move || {
                    std::thread::sleep(Duration::from_millis(5));
                    std::thread::current().id() != off_loop
                })
                .await
                .unwrap();
                (worker, 42)
            })
            .unwrap();
            assert_eq!(
                v,
                (true, 42),
                "{kind:?}: blocking work ran on a pool thread"
            );
        }
    }

    #[test]
    fn the_blocking_pool_is_bounded_and_runs_every_job() {
        let pool = BlockingThreads::new(3);
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..50 {
            let tx = tx.clone();
            pool.submit(Box::new(move || {
                std::thread::sleep(Duration::from_millis(1));
                tx.send(i).unwrap();
            }));
            assert!(pool.threads() <= 3);
        }
        let mut got: Vec<i32> = (0..50).map(|_| rx.recv().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn driver_kind_parses_names_and_rejects_others() {
        assert_eq!("mio".parse::<DriverKind>().unwrap(), DriverKind::Mio);
        assert_eq!(" POLL ".parse::<DriverKind>().unwrap(), DriverKind::Poll);
        assert!(matches!(
            "select".parse::<DriverKind>(),
            Err(DriverError::UnknownDriver(_))
        ));
    }

    #[test]
    fn run_sync_returns_the_completed_value_on_both_drivers() {
        for kind in [DriverKind::Mio, DriverKind::Poll] {
            let config = DriverConfig::with_kind(kind);
            let v = run_sync(&config, Some(Duration::from_secs(5)), |io, done| {
                io.call_later(Duration::from_millis(5), move |io| done.complete(io, 42));
            })
            .unwrap();
            assert_eq!(v, 42);
        }
    }

    #[test]
    fn run_sync_times_out_when_nothing_completes() {
        let config = DriverConfig::with_kind(DriverKind::Poll);
        let r = run_sync::<()>(&config, Some(Duration::from_millis(20)), |_, done| {
            std::mem::forget(done);
        });
        assert!(matches!(r, Err(DriverError::Timeout(_))));
    }
}
