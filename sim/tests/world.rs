//! The simulated world's TCP and fault behaviour, seen through the ordinary IoLoop API.

use bytes::Bytes;
use eddy_core::{CloseReason, Duration, Instant, IoLoop, ListenOptions, ListenerId, StreamError};
use eddy_sim::{FaultConfig, FaultOp, FaultPlan, Sim, SimError, TraceKind};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

type Shared<T> = Rc<RefCell<T>>;

fn shared<T: Default>() -> Shared<T> {
    Rc::new(RefCell::new(T::default()))
}

fn server_addr() -> SocketAddr {
    SocketAddr::new(Sim::ip_of_nth_host(0), 7)
}

/// Echoes every byte back; closes when the peer has shut down and everything is written.
fn echo(io: &mut IoLoop, addr: SocketAddr) -> ListenerId {
    fn pump(io: &mut IoLoop, s: eddy_core::StreamId) {
        let _ = io.read_some(s, 64 * 1024, move |io, r| {
            if let Ok(data) = r {
                if io.write(s, data).is_ok() {
                    pump(io, s);
                }
            }
        });
    }
    io.listen(addr, ListenOptions::default(), |io, s, _| pump(io, s))
}

/// A client that sends `msg`, shuts down its write side, and records what came back and how
/// the stream ended.
fn echo_client(
    io: &mut IoLoop,
    addr: SocketAddr,
    msg: Bytes,
    got: Shared<Vec<u8>>,
    end: Shared<Option<Result<(), StreamError>>>,
) {
    io.connect(addr, Some(Duration::from_secs(30)), move |io, r| {
        let s = match r {
            Ok(s) => s,
            Err(e) => {
                *end.borrow_mut() = Some(Err(e));
                io.stop();
                return;
            }
        };
        io.write(s, msg).unwrap();
        io.shutdown_write(s).unwrap();
        let got2 = got.clone();
        io.read_until_close_streaming(
            s,
            move |_, chunk| got2.borrow_mut().extend_from_slice(&chunk),
            move |io, r| {
                if let Ok(rest) = &r {
                    got.borrow_mut().extend_from_slice(rest);
                }
                *end.borrow_mut() = Some(r.map(|_| ()));
                io.stop();
            },
        )
        .unwrap();
    });
}

fn message(n: usize) -> Bytes {
    (0..n)
        .map(|i| (i * 7 % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[test]
fn echo_round_trip_with_half_close_delivers_everything_then_eof() {
    for faults in [FaultConfig::none(), FaultConfig::hostile().healed()] {
        let mut sim = Sim::with_faults(3, faults);
        let (got, end) = (shared(), shared());
        let msg = message(100_000);
        sim.host("server", |io| {
            echo(io, server_addr());
        });
        let (g, e, m) = (got.clone(), end.clone(), msg.clone());
        sim.host_once("client", move |io| echo_client(io, server_addr(), m, g, e));
        sim.run_until_done(Duration::from_secs(600), |s| s.is_stopped("client"))
            .unwrap();
        assert_eq!(*end.borrow(), Some(Ok(())));
        assert!(
            got.borrow()[..] == msg[..],
            "echo must return every byte in order"
        );
    }
}

#[test]
fn connect_with_no_listener_is_refused() {
    let mut sim = Sim::with_faults(1, FaultConfig::none());
    let (got, end) = (shared(), shared());
    sim.host("server", |_| {});
    sim.host_once("client", move |io| {
        echo_client(io, server_addr(), message(10), got, end.clone())
    });
    sim.run_until_idle().unwrap();
    assert!(sim.is_stopped("client"));
    assert_eq!(sim.stats().refused, 1);
}

#[test]
fn connect_to_unknown_address_fails() {
    let mut sim = Sim::with_faults(1, FaultConfig::none());
    let end = shared();
    let e = end.clone();
    sim.host_once("client", move |io| {
        let addr: SocketAddr = "192.168.1.1:80".parse().unwrap();
        echo_client(io, addr, message(10), shared(), e)
    });
    sim.run_until_idle().unwrap();
    assert_eq!(
        *end.borrow(),
        Some(Err(StreamError::Closed(CloseReason::Refused)))
    );
}

#[test]
fn a_partition_holds_data_until_healed_and_then_it_flows() {
    let mut sim = Sim::with_faults(
        5,
        FaultConfig::latency(Duration::from_millis(1), Duration::from_millis(2)),
    );
    let (got, end) = (shared(), shared());
    sim.host("server", |io| {
        echo(io, server_addr());
    });
    let (g, e) = (got.clone(), end.clone());
    let client = sim.host_once("client", move |io| {
        io.call_later(Duration::from_secs(1), move |io| {
            echo_client(io, server_addr(), message(1000), g, e)
        });
    });
    sim.partition("server", client);
    sim.run_until(Instant::ZERO + Duration::from_secs(20))
        .unwrap();
    assert!(end.borrow().is_none(), "nothing crosses a partition");
    sim.heal();
    sim.run_until_done(Duration::from_secs(10), |s| s.is_stopped("client"))
        .unwrap();
    assert_eq!(*end.borrow(), Some(Ok(())));
    assert_eq!(got.borrow().len(), 1000);
}

#[test]
fn a_one_way_partition_stalls_only_one_direction() {
    let mut sim = Sim::with_faults(5, FaultConfig::none());
    let (got, end) = (shared(), shared());
    sim.host("server", |io| {
        echo(io, server_addr());
    });
    let (g, e) = (got.clone(), end.clone());
    sim.host_once("client", move |io| {
        io.call_later(Duration::from_millis(1), move |io| {
            echo_client(io, server_addr(), message(10), g, e)
        });
    });
    // The connect's SYN reaches the server but its answer does not come back.
    sim.partition_one_way("server", "client");
    sim.run_until(Instant::ZERO + Duration::from_secs(5))
        .unwrap();
    assert_eq!(sim.stats().accepts, 1, "the server side accepted");
    assert!(end.borrow().is_none());
    sim.heal();
    sim.run_until_done(Duration::from_secs(5), |s| s.is_stopped("client"))
        .unwrap();
    assert_eq!(got.borrow().len(), 10);
}

#[test]
fn a_crash_resets_or_ends_the_peer_and_a_restart_reruns_setup() {
    let mut sim = Sim::with_faults(9, FaultConfig::none());
    let setups = Rc::new(RefCell::new(0));
    let s2 = setups.clone();
    sim.host("server", move |io| {
        *s2.borrow_mut() += 1;
        // Reads but never answers, so the client waits until the crash.
        io.listen(server_addr(), ListenOptions::default(), |io, s, _| {
            let _ = io.read_until_close(s, |_, _| {});
        });
    });
    let end: Shared<Option<Result<Bytes, StreamError>>> = shared();
    let e = end.clone();
    sim.host_once("client", move |io| {
        io.connect(server_addr(), None, move |io, r| {
            let s = r.unwrap();
            io.write(s, message(10)).unwrap();
            io.read_until_close(s, move |_, r| *e.borrow_mut() = Some(r))
                .unwrap();
        });
    });
    sim.run_for(Duration::from_secs(1)).unwrap();
    assert!(end.borrow().is_none());
    sim.crash("server");
    assert!(!sim.is_up("server"));
    sim.run_for(Duration::from_secs(1)).unwrap();
    assert!(end.borrow().is_some(), "the peer learns of the crash");
    sim.restart("server");
    assert_eq!(*setups.borrow(), 2, "setup ran again");
    // The restarted server accepts new connections.
    let end2: Shared<Option<Result<(), StreamError>>> = shared();
    let e2 = end2.clone();
    sim.with_loop("client", 0, move |io| {
        io.connect(server_addr(), None, move |_, r| {
            *e2.borrow_mut() = Some(r.map(|_| ()));
        });
    });
    sim.run_for(Duration::from_secs(1)).unwrap();
    assert_eq!(*end2.borrow(), Some(Ok(())));
}

#[test]
fn a_scheduled_reset_closes_both_ends_with_reset() {
    let mut sim = Sim::with_faults(2, FaultConfig::none());
    sim.host("server", |io| {
        io.listen(server_addr(), ListenOptions::default(), |io, s, _| {
            let _ = io.read_until_close(s, |_, _| {});
        });
    });
    let end: Shared<Option<CloseReason>> = shared();
    let e = end.clone();
    sim.host_once("client", move |io| {
        io.connect(server_addr(), None, move |io, r| {
            let s = r.unwrap();
            io.set_close_callback(s, move |_, why| *e.borrow_mut() = Some(why))
                .unwrap();
            let _ = io.read_until_close(s, |_, _| {});
        });
    });
    sim.apply_plan(&FaultPlan::new().at(
        Duration::from_secs(1),
        FaultOp::ResetConnections(eddy_sim::HostId(0)),
    ));
    sim.run_for(Duration::from_secs(2)).unwrap();
    assert_eq!(*end.borrow(), Some(CloseReason::Reset));
    assert_eq!(sim.stats().resets, 2);
}

#[test]
fn small_socket_buffers_give_back_pressure_and_still_deliver_everything() {
    let faults = FaultConfig {
        socket_buffer_min: 1,
        socket_buffer_max: 16,
        p_short_read: 0.5,
        p_short_write: 0.5,
        p_split: 0.5,
        p_coalesce: 0.5,
        coalesce_delay_max: Duration::from_millis(3),
        ..FaultConfig::latency(Duration::from_millis(1), Duration::from_millis(3))
    };
    let mut sim = Sim::with_faults(11, faults);
    let (got, end) = (shared(), shared());
    sim.host("server", |io| {
        echo(io, server_addr());
    });
    let (g, e) = (got.clone(), end.clone());
    let msg = message(5000);
    let m = msg.clone();
    sim.host_once("client", move |io| echo_client(io, server_addr(), m, g, e));
    sim.run_until_done(Duration::from_secs(3600), |s| s.is_stopped("client"))
        .unwrap();
    assert!(got.borrow()[..] == msg[..]);
}

#[test]
fn hour_long_timers_take_no_wall_time() {
    let started = std::time::Instant::now();
    let mut sim = Sim::with_faults(1, FaultConfig::none());
    let fired = shared::<Vec<u64>>();
    let f = fired.clone();
    sim.host("timers", move |io| {
        for h in 1..=24u64 {
            let f = f.clone();
            io.call_later(Duration::from_secs(3600 * h), move |io| {
                f.borrow_mut().push(io.now().as_nanos() / 3_600_000_000_000);
            });
        }
    });
    sim.run_until_idle().unwrap();
    assert_eq!(*fired.borrow(), (1..=24).collect::<Vec<_>>());
    assert_eq!(sim.now(), Instant::ZERO + Duration::from_secs(24 * 3600));
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn a_quiet_world_with_work_outstanding_is_a_hang() {
    let mut sim = Sim::with_faults(4, FaultConfig::none());
    sim.host("server", |io| {
        // Accepts and never answers; no timers anywhere.
        io.listen(server_addr(), ListenOptions::default(), |_, _, _| {});
    });
    sim.host_once("client", |io| {
        io.connect(server_addr(), None, |io, r| {
            let s = r.unwrap();
            let _ = io.read_bytes(s, 1, |io, _| io.stop());
        });
    });
    let err = sim
        .run_until_done(Duration::from_secs(3600), |s| s.is_stopped("client"))
        .unwrap_err();
    assert!(matches!(err, SimError::Hang { seed: 4, .. }), "{err}");
}

#[test]
fn a_panicking_callback_fails_the_run_with_its_message() {
    let mut sim = Sim::with_faults(8, FaultConfig::none());
    sim.host("h", |io| {
        io.call_later(Duration::from_secs(2), |_| panic!("invariant broken here"));
    });
    let err = sim.run_until_idle().unwrap_err();
    match err {
        SimError::Panic {
            message, host, at, ..
        } => {
            assert!(message.contains("invariant broken here"), "{message}");
            assert_eq!(host, "h");
            assert_eq!(at, Instant::ZERO + Duration::from_secs(2));
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn a_clock_jump_makes_timers_fire_early_in_world_time() {
    let mut sim = Sim::with_faults(1, FaultConfig::none());
    let fired = shared::<Option<Instant>>();
    let f = fired.clone();
    sim.host("h", move |io| {
        let f = f.clone();
        io.call_later(Duration::from_secs(10), move |_| {
            *f.borrow_mut() = Some(Instant::ZERO)
        });
    });
    sim.run_for(Duration::from_secs(1)).unwrap();
    sim.jump_clock("h", Duration::from_secs(5));
    sim.run_until(Instant::ZERO + Duration::from_millis(4999))
        .unwrap();
    assert!(fired.borrow().is_none());
    sim.run_until(Instant::ZERO + Duration::from_secs(5))
        .unwrap();
    assert!(
        fired.borrow().is_some(),
        "10 s on the host's clock is 5 s in the world"
    );
}

#[test]
fn run_until_idle_ends_at_the_last_real_event_even_with_faults_ticking() {
    // Fault ticks are scheduled for as long as the fault phase lasts; an otherwise idle world
    // still counts as idle. (No crashes or clock jumps here: they would move the timer.)
    let faults = FaultConfig {
        p_crash: 0.0,
        p_clock_jump: 0.0,
        ..FaultConfig::hostile()
    };
    for seed in 0..50 {
        let mut sim = Sim::with_faults(seed, faults.clone());
        sim.host("h", |io| {
            let t = io.call_later(Duration::from_secs(50), |_| {});
            io.call_later(Duration::from_secs(7), move |io| {
                io.remove_timeout(t);
            });
        });
        sim.run_until_idle().unwrap();
        assert_eq!(
            sim.now(),
            Instant::ZERO + Duration::from_secs(7),
            "seed {seed}"
        );
    }
}

#[test]
fn listeners_reject_foreign_addresses_and_port_reuse() {
    let mut sim = Sim::with_faults(1, FaultConfig::none());
    let ids = shared::<Vec<ListenerId>>();
    let i = ids.clone();
    let h = sim.host("h", move |io| {
        let a = io.listen(
            "10.9.9.9:80".parse().unwrap(),
            ListenOptions::default(),
            |_, _, _| {},
        );
        let b = io.listen(
            SocketAddr::new(Sim::ip_of_nth_host(0), 80),
            ListenOptions::default(),
            |_, _, _| {},
        );
        let c = io.listen(
            "0.0.0.0:80".parse().unwrap(),
            ListenOptions::default(),
            |_, _, _| {},
        );
        let d = io.listen(
            "0.0.0.0:0".parse().unwrap(),
            ListenOptions::default(),
            |_, _, _| {},
        );
        i.borrow_mut().extend([a, b, c, d]);
    });
    sim.run_until_idle().unwrap();
    let ids = ids.borrow();
    sim.with_loop(h, 0, |io| {
        assert_eq!(
            io.listener_error(ids[0]),
            Some(std::io::ErrorKind::AddrNotAvailable)
        );
        assert_eq!(
            io.listener_addr(ids[1]),
            Some("10.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            io.listener_error(ids[2]),
            Some(std::io::ErrorKind::AddrInUse)
        );
        assert_eq!(io.listener_addr(ids[3]).map(|a| a.port()), Some(49152));
    });
}

#[test]
fn reuse_port_spreads_connections_over_loops() {
    let mut sim = Sim::with_faults(21, FaultConfig::none());
    let per_loop = Rc::new(RefCell::new([0u32; 2]));
    let p = per_loop.clone();
    sim.host_with_loops("server", 2, move |i, io| {
        let p = p.clone();
        let opts = ListenOptions {
            reuse_port: true,
            ..ListenOptions::default()
        };
        io.listen(server_addr(), opts, move |_, _, _| p.borrow_mut()[i] += 1);
    });
    sim.host_once("client", |io| {
        for _ in 0..40 {
            io.connect(server_addr(), None, |_, r| {
                r.unwrap();
            });
        }
    });
    sim.run_until_idle().unwrap();
    let counts = *per_loop.borrow();
    assert_eq!(counts[0] + counts[1], 40);
    assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
}

#[test]
fn the_trace_records_events_and_exports() {
    let mut sim = Sim::with_faults(1, FaultConfig::none());
    sim.record_trace(true);
    sim.host("server", |io| {
        echo(io, server_addr());
    });
    sim.host_once("client", |io| {
        echo_client(io, server_addr(), message(10), shared(), shared())
    });
    sim.run_until_idle().unwrap();
    let report = sim.report();
    let trace = report.trace.unwrap();
    let kinds: Vec<TraceKind> = trace.events.iter().map(|e| e.kind).collect();
    for k in [
        TraceKind::Listen,
        TraceKind::Connect,
        TraceKind::Accept,
        TraceKind::Write,
        TraceKind::Read,
        TraceKind::Eof,
        TraceKind::Close,
    ] {
        assert!(kinds.contains(&k), "{k:?} missing");
    }
    assert_eq!(trace.to_json_lines().lines().count(), trace.events.len());
    assert!(trace.to_chrome_json().contains("\"process_name\""));
}

#[test]
fn a_bandwidth_limit_paces_a_transfer() {
    let faults = FaultConfig {
        bandwidth_bytes_per_sec: Some(10_000),
        ..FaultConfig::none()
    };
    let mut sim = Sim::with_faults(1, faults);
    let (got, end) = (shared(), shared());
    sim.host("server", |io| {
        echo(io, server_addr());
    });
    let (g, e) = (got.clone(), end.clone());
    sim.host_once("client", move |io| {
        echo_client(io, server_addr(), message(50_000), g, e)
    });
    sim.run_until_done(Duration::from_secs(60), |s| s.is_stopped("client"))
        .unwrap();
    assert_eq!(got.borrow().len(), 50_000);
    // 50 kB each way at 10 kB/s, pipelined: at least 5 s, well under 10 s.
    let t = sim.now() - Instant::ZERO;
    assert!(
        t >= Duration::from_secs(5) && t < Duration::from_secs(10),
        "{t:?}"
    );
}

#[test]
fn a_delayed_accept_still_lets_the_client_connect_and_send_at_once() {
    let faults = FaultConfig {
        p_accept_delay: 1.0,
        accept_delay_max: Duration::from_secs(5),
        ..FaultConfig::none()
    };
    let mut sim = Sim::with_faults(2, faults);
    let accepted_at = shared::<Option<Instant>>();
    let a = accepted_at.clone();
    sim.host("server", move |io| {
        let a = a.clone();
        io.listen(server_addr(), ListenOptions::default(), move |io, s, _| {
            *a.borrow_mut() = Some(io.now());
            let _ = io.read_bytes(s, 3, |io, r| {
                assert_eq!(&r.unwrap()[..], b"abc");
                io.stop();
            });
        });
    });
    let connected_at = shared::<Option<Instant>>();
    let c = connected_at.clone();
    sim.host_once("client", move |io| {
        io.connect(server_addr(), None, move |io, r| {
            *c.borrow_mut() = Some(io.now());
            io.write(r.unwrap(), &b"abc"[..]).unwrap();
        });
    });
    sim.run_until_done(Duration::from_secs(10), |s| s.is_stopped("server"))
        .unwrap();
    let (acc, con) = (
        accepted_at.borrow().unwrap(),
        connected_at.borrow().unwrap(),
    );
    assert_eq!(
        con,
        Instant::ZERO,
        "the handshake does not wait for accept()"
    );
    assert!(acc > con, "accept came later: {acc:?}");
}

#[test]
fn a_full_receive_buffer_makes_the_writer_wait() {
    let faults = FaultConfig {
        socket_buffer_min: 100,
        socket_buffer_max: 100,
        ..FaultConfig::none()
    };
    let mut sim = Sim::with_faults(3, faults);
    // The server accepts and never reads; its loop's read-ahead takes one read chunk (64 KiB
    // by default), so the writer stops after that plus the socket's 100 bytes.
    sim.host("server", |io| {
        io.listen(server_addr(), ListenOptions::default(), |_, _, _| {});
    });
    let stream = shared::<Option<eddy_core::StreamId>>();
    let st = stream.clone();
    sim.host_once("client", move |io| {
        io.connect(server_addr(), None, move |io, r| {
            let s = r.unwrap();
            *st.borrow_mut() = Some(s);
            io.write(s, vec![1u8; 1_000_000]).unwrap();
        });
    });
    sim.run_for(Duration::from_secs(10)).unwrap();
    let s = stream.borrow().unwrap();
    let queued = sim.with_loop("client", 0, |io| io.stream(s).unwrap().write_queued());
    let written = 1_000_000 - queued;
    // Read-ahead stops once a read crosses 64 KiB (reads take at most the 100 buffered bytes).
    assert!(
        (64 * 1024 + 100..=64 * 1024 + 200).contains(&written),
        "read-ahead plus the socket buffer, then back-pressure: {written}"
    );
}

#[test]
fn a_host_loop_config_applies_and_survives_a_restart() {
    let mut sim = Sim::with_faults(1, FaultConfig::none());
    sim.set_loop_config(eddy_core::LoopConfig {
        max_buffer_size: 1000,
        read_chunk_size: 100,
    });
    let h = sim.host("h", |_| {});
    assert_eq!(sim.with_loop(h, 0, |io| io.config().max_buffer_size), 1000);
    sim.crash(h);
    sim.restart(h);
    assert_eq!(sim.with_loop(h, 0, |io| io.config().read_chunk_size), 100);
}

#[test]
fn a_partition_that_never_heals_times_connections_out_like_tcp() {
    let mut sim = Sim::with_faults(6, FaultConfig::none());
    sim.host("server", |io| {
        echo(io, server_addr());
    });
    let ends: Shared<Vec<Result<Bytes, StreamError>>> = shared();
    let e = ends.clone();
    sim.host_once("client", move |io| {
        // One established connection whose echo is cut off, and one connect sent into the cut.
        let e1 = e.clone();
        io.connect(server_addr(), None, move |io, r| {
            let s = r.unwrap();
            io.call_later(Duration::from_secs(1), move |io| {
                io.write(s, &b"lost"[..]).unwrap();
                io.read_bytes(s, 4, move |_, r| e1.borrow_mut().push(r))
                    .unwrap();
            });
        });
        let e2 = e.clone();
        io.call_later(Duration::from_secs(2), move |io| {
            io.connect(server_addr(), None, move |_, r| {
                e2.borrow_mut().push(r.map(|_| Bytes::new()))
            });
        });
    });
    sim.run_for(Duration::from_millis(500)).unwrap();
    sim.partition("server", "client");
    sim.run_until_done(Duration::from_secs(3600), |_| ends.borrow().len() == 2)
        .unwrap();
    let t = sim.now() - Instant::ZERO;
    assert!(
        t >= Duration::from_secs(15 * 60) && t < Duration::from_secs(16 * 60),
        "{t:?}"
    );
    // The established stream (its write at 1 s) times out first, as an I/O time-out; the
    // connect sent into the cut (at 2 s) times out as a connect time-out.
    assert_eq!(
        *ends.borrow(),
        vec![
            Err(StreamError::Closed(CloseReason::Io(
                std::io::ErrorKind::TimedOut
            ))),
            Err(StreamError::Closed(CloseReason::ConnectTimeout)),
        ]
    );
    assert_eq!(
        sim.stats().timeouts,
        3,
        "both ends of the first, the client of the second"
    );
}
