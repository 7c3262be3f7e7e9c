//! `FaultPlan`: faults as data — a list of timed operations a test can write, print and shrink.
//!
//! It owns the operation vocabulary and (with the `proptest` feature) a `Strategy` that
//! generates plans; applying a plan is the world's job ([`crate::Sim::apply_plan`]).

use crate::HostId;
use eddy_core::Duration;

/// One fault operation on the world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultOp {
    /// Cut both directions between two hosts.
    Partition(HostId, HostId),
    /// Cut one direction: packets from the first host no longer reach the second.
    PartitionOneWay(HostId, HostId),
    /// Heal every partition.
    Heal,
    /// Crash a host: its loops are dropped, its sockets die (peers see reset or end of file).
    Crash(HostId),
    /// Restart a crashed host: its setup runs again on fresh loops.
    Restart(HostId),
    /// Make a host's clock jump forward.
    ClockJump(HostId, Duration),
    /// Reset every open connection of a host.
    ResetConnections(HostId),
}

/// A fault operation at a virtual time (since the start of the run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultStep {
    /// When, from the start of the run.
    pub at: Duration,
    /// What.
    pub op: FaultOp,
}

/// A schedule of faults; see [`crate::Sim::apply_plan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// The steps (any order; applied by time, ties in list order).
    pub steps: Vec<FaultStep>,
}

impl FaultPlan {
    /// An empty plan.
    pub fn new() -> FaultPlan {
        FaultPlan::default()
    }

    /// Adds a step.
    pub fn at(mut self, at: Duration, op: FaultOp) -> FaultPlan {
        self.steps.push(FaultStep { at, op });
        self
    }
}

/// proptest strategies for fault plans (feature `proptest`).
#[cfg(feature = "proptest")]
pub mod strategy {
    use super::*;
    use proptest::prelude::*;

    /// One fault operation over hosts `0..hosts`.
    pub fn fault_op(hosts: u32) -> impl Strategy<Value = FaultOp> {
        let h = 0..hosts;
        prop_oneof![
            (h.clone(), h.clone()).prop_map(|(a, b)| FaultOp::Partition(HostId(a), HostId(b))),
            (h.clone(), h.clone())
                .prop_map(|(a, b)| FaultOp::PartitionOneWay(HostId(a), HostId(b))),
            Just(FaultOp::Heal),
            h.clone().prop_map(|a| FaultOp::Crash(HostId(a))),
            h.clone().prop_map(|a| FaultOp::Restart(HostId(a))),
            (h.clone(), 1u64..10_000)
                .prop_map(|(a, ms)| FaultOp::ClockJump(HostId(a), Duration::from_millis(ms))),
            h.prop_map(|a| FaultOp::ResetConnections(HostId(a))),
        ]
    }

    /// A plan of up to `max_steps` operations over hosts `0..hosts` within `horizon`.
    ///
    /// Shrinks towards fewer steps, earlier times and simpler operations.
    pub fn fault_plan(
        hosts: u32,
        horizon: Duration,
        max_steps: usize,
    ) -> impl Strategy<Value = FaultPlan> {
        let horizon_ms = horizon.as_millis().max(1) as u64;
        prop::collection::vec(
            (0..horizon_ms, fault_op(hosts)).prop_map(|(ms, op)| FaultStep {
                at: Duration::from_millis(ms),
                op,
            }),
            0..=max_steps,
        )
        .prop_map(|steps| FaultPlan { steps })
    }
}
