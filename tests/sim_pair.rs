//! `eddy_sim::run_pair`, the harness other tests use: the echo service and a client on the
//! simulator, with and without faults.

use eddy::core::{Duration, IoLoop};
use eddy_sim::{assert_seeds, run_pair, FaultConfig, SimError};
use std::net::SocketAddr;

fn client(io: &mut IoLoop, addr: SocketAddr) {
    io.connect(addr, Some(Duration::from_secs(5)), |io, r| {
        let Ok(s) = r else {
            io.stop(); // refused or timed out: a fault, not a bug
            return;
        };
        io.write(s, &b"ping\n"[..]).unwrap();
        let _ = io.read_until(s, &b"\n"[..], Some(64), |io, r| {
            if let Ok(line) = r {
                assert_eq!(&line[..], b"ping\n");
            }
            io.stop();
        });
        // A reset or crash closes the stream; the read above then fails and stops the loop.
    });
}

#[test]
fn echo_pair_round_trips_with_latency() {
    let report = run_pair(
        1,
        FaultConfig::latency(Duration::from_millis(1), Duration::from_millis(10)),
        |io: &mut IoLoop, addr| eddy::echo::serve(io, addr),
        client,
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(report.virtual_time <= Duration::from_millis(40));
    assert_eq!(report.stats.accepts, 1);
}

#[test]
fn echo_pair_survives_500_hostile_seeds() {
    assert_seeds(0..500, |seed| {
        run_pair(
            seed,
            FaultConfig::hostile(),
            |io: &mut IoLoop, addr| eddy::echo::serve(io, addr),
            client,
            Duration::from_secs(60),
        )
    });
}

#[test]
fn a_client_that_never_stops_is_reported_as_a_hang() {
    let err = run_pair(
        3,
        FaultConfig::none(),
        |io: &mut IoLoop, addr| eddy::echo::serve(io, addr),
        |_: &mut IoLoop, _| {},
        Duration::from_secs(60),
    )
    .unwrap_err();
    assert!(matches!(err, SimError::Hang { seed: 3, .. }), "{err}");
}
