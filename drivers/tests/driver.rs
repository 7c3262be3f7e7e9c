//! The drivers against std peers: orderly close, resets without SIGPIPE, half-close,
//! connect + write before the connection completes, and the `EDDY_DRIVER` switch.

use eddy_core::{CloseReason, IoLoop, ListenOptions, StreamId};
use eddy_drivers::{new_driver, Driver, DriverConfig, DriverKind};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

const KINDS: [DriverKind; 2] = [DriverKind::Mio, DriverKind::Poll];

fn driver(kind: DriverKind) -> Box<dyn Driver> {
    new_driver(&DriverConfig::with_kind(kind)).unwrap()
}

/// Turns until `io` stops, panicking after `limit`.
fn run(driver: &mut dyn Driver, io: &mut IoLoop, limit: Duration) {
    let start = Instant::now();
    while !io.is_stopped() {
        assert!(
            start.elapsed() < limit,
            "loop did not stop within {limit:?}"
        );
        driver.turn(io, Some(Duration::from_millis(20))).unwrap();
    }
    driver.perform_actions(io).unwrap();
}

/// A listener bound now; returns its address.
fn listen(
    driver: &mut dyn Driver,
    io: &mut IoLoop,
    on_accept: impl FnMut(&mut IoLoop, StreamId, SocketAddr) + 'static,
) -> SocketAddr {
    let l = io.listen(
        ([127, 0, 0, 1], 0).into(),
        ListenOptions::default(),
        on_accept,
    );
    driver.perform_actions(io).unwrap();
    io.listener_addr(l).expect("bound")
}

#[test]
fn write_then_close_after_flush_delivers_everything_then_a_clean_eof() {
    for kind in KINDS {
        let mut d = driver(kind);
        let mut io = IoLoop::default();
        let addr = listen(&mut *d, &mut io, |io, id, _| {
            io.write(id, vec![5u8; 300_000]).unwrap();
            io.flush(id, move |io, r| {
                r.unwrap();
                io.close(id);
                io.stop();
            })
            .unwrap();
        });
        let reader = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).map(|_| all)
        });
        run(&mut *d, &mut io, Duration::from_secs(10));
        let all = reader.join().unwrap().expect("clean EOF, not a reset");
        assert_eq!(all.len(), 300_000, "[{kind:?}]");
        assert_eq!(d.open_sockets(), 1, "[{kind:?}] only the listener is left");
    }
}

#[test]
fn writing_to_a_peer_that_reset_closes_with_reset_and_the_process_survives() {
    // SIGPIPE at its default action: if the kernel answered a send with EPIPE and the driver
    // had not passed MSG_NOSIGNAL, the test process would die (Linux often says ECONNRESET).
    // SAFETY: restoring the default disposition of a signal; no handler function involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    for kind in KINDS {
        let mut d = driver(kind);
        let mut io = IoLoop::default();
        let reason = Rc::new(RefCell::new(None));
        let r = reason.clone();
        let addr = listen(&mut *d, &mut io, move |io, id, _| {
            let r = r.clone();
            io.set_close_callback(id, move |io, why| {
                *r.borrow_mut() = Some(why);
                io.stop();
            })
            .unwrap();
            fn pump(io: &mut IoLoop, id: StreamId, rounds: u32) {
                if rounds == 0 || io.write(id, vec![1u8; 256 * 1024]).is_err() {
                    return;
                }
                let _ = io.flush(id, move |io, r| {
                    if r.is_ok() {
                        pump(io, id, rounds - 1);
                    }
                });
            }
            pump(io, id, 400); // bounded: at most 100 MiB
        });
        let client = std::thread::spawn(move || {
            let s = TcpStream::connect(addr).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(s);
        });
        run(&mut *d, &mut io, Duration::from_secs(10));
        client.join().unwrap();
        assert_eq!(*reason.borrow(), Some(CloseReason::Reset), "[{kind:?}]");
    }
}

#[test]
fn writes_queued_before_connect_completes_are_sent_after_it() {
    for kind in KINDS {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(b"world").unwrap();
            buf
        });
        let mut d = driver(kind);
        let mut io = IoLoop::default();
        let reply = Rc::new(RefCell::new(None));
        let rep = reply.clone();
        let id = io.connect(
            addr,
            Some(eddy_core::Duration::from_secs(5)),
            move |io, r| {
                let id = r.unwrap();
                io.read_bytes(id, 5, move |io, r| {
                    *rep.borrow_mut() = Some(r.unwrap());
                    io.stop();
                })
                .unwrap();
            },
        );
        // Queued while the stream is still connecting.
        io.write(id, &b"hello"[..]).unwrap();
        run(&mut *d, &mut io, Duration::from_secs(10));
        assert_eq!(&peer.join().unwrap(), b"hello", "[{kind:?}]");
        assert_eq!(reply.borrow().as_deref(), Some(&b"world"[..]), "[{kind:?}]");
    }
}

#[test]
fn shutdown_write_lets_the_peer_read_eof_while_we_still_read_its_reply() {
    for kind in KINDS {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            s.read_to_end(&mut req).unwrap(); // ends at our half-close
            s.write_all(&req).unwrap();
            s.write_all(b"!").unwrap();
        });
        let mut d = driver(kind);
        let mut io = IoLoop::default();
        let reply = Rc::new(RefCell::new(None));
        let rep = reply.clone();
        io.connect(addr, None, move |io, r| {
            let id = r.unwrap();
            io.write(id, &b"question"[..]).unwrap();
            io.shutdown_write(id).unwrap();
            io.read_until_close(id, move |io, r| {
                *rep.borrow_mut() = Some(r.unwrap());
                io.stop();
            })
            .unwrap();
        });
        run(&mut *d, &mut io, Duration::from_secs(10));
        peer.join().unwrap();
        assert_eq!(
            reply.borrow().as_deref(),
            Some(&b"question!"[..]),
            "[{kind:?}]"
        );
    }
}

#[test]
fn eddy_driver_env_var_picks_the_driver() {
    // The only test in this binary that touches the variable.
    std::env::set_var("EDDY_DRIVER", "poll");
    assert_eq!(DriverConfig::from_env().unwrap().kind, DriverKind::Poll);
    std::env::set_var("EDDY_DRIVER", "bogus");
    assert!(DriverConfig::from_env().is_err());
    std::env::remove_var("EDDY_DRIVER");
    assert_eq!(DriverConfig::from_env().unwrap().kind, DriverKind::Mio);
    let d = new_driver(&DriverConfig::with_kind(DriverKind::Poll)).unwrap();
    assert_eq!(d.kind(), DriverKind::Poll);
}
