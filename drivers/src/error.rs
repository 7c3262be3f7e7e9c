//! Errors of the OS drivers: what failed, with the OS cause, in words an operator can act on.

use std::io;
use std::net::SocketAddr;

/// What running a loop on the OS can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// `EDDY_DRIVER` (or a parsed name) is not a driver this build has.
    #[error("unknown driver {0:?}: expected \"mio\" or \"poll\"")]
    UnknownDriver(String),
    /// Creating the OS poller (epoll/kqueue instance, poll self-pipe) failed.
    #[error("cannot create the {driver} poller: {source}")]
    Poller {
        /// Which driver.
        driver: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Waiting for readiness failed with something other than EINTR.
    #[error("waiting for readiness failed: {0}")]
    Wait(#[source] io::Error),
    /// A host name did not resolve to any address.
    #[error("cannot resolve {host:?}: {source}")]
    Resolve {
        /// The host asked for.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// A listener could not be bound (address in use, not available, permission...).
    #[error("cannot listen on {addr}: {kind}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error kind.
        kind: io::ErrorKind,
    },
    /// Setup of a thread's loop listened on nothing.
    #[error("the setup function started no listener")]
    NoListener,
    /// A loop thread could not be started or died before reporting its address.
    #[error("loop thread {index} failed: {message}")]
    Thread {
        /// The thread's index.
        index: usize,
        /// What happened.
        message: String,
    },
    /// Installing the SIGINT/SIGTERM handlers failed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] io::Error),
    /// `run_sync` gave up waiting.
    #[error("run_sync timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The loop stopped before `run_sync`'s completion was called.
    #[error("the loop stopped before the operation completed")]
    NoResult,
}
