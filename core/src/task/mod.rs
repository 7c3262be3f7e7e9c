//! Tasks: futures the loop polls itself — Tornado's coroutines on the IOLoop.
//!
//! The callback API (`FnOnce(&mut IoLoop, …)`) stays the low level; this module is the level
//! most applications are written at. A task is a `!Send` future owned by one [`IoLoop`]:
//!
//! * **Spawning** ([`spawn`], [`IoLoop::spawn`]) queues the task's first poll for the next
//!   round and gives a [`JoinHandle`], itself a future of the task's output.
//! * **Waking** never polls: a [`Waker`](std::task::Waker) only queues the task, and the loop
//!   polls it in a coming callback round, so a task that wakes itself cannot starve I/O or
//!   timers (Tornado's rule for callbacks holds for tasks). On the loop's thread a wake takes no
//!   lock and allocates nothing; from another thread it goes through the [`Remote`] path and
//!   wakes a sleeping driver.
//! * **Reaching the loop.** Async code holds no `&mut IoLoop`. While the loop polls a task it
//!   makes itself *current* on its thread, and [`with_loop`] lends it out (Tornado's
//!   `IOLoop.current()`). The futures here ([`sleep`], [`TcpStream`], [`TcpListener`], the HTTP
//!   client's [`fetch_async`](crate::http::HttpClient::fetch_async), …) are thin adapters over
//!   the same `Stream` and timer machinery, so async code runs unchanged on every driver and on
//!   every simulated host.
//! * **Panics** in a task are caught like a callback's, logged with the spawn site, counted in
//!   [`LoopStats::task_panics`](crate::LoopStats), and reported to the `JoinHandle` as
//!   [`JoinError::Panicked`]. A task is polled inside the `tracing` span current at its spawn.
//!
//! ```
//! use eddy_core::task::{self, sleep};
//! use eddy_core::{Duration, IoLoop, Instant};
//!
//! let mut io = IoLoop::default();
//! let handle = io.spawn(async {
//!     sleep(Duration::from_millis(5)).await;
//!     task::with_loop(|io| io.now())
//! });
//! // A driver would run the loop; here time is handed in by hand.
//! io.handle_timeout(Instant::ZERO);
//! io.handle_timeout(Instant::from_nanos(5_000_000));
//! io.handle_timeout(Instant::from_nanos(5_000_000));
//! assert_eq!(handle.try_output().unwrap().unwrap(), Instant::from_nanos(5_000_000));
//! ```
//!
//! [`Remote`]: crate::Remote
//! [`IoLoop`]: crate::IoLoop
//! [`IoLoop::spawn`]: crate::IoLoop::spawn

mod blocking;
mod current;
mod executor;
mod oneshot;
mod tcp;
mod time;

pub use blocking::{spawn_blocking, BlockingError, BlockingPool, BlockingTask};
pub use current::{try_with_loop, with_loop};
pub use executor::{spawn, yield_now, AbortHandle, JoinError, JoinHandle, YieldNow};
pub use tcp::{Accept, Connect, Flush, Read, TcpListener, TcpStream};
pub use time::{
    interval, sleep, sleep_until, timeout, timeout_unpin, Elapsed, Interval, Sleep, Timeout,
};

pub(crate) use current::LoopBound;
pub(crate) use executor::{has_woken_tasks, next_loop_no, TaskHeader, TaskSlot};
pub(crate) use oneshot::Oneshot;
