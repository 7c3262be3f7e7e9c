//! TLS streams through `FakeNet`: handshake and echo under short reads and writes, and every
//! bad-input case of the issue (plain text, stalls, early close, certificate failures).

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use super::*;
use crate::error::{CloseReason, StreamError};
use crate::io_loop::{IoLoop, ListenOptions, StreamId};
use crate::testing::FakeNet;
use crate::time::Duration;

/// A CA and a leaf for `names`, all PEM: (ca, chain, key).
pub(crate) struct TestPki {
    pub(crate) ca: String,
    pub(crate) chain: String,
    pub(crate) key: String,
}

static NEXT_CA: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub(crate) fn pki(names: &[&str]) -> TestPki {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // A name of its own, so another test CA is not mistaken for this one's issuer.
    let serial = NEXT_CA.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("eddy test CA {serial}"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    TestPki {
        ca: ca.pem(),
        chain: leaf.pem(),
        key: key.serialize_pem(),
    }
}

const ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 8443);
/// 2026-01-01, so certificates made now are valid on the loop's clock.
const UNIX_ORIGIN_NANOS: u64 = 1_767_225_600 * 1_000_000_000;

fn echo(io: &mut IoLoop, s: StreamId) {
    let _ = io.read_some(s, 64 * 1024, move |io, r| {
        if let Ok(data) = r {
            let _ = io.write(s, data);
            echo(io, s);
        }
    });
}

type Slot<T> = Rc<RefCell<Option<T>>>;

/// A loop with a TLS echo server at `ADDR`; returns the server streams' close reasons.
fn echo_server(io: &mut IoLoop, acceptor: TlsAcceptor) -> Rc<RefCell<Vec<CloseReason>>> {
    let closes = Rc::new(RefCell::new(Vec::new()));
    let c = closes.clone();
    io.listen(ADDR.into(), ListenOptions::default(), move |io, s, _| {
        io.start_tls(s, acceptor.session()).unwrap();
        let c = c.clone();
        io.set_close_callback(s, move |_, r| c.borrow_mut().push(r))
            .unwrap();
        echo(io, s);
    });
    closes
}

/// Connects a TLS client to `ADDR`, sends `payload`, reads as many bytes back.
fn echo_client(
    io: &mut IoLoop,
    session: TlsSession,
    payload: Bytes,
) -> (
    StreamId,
    Slot<Result<Bytes, StreamError>>,
    Slot<CloseReason>,
) {
    let got: Slot<Result<Bytes, StreamError>> = Rc::default();
    let closed: Slot<CloseReason> = Rc::default();
    let id = io.connect(ADDR.into(), None, |_, _| {});
    io.start_tls(id, session).unwrap();
    io.write(id, payload.clone()).unwrap();
    let g = got.clone();
    io.read_bytes(id, payload.len(), move |_, r| *g.borrow_mut() = Some(r))
        .unwrap();
    let c = closed.clone();
    io.set_close_callback(id, move |_, r| *c.borrow_mut() = Some(r))
        .unwrap();
    (id, got, closed)
}

fn new_loop() -> (IoLoop, FakeNet) {
    let mut io = IoLoop::default();
    io.set_unix_time_origin(UNIX_ORIGIN_NANOS);
    (io, FakeNet::new())
}

fn payload(n: usize) -> Bytes {
    (0..n)
        .map(|i| (i * 7 % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn handshake_and_echo(versions: &[&'static rustls::SupportedProtocolVersion], sizes: &[usize]) {
    let p = pki(&["localhost"]);
    let (mut io, mut net) = new_loop();
    net.read_sizes = sizes.to_vec();
    net.write_sizes = sizes.iter().rev().copied().collect();
    let acceptor = TlsAcceptor::from_pem(p.chain.as_bytes(), p.key.as_bytes()).unwrap();
    echo_server(&mut io, acceptor);
    let connector = TlsConnector::builder()
        .ca_pem(p.ca.as_bytes())
        .versions(versions)
        .build()
        .unwrap();
    let data = payload(200_000);
    let (id, got, _) = echo_client(
        &mut io,
        connector.session("localhost").unwrap(),
        data.clone(),
    );
    assert!(net.run_until_idle(&mut io, false, 2_000_000));
    assert_eq!(got.borrow_mut().take(), Some(Ok(data)));
    let tls = io.tls(id).expect("a TLS stream");
    assert_eq!(tls.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(tls.protocol_version(), Some(versions[0].version));
}

#[test]
fn tls13_handshake_and_echo_with_whole_reads_and_writes() {
    handshake_and_echo(&[&rustls::version::TLS13], &[]);
}

#[test]
fn tls12_handshake_and_echo_with_whole_reads_and_writes() {
    handshake_and_echo(&[&rustls::version::TLS12], &[]);
}

#[test]
fn tls13_handshake_and_echo_survive_short_reads_and_writes() {
    handshake_and_echo(&[&rustls::version::TLS13], &[1, 7, 300, 5000, 2]);
}

#[test]
fn tls12_handshake_and_echo_survive_short_reads_and_writes() {
    handshake_and_echo(&[&rustls::version::TLS12], &[3, 1, 1000]);
}

fn accepted_tls_stream(io: &mut IoLoop, net: &mut FakeNet, acceptor: &TlsAcceptor) -> StreamId {
    let id = net.accept_new(io);
    io.start_tls(id, acceptor.session()).unwrap();
    id
}

fn acceptor() -> TlsAcceptor {
    let p = pki(&["localhost"]);
    TlsAcceptor::from_pem(p.chain.as_bytes(), p.key.as_bytes()).unwrap()
}

#[test]
fn plain_http_to_the_tls_port_gets_an_alert_and_a_prompt_close() {
    let (mut io, mut net) = new_loop();
    let id = accepted_tls_stream(&mut io, &mut net, &acceptor());
    net.peer_send(id, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(net.run_until_idle(&mut io, false, 100));
    assert_eq!(
        net.conn(id).closed,
        Some(CloseReason::Tls(TlsFailure::NotTls))
    );
    let out = net.take_output(id);
    assert_eq!(out.first(), Some(&0x15), "an alert record: {out:?}");
    assert_eq!(
        net.now,
        crate::time::Instant::ZERO,
        "closed without waiting"
    );
}

#[test]
fn a_stalled_handshake_is_cut_by_the_handshake_timeout() {
    let (mut io, mut net) = new_loop();
    let acceptor = TlsAcceptor::builder()
        .certificate(pki(&["a"]).chain.as_bytes(), pki(&["a"]).key.as_bytes())
        .build();
    assert!(acceptor.is_err(), "a key from another pair is refused");
    let p = pki(&["a"]);
    let acceptor = TlsAcceptor::builder()
        .certificate(p.chain.as_bytes(), p.key.as_bytes())
        .handshake_timeout(Some(Duration::from_secs(3)))
        .build()
        .unwrap();
    let id = accepted_tls_stream(&mut io, &mut net, &acceptor);
    net.peer_send(id, &[0x16, 0x03, 0x01]); // the start of a client hello, then nothing
    assert!(net.run_until_idle(&mut io, false, 100));
    assert!(net.conn(id).closed.is_none());
    assert!(!net.conn(id).interest.writable, "no spin while waiting");
    assert!(net.run_until_idle(&mut io, true, 100));
    net.step(&mut io); // the close the timer queued reaches the driver
    assert_eq!(
        net.conn(id).closed,
        Some(CloseReason::Tls(TlsFailure::HandshakeTimeout))
    );
    assert_eq!(net.now.as_nanos(), 3_000_000_000);
}

#[test]
fn a_peer_closing_mid_handshake_is_a_quiet_close() {
    let (mut io, mut net) = new_loop();
    let id = accepted_tls_stream(&mut io, &mut net, &acceptor());
    net.peer_send(id, &[0x16, 0x03, 0x01, 0x00]);
    net.peer_shutdown(id);
    assert!(net.run_until_idle(&mut io, false, 100));
    assert_eq!(net.conn(id).closed, Some(CloseReason::Eof));
}

fn failed_pair(
    connector: TlsConnector,
    name: &str,
    acceptor: TlsAcceptor,
) -> (CloseReason, Vec<CloseReason>) {
    let (mut io, mut net) = new_loop();
    let server_closes = echo_server(&mut io, acceptor);
    let (_, got, closed) = echo_client(&mut io, connector.session(name).unwrap(), payload(10));
    assert!(net.run_until_idle(&mut io, true, 10_000));
    assert!(matches!(*got.borrow(), Some(Err(_))));
    let client = closed.borrow().expect("client closed");
    let server = server_closes.borrow().clone();
    (client, server)
}

#[test]
fn an_untrusted_certificate_fails_with_unknown_issuer_on_both_sides() {
    let p = pki(&["localhost"]);
    let acceptor = TlsAcceptor::from_pem(p.chain.as_bytes(), p.key.as_bytes()).unwrap();
    let other_ca = pki(&["localhost"]).ca;
    let connector = TlsConnector::from_ca_pem(other_ca.as_bytes()).unwrap();
    let (client, server) = failed_pair(connector, "localhost", acceptor);
    assert_eq!(
        client,
        CloseReason::Tls(TlsFailure::BadCertificate(
            CertificateProblem::UnknownIssuer
        ))
    );
    assert_eq!(
        server,
        vec![CloseReason::Tls(TlsFailure::AlertReceived(48))]
    );
    assert!(client.to_string().contains("unknown issuer"), "{client}");
}

#[test]
fn a_certificate_for_another_name_fails_with_not_valid_for_name() {
    let p = pki(&["localhost"]);
    let acceptor = TlsAcceptor::from_pem(p.chain.as_bytes(), p.key.as_bytes()).unwrap();
    let connector = TlsConnector::from_ca_pem(p.ca.as_bytes()).unwrap();
    let (client, _) = failed_pair(connector, "example.com", acceptor);
    assert_eq!(
        client,
        CloseReason::Tls(TlsFailure::BadCertificate(
            CertificateProblem::NotValidForName
        ))
    );
}

#[test]
fn the_default_roots_reject_a_private_ca_and_the_explicit_opt_out_accepts_it() {
    let p = pki(&["localhost"]);
    let acceptor = TlsAcceptor::from_pem(p.chain.as_bytes(), p.key.as_bytes()).unwrap();
    let (client, _) = failed_pair(TlsConnector::webpki_roots(), "localhost", acceptor.clone());
    assert!(matches!(
        client,
        CloseReason::Tls(TlsFailure::BadCertificate(_))
    ));
    let (mut io, mut net) = new_loop();
    echo_server(&mut io, acceptor);
    let insecure = TlsConnector::builder()
        .danger_accept_invalid_certificates(true)
        .build()
        .unwrap();
    let data = payload(1000);
    let (_, got, _) = echo_client(
        &mut io,
        insecure.session("localhost").unwrap(),
        data.clone(),
    );
    assert!(net.run_until_idle(&mut io, false, 10_000));
    assert_eq!(got.borrow_mut().take(), Some(Ok(data)));
}

#[test]
fn sni_picks_the_certificate_for_the_requested_name() {
    let a = pki(&["a.test"]);
    let b = pki(&["b.test"]);
    let acceptor = TlsAcceptor::builder()
        .certificate(a.chain.as_bytes(), a.key.as_bytes())
        .sni_certificate("B.test", b.chain.as_bytes(), b.key.as_bytes())
        .build()
        .unwrap();
    for (name, pki) in [("a.test", &a), ("b.test", &b), ("other.test", &a)] {
        let (mut io, mut net) = new_loop();
        echo_server(&mut io, acceptor.clone());
        let connector = TlsConnector::builder()
            .danger_accept_invalid_certificates(true)
            .build()
            .unwrap();
        let (id, got, _) = echo_client(&mut io, connector.session(name).unwrap(), payload(5));
        assert!(net.run_until_idle(&mut io, false, 10_000));
        assert!(matches!(*got.borrow(), Some(Ok(_))));
        let leaf = &io.tls(id).unwrap().peer_certificates().unwrap()[0];
        let want = certificates_from_pem(pki.chain.as_bytes()).unwrap();
        assert_eq!(leaf, &want[0], "certificate served for {name}");
    }
}

#[test]
fn a_required_client_certificate_is_checked() {
    let server = pki(&["localhost"]);
    let client = pki(&["client"]);
    let acceptor = TlsAcceptor::builder()
        .certificate(server.chain.as_bytes(), server.key.as_bytes())
        .client_ca(client.ca.as_bytes(), true)
        .build()
        .unwrap();
    let without = TlsConnector::from_ca_pem(server.ca.as_bytes()).unwrap();
    let (_, server_closes) = failed_pair(without, "localhost", acceptor.clone());
    assert_eq!(
        server_closes,
        vec![CloseReason::Tls(TlsFailure::NoCertificate)]
    );
    let with = TlsConnector::builder()
        .ca_pem(server.ca.as_bytes())
        .client_certificate(client.chain.as_bytes(), client.key.as_bytes())
        .build()
        .unwrap();
    let (mut io, mut net) = new_loop();
    echo_server(&mut io, acceptor);
    let data = payload(3000);
    let (_, got, _) = echo_client(&mut io, with.session("localhost").unwrap(), data.clone());
    assert!(net.run_until_idle(&mut io, false, 10_000));
    assert_eq!(got.borrow_mut().take(), Some(Ok(data)));
}

#[test]
fn shutdown_write_sends_close_notify_and_the_peer_reads_end_of_file() {
    let p = pki(&["localhost"]);
    let (mut io, mut net) = new_loop();
    let acceptor = TlsAcceptor::from_pem(p.chain.as_bytes(), p.key.as_bytes()).unwrap();
    let all: Slot<Result<Bytes, StreamError>> = Rc::default();
    let a = all.clone();
    io.listen(ADDR.into(), ListenOptions::default(), move |io, s, _| {
        io.start_tls(s, acceptor.session()).unwrap();
        let a = a.clone();
        io.read_until_close(s, move |_, r| *a.borrow_mut() = Some(r))
            .unwrap();
    });
    let connector = TlsConnector::from_ca_pem(p.ca.as_bytes()).unwrap();
    let id = io.connect(ADDR.into(), None, |_, _| {});
    io.start_tls(id, connector.session("localhost").unwrap())
        .unwrap();
    io.write(id, &b"last words"[..]).unwrap();
    io.shutdown_write(id).unwrap();
    assert!(net.run_until_idle(&mut io, false, 10_000));
    assert_eq!(
        all.borrow_mut().take(),
        Some(Ok(Bytes::from_static(b"last words")))
    );
    assert!(
        net.conn(id).write_shutdown,
        "TCP half-close after close_notify"
    );
}

#[test]
fn plaintext_over_max_buffer_size_closes_with_buffer_full() {
    let p = pki(&["localhost"]);
    let (mut io, mut net) = new_loop();
    let acceptor = TlsAcceptor::from_pem(p.chain.as_bytes(), p.key.as_bytes()).unwrap();
    let closed: Slot<CloseReason> = Rc::default();
    let c = closed.clone();
    io.listen(ADDR.into(), ListenOptions::default(), move |io, s, _| {
        io.start_tls(s, acceptor.session()).unwrap();
        io.set_max_buffer_size(s, 1000).unwrap();
        let c = c.clone();
        io.set_close_callback(s, move |_, r| *c.borrow_mut() = Some(r))
            .unwrap();
        io.read_until(s, &b"\n"[..], None, |_, _| {}).unwrap();
    });
    let connector = TlsConnector::from_ca_pem(p.ca.as_bytes()).unwrap();
    let (_, _, _) = echo_client(
        &mut io,
        connector.session("localhost").unwrap(),
        payload(50_000),
    );
    assert!(net.run_until_idle(&mut io, false, 100_000));
    assert_eq!(*closed.borrow(), Some(CloseReason::BufferFull));
}

#[test]
fn a_flush_completes_only_once_the_ciphertext_is_written() {
    let p = pki(&["localhost"]);
    let (mut io, mut net) = new_loop();
    let acceptor = TlsAcceptor::from_pem(p.chain.as_bytes(), p.key.as_bytes()).unwrap();
    echo_server(&mut io, acceptor);
    let connector = TlsConnector::from_ca_pem(p.ca.as_bytes()).unwrap();
    let (id, got, _) = echo_client(&mut io, connector.session("localhost").unwrap(), payload(4));
    assert!(net.run_until_idle(&mut io, false, 10_000));
    assert!(matches!(*got.borrow(), Some(Ok(_))));
    let flushed: Slot<Result<(), StreamError>> = Rc::default();
    io.write(id, payload(100_000)).unwrap();
    let f = flushed.clone();
    io.flush(id, move |_, r| *f.borrow_mut() = Some(r)).unwrap();
    net.conn(id).write_blocked = true;
    assert!(net.run_until_idle(&mut io, false, 10_000));
    assert!(flushed.borrow().is_none(), "nothing on the wire yet");
    assert!(io.stream(id).unwrap().write_queued() > 100_000);
    net.conn(id).write_blocked = false;
    assert!(net.run_until_idle(&mut io, false, 100_000));
    assert_eq!(*flushed.borrow(), Some(Ok(())));
    assert_eq!(io.stream(id).unwrap().write_queued(), 0);
}

#[test]
fn a_file_range_goes_through_the_tls_writer_not_sendfile() {
    use crate::file::{FileContent, FileRange};
    struct Memory(Vec<u8>);
    impl FileContent for Memory {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
            let start = (offset as usize).min(self.0.len());
            let n = buf.len().min(self.0.len() - start);
            buf[..n].copy_from_slice(&self.0[start..start + n]);
            Ok(n)
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }
    let p = pki(&["localhost"]);
    let (mut io, mut net) = new_loop();
    let acceptor = TlsAcceptor::from_pem(p.chain.as_bytes(), p.key.as_bytes()).unwrap();
    let body = payload(300_000);
    let file = Memory(body.to_vec());
    let range = FileRange::new(std::sync::Arc::new(file), 1000, 250_000);
    let range = RefCell::new(Some(range));
    io.listen(ADDR.into(), ListenOptions::default(), move |io, s, _| {
        io.start_tls(s, acceptor.session()).unwrap();
        io.write(s, &b"head:"[..]).unwrap();
        io.write_chunk(s, range.borrow_mut().take().unwrap().into())
            .unwrap();
        assert!(io.front_file(s).is_none() && !io.file_queued(s));
        io.shutdown_write(s).unwrap();
    });
    let connector = TlsConnector::from_ca_pem(p.ca.as_bytes()).unwrap();
    let id = io.connect(ADDR.into(), None, |_, _| {});
    io.start_tls(id, connector.session("localhost").unwrap())
        .unwrap();
    let all: Slot<Result<Bytes, StreamError>> = Rc::default();
    let a = all.clone();
    io.read_until_close(id, move |_, r| *a.borrow_mut() = Some(r))
        .unwrap();
    assert!(net.run_until_idle(&mut io, false, 100_000));
    let mut want = b"head:".to_vec();
    want.extend_from_slice(&body[1000..251_000]);
    assert_eq!(all.borrow_mut().take(), Some(Ok(Bytes::from(want))));
}

#[test]
fn bad_pem_is_a_typed_error() {
    assert!(matches!(
        TlsAcceptor::from_pem(b"junk", b"junk"),
        Err(TlsConfigError::NoCertificate)
    ));
    let p = pki(&["x"]);
    assert!(matches!(
        TlsAcceptor::from_pem(p.chain.as_bytes(), p.chain.as_bytes()),
        Err(TlsConfigError::NoKey)
    ));
    assert!(matches!(
        TlsAcceptor::builder().build(),
        Err(TlsConfigError::NoServerCertificate)
    ));
    assert!(TlsConnector::webpki_roots().session("not a name!").is_err());
}

#[test]
fn fuzz_entry_names_plain_text_and_a_truncated_hello() {
    assert_eq!(
        fuzz_entry::feed(false, b"GET / HTTP/1.0\r\n\r\n", 3),
        Some(CloseReason::Tls(TlsFailure::NotTls))
    );
    assert_eq!(
        fuzz_entry::feed(false, &[0x16, 3, 1, 0, 200, 1], 1),
        Some(CloseReason::Eof)
    );
    fuzz_entry::tls_input(b"\x07GET / HTTP/1.0\r\n\r\n");
}

#[test]
fn async_streams_run_over_tls_unchanged() {
    use crate::task::TcpStream;
    let p = pki(&["localhost"]);
    let (mut io, mut net) = new_loop();
    echo_server(
        &mut io,
        TlsAcceptor::from_pem(p.chain.as_bytes(), p.key.as_bytes()).unwrap(),
    );
    let connector = TlsConnector::from_ca_pem(p.ca.as_bytes()).unwrap();
    let got: Slot<Vec<u8>> = Rc::default();
    let g = got.clone();
    io.spawn_detached(async move {
        let mut s = TcpStream::connect(ADDR.into()).await.expect("connect");
        s.start_tls(connector.session("localhost").unwrap())
            .unwrap();
        s.write(payload(70_000)).unwrap();
        s.flush().await.expect("flushed through TLS");
        let echoed = s.read_exact(70_000).await.expect("echo");
        *g.borrow_mut() = Some(echoed.to_vec());
    });
    assert!(net.run_until_idle(&mut io, false, 100_000));
    assert_eq!(got.borrow_mut().take(), Some(payload(70_000).to_vec()));
}
