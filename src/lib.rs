//! eddy: Tornado's networking stack on a sans-IO core.
//!
//! This facade re-exports the core state machines, the OS drivers and the simulator.
#![warn(missing_docs)]

pub use eddy_core as core;
pub use eddy_core::task::{spawn, spawn_blocking, with_loop};
pub use eddy_drivers as drivers;
pub use eddy_sim as sim;
pub use eddy_web as web;

pub mod chat;
pub mod echo;
pub mod echo_async;
pub mod fetch;
pub mod http_echo;
pub mod scenarios;
pub mod serve;
pub mod server_args;
pub mod testing;
pub mod web_demo;

/// Runs `future` as a task on a fresh loop of the default driver (`EDDY_DRIVER`, else mio)
/// until it finishes, and returns its output: Tornado's `IOLoop.run_sync` for coroutines.
///
/// A panic inside the task is resumed here.
pub fn run<F>(future: F) -> Result<F::Output, drivers::DriverError>
where
    F: std::future::Future + 'static,
{
    let config = drivers::DriverConfig::from_env()?;
    drivers::block_on(&config, None, future)
}

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
