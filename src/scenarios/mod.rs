//! Simulation scenarios: whole-system workloads run on `eddy-sim`, by name, for any seed.
//!
//! Each scenario builds its world from the seed, runs faults (safety: invariants are asserted
//! while they run), heals, and requires the work to finish (liveness). Scenarios use only the
//! `IoLoop` API and the services of this crate; they never touch a real socket or clock.

use eddy_sim::{FaultConfig, RunReport, SimError};

pub mod chat;
pub mod echo;
pub mod http_chaos;
pub mod timers;
pub mod web_chaos;

/// Knobs a caller (a test or `eddy sim`) may set for a scenario run.
#[derive(Clone, Debug)]
pub struct ScenarioOptions {
    /// Faults for the run; `None`: drawn from the seed (swarm testing).
    pub faults: Option<FaultConfig>,
    /// Number of clients, for scenarios that have clients.
    pub clients: usize,
    /// Loops of the server host (more than one: they share the port with `reuse_port`).
    pub server_loops: usize,
    /// Record the full trace into the report.
    pub trace: bool,
}

impl Default for ScenarioOptions {
    fn default() -> Self {
        ScenarioOptions {
            faults: None,
            clients: 8,
            server_loops: 1,
            trace: false,
        }
    }
}

/// A named scenario.
pub struct Scenario {
    /// The name used by `eddy sim --scenario`.
    pub name: &'static str,
    /// One line on what it checks.
    pub about: &'static str,
    /// Runs one seed.
    pub run: fn(u64, &ScenarioOptions) -> Result<RunReport, SimError>,
}

/// Every scenario.
pub fn all() -> &'static [Scenario] {
    &[
        Scenario {
            name: "echo",
            about: "clients send random bytes in random writes to eddy::echo; every byte comes back in order",
            run: echo::run,
        },
        Scenario {
            name: "echo_async",
            about: "the echo workload against eddy::echo_async, the async/await server",
            run: echo::run_async,
        },
        Scenario {
            name: "buggy_echo",
            about: "echo against a server with a planted bug (corrupts a 1-byte read after a 3 s pause); should fail",
            run: echo::run_buggy,
        },
        Scenario {
            name: "http_chaos",
            about: "20 HttpClients x 50 requests against HttpServer under faults; exactly one matching result each, within time-outs",
            run: http_chaos::run,
        },
        Scenario {
            name: "http_chaos_async",
            about: "http_chaos with an async handler and clients written as tasks (fetch_async, sleep)",
            run: http_chaos::run_async,
        },
        Scenario {
            name: "https_chaos",
            about: "http_chaos over TLS: every connection runs a verified handshake under the same faults",
            run: http_chaos::run_tls,
        },
        Scenario {
            name: "web_chaos",
            about: "clients browse the demo web app as tasks under faults: right answers, a signed counter that only goes up",
            run: web_chaos::run,
        },
        Scenario {
            name: "chat",
            about: "clients chat over WebSocket through eddy::chat under faults: each message reaches every session open for its span, once, in order",
            run: chat::run,
        },
        Scenario {
            name: "timers",
            about: "hour-long timers and periodic callbacks fire exactly on time in virtual time",
            run: timers::run,
        },
    ]
}

/// The scenario with this name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    all().iter().find(|s| s.name == name)
}
