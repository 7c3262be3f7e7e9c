//! Tasks on simulated hosts: the same async code as on the OS drivers, a crash drops a host's
//! tasks (their destructors run, nothing of them survives), a restart starts them afresh.

use eddy::core::task::sleep;
use eddy::core::{Duration, Instant};
use eddy_sim::Sim;
use std::cell::Cell;
use std::rc::Rc;

struct Alive(Rc<Cell<i32>>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

#[test]
fn a_crash_drops_a_hosts_tasks_and_a_restart_spawns_them_again() {
    let mut sim = Sim::new(1);
    let alive = Rc::new(Cell::new(0));
    let started = Rc::new(Cell::new(0));
    let (a, s) = (alive.clone(), started.clone());
    let host = sim.host("worker", move |io| {
        a.set(a.get() + 1);
        s.set(s.get() + 1);
        let guard = Alive(a.clone());
        io.spawn(async move {
            let _guard = guard;
            sleep(Duration::from_secs(3600)).await;
        });
    });
    sim.run_until(Instant::ZERO + Duration::from_secs(1))
        .unwrap();
    assert_eq!((alive.get(), started.get()), (1, 1));
    sim.crash(host);
    sim.run_until(Instant::ZERO + Duration::from_secs(2))
        .unwrap();
    assert_eq!(alive.get(), 0, "the crash dropped the task");
    sim.restart(host);
    sim.run_until(Instant::ZERO + Duration::from_secs(3))
        .unwrap();
    assert_eq!(
        (alive.get(), started.get()),
        (1, 2),
        "the restart spawned it again"
    );
}
