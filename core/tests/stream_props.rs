//! Property tests: a stream's reads and writes do not depend on how the network splits bytes.

use bytes::Bytes;
use eddy_core::testing::FakeNet;
use eddy_core::{IoLoop, StreamError, StreamId};
use proptest::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

/// One read the application makes, as data.
#[derive(Clone, Debug)]
enum Read {
    Until(&'static [u8], Option<usize>),
    Exactly(usize),
}

fn read_strategy() -> impl Strategy<Value = Read> {
    prop_oneof![
        (
            prop_oneof![Just(&b"\n"[..]), Just(&b"ab"[..]), Just(&b"\r\n"[..])],
            proptest::option::of(1usize..40)
        )
            .prop_map(|(d, m)| Read::Until(d, m)),
        (0usize..30).prop_map(Read::Exactly),
    ]
}

type Outcomes = Rc<RefCell<Vec<Result<Bytes, StreamError>>>>;

/// Runs the script of reads, echoing each result with a length prefix, then reads until close.
fn run_script(io: &mut IoLoop, id: StreamId, script: Rc<Vec<Read>>, i: usize, out: Outcomes) {
    let done = {
        let (script, out) = (script.clone(), out.clone());
        move |io: &mut IoLoop, r: Result<Bytes, StreamError>| {
            if let Ok(data) = &r {
                let _ = io.write(id, Bytes::from(format!("[{}]", data.len())));
                let _ = io.write(id, data.clone());
            }
            let ok = r.is_ok();
            out.borrow_mut().push(r);
            if ok && i < script.len() {
                run_script(io, id, script, i + 1, out);
            }
        }
    };
    let started = match script.get(i) {
        Some(Read::Until(d, max)) => io.read_until(id, *d, *max, done),
        Some(Read::Exactly(n)) => io.read_bytes(id, *n, done),
        None => io.read_until_close(id, done),
    };
    started.expect("one read at a time");
}

/// Feeds `input` with the given read and write sizes; returns the reads seen and bytes written.
fn run(
    input: &[u8],
    script: &[Read],
    read_sizes: Vec<usize>,
    write_sizes: Vec<usize>,
) -> (Vec<Result<Bytes, StreamError>>, Vec<u8>) {
    let mut io = IoLoop::default();
    let mut net = FakeNet::new();
    net.read_sizes = read_sizes;
    net.write_sizes = write_sizes;
    let id = net.accept_new(&mut io);
    let out: Outcomes = Rc::default();
    run_script(&mut io, id, Rc::new(script.to_vec()), 0, out.clone());
    net.peer_send(id, input);
    net.peer_shutdown(id);
    assert!(
        net.run_until_idle(&mut io, false, 100_000),
        "loop did not settle"
    );
    let reads = out.borrow().clone();
    (reads, net.take_output(id))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Same bytes, split in arbitrary chunks and written with arbitrary partial writes, give
    /// exactly the same reads and the same bytes out as the unsplit run.
    #[test]
    fn reads_and_writes_are_independent_of_splitting(
        input in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'\r'), Just(b'\n'), Just(b'x')], 0..300),
        script in proptest::collection::vec(read_strategy(), 0..12),
        read_sizes in proptest::collection::vec(1usize..17, 1..8),
        write_sizes in proptest::collection::vec(1usize..17, 1..8),
    ) {
        let whole = run(&input, &script, vec![], vec![]);
        let split = run(&input, &script, read_sizes, write_sizes);
        prop_assert_eq!(&whole.0, &split.0);
        // What the application asked to write, derived from the reads alone.
        let mut expected = Vec::new();
        for data in whole.0.iter().flatten() {
            expected.extend_from_slice(format!("[{}]", data.len()).as_bytes());
            expected.extend_from_slice(data);
        }
        let closed_by_error = whole.0.iter().any(|r| {
            matches!(r, Err(StreamError::Unsatisfiable { .. }) | Err(StreamError::BufferFull { .. }))
        });
        if closed_by_error {
            // Closing drops unwritten bytes (Tornado's close): how many got out first depends
            // on timing, but never anything else, and never out of order.
            prop_assert!(expected.starts_with(&whole.1));
            prop_assert!(expected.starts_with(&split.1));
        } else {
            prop_assert_eq!(&whole.1, &expected);
            prop_assert_eq!(&split.1, &expected);
        }
    }

    /// Partial reads (`read_some`) may return different pieces, but their concatenation is the
    /// input, in order, whatever the splitting.
    #[test]
    fn read_some_concatenates_to_the_input(
        input in proptest::collection::vec(any::<u8>(), 1..500),
        read_sizes in proptest::collection::vec(1usize..64, 1..8),
        max in 1usize..100,
    ) {
        let mut io = IoLoop::default();
        let mut net = FakeNet::new();
        net.read_sizes = read_sizes;
        let id = net.accept_new(&mut io);
        let got = Rc::new(RefCell::new(Vec::new()));
        fn pump(io: &mut IoLoop, id: StreamId, max: usize, got: Rc<RefCell<Vec<u8>>>) {
            io.read_some(id, max, move |io, r| {
                if let Ok(d) = r {
                    assert!(!d.is_empty() && d.len() <= max);
                    got.borrow_mut().extend_from_slice(&d);
                    pump(io, id, max, got);
                }
            }).unwrap();
        }
        pump(&mut io, id, max, got.clone());
        net.peer_send(id, &input);
        net.peer_shutdown(id);
        prop_assert!(net.run_until_idle(&mut io, false, 100_000));
        prop_assert_eq!(&*got.borrow(), &input);
    }
}
