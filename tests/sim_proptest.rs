//! proptest over simulated worlds: the workload and the fault plan are data, so a failing case
//! shrinks to a minimal one.

use eddy::core::{Duration, IoLoop, StreamId};
use eddy_sim::plan::strategy::fault_plan;
use eddy_sim::{FaultConfig, FaultOp, FaultPlan, RunReport, Sim, SimError};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use std::net::SocketAddr;

/// One client operation: wait `pause_ms`, send `len` bytes, read the echo.
type Workload = Vec<(u64, usize)>;

fn workload() -> impl Strategy<Value = Workload> {
    prop::collection::vec((0u64..2000, 1usize..512), 1..12)
}

/// A client that assumes its connection never fails (panics if it does), run against the echo
/// service with a fault plan. Partitions only delay it; resets and crashes break it.
fn fragile_run(work: &Workload, plan: &FaultPlan) -> Result<RunReport, SimError> {
    let mut sim = Sim::with_faults(
        1,
        FaultConfig::latency(Duration::from_millis(1), Duration::from_millis(5)),
    );
    let addr = SocketAddr::new(Sim::ip_of_nth_host(0), 7);
    sim.host("server", move |io| {
        eddy::echo::serve(io, addr);
    });
    let work = work.clone();
    sim.host_once("client", move |io| {
        io.connect(addr, None, move |io, r| {
            let s = r.expect("fragile client: connect failed");
            step(io, s, work, 0);
        });
    });
    sim.apply_plan(plan);
    sim.run_faults_then_heal(Duration::from_secs(30), Duration::from_secs(60), |s| {
        s.is_stopped("client")
    })?;
    Ok(sim.report())
}

fn step(io: &mut IoLoop, s: StreamId, work: Workload, i: usize) {
    let Some(&(pause_ms, len)) = work.get(i) else {
        io.stop();
        return;
    };
    io.call_later(Duration::from_millis(pause_ms), move |io| {
        io.write(s, vec![i as u8; len])
            .expect("fragile client: write failed");
        io.read_bytes(s, len, move |io, r| {
            let got = r.expect("fragile client: connection failed");
            assert!(got.iter().all(|&b| b == i as u8));
            step(io, s, work, i + 1);
        })
        .expect("fragile client: read failed");
    });
}

#[test]
fn a_failing_fault_plan_shrinks_to_one_connection_breaking_fault() {
    let config = Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let strategy = (workload(), fault_plan(2, Duration::from_secs(10), 8));
    let result = runner.run(&strategy, |(work, plan)| {
        fragile_run(&work, &plan).map_err(|e| TestCaseError::fail(e.to_string()))?;
        Ok(())
    });
    let Err(TestError::Fail(reason, (work, plan))) = result else {
        panic!("some fault plan must break the fragile client: {result:?}");
    };
    println!("minimal failing case: {work:?} {plan:?}\n  {reason}");
    assert_eq!(plan.steps.len(), 1, "shrunk to a single fault: {plan:?}");
    assert!(
        matches!(
            plan.steps[0].op,
            FaultOp::Crash(_) | FaultOp::ResetConnections(_)
        ),
        "only crashes and resets break a connection: {plan:?}"
    );
    assert_eq!(work.len(), 1, "shrunk to a single operation: {work:?}");
    // The minimal case is a plain value: it replays the same failure.
    assert!(fragile_run(&work, &plan).is_err());
}

proptest! {
    #![proptest_config(Config { cases: 64, failure_persistence: None, ..Config::default() })]

    /// Partitions, clock jumps and heals never break a connection: they only delay it.
    #[test]
    fn partitions_and_clock_jumps_only_delay_the_fragile_client(
        work in workload(),
        plan in fault_plan(2, Duration::from_secs(10), 8).prop_filter(
            "no crash or reset",
            |p| p.steps.iter().all(|s| !matches!(s.op, FaultOp::Crash(_) | FaultOp::ResetConnections(_))),
        ),
    ) {
        fragile_run(&work, &plan).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}
