//! Share-nothing multi-core serving: N loops on N threads, one SO_REUSEPORT listener each,
//! graceful stop on request and on SIGTERM.

use eddy::core::{ListenOptions, LoopStats};
use eddy::drivers::{spawn_threads, DriverConfig, DriverKind, ThreadServer};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

fn echo_threads(kind: DriverKind, threads: usize) -> ThreadServer {
    let setup = |io: &mut eddy::core::IoLoop, addr: SocketAddr| {
        let options = ListenOptions {
            reuse_port: true,
            ..ListenOptions::default()
        };
        eddy::echo::serve_with(io, addr, options);
    };
    spawn_threads(
        &DriverConfig::with_kind(kind),
        threads,
        ([127, 0, 0, 1], 0).into(),
        setup,
    )
    .expect("threads start")
}

fn round_trip(addr: SocketAddr, i: usize) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let msg = format!("hello {i:04}");
    s.write_all(msg.as_bytes()).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg.as_bytes());
}

fn stats_of(server: &ThreadServer) -> Vec<LoopStats> {
    server
        .remotes()
        .iter()
        .map(|r| {
            let (tx, rx) = mpsc::channel();
            r.add_callback(move |io| tx.send(io.stats()).unwrap());
            rx.recv_timeout(Duration::from_secs(5))
                .expect("loop answers")
        })
        .collect()
}

#[test]
fn every_thread_accepts_on_the_shared_port_and_stop_joins_them() {
    for kind in [DriverKind::Mio, DriverKind::Poll] {
        let server = echo_threads(kind, 2);
        assert_ne!(server.local_addr().port(), 0);
        for i in 0..64 {
            round_trip(server.local_addr(), i);
        }
        let stats = stats_of(&server);
        let accepted: Vec<u64> = stats.iter().map(|s| s.accepted).collect();
        assert_eq!(accepted.iter().sum::<u64>(), 64, "[{kind:?}] {accepted:?}");
        assert!(
            accepted.iter().all(|a| *a > 0),
            "[{kind:?}] the kernel spread connections over every loop: {accepted:?}"
        );
        let start = Instant::now();
        server.shutdown(Duration::from_secs(1));
        server.join().expect("clean exit");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "[{kind:?}] stop took too long"
        );
    }
}

#[test]
fn graceful_stop_flushes_queued_echo_before_closing() {
    let server = echo_threads(DriverKind::Mio, 1);
    let addr = server.local_addr();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Send 4 MiB without reading: the server ends up with echo queued when we ask it to stop.
    let data: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut w = s.try_clone().unwrap();
        let data = data.clone();
        std::thread::spawn(move || w.write_all(&data))
    };
    std::thread::sleep(Duration::from_millis(100));
    server.shutdown(Duration::from_secs(5));
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let _ = writer.join();
    server.join().unwrap();
    assert!(!got.is_empty(), "some echo arrived");
    assert!(
        got == data[..got.len()],
        "what arrived is an in-order prefix"
    );
}

#[test]
fn sigterm_stops_the_threads_gracefully() {
    // A guard handler first, so an early SIGTERM can never kill the test process.
    let guard = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, guard.clone()).unwrap();
    let server = echo_threads(DriverKind::Mio, 2);
    let addr = server.local_addr();
    round_trip(addr, 1);
    let waiter = std::thread::spawn(move || server.wait_for_signals(Duration::from_secs(1)));
    // Bounded: raise until the waiter has seen one (it may not be listening yet at first).
    for _ in 0..50 {
        if waiter.is_finished() {
            break;
        }
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(waiter.is_finished(), "SIGTERM stopped the server");
    waiter.join().unwrap().expect("clean exit");
    assert!(guard.load(Ordering::SeqCst));
    assert!(TcpStream::connect(addr).is_err(), "listeners are closed");
}

#[test]
fn graceful_stop_is_bounded_by_the_grace_period_when_a_client_never_reads() {
    let server = echo_threads(DriverKind::Mio, 1);
    let addr = server.local_addr();
    let s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Write until the server pushes back; we never read, so its echo can never flush.
    let mut w = s.try_clone().unwrap();
    let chunk = vec![9u8; 64 * 1024];
    for _ in 0..256 {
        if w.write_all(&chunk).is_err() {
            break;
        }
    }
    let start = Instant::now();
    server.shutdown(Duration::from_millis(300));
    server.join().expect("clean exit");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(250),
        "waited for the flush: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "but no longer than the grace: {took:?}"
    );
    drop(s);
}

#[test]
fn async_setup_binds_from_a_task_on_every_thread() {
    for kind in [DriverKind::Mio, DriverKind::Poll] {
        let server = eddy::drivers::spawn_threads_async(
            &DriverConfig::with_kind(kind),
            2,
            ([127, 0, 0, 1], 0).into(),
            |addr| async move {
                let options = ListenOptions {
                    reuse_port: true,
                    ..ListenOptions::default()
                };
                eddy::echo_async::serve(addr, options)
                    .await
                    .expect("bind in the task");
            },
        )
        .expect("threads start once their tasks have bound");
        assert_ne!(server.local_addr().port(), 0);
        for i in 0..32 {
            round_trip(server.local_addr(), i);
        }
        let stats = stats_of(&server);
        assert_eq!(stats.len(), 2);
        assert!(stats.iter().all(|s| s.tasks_spawned >= 1), "{stats:?}");
        server.shutdown(Duration::from_secs(1));
        server.join().expect("threads join");
    }
}
