//! eddy: Tornado's networking stack on a sans-IO core.
//!
//! This facade re-exports the core state machines, the OS drivers and the simulator.
#![warn(missing_docs)]

pub use eddy_core as core;
pub use eddy_drivers as drivers;
pub use eddy_sim as sim;

pub mod echo;
pub mod echo_async;
pub mod fetch;
pub mod http_echo;
pub mod scenarios;
pub mod server_args;
