//! Property tests of the HTTP client: response parsing is independent of how the bytes are
//! split and agrees with a model, and every fetch is answered exactly once whatever the
//! (scripted, hostile) server does.

use std::cell::RefCell;
use std::rc::Rc;

use eddy_core::http::client::fuzz::{drive, Step};
use eddy_core::http::{ClientConfig, HttpClient, HttpRequest};
use eddy_core::testing::FakeNet;
use eddy_core::{Duration, IoLoop, StreamId};
use http::Method;
use proptest::prelude::*;

/// How a modelled response frames its body.
#[derive(Debug, Clone)]
enum Framing {
    Length,
    Chunked(Vec<usize>),
    /// Close-delimited (only as the last response).
    Close {
        http10: bool,
    },
}

#[derive(Debug, Clone)]
struct Resp {
    head_request: bool,
    interim: usize,
    status: u16,
    extra_headers: usize,
    body: Vec<u8>,
    framing: Framing,
}

impl Resp {
    fn has_body(&self) -> bool {
        !self.head_request && self.status != 204 && self.status != 304
    }

    /// Serialises the response and returns the steps the client must report for it.
    fn write(&self, out: &mut Vec<u8>) -> Vec<Step> {
        for _ in 0..self.interim {
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let version = match self.framing {
            Framing::Close { http10: true } => "1.0",
            _ => "1.1",
        };
        out.extend_from_slice(format!("HTTP/{version} {} Whatever\r\n", self.status).as_bytes());
        let mut headers = self.extra_headers;
        for i in 0..self.extra_headers {
            out.extend_from_slice(format!("X-Extra-{i}: v{i}\r\n").as_bytes());
        }
        let sends_body = self.status != 204 && self.status != 304;
        match &self.framing {
            Framing::Length if sends_body => {
                out.extend_from_slice(
                    format!("Content-Length: {}\r\n", self.body.len()).as_bytes(),
                );
                headers += 1;
            }
            Framing::Chunked(_) if sends_body => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                headers += 1;
            }
            _ => {}
        }
        out.extend_from_slice(b"\r\n");
        if self.has_body() {
            match &self.framing {
                Framing::Length | Framing::Close { .. } => out.extend_from_slice(&self.body),
                Framing::Chunked(sizes) => {
                    let mut rest = &self.body[..];
                    for &s in sizes.iter().chain(std::iter::repeat(&7)) {
                        if rest.is_empty() {
                            break;
                        }
                        let n = s.clamp(1, rest.len());
                        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                        out.extend_from_slice(&rest[..n]);
                        out.extend_from_slice(b"\r\n");
                        rest = &rest[n..];
                    }
                    out.extend_from_slice(b"0\r\n\r\n");
                }
            }
        }
        // HTTP/1.0 without keep-alive never is; a body running to close cannot be either.
        let reusable = match self.framing {
            Framing::Close { http10: true } => false,
            Framing::Close { http10: false } => !self.has_body(),
            _ => true,
        };
        let body = if self.has_body() {
            self.body.clone()
        } else {
            Vec::new()
        };
        vec![
            Step::Head(self.status, headers),
            Step::Body(body),
            Step::End(reusable),
        ]
    }
}

fn resp(last: bool) -> impl Strategy<Value = Resp> {
    let framing = if last {
        prop_oneof![
            Just(Framing::Length),
            prop::collection::vec(1usize..40, 0..6).prop_map(Framing::Chunked),
            any::<bool>().prop_map(|http10| Framing::Close { http10 }),
        ]
        .boxed()
    } else {
        prop_oneof![
            Just(Framing::Length),
            prop::collection::vec(1usize..40, 0..6).prop_map(Framing::Chunked),
        ]
        .boxed()
    };
    (
        any::<bool>(),
        0usize..3,
        prop::sample::select(vec![200u16, 201, 204, 304, 404, 500]),
        0usize..4,
        prop::collection::vec(any::<u8>(), 0..200),
        framing,
    )
        .prop_map(
            |(head_request, interim, status, extra_headers, body, framing)| Resp {
                head_request,
                interim,
                status,
                extra_headers,
                body,
                framing,
            },
        )
}

fn responses() -> impl Strategy<Value = Vec<Resp>> {
    (prop::collection::vec(resp(false), 0..4), resp(true)).prop_map(|(mut v, last)| {
        v.push(last);
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn responses_split_anywhere_give_the_same_events_as_the_model(
        resps in responses(),
        sizes in prop::collection::vec(1usize..50, 1..8),
    ) {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        let methods: Vec<u8> = resps.iter().map(|r| r.head_request as u8).collect();
        for r in &resps {
            let method = if r.head_request { Method::HEAD } else { Method::GET };
            expected.push(Step::Sent(method));
            expected.extend(r.write(&mut input));
        }
        if matches!(expected.last(), Some(Step::End(true))) {
            // The connection stays open: the driver sends one more request, then end of file.
            let next = methods[resps.len() % methods.len()] & 1 == 1;
            expected.push(Step::Sent(if next { Method::HEAD } else { Method::GET }));
            expected.push(Step::Error(
                "connection closed before the response started".into(),
            ));
        }
        let whole = drive(&input, &[input.len().max(1)], &methods);
        prop_assert_eq!(&whole, &expected);
        let split = drive(&input, &sizes, &methods);
        prop_assert_eq!(&split, &expected);
    }
}

/// What the scripted server does next.
#[derive(Debug, Clone)]
enum Op {
    Step,
    Advance(u64),
    Accept(usize),
    Refuse(usize),
    Respond(usize, u8),
    Partial(usize),
    Close(usize),
    Reset(usize),
    Garbage(usize),
    Cancel(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Step),
        2 => (1u64..3000).prop_map(Op::Advance),
        4 => any::<usize>().prop_map(Op::Accept),
        1 => any::<usize>().prop_map(Op::Refuse),
        4 => (any::<usize>(), 0u8..4).prop_map(|(i, k)| Op::Respond(i, k)),
        1 => any::<usize>().prop_map(Op::Partial),
        1 => any::<usize>().prop_map(Op::Close),
        1 => any::<usize>().prop_map(Op::Reset),
        1 => any::<usize>().prop_map(Op::Garbage),
        1 => any::<usize>().prop_map(Op::Cancel),
    ]
}

fn pick(ids: &[StreamId], i: usize) -> Option<StreamId> {
    (!ids.is_empty()).then(|| ids[i % ids.len()])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_fetch_is_answered_exactly_once_whatever_the_server_does(
        n in 1usize..8,
        max_clients in 1usize..4,
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let mut io = IoLoop::default();
        let mut net = FakeNet::new();
        let client = HttpClient::new(ClientConfig { max_clients, ..ClientConfig::default() });
        let calls = Rc::new(RefCell::new(vec![0u32; n]));
        let mut handles = Vec::new();
        for i in 0..n {
            let host = if i % 3 == 2 { "10.0.0.2" } else { "10.0.0.1" };
            let mut req = HttpRequest::get(format!("http://{host}/r{i}"));
            req.connect_timeout = Some(Duration::from_secs(2));
            req.request_timeout = Some(Duration::from_secs(5));
            if i % 2 == 1 {
                req.url = format!("http://{host}/redirect{i}");
            }
            let c = calls.clone();
            handles.push(client.fetch(&mut io, req, move |_, _| c.borrow_mut()[i] += 1));
        }
        for op in ops {
            net.step(&mut io);
            let pending: Vec<StreamId> = net.conns.iter()
                .filter(|(_, c)| c.connecting_to.is_some() && c.closed.is_none())
                .map(|(id, _)| *id).collect();
            let open: Vec<StreamId> = net.conns.iter()
                .filter(|(_, c)| c.connecting_to.is_none() && c.closed.is_none())
                .map(|(id, _)| *id).collect();
            match op {
                Op::Step => {}
                Op::Advance(ms) => net.advance(Duration::from_millis(ms)),
                Op::Accept(i) => if let Some(id) = pick(&pending, i) {
                    net.complete_connect(&mut io, id, Ok(()));
                },
                Op::Refuse(i) => if let Some(id) = pick(&pending, i) {
                    net.complete_connect(&mut io, id, Err(std::io::ErrorKind::ConnectionRefused));
                },
                Op::Respond(i, kind) => if let Some(id) = pick(&open, i) {
                    let bytes: &[u8] = match kind {
                        0 => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                        1 => b"HTTP/1.1 302 Found\r\nLocation: /moved\r\nContent-Length: 0\r\n\r\n",
                        2 => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                        _ => b"HTTP/1.0 200 OK\r\n\r\nclose-delimited",
                    };
                    net.peer_send(id, bytes);
                    if kind == 3 {
                        net.peer_shutdown(id);
                    }
                },
                Op::Partial(i) => if let Some(id) = pick(&open, i) {
                    net.peer_send(id, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart");
                },
                Op::Close(i) => if let Some(id) = pick(&open, i) {
                    net.peer_shutdown(id);
                },
                Op::Reset(i) => if let Some(id) = pick(&open, i) {
                    io.handle_error(id, std::io::ErrorKind::ConnectionReset);
                },
                Op::Garbage(i) => if let Some(id) = pick(&open, i) {
                    net.peer_send(id, b"\x16\x03\x01garbage\r\n\r\n");
                },
                Op::Cancel(i) => {
                    handles[i % n].cancel(&mut io);
                }
            }
        }
        // Heal nothing: time-outs alone must end every fetch.
        prop_assert!(net.run_until_idle(&mut io, true, 1_000_000));
        prop_assert_eq!(&*calls.borrow(), &vec![1u32; n]);
        prop_assert!(handles.iter().all(|h| h.is_done()));
        let stats = client.stats();
        prop_assert_eq!((stats.active, stats.queued), (0, 0));
        prop_assert_eq!(io.stats().callback_panics, 0);
    }
}
