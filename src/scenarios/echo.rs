//! Scenario `echo`: N clients, each on its own host, send random bytes in random writes (with
//! random pauses, some of several seconds) to [`crate::echo::serve`] and read the echo.
//!
//! Safety, checked while faults run: every byte a client receives is a prefix of what it sent,
//! in order (an assertion in the client's callback, so a violation fails the seed at once).
//! After the run: a client whose connection completed got everything back; a world with no
//! connection-cutting fault has every client complete. Liveness: once the world heals, every
//! client finishes (completes or learns its connection was cut) within a bounded virtual time.

use super::ScenarioOptions;
use crate::core::{
    CloseReason, Duration, IoLoop, ListenOptions, ListenerId, StreamError, StreamId,
};
use eddy_sim::{RunReport, Sim, SimError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

/// Virtual time with faults running, before the world heals.
pub const FAULT_PHASE: Duration = Duration::from_secs(60);
/// Virtual time the clients get to finish after the world heals.
pub const LIVENESS_LIMIT: Duration = Duration::from_secs(120);

/// How one client's connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was sent, echoed and the server closed after the client's end of file.
    Complete,
    /// The connection failed or ended early; the reason.
    Cut(String),
}

/// What one client sent, received, and how it ended.
#[derive(Debug, Default)]
pub struct ClientLog {
    /// Every byte the client will send, in order.
    pub sent: Vec<u8>,
    /// Every byte it received so far.
    pub got: Vec<u8>,
    /// Set once the client is finished.
    pub outcome: Option<Outcome>,
}

/// One write of a client's workload: wait `pause`, then write `len` bytes.
#[derive(Clone, Copy, Debug)]
struct Write {
    pause: Duration,
    len: usize,
}

fn workload(rng: &mut ChaCha8Rng) -> Vec<Write> {
    let writes = rng.gen_range(1..=20);
    (0..writes)
        .map(|_| {
            let pause = match rng.gen_range(0..10) {
                0 => Duration::from_millis(rng.gen_range(3000..=4000)),
                1..=4 => Duration::ZERO,
                _ => Duration::from_millis(rng.gen_range(0..=50)),
            };
            let len = if rng.gen_bool(0.02) {
                1
            } else {
                rng.gen_range(1..=3000)
            };
            Write { pause, len }
        })
        .collect()
}

/// Runs one seed against [`crate::echo::serve`].
pub fn run(seed: u64, opts: &ScenarioOptions) -> Result<RunReport, SimError> {
    run_with_server(seed, opts, crate::echo::serve_with)
}

/// Runs one seed against [`crate::echo_async::serve_with`], the async/await echo.
pub fn run_async(seed: u64, opts: &ScenarioOptions) -> Result<RunReport, SimError> {
    run_with_server(seed, opts, crate::echo_async::serve_with)
}

/// Runs one seed against a server with a planted bug (see [`buggy_serve`]); expected to fail.
pub fn run_buggy(seed: u64, opts: &ScenarioOptions) -> Result<RunReport, SimError> {
    run_with_server(seed, opts, buggy_serve)
}

/// An echo server with a planted bug: when a read returns exactly 1 byte and the previous read
/// on that stream was at least 3 virtual seconds earlier, it echoes the byte corrupted.
pub fn buggy_serve(io: &mut IoLoop, addr: SocketAddr, options: ListenOptions) -> ListenerId {
    fn pump(io: &mut IoLoop, s: StreamId, last: crate::core::Instant) {
        let _ = io.read_some(s, 64 * 1024, move |io, r| {
            let Ok(data) = r else { return };
            let now = io.now();
            let data = if data.len() == 1 && now - last >= Duration::from_secs(3) {
                bytes::Bytes::from(vec![data[0] ^ 0x5a])
            } else {
                data
            };
            if io.write(s, data).is_ok() {
                pump(io, s, now);
            }
        });
    }
    io.listen(addr, options, |io, s, _| {
        let now = io.now();
        pump(io, s, now)
    })
}

/// Runs the echo workload against `serve`, checking the invariants in the module docs.
pub fn run_with_server(
    seed: u64,
    opts: &ScenarioOptions,
    serve: fn(&mut IoLoop, SocketAddr, ListenOptions) -> ListenerId,
) -> Result<RunReport, SimError> {
    let mut sim = match &opts.faults {
        Some(f) => Sim::with_faults(seed, f.clone()),
        None => Sim::new(seed),
    };
    sim.record_trace(opts.trace);
    let addr = SocketAddr::new(Sim::ip_of_nth_host(0), 7);
    // Several server loops share the port (SO_REUSEPORT), as one accepting loop per thread.
    let options = ListenOptions {
        reuse_port: opts.server_loops > 1,
        ..ListenOptions::default()
    };
    sim.host_with_loops("server", opts.server_loops.max(1), move |_, io| {
        serve(io, addr, options);
    });
    // Application randomness: its own stream, derived from the seed, so the workload does not
    // shift when the simulator draws more or fewer numbers.
    let mut app_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut logs = Vec::new();
    for c in 0..opts.clients {
        let plan = workload(&mut app_rng);
        let total: usize = plan.iter().map(|w| w.len).sum();
        let sent: Vec<u8> = (0..total).map(|_| app_rng.gen()).collect();
        let log = Rc::new(RefCell::new(ClientLog {
            sent,
            ..ClientLog::default()
        }));
        logs.push(log.clone());
        let name = format!("client{c}");
        let h = sim.host(&name, move |io| {
            start_client(io, addr, plan.clone(), log.clone());
        });
        sim.set_crashable(h, false);
    }
    let all_done = {
        let logs = logs.clone();
        move |_: &Sim| logs.iter().all(|l| l.borrow().outcome.is_some())
    };
    sim.run_faults_then_heal(FAULT_PHASE, LIVENESS_LIMIT, all_done)?;
    let stats = sim.stats();
    let cutting_faults = stats.crashes + stats.injected_resets + stats.partitions;
    let injected_refusals = stats.injected_refusals;
    for (c, log) in logs.iter().enumerate() {
        let log = log.borrow();
        match log.outcome.as_ref().expect("all done") {
            Outcome::Complete if log.got != log.sent => {
                return Err(SimError::Invariant {
                    seed,
                    message: format!(
                        "client{c} completed with {} of {} bytes echoed",
                        log.got.len(),
                        log.sent.len()
                    ),
                })
            }
            Outcome::Complete => {}
            Outcome::Cut(why) if cutting_faults == 0 && !why.contains("refused") => {
                return Err(SimError::Invariant {
                    seed,
                    message: format!("client{c} was cut ({why}) though no fault cut connections"),
                })
            }
            Outcome::Cut(why)
                if why.contains("refused") && injected_refusals == 0 && stats.crashes == 0 =>
            {
                return Err(SimError::Invariant {
                    seed,
                    message: format!("client{c} was refused though the server always listened"),
                })
            }
            Outcome::Cut(_) => {}
        }
    }
    Ok(sim.report())
}

fn finish(log: &Rc<RefCell<ClientLog>>, outcome: Outcome) {
    let mut l = log.borrow_mut();
    if l.outcome.is_none() {
        l.outcome = Some(outcome);
    }
}

fn check_prefix(log: &ClientLog) {
    let n = log.got.len();
    assert!(
        n <= log.sent.len() && log.got[..] == log.sent[..n],
        "echo is not a prefix of what was sent: first difference at byte {}",
        log.got
            .iter()
            .zip(&log.sent)
            .position(|(a, b)| a != b)
            .unwrap_or(log.sent.len())
    );
}

fn start_client(io: &mut IoLoop, addr: SocketAddr, plan: Vec<Write>, log: Rc<RefCell<ClientLog>>) {
    io.connect(addr, Some(Duration::from_secs(10)), move |io, r| {
        let s = match r {
            Ok(s) => s,
            Err(e) => return finish(&log, Outcome::Cut(format!("connect: {e}"))),
        };
        let (chunk_log, done_log) = (log.clone(), log.clone());
        let started = io.read_until_close_streaming(
            s,
            move |_, chunk| {
                let mut l = chunk_log.borrow_mut();
                l.got.extend_from_slice(&chunk);
                check_prefix(&l);
            },
            move |_, r| {
                let outcome = {
                    let mut l = done_log.borrow_mut();
                    match r {
                        Ok(rest) => {
                            l.got.extend_from_slice(&rest);
                            check_prefix(&l);
                            if l.got.len() == l.sent.len() {
                                Outcome::Complete
                            } else {
                                Outcome::Cut(format!(
                                    "eof after {} of {} bytes",
                                    l.got.len(),
                                    l.sent.len()
                                ))
                            }
                        }
                        Err(StreamError::Closed(CloseReason::Refused)) => {
                            Outcome::Cut("refused".into())
                        }
                        Err(e) => Outcome::Cut(e.to_string()),
                    }
                };
                finish(&done_log, outcome);
            },
        );
        if started.is_err() {
            return finish(&log, Outcome::Cut("stream closed before reading".into()));
        }
        write_next(io, s, Rc::new(plan), 0, 0, log);
    });
}

fn write_next(
    io: &mut IoLoop,
    s: StreamId,
    plan: Rc<Vec<Write>>,
    i: usize,
    offset: usize,
    log: Rc<RefCell<ClientLog>>,
) {
    let Some(&w) = plan.get(i) else {
        let _ = io.shutdown_write(s);
        return;
    };
    io.call_later(w.pause, move |io| {
        let data = bytes::Bytes::copy_from_slice(&log.borrow().sent[offset..offset + w.len]);
        if io.write(s, data).is_ok() {
            write_next(io, s, plan, i + 1, offset + w.len, log);
        }
    });
}
