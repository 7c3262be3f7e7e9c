//! The echo service on every backend: big transfers, many clients, both IP families,
//! half-close, and clients that reset mid-transfer.

mod common;

use bytes::Bytes;
use common::{backends, pattern, random_sizes, real_backends, run_pair, run_pair_at, Backend};
use eddy::core::{CloseReason, IoLoop, ListenOptions, ListenerId, StreamError, StreamId};
use eddy::{echo, echo_async};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

type Serve = fn(&mut IoLoop, SocketAddr, ListenOptions) -> ListenerId;

/// The echo service written with callbacks and with async/await: both pass the same tests.
const SERVERS: [(&str, Serve); 2] = [
    ("callback", echo::serve_with),
    ("async", echo_async::serve_with),
];

/// Connects, writes `data` in `sizes`-sized writes (each after the previous one flushed),
/// optionally half-closes, and hands the echo to `done`.
fn echo_client(
    io: &mut IoLoop,
    addr: SocketAddr,
    data: Bytes,
    sizes: Vec<usize>,
    half_close: bool,
    done: impl FnOnce(&mut IoLoop, StreamId, Result<Bytes, StreamError>) + 'static,
) {
    io.connect(addr, Some(Duration::from_secs(5)), move |io, r| {
        let id = r.expect("connect to the echo server");
        let len = data.len();
        write_chain(io, id, data, sizes, 0, half_close);
        let on_done = move |io: &mut IoLoop, r| done(io, id, r);
        if half_close {
            io.read_until_close(id, on_done).expect("read");
        } else {
            io.read_bytes(id, len, on_done).expect("read");
        }
    });
}

fn write_chain(
    io: &mut IoLoop,
    id: StreamId,
    data: Bytes,
    sizes: Vec<usize>,
    i: usize,
    half_close: bool,
) {
    if i == sizes.len() {
        if half_close {
            io.shutdown_write(id).expect("shutdown_write");
        }
        return;
    }
    let start: usize = sizes[..i].iter().sum();
    io.write(id, data.slice(start..start + sizes[i]))
        .expect("write");
    io.flush(id, move |io, r| {
        r.expect("flush");
        write_chain(io, id, data, sizes, i + 1, half_close);
    })
    .expect("flush");
}

fn one_mib_echo(backend: Backend, bind: SocketAddr, half_close: bool) {
    for (name, serve) in SERVERS {
        eprintln!("{name} echo server on {backend:?}");
        one_mib_echo_with(backend, bind, half_close, serve);
    }
}

fn one_mib_echo_with(backend: Backend, bind: SocketAddr, half_close: bool, serve: Serve) {
    let data = Bytes::from(pattern(7, 1 << 20));
    let sizes = random_sizes(11, data.len(), 50_000);
    let expected = data.clone();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    run_pair_at(
        backend,
        bind,
        move |io, addr| serve(io, addr, ListenOptions::default()),
        move |io, addr| {
            echo_client(io, addr, data, sizes, half_close, move |io, _, r| {
                *g.borrow_mut() = Some(r);
                io.stop();
            })
        },
        LIMIT,
    );
    let got = got.borrow_mut().take().expect("client finished");
    let got = got.unwrap_or_else(|e| panic!("[{backend:?}] echo read failed: {e}"));
    assert_eq!(got.len(), expected.len(), "[{backend:?}] echo length");
    assert!(
        got == expected,
        "[{backend:?}] echo differs from what was sent"
    );
}

#[test]
fn one_mib_in_random_sized_writes_comes_back_byte_identical() {
    for backend in backends() {
        one_mib_echo(backend, common::loopback_v4(), false);
    }
}

#[test]
fn half_closed_client_still_receives_the_whole_echo() {
    for backend in backends() {
        one_mib_echo(backend, common::loopback_v4(), true);
    }
}

#[test]
fn ipv6_loopback_echo_works_or_is_skipped_when_unavailable() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipping: ::1 is not available on this machine");
        return;
    }
    for backend in real_backends() {
        one_mib_echo(backend, "[::1]:0".parse().unwrap(), false);
    }
}

#[test]
fn two_hundred_concurrent_clients_each_get_their_own_bytes_back() {
    const CLIENTS: usize = 200;
    for (backend, (name, serve)) in backends()
        .into_iter()
        .flat_map(|b| SERVERS.into_iter().map(move |s| (b, s)))
    {
        eprintln!("{name} echo server on {backend:?}");
        let finished = Rc::new(RefCell::new(0usize));
        let f = finished.clone();
        run_pair(
            backend,
            move |io, addr| {
                let options = ListenOptions {
                    backlog: 1024,
                    ..ListenOptions::default()
                };
                serve(io, addr, options)
            },
            move |io, addr| {
                // All connects start in one turn: a backlog above CLIENTS avoids SYN drops
                // (and their 1 s retransmit) before the server's first accept.
                for c in 0..CLIENTS {
                    let data = Bytes::from(pattern(1000 + c as u64, 4096 + c * 13));
                    let sizes = random_sizes(c as u64 + 1, data.len(), 1500);
                    let (expected, f) = (data.clone(), f.clone());
                    echo_client(io, addr, data, sizes, false, move |io, id, r| {
                        let got = r.expect("echo read");
                        assert!(got == expected, "client {c} got someone else's bytes");
                        io.close(id);
                        *f.borrow_mut() += 1;
                        if *f.borrow() == CLIENTS {
                            io.stop();
                        }
                    });
                }
            },
            LIMIT,
        );
        assert_eq!(*finished.borrow(), CLIENTS, "[{backend:?}] {name}");
    }
}

/// Std clients that write until the server pushes back, then reset (SO_LINGER 0) and go.
fn reset_clients(addr: SocketAddr, n: usize) {
    for i in 0..n {
        // A tiny receive buffer, so the server's echo backs up and it is mid-write at the reset.
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.connect(&addr.into()).expect("connect");
        let mut s: std::net::TcpStream = sock.into();
        s.set_write_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let chunk = pattern(i as u64, 64 * 1024);
        let mut sent = 0usize;
        // Bounded: at most 8 MiB or until the server stops taking bytes.
        while sent < 8 << 20 {
            match std::io::Write::write(&mut s, &chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s); // RST while the server still has echo queued for us
    }
}

#[test]
fn server_survives_clients_that_reset_mid_transfer_and_keeps_serving() {
    for backend in real_backends() {
        let ok = Arc::new(AtomicBool::new(false));
        let o = ok.clone();
        let reasons: Rc<RefCell<Vec<CloseReason>>> = Rc::default();
        let r = reasons.clone();
        let io = run_pair(
            backend,
            move |io, addr| {
                io.listen(addr, ListenOptions::default(), move |io, id, _| {
                    let r = r.clone();
                    io.set_close_callback(id, move |_, why| r.borrow_mut().push(why))
                        .unwrap();
                    echo::echo_stream(io, id);
                })
            },
            move |io, addr| {
                let remote = io.remote();
                std::thread::spawn(move || {
                    reset_clients(addr, 8);
                    remote.add_callback(move |io| {
                        let data = Bytes::from(pattern(99, 200_000));
                        let sizes = random_sizes(5, data.len(), 30_000);
                        let expected = data.clone();
                        echo_client(io, addr, data, sizes, false, move |io, id, r| {
                            assert!(r.expect("echo after resets") == expected);
                            o.store(true, Ordering::SeqCst);
                            io.close(id);
                            wait_all_closed(io);
                        });
                    });
                });
            },
            LIMIT,
        )
        .expect("a real backend returns its loop");
        assert!(
            ok.load(Ordering::SeqCst),
            "[{backend:?}] a normal client was served"
        );
        assert_eq!(io.stats().callback_panics, 0, "[{backend:?}]");
        let reasons = reasons.borrow();
        assert_eq!(
            reasons.len(),
            9,
            "[{backend:?}] every server stream closed: {reasons:?}"
        );
        assert!(
            reasons.iter().filter(|r| **r == CloseReason::Reset).count() >= 4,
            "[{backend:?}] most reset clients are seen as resets: {reasons:?}"
        );
    }
}

/// Stops the loop once every stream (including the reset ones) is closed.
fn wait_all_closed(io: &mut IoLoop) {
    if io.open_streams() == 0 {
        io.stop();
    } else {
        io.call_later(Duration::from_millis(5), wait_all_closed);
    }
}

#[test]
fn data_left_when_the_read_buffer_filled_is_read_later_without_a_new_edge() {
    // The server reads nothing for 200 ms: read-ahead fills one chunk and stops, the rest
    // sits in the kernel, and the client sends nothing more. An edge-triggered driver that
    // forgot the socket was still readable would hang here.
    const N: usize = 600 * 1024;
    for backend in real_backends() {
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        run_pair(
            backend,
            move |io, addr| {
                io.listen(addr, ListenOptions::default(), move |io, id, _| {
                    let g = g.clone();
                    io.call_later(Duration::from_millis(200), move |io| {
                        io.read_bytes(id, N, move |io, r| {
                            *g.borrow_mut() = Some(r);
                            io.stop();
                        })
                        .unwrap();
                    });
                })
            },
            move |io, addr| {
                io.connect(addr, None, move |io, r| {
                    let id = r.unwrap();
                    io.write(id, pattern(3, N)).unwrap();
                });
            },
            LIMIT,
        );
        let got = got.borrow_mut().take().expect("server read");
        assert!(
            got.expect("read") == pattern(3, N),
            "[{backend:?}] bytes differ"
        );
    }
}
