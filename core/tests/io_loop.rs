//! IoLoop behaviour on the scripted FakeNet driver: callbacks, timers, streams, error paths.

use bytes::Bytes;
use eddy_core::testing::FakeNet;
use eddy_core::{
    CloseReason, Duration, Instant, IoLoop, ListenOptions, ListenerId, LoopConfig, StreamError,
    StreamId,
};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

type Log<T> = Rc<RefCell<Vec<T>>>;

fn log<T>() -> Log<T> {
    Rc::new(RefCell::new(Vec::new()))
}

/// A loop with one listener at 127.0.0.1:80 and one accepted stream.
fn accepted(config: LoopConfig) -> (IoLoop, FakeNet, StreamId) {
    let mut io = IoLoop::new(config);
    let mut net = FakeNet::new();
    let id = net.accept_new(&mut io);
    net.step(&mut io);
    (io, net, id)
}

#[test]
fn callbacks_run_fifo_and_callbacks_added_during_a_round_wait_for_the_next() {
    let mut io = IoLoop::default();
    let ran: Log<(u32, u32)> = log();
    let round = Rc::new(RefCell::new(0u32));
    for i in 0..3 {
        let (ran, round) = (ran.clone(), round.clone());
        io.add_callback(move |io| {
            ran.borrow_mut().push((i, *round.borrow()));
            let (ran, round) = (ran.clone(), round.clone());
            io.add_callback(move |_| ran.borrow_mut().push((10 + i, *round.borrow())));
        });
    }
    io.handle_timeout(Instant::ZERO);
    *round.borrow_mut() = 1;
    io.handle_timeout(Instant::ZERO);
    assert_eq!(
        *ran.borrow(),
        vec![(0, 0), (1, 0), (2, 0), (10, 1), (11, 1), (12, 1)]
    );
}

#[test]
fn a_callback_that_re_adds_itself_yields_between_rounds() {
    fn spin(io: &mut IoLoop, count: Rc<RefCell<u32>>) {
        *count.borrow_mut() += 1;
        io.add_callback(move |io| spin(io, count));
    }
    let mut io = IoLoop::default();
    let count = Rc::new(RefCell::new(0));
    let c = count.clone();
    io.add_callback(move |io| spin(io, c));
    for _ in 0..5 {
        io.handle_timeout(Instant::ZERO);
    }
    assert_eq!(
        *count.borrow(),
        5,
        "one run per round, never a busy inner loop"
    );
}

#[test]
fn timers_fire_in_deadline_order_and_removed_ones_never_fire() {
    let mut io = IoLoop::default();
    let ran: Log<u32> = log();
    let mut handles = Vec::new();
    for (i, ms) in [(0u32, 30u64), (1, 10), (2, 20), (3, 10)] {
        let ran = ran.clone();
        handles.push(io.call_later(Duration::from_millis(ms), move |_| ran.borrow_mut().push(i)));
    }
    assert!(io.remove_timeout(handles[2]));
    assert!(!io.remove_timeout(handles[2]), "second removal is a no-op");
    assert_eq!(io.poll_timeout(), Some(Instant::from_nanos(10_000_000)));
    io.handle_timeout(Instant::from_nanos(15_000_000));
    assert_eq!(*ran.borrow(), vec![1, 3], "ties fire in insertion order");
    io.handle_timeout(Instant::from_nanos(40_000_000));
    assert_eq!(*ran.borrow(), vec![1, 3, 0]);
    assert_eq!(io.poll_timeout(), None);
}

#[test]
fn poll_timeout_is_now_while_callbacks_are_pending() {
    let mut io = IoLoop::default();
    io.handle_timeout(Instant::from_nanos(7));
    io.call_later(Duration::from_secs(3600), |_| {});
    assert_eq!(
        io.poll_timeout(),
        Some(Instant::from_nanos(7 + 3_600_000_000_000))
    );
    io.add_callback(|_| {});
    assert_eq!(io.poll_timeout(), Some(Instant::from_nanos(7)));
}

#[test]
fn periodic_callback_skips_missed_ticks_instead_of_bursting() {
    let mut io = IoLoop::default();
    let ticks: Log<u64> = log();
    let t = ticks.clone();
    let id = io.add_periodic(Duration::from_secs(1), move |io| {
        t.borrow_mut().push(io.now().as_nanos() / 1_000_000_000)
    });
    io.handle_timeout(Instant::from_nanos(1_000_000_000));
    io.handle_timeout(Instant::from_nanos(1_000_000_000));
    // The loop stalls for 4.5 s: one late tick, then back on the 1 s grid.
    io.handle_timeout(Instant::from_nanos(5_500_000_000));
    io.handle_timeout(Instant::from_nanos(5_500_000_000));
    assert_eq!(io.poll_timeout(), Some(Instant::from_nanos(6_000_000_000)));
    io.handle_timeout(Instant::from_nanos(6_000_000_000));
    io.handle_timeout(Instant::from_nanos(6_000_000_000));
    assert_eq!(*ticks.borrow(), vec![1, 5, 6]);
    assert!(io.stop_periodic(id));
    io.handle_timeout(Instant::from_nanos(60_000_000_000));
    io.handle_timeout(Instant::from_nanos(60_000_000_000));
    assert_eq!(ticks.borrow().len(), 3, "stopped periodic never runs again");
}

#[test]
fn a_panicking_callback_is_caught_and_the_loop_goes_on() {
    let mut io = IoLoop::default();
    let ran: Log<u32> = log();
    io.add_callback(|_| panic!("boom"));
    let r = ran.clone();
    io.add_callback(move |_| r.borrow_mut().push(1));
    io.handle_timeout(Instant::ZERO);
    assert_eq!(*ran.borrow(), vec![1]);
    assert_eq!(io.stats().callback_panics, 1);
}

#[test]
fn remote_add_callback_from_another_thread_wakes_and_runs() {
    let mut io = IoLoop::default();
    let woken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let w = woken.clone();
    io.set_waker(std::sync::Arc::new(move || {
        w.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }));
    let remote = io.remote();
    std::thread::spawn(move || {
        remote.add_callback(|io| io.stop());
        remote.add_callback(|_| {});
    })
    .join()
    .unwrap();
    assert_eq!(
        woken.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one wake per batch"
    );
    assert_eq!(io.poll_timeout(), Some(io.now()));
    io.handle_timeout(Instant::ZERO);
    assert!(io.is_stopped());
}

#[test]
fn echo_over_fake_net_with_short_reads_and_writes() {
    let (mut io, mut net, id) = accepted(LoopConfig::default());
    net.read_sizes = vec![1, 3, 2];
    net.write_sizes = vec![2, 1];
    fn echo(io: &mut IoLoop, id: StreamId) {
        io.read_some(id, 1024, move |io, r| {
            if let Ok(data) = r {
                io.write(id, data).unwrap();
                echo(io, id);
            }
        })
        .unwrap();
    }
    echo(&mut io, id);
    net.peer_send(id, b"hello, world");
    assert!(net.run_until_idle(&mut io, false, 1000));
    assert_eq!(net.take_output(id), b"hello, world");
}

#[test]
fn half_close_still_delivers_the_reply_then_closes() {
    let (mut io, mut net, id) = accepted(LoopConfig::default());
    let reason: Log<CloseReason> = log();
    let r = reason.clone();
    io.set_close_callback(id, move |_, why| r.borrow_mut().push(why))
        .unwrap();
    io.read_until_close(id, move |io, r| {
        let body = r.unwrap();
        io.write(id, Bytes::from(format!("got {}", body.len())))
            .unwrap();
    })
    .unwrap();
    net.peer_send(id, b"abcdef");
    net.peer_shutdown(id);
    assert!(net.run_until_idle(&mut io, false, 1000));
    assert_eq!(net.take_output(id), b"got 6");
    assert_eq!(*reason.borrow(), vec![CloseReason::Eof]);
    assert!(io.closed(id));
}

#[test]
fn exceeding_max_buffer_size_fails_the_read_and_closes() {
    let config = LoopConfig {
        max_buffer_size: 16,
        read_chunk_size: 8,
    };
    let (mut io, mut net, id) = accepted(config);
    let got: Log<Result<Bytes, StreamError>> = log();
    let g = got.clone();
    io.read_until(id, &b"\n"[..], None, move |_, r| g.borrow_mut().push(r))
        .unwrap();
    net.peer_send(id, &[b'x'; 40]);
    net.run_until_idle(&mut io, false, 1000);
    assert_eq!(
        *got.borrow(),
        vec![Err(StreamError::BufferFull { limit: 16 })]
    );
    assert_eq!(
        io.write(id, &b"late"[..]),
        Err(StreamError::UnknownStream),
        "the closed stream is gone once the driver has dropped it"
    );
    assert_eq!(net.conn(id).closed, Some(CloseReason::BufferFull));
}

#[test]
fn read_until_past_max_bytes_fails_unsatisfiable_and_closes() {
    let (mut io, mut net, id) = accepted(LoopConfig::default());
    let got: Log<Result<Bytes, StreamError>> = log();
    let g = got.clone();
    io.read_until(id, &b"\r\n"[..], Some(8), move |_, r| {
        g.borrow_mut().push(r)
    })
    .unwrap();
    net.peer_send(id, b"0123456789\r\n");
    net.run_until_idle(&mut io, false, 1000);
    assert_eq!(
        *got.borrow(),
        vec![Err(StreamError::Unsatisfiable { max_bytes: 8 })]
    );
    assert_eq!(net.conn(id).closed, Some(CloseReason::Unsatisfiable));
}

#[test]
fn read_on_a_closed_stream_reports_closed_through_the_callback() {
    let (mut io, mut net, id) = accepted(LoopConfig::default());
    let got: Log<Result<Bytes, StreamError>> = log();
    io.close(id);
    let g = got.clone();
    io.read_bytes(id, 4, move |_, r| g.borrow_mut().push(r))
        .unwrap();
    net.run_until_idle(&mut io, false, 100);
    assert_eq!(
        *got.borrow(),
        vec![Err(StreamError::Closed(CloseReason::Local))]
    );
}

#[test]
fn a_second_pending_read_is_an_error_not_an_overwrite() {
    let (mut io, mut net, id) = accepted(LoopConfig::default());
    let got: Log<Bytes> = log();
    let g = got.clone();
    io.read_bytes(id, 3, move |_, r| g.borrow_mut().push(r.unwrap()))
        .unwrap();
    assert_eq!(
        io.read_bytes(id, 1, |_, _| panic!("must never run")),
        Err(StreamError::ReadPending)
    );
    net.peer_send(id, b"abc");
    net.run_until_idle(&mut io, false, 100);
    assert_eq!(*got.borrow(), vec![Bytes::from_static(b"abc")]);
}

#[test]
fn write_after_close_is_an_error_and_pending_flush_fails() {
    let (mut io, mut net, id) = accepted(LoopConfig::default());
    net.write_sizes = vec![1];
    let flushed: Log<Result<(), StreamError>> = log();
    io.write(id, &b"abcdef"[..]).unwrap();
    let f = flushed.clone();
    io.flush(id, move |_, r| f.borrow_mut().push(r)).unwrap();
    net.step(&mut io);
    io.close(id);
    assert_eq!(
        io.write(id, &b"x"[..]),
        Err(StreamError::Closed(CloseReason::Local))
    );
    net.run_until_idle(&mut io, false, 100);
    assert_eq!(
        *flushed.borrow(),
        vec![Err(StreamError::Closed(CloseReason::Local))]
    );
}

#[test]
fn flush_completes_after_partial_writes() {
    let (mut io, mut net, id) = accepted(LoopConfig::default());
    net.write_sizes = vec![3];
    let flushed: Log<u64> = log();
    io.write(id, vec![7u8; 10]).unwrap();
    let f = flushed.clone();
    io.flush(id, move |io, r| {
        r.unwrap();
        f.borrow_mut().push(io.stream(id).unwrap().total_written())
    })
    .unwrap();
    net.run_until_idle(&mut io, false, 100);
    assert_eq!(*flushed.borrow(), vec![10]);
    assert_eq!(net.take_output(id).len(), 10);
}

#[test]
fn connect_to_a_listener_links_a_pipe_and_connect_timeout_fires() {
    let mut io = IoLoop::default();
    let mut net = FakeNet::new();
    let server_got: Log<Bytes> = log();
    let s = server_got.clone();
    let _l: ListenerId = io.listen(addr(80), ListenOptions::default(), move |io, id, _| {
        let s = s.clone();
        io.read_bytes(id, 4, move |_, r| s.borrow_mut().push(r.unwrap()))
            .unwrap();
    });
    net.step(&mut io);
    io.connect(addr(80), None, |io, r| {
        let id = r.unwrap();
        io.write(id, &b"ping"[..]).unwrap();
    });
    let outcome: Log<Result<StreamId, StreamError>> = log();
    let o = outcome.clone();
    io.connect(addr(81), Some(Duration::from_secs(5)), move |_, r| {
        o.borrow_mut().push(r)
    });
    assert!(net.run_until_idle(&mut io, true, 1000));
    assert_eq!(*server_got.borrow(), vec![Bytes::from_static(b"ping")]);
    assert_eq!(
        *outcome.borrow(),
        vec![Err(StreamError::Closed(CloseReason::ConnectTimeout))]
    );
    assert_eq!(io.now(), Instant::from_nanos(5_000_000_000));
}

#[test]
fn refused_connect_reports_refused() {
    let mut io = IoLoop::default();
    let mut net = FakeNet::new();
    let outcome: Log<Result<StreamId, StreamError>> = log();
    let o = outcome.clone();
    let id = io.connect(addr(9), None, move |_, r| o.borrow_mut().push(r));
    net.step(&mut io);
    net.complete_connect(&mut io, id, Err(std::io::ErrorKind::ConnectionRefused));
    net.run_until_idle(&mut io, false, 100);
    assert_eq!(
        *outcome.borrow(),
        vec![Err(StreamError::Closed(CloseReason::Refused))]
    );
}

#[test]
fn streaming_read_until_close_hands_out_every_chunk_in_order() {
    let (mut io, mut net, id) = accepted(LoopConfig::default());
    net.read_sizes = vec![3];
    let chunks: Log<u8> = log();
    let done: Log<usize> = log();
    let (c, d) = (chunks.clone(), done.clone());
    io.read_until_close_streaming(
        id,
        move |_, chunk| c.borrow_mut().extend_from_slice(&chunk),
        move |_, r| d.borrow_mut().push(r.unwrap().len()),
    )
    .unwrap();
    net.peer_send(id, b"0123456789");
    net.peer_shutdown(id);
    net.run_until_idle(&mut io, false, 1000);
    assert_eq!(&*chunks.borrow(), b"0123456789");
    assert_eq!(*done.borrow(), vec![0]);
}

#[test]
fn close_callback_set_after_close_still_runs() {
    let (mut io, mut net, id) = accepted(LoopConfig::default());
    io.close(id);
    let reason: Log<CloseReason> = log();
    let r = reason.clone();
    io.set_close_callback(id, move |_, why| r.borrow_mut().push(why))
        .unwrap();
    net.run_until_idle(&mut io, false, 100);
    assert_eq!(*reason.borrow(), vec![CloseReason::Local]);
}

#[test]
fn peer_reset_closes_with_reset_and_fails_the_pending_read() {
    let (mut io, mut net, id) = accepted(LoopConfig::default());
    let got: Log<Result<Bytes, StreamError>> = log();
    let g = got.clone();
    io.read_bytes(id, 10, move |_, r| g.borrow_mut().push(r))
        .unwrap();
    io.handle_error(id, std::io::ErrorKind::ConnectionReset);
    net.run_until_idle(&mut io, false, 100);
    assert_eq!(
        *got.borrow(),
        vec![Err(StreamError::Closed(CloseReason::Reset))]
    );
}

/// A line protocol: answers each line upper-cased; pauses reading after `pause_after` lines.
struct Upper {
    lines: Log<String>,
    closed: Log<CloseReason>,
    pause_after: usize,
}

impl eddy_core::StreamHandler for Upper {
    fn on_readable(&mut self, io: &mut IoLoop, id: StreamId, buf: &mut bytes::BytesMut, eof: bool) {
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            if self.lines.borrow().len() >= self.pause_after {
                io.set_reading(id, false);
                return;
            }
            let line = buf.split_to(pos + 1);
            let text = String::from_utf8_lossy(&line[..pos]).to_string();
            if text == "panic" {
                panic!("handler bug");
            }
            io.write(id, Bytes::from(text.to_uppercase() + "\n"))
                .unwrap();
            self.lines.borrow_mut().push(text);
        }
        if eof {
            self.lines.borrow_mut().push("<eof>".into());
        }
    }
    fn on_close(&mut self, _: &mut IoLoop, _: StreamId, reason: CloseReason) {
        self.closed.borrow_mut().push(reason);
    }
}

fn upper(pause_after: usize) -> (Upper, Log<String>, Log<CloseReason>) {
    let (lines, closed) = (log(), log());
    let h = Upper {
        lines: lines.clone(),
        closed: closed.clone(),
        pause_after,
    };
    (h, lines, closed)
}

#[test]
fn handler_consumes_the_buffer_in_place_and_sees_eof_then_close() {
    let (mut io, mut net, id) = accepted(LoopConfig::default());
    net.read_sizes = vec![3];
    let (h, lines, closed) = upper(usize::MAX);
    io.set_handler(id, Box::new(h)).unwrap();
    assert_eq!(
        io.read_bytes(id, 1, |_, _| {}),
        Err(StreamError::ReadPending),
        "one-shot reads and a handler are exclusive"
    );
    net.peer_send(id, b"ab\ncd\nef\n");
    net.peer_shutdown(id);
    assert!(net.run_until_idle(&mut io, false, 1000));
    assert_eq!(*lines.borrow(), vec!["ab", "cd", "ef", "<eof>"]);
    assert_eq!(net.take_output(id), b"AB\nCD\nEF\n");
    assert_eq!(*closed.borrow(), vec![CloseReason::Eof]);
}

#[test]
fn paused_handler_stops_reading_so_memory_stays_bounded() {
    let config = LoopConfig {
        max_buffer_size: 1 << 20,
        read_chunk_size: 16,
    };
    let (mut io, mut net, id) = accepted(config);
    let (h, lines, _) = upper(1);
    io.set_handler(id, Box::new(h)).unwrap();
    net.peer_send(id, &b"x\n".repeat(10_000));
    assert!(net.run_until_idle(&mut io, false, 1000));
    assert_eq!(lines.borrow().len(), 1);
    assert!(!net.conn(id).interest.readable, "paused: no read interest");
    assert!(
        io.stream(id).unwrap().buffered() <= 32,
        "only what was read before the pause"
    );
    assert!(
        net.conn(id).inbound.len() > 19_000,
        "the rest waits in the peer's socket"
    );
}

#[test]
fn a_panicking_handler_closes_only_its_stream() {
    let (mut io, mut net, id) = accepted(LoopConfig::default());
    let (h, lines, _) = upper(usize::MAX);
    io.set_handler(id, Box::new(h)).unwrap();
    net.peer_send(id, b"ok\npanic\nnever\n");
    assert!(net.run_until_idle(&mut io, false, 1000));
    assert_eq!(*lines.borrow(), vec!["ok"]);
    assert_eq!(io.stats().callback_panics, 1);
    assert!(net.conn(id).closed.is_some());
}
