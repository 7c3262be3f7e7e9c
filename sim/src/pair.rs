//! `run_pair`: the harness other tests use to run one server and one client on the simulator.
//!
//! It owns only the wiring (hosts "server" and "client", the address, the two phases); the
//! world does the rest.

use crate::config::FaultConfig;
use crate::error::SimError;
use crate::world::{RunReport, Sim};
use eddy_core::{Duration, IoLoop, ListenerId};
use std::net::SocketAddr;

/// The address the server of [`run_pair`] listens at: 10.0.0.1:80.
pub fn pair_server_addr() -> SocketAddr {
    SocketAddr::new(Sim::ip_of_nth_host(0), 80)
}

/// Runs `server` on host "server" (listening at [`pair_server_addr`]) and `client` on host
/// "client"; done when the client loop calls `io.stop()`.
///
/// Faults run for the first half of `virtual_limit`; then the world heals and the client must
/// stop within the second half (else [`SimError::Deadline`]; a quiet world is a
/// [`SimError::Hang`]). A panic in either loop's callbacks fails the run.
pub fn run_pair(
    seed: u64,
    faults: FaultConfig,
    server: impl FnOnce(&mut IoLoop, SocketAddr) -> ListenerId + 'static,
    client: impl FnOnce(&mut IoLoop, SocketAddr) + 'static,
    virtual_limit: Duration,
) -> Result<RunReport, SimError> {
    let mut sim = Sim::with_faults(seed, faults);
    let addr = pair_server_addr();
    sim.host_once("server", move |io| {
        server(io, addr);
    });
    sim.host_once("client", move |io| client(io, addr));
    let half = virtual_limit / 2;
    sim.run_faults_then_heal(half, virtual_limit - half, |sim| sim.is_stopped("client"))?;
    Ok(sim.report())
}
