//! eddy-core: Tornado's IOLoop, IOStream, HTTP/1.1 and WebSocket machinery as pure state machines.
//!
//! Nothing here performs I/O, reads a clock or starts a thread: time and the results of system
//! calls are inputs, and what the loop wants done comes out of [`IoLoop::poll_io`] and
//! [`IoLoop::poll_timeout`]. Drivers (`eddy-drivers` on the OS, `eddy-sim` on a simulated
//! network) run the same [`IoLoop`], so application code is identical on both.
//!
//! ```no_run
//! use eddy_core::{IoLoop, IoAction, Instant};
//! let mut io = IoLoop::default();
//! io.add_callback(|io| println!("hello at {:?}", io.now()));
//! loop {
//!     while let Some(action) = io.poll_io() {
//!         // perform `action` on real or simulated sockets
//!         let _ = action;
//!     }
//!     let _sleep_until = io.poll_timeout();
//!     // ... wait for readiness, feed read/write/accept results back ...
//!     io.handle_timeout(Instant::from_nanos(0));
//!     if io.is_stopped() { break; }
//! #   break;
//! }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod buffer_pool;
pub mod callback;
pub mod error;
pub mod file;
pub mod http;
pub mod io_loop;
pub mod slab;
pub mod stream;
pub mod task;
pub mod testing;
pub mod time;
pub mod timer;
pub mod tls;
pub mod ws;

pub use buffer_pool::BufferPool;
pub use callback::CallbackQueue;
pub use error::{CloseReason, StreamError};
pub use io_loop::{
    Clock, IoAction, IoLoop, ListenOptions, ListenerId, LoopConfig, LoopStats, PeriodicId, Remote,
    StreamHandler, StreamId, TimeoutHandle,
};
pub use stream::{Chunk, Interest, ReadRequest, Stream, StreamState, WriteChunks};
pub use time::{Duration, Instant};
pub use timer::{TimerHeap, TimerId};
