//! Tasks on the loop: ordering by rounds, wakers (same thread and cross-thread), abort,
//! panics, spans, timers, and async streams over `FakeNet`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use eddy_core::task::{self, sleep, timeout, with_loop, JoinError, TcpListener, TcpStream};
use eddy_core::testing::FakeNet;
use eddy_core::{CloseReason, Duration, Instant, IoLoop, StreamError};
use proptest::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A future that is pending until its flag is set, and records its waker.
#[derive(Clone, Default)]
struct Gate {
    open: Rc<Cell<bool>>,
    waker: Rc<RefCell<Option<Waker>>>,
}

impl Gate {
    fn open(&self) {
        self.open.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
    fn wait(&self) -> impl Future<Output = ()> + 'static {
        let gate = self.clone();
        std::future::poll_fn(move |cx: &mut Context<'_>| {
            if gate.open.get() {
                Poll::Ready(())
            } else {
                *gate.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

fn round(io: &mut IoLoop) {
    let now = io.now();
    io.handle_timeout(now);
}

#[test]
fn a_spawned_task_first_runs_in_the_next_round_not_inside_spawn() {
    let mut io = IoLoop::default();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let handle = io.spawn(async move {
        r.set(true);
        7
    });
    assert!(!ran.get(), "spawn must not poll");
    assert_eq!(
        io.poll_timeout(),
        Some(io.now()),
        "a queued task keeps the driver awake"
    );
    round(&mut io);
    assert!(ran.get());
    assert_eq!(handle.try_output(), Some(Ok(7)));
    assert_eq!(io.task_count(), 0);
    assert_eq!(io.poll_timeout(), None, "nothing left: the loop may sleep");
}

proptest! {
    /// Model: each round polls exactly the tasks queued before it started, in spawn/wake
    /// order; a wake during a round is served in the next round.
    #[test]
    fn tasks_run_in_spawn_and_wake_order_round_by_round(
        script in proptest::collection::vec((0usize..8, proptest::bool::ANY), 1..60),
    ) {
        let mut io = IoLoop::default();
        let log: Rc<RefCell<Vec<(usize, usize)>>> = Rc::default();
        let round_no = Rc::new(Cell::new(0usize));
        let gates: Vec<Gate> = (0..8).map(|_| Gate::default()).collect();
        // Spawn 8 tasks that each wait on their gate, then log (task, round) and finish.
        for (i, gate) in gates.iter().enumerate() {
            let (log, round_no, wait) = (log.clone(), round_no.clone(), gate.wait());
            io.spawn(async move {
                wait.await;
                log.borrow_mut().push((i, round_no.get()));
            });
        }
        round(&mut io); // first polls: all pending
        let mut expected = Vec::new();
        let mut opened = [false; 8];
        for (r, chunk) in (1..).zip(script.chunks(3)) {
            let mut this_round = Vec::new();
            for &(i, open) in chunk {
                if open && !opened[i] {
                    opened[i] = true;
                    gates[i].open();
                    this_round.push(i);
                }
            }
            round_no.set(r);
            round(&mut io);
            expected.extend(this_round.into_iter().map(|i| (i, r)));
        }
        prop_assert_eq!(&*log.borrow(), &expected);
    }
}

#[test]
fn a_task_that_wakes_itself_every_poll_cannot_starve_io_or_timers() {
    let mut io = IoLoop::default();
    let mut net = FakeNet::new();
    let stream = net.accept_new(&mut io);
    let polls = Rc::new(Cell::new(0u64));
    let p = polls.clone();
    io.spawn(std::future::poll_fn(move |cx: &mut Context<'_>| {
        p.set(p.get() + 1);
        cx.waker().wake_by_ref();
        Poll::<()>::Pending
    }));
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    io.call_later(ms(1), move |_| f.set(true));
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    io.read_bytes(stream, 5, move |_, r| *g.borrow_mut() = Some(r))
        .unwrap();
    net.peer_send(stream, b"hello");
    for _ in 0..10 {
        net.step(&mut io);
    }
    net.advance(ms(1));
    for _ in 0..3 {
        net.step(&mut io);
    }
    assert_eq!(
        got.borrow_mut().take(),
        Some(Ok(Bytes::from_static(b"hello")))
    );
    assert!(
        fired.get(),
        "the timer ran although the task is always runnable"
    );
    assert!(polls.get() <= 14, "one poll per round, got {}", polls.get());
}

#[test]
fn waking_from_eight_threads_loses_no_wake_and_the_loop_sleeps_again() {
    const THREADS: usize = 8;
    const WAKES: usize = 10_000;
    let mut io = IoLoop::default();
    let driver_woken = Arc::new(Mutex::new(0u64));
    let d = driver_woken.clone();
    io.set_waker(Arc::new(move || *d.lock().unwrap() += 1));
    // The task counts the tokens the threads send, and waits while there are none.
    let tokens = Arc::new(Mutex::new(0usize));
    let waker_slot: Arc<Mutex<Option<Waker>>> = Arc::default();
    let (t, w) = (tokens.clone(), waker_slot.clone());
    let handle = io.spawn(std::future::poll_fn(move |cx: &mut Context<'_>| {
        *w.lock().unwrap() = Some(cx.waker().clone());
        if *t.lock().unwrap() == THREADS * WAKES {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
    round(&mut io);
    let waker = waker_slot.lock().unwrap().clone().expect("polled once");
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (waker, tokens) = (waker.clone(), tokens.clone());
            std::thread::spawn(move || {
                for _ in 0..WAKES {
                    *tokens.lock().unwrap() += 1;
                    waker.wake_by_ref();
                }
            })
        })
        .collect();
    let mut rounds = 0;
    while !handle.is_finished() {
        rounds += 1;
        assert!(rounds < 1_000_000, "the task never saw every token");
        if io.poll_timeout().is_some() {
            round(&mut io);
        } else {
            std::thread::yield_now();
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    round(&mut io);
    assert_eq!(io.task_count(), 0);
    assert_eq!(
        io.poll_timeout(),
        None,
        "the loop may sleep again after the wakes"
    );
    assert!(
        *driver_woken.lock().unwrap() >= 1,
        "cross-thread wakes woke the driver"
    );
    waker.wake(); // waking a finished task is harmless
    assert_eq!(io.poll_timeout(), None);
}

#[test]
fn waking_twice_polls_once_and_waking_a_finished_task_is_harmless() {
    let mut io = IoLoop::default();
    let polls = Rc::new(Cell::new(0));
    let slot: Rc<RefCell<Option<Waker>>> = Rc::default();
    let (p, s) = (polls.clone(), slot.clone());
    let handle = io.spawn(std::future::poll_fn(move |cx: &mut Context<'_>| {
        p.set(p.get() + 1);
        *s.borrow_mut() = Some(cx.waker().clone());
        if p.get() == 2 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
    round(&mut io);
    let waker = slot.borrow().clone().unwrap();
    waker.wake_by_ref();
    waker.wake_by_ref();
    round(&mut io);
    assert_eq!(polls.get(), 2);
    assert!(handle.is_finished());
    waker.wake_by_ref();
    round(&mut io);
    assert_eq!(polls.get(), 2);
}

#[test]
fn a_panicking_task_is_caught_reported_to_its_join_handle_and_counted() {
    let mut io = IoLoop::default();
    let failed = io.spawn(async {
        if with_loop(|io| io.now()) == Instant::ZERO {
            panic!("boom in a task");
        }
    });
    let fine = io.spawn(async { 1 });
    round(&mut io);
    match failed.try_output() {
        Some(Err(JoinError::Panicked { message, location })) => {
            assert_eq!(message, "boom in a task");
            assert!(
                location.file().ends_with("tasks.rs"),
                "spawn site: {location}"
            );
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert_eq!(fine.try_output(), Some(Ok(1)));
    assert_eq!(io.stats().task_panics, 1);
    // The loop goes on.
    let after = io.spawn(async { 2 });
    round(&mut io);
    assert_eq!(after.try_output(), Some(Ok(2)));
}

#[test]
fn abort_drops_the_task_at_its_next_poll_and_join_reports_cancelled() {
    let mut io = IoLoop::default();
    let dropped = Rc::new(Cell::new(false));
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let flag = Flag(dropped.clone());
    let gate = Gate::default();
    let wait = gate.wait();
    let handle = io.spawn(async move {
        let _flag = flag;
        wait.await;
    });
    round(&mut io);
    handle.abort();
    assert!(
        !dropped.get(),
        "abort only flags; the loop drops it in a round"
    );
    round(&mut io);
    assert!(dropped.get());
    assert_eq!(io.task_count(), 0);
    let awaited = io.spawn(handle);
    round(&mut io);
    assert_eq!(awaited.try_output(), Some(Ok(Err(JoinError::Cancelled))));
}

#[test]
fn a_join_handle_awaited_by_another_task_gets_the_output() {
    let mut io = IoLoop::default();
    let outer = io.spawn(async {
        let inner = task::spawn(async {
            sleep(ms(3)).await;
            "inner"
        });
        inner.await.unwrap()
    });
    let mut net = FakeNet::new();
    assert!(net.run_until_idle(&mut io, true, 100));
    assert_eq!(outer.try_output(), Some(Ok("inner")));
    assert_eq!(net.now, Instant::ZERO + ms(3));
}

#[test]
fn a_task_is_polled_in_the_span_current_at_its_spawn() {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry();
    let _guard = tracing::subscriber::set_default(
        subscriber.with(tracing_subscriber::layer::Identity::new()),
    );
    let mut io = IoLoop::default();
    let span = tracing::info_span!("request", id = 42);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    {
        let _e = span.enter();
        io.spawn(async move {
            s.borrow_mut().push(tracing::Span::current().id());
            task::yield_now().await;
            s.borrow_mut().push(tracing::Span::current().id());
        });
    }
    round(&mut io);
    round(&mut io);
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter().all(|id| *id == span.id() && id.is_some()),
        "{seen:?}"
    );
}

#[test]
fn sleep_timeout_and_interval_follow_loop_time() {
    let mut io = IoLoop::default();
    let ticks = Rc::new(RefCell::new(Vec::new()));
    let t = ticks.clone();
    let handle = io.spawn(async move {
        let start = with_loop(|io| io.now());
        sleep(ms(10)).await;
        let slept = with_loop(|io| io.now()) - start;
        let quick = timeout(ms(50), async { 5 }).await;
        let slow = timeout(ms(5), sleep(ms(20))).await;
        let mut every = task::interval(ms(10));
        for _ in 0..3 {
            let tick = every.tick().await;
            t.borrow_mut().push(tick);
        }
        (slept, quick, slow)
    });
    let mut net = FakeNet::new();
    assert!(net.run_until_idle(&mut io, true, 1000));
    let (slept, quick, slow) = handle.try_output().unwrap().unwrap();
    assert_eq!(slept, ms(10));
    assert_eq!(quick, Ok(5));
    assert_eq!(slow, Err(task::Elapsed));
    let base = Instant::ZERO + ms(15);
    assert_eq!(
        *ticks.borrow(),
        vec![base + ms(10), base + ms(20), base + ms(30)]
    );
    // The dropped 20 ms sleep left no live timer behind: the loop is idle.
    assert_eq!(io.poll_timeout(), None);
}

#[test]
fn an_interval_skips_missed_ticks_after_a_stall() {
    let mut io = IoLoop::default();
    let ticks = Rc::new(RefCell::new(Vec::new()));
    let t = ticks.clone();
    io.spawn(async move {
        let mut every = task::interval(ms(10));
        for _ in 0..3 {
            let tick = every.tick().await;
            t.borrow_mut().push(tick);
        }
    });
    round(&mut io);
    io.handle_timeout(Instant::ZERO + ms(10));
    io.handle_timeout(Instant::ZERO + ms(10));
    // A stall of 35 ms: ticks at 20, 30, 40 are missed; the next is 50.
    io.handle_timeout(Instant::ZERO + ms(45));
    io.handle_timeout(Instant::ZERO + ms(45));
    io.handle_timeout(Instant::ZERO + ms(50));
    io.handle_timeout(Instant::ZERO + ms(50));
    let z = Instant::ZERO;
    assert_eq!(*ticks.borrow(), vec![z + ms(10), z + ms(20), z + ms(50)]);
}

#[test]
fn async_listener_and_streams_echo_over_a_fake_network() {
    let mut io = IoLoop::default();
    let addr = "127.0.0.1:7000".parse().unwrap();
    let server = io.spawn(async move {
        let mut listener = TcpListener::bind(addr).await.unwrap();
        let (mut conn, _peer) = listener.accept().await.unwrap();
        loop {
            match conn.read_some(4096).await {
                Ok(data) => conn.write(data).unwrap(),
                Err(StreamError::Closed(CloseReason::Eof)) => break,
                Err(e) => panic!("{e}"),
            }
        }
        // The client's end of file, with nothing left to write, closed the stream: a flush
        // now succeeds (everything was written), a shutdown reports the close.
        conn.flush().await.unwrap();
        assert_eq!(
            conn.shutdown_write(),
            Err(StreamError::Closed(CloseReason::Eof))
        );
    });
    let client = io.spawn(async move {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write(&b"hello "[..]).unwrap();
        conn.write(&b"world\n"[..]).unwrap();
        let line = conn.read_until(&b"\n"[..], Some(64)).await.unwrap();
        conn.shutdown_write().unwrap();
        let rest = conn.read_to_end().await.unwrap();
        (line, rest)
    });
    let mut net = FakeNet::new();
    net.read_sizes = vec![1, 3, 2];
    net.write_sizes = vec![2, 5];
    assert!(net.run_until_idle(&mut io, true, 10_000));
    let (line, rest) = client.try_output().unwrap().unwrap();
    assert_eq!(&line[..], b"hello world\n");
    assert!(rest.is_empty());
    assert_eq!(server.try_output(), Some(Ok(())));
    assert_eq!(io.task_count(), 0);
}

/// A stream shared by tasks in turn (one borrows it across an await, then is aborted).
type SharedStream = Rc<RefCell<Option<TcpStream>>>;

fn shared_stream(io: &mut IoLoop, net: &mut FakeNet) -> (SharedStream, eddy_core::StreamId) {
    let id = net.accept_new(io);
    let shared: SharedStream = Rc::default();
    let s = shared.clone();
    io.add_callback(move |io| *s.borrow_mut() = Some(TcpStream::from_stream(io, id)));
    round(io);
    (shared, id)
}

#[test]
#[allow(clippy::await_holding_refcell_ref)] // the borrow across the await is the point
fn aborting_a_task_with_a_pending_read_loses_no_byte_for_the_next_read() {
    let mut io = IoLoop::default();
    let mut net = FakeNet::new();
    for complete_before_abort in [false, true] {
        let (shared, id) = shared_stream(&mut io, &mut net);
        let s = shared.clone();
        let a = io.spawn(async move {
            let mut guard = s.borrow_mut();
            guard.as_mut().unwrap().read_exact(10).await
        });
        round(&mut io);
        io.handle_read_bytes(id, b"012345");
        round(&mut io);
        if complete_before_abort {
            // The read completes (its result is stored, the task queued) before the abort.
            io.handle_read_bytes(id, b"6789");
        }
        a.abort();
        round(&mut io);
        assert_eq!(a.try_output(), Some(Err(JoinError::Cancelled)));
        assert!(!io.closed(id));
        assert!(!io.reading(id), "the aborted read was withdrawn");
        if !complete_before_abort {
            io.handle_read_bytes(id, b"6789");
        }
        let s = shared.clone();
        let b = io.spawn(async move {
            let mut stream = s.borrow_mut().take().unwrap();
            stream.read_exact(10).await
        });
        round(&mut io);
        assert_eq!(
            b.try_output(),
            Some(Ok(Ok(Bytes::from_static(b"0123456789"))))
        );
    }
}

#[test]
fn a_read_cancelled_by_timeout_loses_no_byte() {
    let mut io = IoLoop::default();
    let mut net = FakeNet::new();
    let (shared, id) = shared_stream(&mut io, &mut net);
    let handle = io.spawn(async move {
        let mut stream = shared.borrow_mut().take().unwrap();
        let first = timeout(ms(5), stream.read_exact(10)).await;
        assert!(first.is_err(), "only 6 bytes came in time");
        stream.read_exact(10).await
    });
    net.peer_send(id, b"012345");
    assert!(net.run_until_idle(&mut io, true, 100));
    net.peer_send(id, b"6789");
    assert!(net.run_until_idle(&mut io, true, 100));
    assert_eq!(
        handle.try_output(),
        Some(Ok(Ok(Bytes::from_static(b"0123456789"))))
    );
}

#[test]
fn dropping_a_stream_in_a_task_closes_it_and_a_closed_stream_reports_its_reason() {
    let mut io = IoLoop::default();
    let mut net = FakeNet::new();
    let (shared, id) = shared_stream(&mut io, &mut net);
    let handle = io.spawn(async move {
        let mut stream = shared.borrow_mut().take().unwrap();
        let r = stream.read_some(100).await;
        (r, stream.write(&b"late"[..]), stream.close_reason())
    });
    round(&mut io);
    io.handle_error(id, std::io::ErrorKind::ConnectionReset);
    assert!(net.run_until_idle(&mut io, false, 100));
    let (read, write, reason) = handle.try_output().unwrap().unwrap();
    assert_eq!(read, Err(StreamError::Closed(CloseReason::Reset)));
    assert_eq!(write, Err(StreamError::Closed(CloseReason::Reset)));
    assert_eq!(reason, Some(CloseReason::Reset));

    let (shared, id) = shared_stream(&mut io, &mut net);
    io.spawn(async move {
        drop(shared.borrow_mut().take());
    });
    round(&mut io);
    assert!(io.closed(id), "a dropped TcpStream closes its stream");
}

#[test]
fn spawn_blocking_without_a_pool_runs_on_the_loop_in_a_coming_round() {
    let mut io = IoLoop::default();
    let handle = io.spawn(async { task::spawn_blocking(|| 6 * 7).await });
    let mut net = FakeNet::new();
    assert!(net.run_until_idle(&mut io, false, 100));
    assert_eq!(handle.try_output(), Some(Ok(Ok(42))));
    let failing = io.spawn(async { task::spawn_blocking(|| -> u8 { panic!("in a job") }).await });
    assert!(net.run_until_idle(&mut io, false, 100));
    assert_eq!(
        failing.try_output(),
        Some(Ok(Err(task::BlockingError::Panicked("in a job".into()))))
    );
}

#[test]
fn dropping_the_loop_drops_its_tasks_and_cancels_their_joins() {
    let mut io = IoLoop::default();
    let gate = Gate::default();
    let wait = gate.wait();
    let handle = io.spawn(wait);
    round(&mut io);
    drop(io);
    assert_eq!(handle.try_output(), Some(Err(JoinError::Cancelled)));
}

#[test]
#[should_panic(expected = "no loop is running a task")]
fn async_apis_outside_a_task_panic_with_a_clear_message() {
    drop(sleep(ms(1)));
}

#[test]
fn futures_io_traits_work_with_futures_copy_and_buffered_lines() {
    use futures::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut io = IoLoop::default();
    let addr = "127.0.0.1:7001".parse().unwrap();
    let server = io.spawn(async move {
        let mut listener = TcpListener::bind(addr).await.unwrap();
        let (conn, _) = listener.accept().await.unwrap();
        let (reader, mut writer) = futures::io::AsyncReadExt::split(conn);
        futures::io::copy(reader, &mut writer).await.unwrap();
        writer.close().await.unwrap();
    });
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let expected = payload.clone();
    let client = io.spawn(async move {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        // Mixed: a line through AsyncBufRead after a bulk AsyncWrite.
        conn.write_all(b"first line\n").await.unwrap();
        conn.write_all(&payload).await.unwrap();
        AsyncWriteExt::close(&mut conn).await.unwrap();
        let mut line = String::new();
        let mut reader = futures::io::BufReader::new(conn);
        reader.read_line(&mut line).await.unwrap();
        let mut rest = Vec::new();
        futures::io::AsyncReadExt::read_to_end(&mut reader, &mut rest)
            .await
            .unwrap();
        (line, rest)
    });
    let mut net = FakeNet::new();
    net.read_sizes = vec![4096, 777];
    net.write_sizes = vec![1500, 9000];
    assert!(net.run_until_idle(&mut io, true, 100_000));
    let (line, rest) = client.try_output().unwrap().unwrap();
    assert_eq!(line, "first line\n");
    assert!(
        rest == expected,
        "{} bytes back of {}",
        rest.len(),
        expected.len()
    );
    assert_eq!(server.try_output(), Some(Ok(())));
}

#[test]
fn a_task_can_still_answer_a_peer_that_half_closed_after_its_request() {
    let mut io = IoLoop::default();
    let mut net = FakeNet::new();
    let (shared, id) = shared_stream(&mut io, &mut net);
    io.spawn(async move {
        let mut stream = shared.borrow_mut().take().unwrap();
        let request = stream.read_to_end().await.unwrap();
        stream
            .write(format!("got {} bytes", request.len()))
            .unwrap();
        stream.flush().await.unwrap();
    });
    net.peer_send(id, b"GET / HTTP/1.0\r\n\r\n");
    net.peer_shutdown(id);
    assert!(net.run_until_idle(&mut io, true, 100));
    assert_eq!(net.take_output(id), b"got 18 bytes");
    assert!(io.closed(id));
}
