//! Loop mechanics on the OS drivers: cross-thread wake-ups, timers on the monotonic clock,
//! the slow-callback warning, connect errors, `listen_host` and `run_sync`.

mod common;

use common::{driver_for, real_backends as backends, run_single};
use eddy::core::{CloseReason, IoLoop, ListenOptions, LoopConfig, StreamError};
use eddy::drivers::{listen_host, new_driver, run_sync, DriverConfig, DriverError, DriverKind};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn remote_add_callback_wakes_a_loop_sleeping_on_a_one_hour_timer_within_100ms() {
    for backend in backends() {
        let latency: Arc<Mutex<Option<Duration>>> = Arc::default();
        let l = latency.clone();
        run_single(
            backend,
            move |io| {
                io.call_later(Duration::from_secs(3600), |_| panic!("never fires"));
                let remote = io.remote();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(200)); // the loop is asleep now
                    let sent = Instant::now();
                    remote.add_callback(move |io| {
                        *l.lock().unwrap() = Some(sent.elapsed());
                        io.stop();
                    });
                });
            },
            LIMIT,
        );
        let latency = latency.lock().unwrap().expect("remote callback ran");
        assert!(
            latency < Duration::from_millis(100),
            "[{backend:?}] wake-up took {latency:?}"
        );
    }
}

#[test]
fn timers_fire_no_earlier_than_asked_and_not_much_later() {
    for backend in backends() {
        let fired: Rc<RefCell<Vec<(u32, Duration)>>> = Rc::default();
        let f = fired.clone();
        let start = Instant::now();
        run_single(
            backend,
            move |io| {
                for (i, ms) in [(0u32, 60u64), (1, 20), (2, 40)] {
                    let f = f.clone();
                    io.call_later(Duration::from_millis(ms), move |io| {
                        f.borrow_mut().push((i, start.elapsed()));
                        if f.borrow().len() == 3 {
                            io.stop();
                        }
                    });
                }
            },
            LIMIT,
        );
        let fired = fired.borrow();
        let order: Vec<u32> = fired.iter().map(|f| f.0).collect();
        assert_eq!(order, vec![1, 2, 0], "[{backend:?}] deadline order");
        for (i, at) in fired.iter() {
            let asked = Duration::from_millis([60, 20, 40][*i as usize]);
            assert!(*at >= asked, "[{backend:?}] timer {i} early: {at:?}");
            assert!(
                *at < asked + Duration::from_millis(80),
                "[{backend:?}] timer {i} late: {at:?}"
            );
        }
    }
}

#[test]
fn periodic_callback_ticks_on_the_real_clock() {
    for backend in backends() {
        let ticks = Rc::new(RefCell::new(0u32));
        let t = ticks.clone();
        let start = Instant::now();
        run_single(
            backend,
            move |io| {
                io.add_periodic(Duration::from_millis(10), move |io| {
                    *t.borrow_mut() += 1;
                    if *t.borrow() == 5 {
                        io.stop();
                    }
                });
            },
            LIMIT,
        );
        assert_eq!(*ticks.borrow(), 5);
        assert!(
            start.elapsed() >= Duration::from_millis(50),
            "[{backend:?}]"
        );
    }
}

#[test]
fn slow_callback_warning_counts_callbacks_that_block_the_loop() {
    for kind in [DriverKind::Mio, DriverKind::Poll] {
        let config = DriverConfig {
            slow_callback_threshold: Some(Duration::from_millis(20)),
            ..DriverConfig::with_kind(kind)
        };
        let mut driver = new_driver(&config).unwrap();
        let mut io = IoLoop::new(LoopConfig::default());
        io.add_callback(|_| std::thread::sleep(Duration::from_millis(40)));
        io.add_callback(|_| {});
        io.call_later(Duration::from_millis(1), |io| io.stop());
        driver.run_until_stopped(&mut io).unwrap();
        assert_eq!(io.stats().slow_callbacks, 1, "[{kind:?}]");
    }
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    // Bind then drop a std listener: its port is (almost surely) closed now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for backend in backends() {
        let result = Rc::new(RefCell::new(None));
        let r = result.clone();
        run_single(
            backend,
            move |io| {
                io.connect(([127, 0, 0, 1], port).into(), None, move |io, res| {
                    *r.borrow_mut() = Some(res);
                    io.stop();
                });
            },
            LIMIT,
        );
        let got = result.borrow_mut().take().expect("connect finished");
        assert_eq!(
            got,
            Err(StreamError::Closed(CloseReason::Refused)),
            "[{backend:?}]"
        );
    }
}

#[test]
fn listen_twice_on_one_port_reports_addr_in_use() {
    for backend in backends() {
        let mut driver = driver_for(backend);
        let mut io = IoLoop::default();
        let a = io.listen(
            ([127, 0, 0, 1], 0).into(),
            ListenOptions::default(),
            |_, _, _| {},
        );
        driver.perform_actions(&mut io).unwrap();
        let bound = io.listener_addr(a).expect("bound synchronously");
        assert_ne!(bound.port(), 0, "ephemeral port is reported");
        let b = io.listen(bound, ListenOptions::default(), |_, _, _| {});
        driver.perform_actions(&mut io).unwrap();
        assert_eq!(io.listener_error(b), Some(std::io::ErrorKind::AddrInUse));
    }
}

#[test]
fn listen_host_localhost_binds_each_family_on_one_port() {
    for backend in backends() {
        let mut driver = driver_for(backend);
        let mut io = IoLoop::default();
        let ids = listen_host(
            &mut *driver,
            &mut io,
            "localhost",
            0,
            ListenOptions::default(),
            |_, _, _| {},
        )
        .unwrap();
        assert!(!ids.is_empty() && ids.len() <= 2, "[{backend:?}] {ids:?}");
        let addrs: Vec<_> = ids
            .iter()
            .map(|id| io.listener_addr(*id).unwrap())
            .collect();
        assert!(
            addrs.iter().all(|a| a.port() == addrs[0].port()),
            "{addrs:?}"
        );
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        let families: Vec<bool> = addrs.iter().map(|a| a.is_ipv4()).collect();
        assert!(
            families.len() == 1 || families[0] != families[1],
            "one listener per family: {addrs:?}"
        );
    }
}

#[test]
fn run_sync_connects_and_returns_the_result() {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = server.accept().unwrap();
            std::io::Write::write_all(&mut s, b"hello\n").unwrap();
        }
    });
    for kind in [DriverKind::Mio, DriverKind::Poll] {
        let line = run_sync(
            &DriverConfig::with_kind(kind),
            Some(LIMIT),
            move |io, done| {
                io.connect(addr, None, move |io, r| {
                    let id = r.unwrap();
                    io.read_until(id, &b"\n"[..], Some(100), move |io, line| {
                        done.complete(io, line.unwrap());
                    })
                    .unwrap();
                });
            },
        )
        .unwrap();
        assert_eq!(&line[..], b"hello\n");
    }
    t.join().unwrap();
}

#[test]
fn unknown_driver_name_is_an_error_not_a_silent_default() {
    assert!(matches!(
        "kqueue2".parse::<DriverKind>(),
        Err(DriverError::UnknownDriver(_))
    ));
}
