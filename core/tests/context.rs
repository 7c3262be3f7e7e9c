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
