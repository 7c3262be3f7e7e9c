//! Callbacks run inside the tracing span that was current when they were registered
//! (Tornado's stack_context), so logs and caught panics name the request that caused them.

use eddy_core::testing::FakeNet;
use eddy_core::{Duration, Instant, IoLoop};
use std::cell::RefCell;
use std::rc::Rc;
use tracing::span::Id;

/// Which callback ran, and the span it saw.
type Seen = Rc<RefCell<Vec<(&'static str, Option<Id>)>>>;

#[test]
fn callbacks_timers_and_reads_run_in_the_span_current_at_registration() {
    let subscriber = tracing_subscriber::registry();
    tracing::subscriber::with_default(subscriber, || {
        let mut io = IoLoop::default();
        let mut net = FakeNet::new();
        let seen: Seen = Rc::default();
        let request = tracing::info_span!("request", n = 1);
        let expected = request.id();
        assert!(expected.is_some(), "subscriber assigns span ids");

        let id = net.accept_new(&mut io);
        {
            let _in_request = request.enter();
            let s = seen.clone();
            io.add_callback(move |_| {
                s.borrow_mut()
                    .push(("callback", tracing::Span::current().id()))
            });
            let s = seen.clone();
            io.call_later(Duration::from_secs(1), move |_| {
                s.borrow_mut()
                    .push(("timer", tracing::Span::current().id()))
            });
            let s = seen.clone();
            io.read_bytes(id, 2, move |_, _| {
                s.borrow_mut().push(("read", tracing::Span::current().id()))
            })
            .unwrap();
        }
        let s = seen.clone();
        io.add_callback(move |_| {
            s.borrow_mut()
                .push(("outside", tracing::Span::current().id()))
        });
        net.peer_send(id, b"hi");
        net.run_until_idle(&mut io, true, 100);
        assert_eq!(io.now(), Instant::from_nanos(1_000_000_000));
        let seen = seen.borrow();
        let by = |what: &str| seen.iter().find(|(w, _)| *w == what).expect(what).1.clone();
        assert_eq!(by("callback"), expected);
        assert_eq!(by("timer"), expected);
        assert_eq!(by("read"), expected);
        assert_eq!(by("outside"), None);
    });
}

/// Records the span it runs in, on every read and on close.
struct SpanProbe(Seen);

impl eddy_core::StreamHandler for SpanProbe {
    fn on_readable(
        &mut self,
        _: &mut IoLoop,
        _: eddy_core::StreamId,
        buf: &mut bytes::BytesMut,
        _: bool,
    ) {
        buf.clear();
        self.0
            .borrow_mut()
            .push(("readable", tracing::Span::current().id()));
    }
    fn on_close(&mut self, _: &mut IoLoop, _: eddy_core::StreamId, _: eddy_core::CloseReason) {
        self.0
            .borrow_mut()
            .push(("close", tracing::Span::current().id()));
    }
}

#[test]
fn a_stream_handler_runs_in_the_span_current_when_it_was_installed() {
    let subscriber = tracing_subscriber::registry();
    tracing::subscriber::with_default(subscriber, || {
        let mut io = IoLoop::default();
        let mut net = FakeNet::new();
        let id = net.accept_new(&mut io);
        let seen: Seen = Rc::default();
        let connection = tracing::info_span!("connection");
        let expected = connection.id();
        {
            let _in_connection = connection.enter();
            io.set_handler(id, Box::new(SpanProbe(seen.clone())))
                .unwrap();
        }
        // Bytes arrive while some other span is current in the driver.
        let driver = tracing::info_span!("driver");
        let _in_driver = driver.enter();
        net.peer_send(id, b"data");
        net.peer_shutdown(id);
        net.run_until_idle(&mut io, false, 100);
        let seen = seen.borrow();
        assert!(seen.iter().any(|(w, _)| *w == "readable"));
        assert!(seen.iter().any(|(w, _)| *w == "close"));
        for (what, span) in seen.iter() {
            assert_eq!(*span, expected, "{what} ran outside the connection's span");
        }
    });
}
