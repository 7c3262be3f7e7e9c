//! `HttpClient`: Tornado's `simple_httpclient` on an IoLoop — fetches with time-outs,
//! redirects, gzip, streaming bodies, a keep-alive pool and a `max_clients` queue.
//!
//! Pure glue, like `HttpServer`: framing stays in [`ClientConn`]; this module owns the
//! request's life (queue → connect → send → read → redirect → one callback). It never does
//! I/O itself and resolves no names: see [`HttpClient::with_resolver`].

use core::net::SocketAddr;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use http::header::{
    HeaderName, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, COOKIE, HOST, LOCATION,
    PROXY_AUTHORIZATION, USER_AGENT,
};
use http::{HeaderMap, HeaderValue, Method};

use super::conn::{
    gzip_transfer_codings, is_gzip_coding, ClientConn, ClientConnConfig, ClientEvent, RequestBody,
    RequestLine, ResponseError, ResponseHead,
};
use super::message::{FetchResult, HttpError, HttpRequest, HttpResponse, TimeoutPhase};
use super::url::{join_location_bytes, parse_url, Target};
use crate::error::{CloseReason, StreamError};
use crate::http::sink::OutQueue;
use crate::io_loop::{IoLoop, StreamHandler, StreamId, TimeoutHandle};
use crate::time::{Duration, Instant};
use crate::tls::TlsConnector;

/// Resolves a host name to an address for the client (the core has no DNS of its own).
pub type Resolver = Rc<dyn Fn(&str, u16) -> Option<SocketAddr>>;

type FetchCallback = Box<dyn FnOnce(&mut IoLoop, FetchResult)>;

/// Settings shared by every fetch of one client (Tornado's `AsyncHTTPClient` arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Most requests in progress at once, each on its own connection; more wait in a queue
    /// (default 10). Idle pooled connections are bounded separately (`max_idle_per_host`).
    pub max_clients: usize,
    /// Most idle keep-alive connections kept per address (default 10).
    pub max_idle_per_host: usize,
    /// How long an idle pooled connection is kept (default 60 s).
    pub idle_timeout: Duration,
    /// Largest response head (default 64 KiB).
    pub max_header_size: usize,
    /// Largest chunk-size line of a chunked body.
    pub max_chunk_line_size: usize,
    /// Largest trailer section of a chunked body.
    pub max_trailer_size: usize,
    /// `User-Agent` sent unless the request has one (`None`: none).
    pub user_agent: Option<String>,
    /// Ask servers to keep connections open and pool them (default true); false sends
    /// `Connection: close` on every request, as Tornado's simple_httpclient does.
    pub keep_alive: bool,
    /// TLS for `https://` (`None`: verify against the built-in webpki roots). Turning
    /// verification off takes an explicit connector built with
    /// [`danger_accept_invalid_certificates`](crate::tls::TlsConnectorBuilder::danger_accept_invalid_certificates).
    pub tls: Option<TlsConnector>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_clients: 10,
            max_idle_per_host: 10,
            idle_timeout: Duration::from_secs(60),
            max_header_size: 64 * 1024,
            max_chunk_line_size: 4096,
            max_trailer_size: 16 * 1024,
            user_agent: Some(concat!("eddy/", env!("CARGO_PKG_VERSION")).to_owned()),
            keep_alive: true,
            tls: None,
        }
    }
}

/// Counters of one client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Fetches started (each redirect hop counts once more in `requests_sent`).
    pub fetches: u64,
    /// Requests written (hops and retries included).
    pub requests_sent: u64,
    /// TCP connections opened.
    pub connections_opened: u64,
    /// Requests sent on a pooled connection.
    pub reused: u64,
    /// Requests retried on a fresh connection after a pooled one turned out closed.
    pub retried: u64,
    /// Fetches holding a `max_clients` slot now.
    pub active: usize,
    /// Fetches waiting for a slot now.
    pub queued: usize,
    /// Idle pooled connections now.
    pub idle: usize,
}

/// An HTTP/1.1 client on an [`IoLoop`] (Tornado's `simple_httpclient`); clone to share.
#[derive(Clone)]
pub struct HttpClient {
    shared: Rc<Shared>,
}

struct Shared {
    config: ClientConfig,
    resolver: Option<Resolver>,
    state: RefCell<PoolState>,
    stats: Cell<ClientStats>,
    /// The webpki-roots connector, built at the first `https://` fetch without `config.tls`.
    default_tls: RefCell<Option<TlsConnector>>,
}

#[derive(Default)]
struct PoolState {
    active: usize,
    queue: VecDeque<Rc<RefCell<Fetch>>>,
    idle: BTreeMap<PoolKey, Vec<Rc<RefCell<Connection>>>>,
}

/// What a pooled connection may be reused for: its address, and for TLS the host name its
/// certificate was verified against.
type PoolKey = (SocketAddr, Option<String>);

impl Shared {
    fn update(&self, f: impl FnOnce(&mut ClientStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }
}

/// One fetch in progress (all hops of it).
struct Fetch {
    req: HttpRequest,
    target: Option<Target>,
    callback: Option<FetchCallback>,
    done: bool,
    has_slot: bool,
    queue_timer: Option<TimeoutHandle>,
    request_timer: Option<TimeoutHandle>,
    connecting: Option<StreamId>,
    conn: Option<Rc<RefCell<Connection>>>,
    reused: bool,
    retried: bool,
    head: Option<ResponseHead>,
    body: BytesMut,
    body_len: u64,
    /// The gzip layers to remove from the body, outermost first (gzip transfer codings,
    /// then a gzip content coding); each decoder starts at its first byte.
    gunzip: Vec<Option<flate2::write::GzDecoder<Vec<u8>>>>,
    redirect_to: Option<String>,
    redirects: u32,
    started: Instant,
}

/// One TCP connection of the pool; its handler lives as long as the stream.
struct Connection {
    stream: StreamId,
    addr: SocketAddr,
    /// The verified host name of a TLS connection.
    tls_host: Option<String>,
    machine: ClientConn,
    out: OutQueue,
    fetch: Option<Rc<RefCell<Fetch>>>,
    idle_timer: Option<TimeoutHandle>,
    closed: bool,
}

impl HttpClient {
    /// A client with the given settings that resolves only IP literals and `localhost`.
    pub fn new(config: ClientConfig) -> HttpClient {
        HttpClient::build(config, None)
    }

    /// A client that asks `resolver` for host names that are not IP literals or `localhost`.
    ///
    /// The resolver runs on the loop's thread and blocks it while it works: a driver-side
    /// caller (the CLI) passes `std::net::ToSocketAddrs`; a server should pre-resolve.
    pub fn with_resolver(config: ClientConfig, resolver: Resolver) -> HttpClient {
        HttpClient::build(config, Some(resolver))
    }

    fn build(config: ClientConfig, resolver: Option<Resolver>) -> HttpClient {
        HttpClient {
            shared: Rc::new(Shared {
                config,
                resolver,
                state: RefCell::new(PoolState::default()),
                stats: Cell::new(ClientStats::default()),
                default_tls: RefCell::new(None),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// Counters (active, queued and idle are current values).
    pub fn stats(&self) -> ClientStats {
        let mut s = self.shared.stats.get();
        let st = self.shared.state.borrow();
        s.active = st.active;
        s.queued = st.queue.len();
        s.idle = st.idle.values().map(Vec::len).sum();
        s
    }

    /// Closes every idle pooled connection (and cancels their `idle_timeout` timers, so a
    /// loop waiting to go idle need not wait for them).
    pub fn close_idle(&self, io: &mut IoLoop) {
        let idle = std::mem::take(&mut self.shared.state.borrow_mut().idle);
        for conn in idle.into_values().flatten() {
            close_conn(io, &conn);
        }
    }

    /// Fetches `request`; `callback` runs exactly once, in a later round, with the outcome.
    ///
    /// Beyond `max_clients` requests in progress the fetch waits in a queue, for at most
    /// the smaller of its `connect_timeout` and `request_timeout`. The returned handle may
    /// cancel it; dropping the handle does not.
    pub fn fetch(
        &self,
        io: &mut IoLoop,
        request: HttpRequest,
        callback: impl FnOnce(&mut IoLoop, FetchResult) + 'static,
    ) -> FetchHandle {
        self.shared.update(|s| s.fetches += 1);
        let queue_limit = match (request.connect_timeout, request.request_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let fetch = Rc::new(RefCell::new(Fetch {
            req: request,
            target: None,
            callback: Some(Box::new(callback)),
            done: false,
            has_slot: false,
            queue_timer: None,
            request_timer: None,
            connecting: None,
            conn: None,
            reused: false,
            retried: false,
            head: None,
            body: BytesMut::new(),
            body_len: 0,
            gunzip: Vec::new(),
            redirect_to: None,
            redirects: 0,
            started: io.now(),
        }));
        let full = {
            let st = self.shared.state.borrow();
            st.active >= self.shared.config.max_clients.max(1)
        };
        if full {
            if let Some(limit) = queue_limit {
                let weak = Rc::downgrade(&fetch);
                let shared = self.shared.clone();
                let t = io.call_later(limit, move |io| {
                    let Some(fetch) = weak.upgrade() else { return };
                    fetch.borrow_mut().queue_timer = None;
                    shared
                        .state
                        .borrow_mut()
                        .queue
                        .retain(|f| !Rc::ptr_eq(f, &fetch));
                    let phase = TimeoutPhase::Queue;
                    finish(io, &shared, &fetch, Err(HttpError::Timeout { phase }));
                });
                fetch.borrow_mut().queue_timer = Some(t);
            }
            let handle = FetchHandle::new(&fetch, &self.shared);
            self.shared.state.borrow_mut().queue.push_back(fetch);
            return handle;
        }
        // Start in the next round: the callback must never run before `fetch` returns.
        self.shared.state.borrow_mut().active += 1;
        fetch.borrow_mut().has_slot = true;
        let handle = FetchHandle::new(&fetch, &self.shared);
        let shared = self.shared.clone();
        io.add_callback(move |io| start(io, &shared, &fetch));
        handle
    }
}

/// Cancels one fetch (see [`HttpClient::fetch`]); cloning it is cheap.
#[derive(Clone)]
pub struct FetchHandle {
    fetch: std::rc::Weak<RefCell<Fetch>>,
    shared: Rc<Shared>,
}

impl FetchHandle {
    fn new(fetch: &Rc<RefCell<Fetch>>, shared: &Rc<Shared>) -> FetchHandle {
        FetchHandle {
            fetch: Rc::downgrade(fetch),
            shared: shared.clone(),
        }
    }

    /// True once the fetch has ended (answered, failed or cancelled).
    pub fn is_done(&self) -> bool {
        self.fetch.upgrade().map_or(true, |f| f.borrow().done)
    }

    /// Stops the fetch now (its connection is closed, its slot freed); its callback gets
    /// [`HttpError::Cancelled`] in the next round. False if it had already ended.
    pub fn cancel(&self, io: &mut IoLoop) -> bool {
        let Some(fetch) = self.fetch.upgrade() else {
            return false;
        };
        match tear_down(io, &self.shared, &fetch) {
            Some(cb) => {
                io.add_callback(move |io| cb(io, Err(HttpError::Cancelled)));
                true
            }
            None => false,
        }
    }
}

impl fmt::Debug for FetchHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchHandle")
            .field("done", &self.is_done())
            .finish()
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Starts processing a fetch that holds a slot: arms the request time-out, begins a hop.
fn start(io: &mut IoLoop, shared: &Rc<Shared>, fetch_rc: &Rc<RefCell<Fetch>>) {
    if fetch_rc.borrow().done {
        return;
    }
    fetch_rc.borrow_mut().started = io.now();
    begin_hop(io, shared, fetch_rc);
}

/// Begins one hop: parses the URL, arms the request timer, takes a pooled connection or
/// connects.
fn begin_hop(io: &mut IoLoop, shared: &Rc<Shared>, fetch_rc: &Rc<RefCell<Fetch>>) {
    let (url, request_timeout) = {
        let f = fetch_rc.borrow();
        (f.req.url.clone(), f.req.request_timeout)
    };
    let target = match parse_url(&url) {
        Ok(t) => t,
        Err(reason) => {
            let e = HttpError::InvalidUrl { url, reason };
            return finish(io, shared, fetch_rc, Err(e));
        }
    };
    let addr = match target.literal_addr {
        Some(a) => Some(a),
        None => shared
            .resolver
            .as_ref()
            .and_then(|r| r(&target.host, target.port)),
    };
    let Some(addr) = addr else {
        let e = HttpError::UnresolvedHost(target.host);
        return finish(io, shared, fetch_rc, Err(e));
    };
    {
        let mut f = fetch_rc.borrow_mut();
        f.target = Some(target);
        if let Some(old) = f.request_timer.take() {
            io.remove_timeout(old);
        }
    }
    if let Some(limit) = request_timeout {
        let weak = Rc::downgrade(fetch_rc);
        let sh = shared.clone();
        let t = io.call_later(limit, move |io| {
            let Some(fetch) = weak.upgrade() else { return };
            fetch.borrow_mut().request_timer = None;
            let phase = TimeoutPhase::Request;
            finish(io, &sh, &fetch, Err(HttpError::Timeout { phase }));
        });
        fetch_rc.borrow_mut().request_timer = Some(t);
    }
    let key = pool_key(fetch_rc, addr);
    if let Some(conn) = take_idle(io, shared, &key) {
        fetch_rc.borrow_mut().reused = true;
        shared.update(|s| s.reused += 1);
        return send_on(io, shared, fetch_rc, conn);
    }
    connect(io, shared, fetch_rc, addr);
}

/// The pool key of the fetch's current hop at `addr`.
fn pool_key(fetch_rc: &Rc<RefCell<Fetch>>, addr: SocketAddr) -> PoolKey {
    let f = fetch_rc.borrow();
    let tls_host = f.target.as_ref().filter(|t| t.tls).map(|t| t.host.clone());
    (addr, tls_host)
}

/// The connector for `https://`: the configured one, else one with the webpki roots, built
/// once per client.
fn connector(shared: &Shared) -> TlsConnector {
    if let Some(c) = &shared.config.tls {
        return c.clone();
    }
    shared
        .default_tls
        .borrow_mut()
        .get_or_insert_with(TlsConnector::webpki_roots)
        .clone()
}

/// Opens a fresh connection for the fetch's current hop (TLS for `https://`).
fn connect(io: &mut IoLoop, shared: &Rc<Shared>, fetch_rc: &Rc<RefCell<Fetch>>, addr: SocketAddr) {
    let timeout = fetch_rc.borrow().req.connect_timeout;
    fetch_rc.borrow_mut().reused = false;
    let tls_host = pool_key(fetch_rc, addr).1;
    // The connect callback holds the fetch: nothing else does while it connects.
    let fetch = fetch_rc.clone();
    let sh = shared.clone();
    let host = tls_host.clone();
    let id = io.connect(addr, timeout, move |io, result| {
        on_connected(io, &sh, fetch, (addr, host), result)
    });
    fetch_rc.borrow_mut().connecting = Some(id);
    if let Some(host) = tls_host {
        let started = connector(shared)
            .session(&host)
            .map_err(|_| StreamError::Closed(CloseReason::Local))
            .and_then(|session| io.start_tls(id, session));
        if let Err(e) = started {
            tracing::debug!(%host, error = %e, "TLS could not start");
            io.close(id);
        }
    }
}

fn on_connected(
    io: &mut IoLoop,
    shared: &Rc<Shared>,
    fetch_rc: Rc<RefCell<Fetch>>,
    (addr, tls_host): PoolKey,
    result: Result<StreamId, StreamError>,
) {
    let live = {
        let f = fetch_rc.borrow();
        !f.done && result.as_ref().map_or(true, |id| f.connecting == Some(*id))
    };
    if !live {
        if let Ok(id) = result {
            io.close(id);
        }
        return;
    }
    fetch_rc.borrow_mut().connecting = None;
    let stream = match result {
        Ok(id) => id,
        Err(e) => {
            let err = match e {
                StreamError::Closed(CloseReason::Refused) => HttpError::ConnectionRefused,
                StreamError::Closed(CloseReason::ConnectTimeout) => HttpError::Timeout {
                    phase: TimeoutPhase::Connect,
                },
                StreamError::Closed(CloseReason::Reset) => HttpError::ConnectionReset,
                StreamError::Closed(CloseReason::Tls(failure)) => HttpError::Tls(failure),
                StreamError::Closed(reason) => HttpError::Connect(reason),
                _ => HttpError::Connect(CloseReason::Local),
            };
            return finish(io, shared, &fetch_rc, Err(err));
        }
    };
    shared.update(|s| s.connections_opened += 1);
    let config = &shared.config;
    let conn = Rc::new(RefCell::new(Connection {
        stream,
        addr,
        tls_host,
        machine: ClientConn::new(ClientConnConfig {
            max_header_size: config.max_header_size,
            max_chunk_line_size: config.max_chunk_line_size,
            max_trailer_size: config.max_trailer_size,
            ..ClientConnConfig::default()
        }),
        out: OutQueue::new(),
        fetch: None,
        idle_timer: None,
        closed: false,
    }));
    let handler = ConnHandler {
        conn: conn.clone(),
        shared: shared.clone(),
    };
    if io.set_handler(stream, Box::new(handler)).is_err() {
        io.close(stream);
        return finish(io, shared, &fetch_rc, Err(HttpError::ConnectionClosed));
    }
    send_on(io, shared, &fetch_rc, conn);
}

/// Pops a live idle connection to `addr` from the pool.
fn take_idle(
    io: &mut IoLoop,
    shared: &Rc<Shared>,
    key: &PoolKey,
) -> Option<Rc<RefCell<Connection>>> {
    loop {
        let conn = {
            let mut st = shared.state.borrow_mut();
            let list = st.idle.get_mut(key)?;
            let conn = list.pop();
            if list.is_empty() {
                st.idle.remove(key);
            }
            conn?
        };
        let mut c = conn.borrow_mut();
        if let Some(t) = c.idle_timer.take() {
            io.remove_timeout(t);
        }
        if !c.closed && c.machine.can_send_request() && !io.closed(c.stream) {
            drop(c);
            return Some(conn);
        }
    }
}

/// Writes the fetch's request on `conn` and attaches the two.
fn send_on(
    io: &mut IoLoop,
    shared: &Rc<Shared>,
    fetch_rc: &Rc<RefCell<Fetch>>,
    conn_rc: Rc<RefCell<Connection>>,
) {
    let result = {
        let mut f = fetch_rc.borrow_mut();
        let mut c = conn_rc.borrow_mut();
        let target = f.target.clone().expect("hop has a target");
        let mut headers = f.req.headers.clone();
        if !headers.contains_key(USER_AGENT) {
            if let Some(ua) = shared
                .config
                .user_agent
                .as_deref()
                .and_then(|u| HeaderValue::from_str(u).ok())
            {
                headers.insert(USER_AGENT, ua);
            }
        }
        if f.req.decompress_response && !headers.contains_key(ACCEPT_ENCODING) {
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let body = f.req.body.clone();
        let framing = if body.is_empty() {
            RequestBody::Empty
        } else {
            RequestBody::Length(body.len() as u64)
        };
        let Connection { machine, out, .. } = &mut *c;
        machine.set_max_body_size(f.req.max_body_size);
        let line = RequestLine {
            method: &f.req.method,
            target: &target.path_and_query,
            host: &target.authority,
            headers: &headers,
            body: framing,
            keep_alive: shared.config.keep_alive,
        };
        let r = machine
            .send_request(&line, out)
            .and_then(|()| {
                if body.is_empty() {
                    Ok(())
                } else {
                    machine.send_data(body, out)
                }
            })
            .and_then(|()| machine.send_end(out));
        if r.is_ok() {
            c.fetch = Some(fetch_rc.clone());
            f.conn = Some(conn_rc.clone());
            f.head = None;
            f.body.clear();
            f.body_len = 0;
            f.gunzip.clear();
            f.redirect_to = None;
            let stream = c.stream;
            while let Some(chunk) = c.out.pop_front() {
                if io.write_chunk(stream, chunk).is_err() {
                    break;
                }
            }
        }
        r
    };
    match result {
        Ok(()) => {
            shared.update(|s| s.requests_sent += 1);
            // A reply (or a close) may already sit in the buffer of a pooled connection.
            let stream = conn_rc.borrow().stream;
            io.set_reading(stream, true);
            io.notify_handler(stream);
        }
        Err(e) => {
            close_conn(io, &conn_rc);
            finish(io, shared, fetch_rc, Err(HttpError::InvalidRequest(e)));
        }
    }
}

/// Closes a connection (once) and forgets it.
fn close_conn(io: &mut IoLoop, conn_rc: &Rc<RefCell<Connection>>) {
    let mut c = conn_rc.borrow_mut();
    if let Some(t) = c.idle_timer.take() {
        io.remove_timeout(t);
    }
    c.fetch = None;
    if !c.closed {
        c.closed = true;
        io.close(c.stream);
    }
}

/// Delivers the outcome once: cancels timers, drops the connection if the exchange was cut
/// short, frees the `max_clients` slot, then runs the callback.
fn finish(
    io: &mut IoLoop,
    shared: &Rc<Shared>,
    fetch_rc: &Rc<RefCell<Fetch>>,
    result: FetchResult,
) {
    if let Some(cb) = tear_down(io, shared, fetch_rc) {
        cb(io, result);
    }
}

/// Ends a fetch's work once (timers, connection, slot) and hands back its callback; `None`
/// if it had already ended.
fn tear_down(
    io: &mut IoLoop,
    shared: &Rc<Shared>,
    fetch_rc: &Rc<RefCell<Fetch>>,
) -> Option<FetchCallback> {
    let (callback, conn, connecting, had_slot, timers) = {
        let mut f = fetch_rc.borrow_mut();
        if f.done {
            return None;
        }
        f.done = true;
        let had_slot = std::mem::take(&mut f.has_slot);
        (
            f.callback.take(),
            f.conn.take(),
            f.connecting.take(),
            had_slot,
            [f.queue_timer.take(), f.request_timer.take()],
        )
    };
    for t in timers.into_iter().flatten() {
        io.remove_timeout(t);
    }
    if let Some(conn) = conn {
        // Still attached: the response did not complete, so the connection is unusable.
        close_conn(io, &conn);
    }
    if let Some(stream) = connecting {
        io.close(stream);
    }
    if had_slot {
        shared.state.borrow_mut().active -= 1;
        process_queue(io, shared);
    } else {
        shared
            .state
            .borrow_mut()
            .queue
            .retain(|f| !Rc::ptr_eq(f, fetch_rc));
    }
    callback
}

/// Gives free slots to queued fetches, oldest first.
fn process_queue(io: &mut IoLoop, shared: &Rc<Shared>) {
    loop {
        let next = {
            let mut st = shared.state.borrow_mut();
            if st.active >= shared.config.max_clients.max(1) {
                return;
            }
            let Some(next) = st.queue.pop_front() else {
                return;
            };
            if next.borrow().done {
                continue;
            }
            st.active += 1;
            next
        };
        {
            let mut f = next.borrow_mut();
            f.has_slot = true;
            if let Some(t) = f.queue_timer.take() {
                io.remove_timeout(t);
            }
        }
        let sh = shared.clone();
        io.add_callback(move |io| start(io, &sh, &next));
    }
}

/// The stream handler of one pooled connection.
struct ConnHandler {
    conn: Rc<RefCell<Connection>>,
    shared: Rc<Shared>,
}

impl StreamHandler for ConnHandler {
    fn on_readable(&mut self, io: &mut IoLoop, _: StreamId, buf: &mut BytesMut, eof: bool) {
        if eof {
            self.conn.borrow_mut().machine.handle_eof();
        }
        loop {
            let (event, fetch) = {
                let mut c = self.conn.borrow_mut();
                if c.closed {
                    return;
                }
                let Some(fetch) = c.fetch.clone() else {
                    // Idle in the pool: the server closed it or sent junk; drop it.
                    if eof || !buf.is_empty() {
                        drop(c);
                        forget_idle(&self.shared, &self.conn);
                        close_conn(io, &self.conn);
                    }
                    return;
                };
                (c.machine.poll_event(buf), fetch)
            };
            match event {
                ClientEvent::NeedData | ClientEvent::Idle => return,
                ClientEvent::Head(head) => on_head(io, &self.shared, &fetch, head),
                ClientEvent::Data(data) => on_data(io, &self.shared, &fetch, data),
                ClientEvent::End(trailers) => {
                    let clean = buf.is_empty();
                    return on_end(io, &self.shared, &fetch, &self.conn, trailers, clean);
                }
                ClientEvent::Error(e) => return on_error(io, &self.shared, &fetch, e),
            }
        }
    }

    fn on_close(&mut self, io: &mut IoLoop, _: StreamId, reason: CloseReason) {
        let fetch = {
            let mut c = self.conn.borrow_mut();
            c.closed = true;
            if let Some(t) = c.idle_timer.take() {
                io.remove_timeout(t);
            }
            c.fetch.take()
        };
        forget_idle(&self.shared, &self.conn);
        if let Some(fetch) = fetch {
            fetch.borrow_mut().conn = None;
            let nothing_received = fetch.borrow().head.is_none();
            if nothing_received && retry_stale(io, &self.shared, &fetch) {
                return;
            }
            let err = match reason {
                CloseReason::Reset => HttpError::ConnectionReset,
                CloseReason::Tls(failure) => HttpError::Tls(failure),
                CloseReason::Eof | CloseReason::Local => HttpError::ConnectionClosed,
                other => HttpError::Connect(other),
            };
            finish(io, &self.shared, &fetch, Err(err));
        }
    }
}

/// Removes a connection from the idle pool if it is there.
fn forget_idle(shared: &Rc<Shared>, conn: &Rc<RefCell<Connection>>) {
    let key = {
        let c = conn.borrow();
        (c.addr, c.tls_host.clone())
    };
    let mut st = shared.state.borrow_mut();
    if let Some(list) = st.idle.get_mut(&key) {
        list.retain(|c| !Rc::ptr_eq(c, conn));
        if list.is_empty() {
            st.idle.remove(&key);
        }
    }
}

/// A pooled connection closed before any byte of the answer: the server dropped it while
/// idle. Idempotent requests go once more on a fresh connection (as browsers do).
fn retry_stale(io: &mut IoLoop, shared: &Rc<Shared>, fetch_rc: &Rc<RefCell<Fetch>>) -> bool {
    let addr = {
        let mut f = fetch_rc.borrow_mut();
        let idempotent = matches!(
            f.req.method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        if f.done || !f.reused || f.retried || !idempotent || f.head.is_some() {
            return false;
        }
        let Some(addr) = f.target.as_ref().and_then(|t| {
            t.literal_addr
                .or_else(|| shared.resolver.as_ref().and_then(|r| r(&t.host, t.port)))
        }) else {
            return false;
        };
        f.retried = true;
        if let Some(conn) = f.conn.take() {
            conn.borrow_mut().fetch = None;
        }
        addr
    };
    shared.update(|s| s.retried += 1);
    tracing::debug!(%addr, "pooled connection was closed by the server; retrying");
    connect(io, shared, fetch_rc, addr);
    true
}

fn on_head(
    io: &mut IoLoop,
    shared: &Rc<Shared>,
    fetch_rc: &Rc<RefCell<Fetch>>,
    head: ResponseHead,
) {
    let mut f = fetch_rc.borrow_mut();
    let mut head = head;
    // An empty Location names no other resource: the response is final, as with curl.
    let redirect_to = head
        .headers
        .get(LOCATION)
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|l| !l.is_empty())
        .filter(|_| {
            f.req.follow_redirects && matches!(head.status.as_u16(), 301 | 302 | 303 | 307 | 308)
        });
    let redirect = redirect_to.is_some();
    if let Some(location) = redirect_to {
        // The raw bytes: a non-ASCII Location is percent-encoded, never dropped.
        let base = f.target.as_ref().expect("hop has a target");
        f.redirect_to = Some(join_location_bytes(base, location));
    } else if f.req.method != Method::HEAD {
        // Transfer codings are removed first (RFC 9112 §7), then the content coding.
        let mut layers = gzip_transfer_codings(&head.headers);
        if f.req.decompress_response
            && head
                .headers
                .get(CONTENT_ENCODING)
                .is_some_and(|v| is_gzip_coding(v.as_bytes()))
        {
            if let Some(v) = head.headers.remove(CONTENT_ENCODING) {
                head.headers
                    .insert(HeaderName::from_static("x-consumed-content-encoding"), v);
            }
            layers += 1;
        }
        f.gunzip = (0..layers).map(|_| None).collect();
    }
    let notify = match f.req.on_head.take() {
        Some(cb) if !redirect => Some((cb, head.clone())),
        Some(cb) => {
            f.req.on_head = Some(cb);
            None
        }
        None => None,
    };
    f.head = Some(head);
    drop(f);
    let Some((mut on_head, head)) = notify else {
        return;
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| on_head(io, &head)));
    if outcome.is_err() {
        tracing::error!("on_head callback panicked; failing the fetch");
        return finish(io, shared, fetch_rc, Err(HttpError::CallbackPanicked));
    }
    let mut f = fetch_rc.borrow_mut();
    if f.req.on_head.is_none() {
        f.req.on_head = Some(on_head);
    }
}

fn on_data(io: &mut IoLoop, shared: &Rc<Shared>, fetch_rc: &Rc<RefCell<Fetch>>, data: Bytes) {
    {
        let f = fetch_rc.borrow();
        if f.done || f.redirect_to.is_some() {
            return;
        }
    }
    gunzip_and_deliver(io, shared, fetch_rc, 0, data);
}

/// Feeds `data` to gzip layer `layer` (0: outermost) and its output on to the next layer;
/// past the last layer, delivers it.
fn gunzip_and_deliver(
    io: &mut IoLoop,
    shared: &Rc<Shared>,
    fetch_rc: &Rc<RefCell<Fetch>>,
    layer: usize,
    data: Bytes,
) {
    if layer >= fetch_rc.borrow().gunzip.len() {
        return deliver(io, shared, fetch_rc, data);
    }
    // Decode in small steps so a gzip bomb is caught by `max_body_size` after at most
    // about a thousand times the step (per layer), not after inflating a whole network read.
    for step in data.chunks(GUNZIP_STEP) {
        let piece = {
            let mut f = fetch_rc.borrow_mut();
            if f.done {
                return;
            }
            let gz =
                f.gunzip[layer].get_or_insert_with(|| flate2::write::GzDecoder::new(Vec::new()));
            if gz.write_all(step).is_err() {
                drop(f);
                return finish(io, shared, fetch_rc, Err(HttpError::Decompress));
            }
            Bytes::from(std::mem::take(gz.get_mut()))
        };
        if !piece.is_empty() {
            gunzip_and_deliver(io, shared, fetch_rc, layer + 1, piece);
        }
    }
}

/// Compressed bytes fed to the gzip decoder at once.
const GUNZIP_STEP: usize = 4096;

/// Counts a piece of (decoded) body against `max_body_size`, then streams or buffers it.
fn deliver(io: &mut IoLoop, shared: &Rc<Shared>, fetch_rc: &Rc<RefCell<Fetch>>, piece: Bytes) {
    if piece.is_empty() {
        return;
    }
    let mut on_chunk = {
        let mut f = fetch_rc.borrow_mut();
        f.body_len += piece.len() as u64;
        if f.body_len > f.req.max_body_size {
            let limit = f.req.max_body_size;
            drop(f);
            return finish(io, shared, fetch_rc, Err(HttpError::BodyTooLarge { limit }));
        }
        match f.req.on_chunk.take() {
            Some(cb) => cb,
            None => {
                f.body.extend_from_slice(&piece);
                return;
            }
        }
    };
    // No borrow is held while user code runs: it may fetch again. A panic fails this fetch
    // (as an exception in Tornado's streaming_callback does) instead of orphaning it.
    let outcome = catch_unwind(AssertUnwindSafe(|| on_chunk(io, piece)));
    if outcome.is_err() {
        tracing::error!("on_chunk callback panicked; failing the fetch");
        return finish(io, shared, fetch_rc, Err(HttpError::CallbackPanicked));
    }
    let mut f = fetch_rc.borrow_mut();
    if f.req.on_chunk.is_none() {
        f.req.on_chunk = Some(on_chunk);
    }
}

fn on_error(io: &mut IoLoop, shared: &Rc<Shared>, fetch_rc: &Rc<RefCell<Fetch>>, e: ResponseError) {
    if e == ResponseError::ClosedBeforeResponse {
        let conn = fetch_rc.borrow().conn.clone();
        if let Some(conn) = conn {
            if fetch_rc.borrow().reused && !fetch_rc.borrow().retried {
                forget_idle(shared, &conn);
                close_conn(io, &conn);
                if retry_stale(io, shared, fetch_rc) {
                    return;
                }
            }
        }
    }
    let err = match e {
        ResponseError::BodyTooLarge { limit } => HttpError::BodyTooLarge { limit },
        ResponseError::ClosedBeforeResponse | ResponseError::Incomplete => {
            HttpError::ConnectionClosed
        }
        other => HttpError::Protocol(other),
    };
    finish(io, shared, fetch_rc, Err(err));
}

fn on_end(
    io: &mut IoLoop,
    shared: &Rc<Shared>,
    fetch_rc: &Rc<RefCell<Fetch>>,
    conn_rc: &Rc<RefCell<Connection>>,
    trailers: Option<HeaderMap>,
    clean: bool,
) {
    // The exchange is complete: detach, then pool or close the connection.
    fetch_rc.borrow_mut().conn = None;
    release(io, shared, conn_rc, clean);
    // Flush the gzip layers outermost first: each one's tail feeds the layers inside it.
    let layers = fetch_rc.borrow().gunzip.len();
    for layer in 0..layers {
        let gz = {
            let mut f = fetch_rc.borrow_mut();
            if f.done {
                return;
            }
            f.gunzip[layer].take()
        };
        let Some(gz) = gz else { continue };
        match gz.finish() {
            Ok(rest) => gunzip_and_deliver(io, shared, fetch_rc, layer + 1, Bytes::from(rest)),
            Err(_) => return finish(io, shared, fetch_rc, Err(HttpError::Decompress)),
        }
    }
    if fetch_rc.borrow().done {
        return;
    }
    let redirect_to = fetch_rc.borrow_mut().redirect_to.take();
    if let Some(url) = redirect_to {
        return follow(io, shared, fetch_rc, url);
    }
    let response = {
        let mut f = fetch_rc.borrow_mut();
        let head = f.head.take().expect("End follows Head");
        HttpResponse {
            status: head.status,
            reason: head.reason,
            version: head.version,
            headers: head.headers,
            trailers,
            body: f.body.split().freeze(),
            effective_url: f.req.url.clone(),
            redirects: f.redirects,
            reused_connection: f.reused,
            request_time: io.now() - f.started,
        }
    };
    let error_for_status = fetch_rc.borrow().req.error_for_status;
    let result = if error_for_status && !response.status.is_success() {
        Err(HttpError::Status(response.status, Box::new(response)))
    } else {
        Ok(response)
    };
    finish(io, shared, fetch_rc, result);
}

/// Returns a connection whose exchange completed to the pool, or closes it.
fn release(io: &mut IoLoop, shared: &Rc<Shared>, conn_rc: &Rc<RefCell<Connection>>, clean: bool) {
    let (reusable, key) = {
        let mut c = conn_rc.borrow_mut();
        c.fetch = None;
        let key = (c.addr, c.tls_host.clone());
        (!c.closed && clean && c.machine.can_reuse(), key)
    };
    let room =
        shared.state.borrow().idle.get(&key).map_or(0, Vec::len) < shared.config.max_idle_per_host;
    if !(reusable && room) {
        return close_conn(io, conn_rc);
    }
    let weak = Rc::downgrade(conn_rc);
    let sh = shared.clone();
    let t = io.call_later(shared.config.idle_timeout, move |io| {
        let Some(conn) = weak.upgrade() else { return };
        conn.borrow_mut().idle_timer = None;
        if conn.borrow().fetch.is_none() {
            forget_idle(&sh, &conn);
            close_conn(io, &conn);
        }
    });
    conn_rc.borrow_mut().idle_timer = Some(t);
    shared
        .state
        .borrow_mut()
        .idle
        .entry(key)
        .or_default()
        .push(conn_rc.clone());
}

/// Follows a redirect within the same slot (RFC 9110 §15.4): 303 (and 301/302 after a
/// POST, as browsers do) become a GET without body; 307/308 repeat the request as it was.
fn follow(io: &mut IoLoop, shared: &Rc<Shared>, fetch_rc: &Rc<RefCell<Fetch>>, url: String) {
    {
        let mut f = fetch_rc.borrow_mut();
        if f.redirects >= f.req.max_redirects {
            let max = f.req.max_redirects;
            drop(f);
            return finish(
                io,
                shared,
                fetch_rc,
                Err(HttpError::TooManyRedirects { max }),
            );
        }
        let status = f.head.take().map(|h| h.status.as_u16()).unwrap_or(302);
        let to_get = match status {
            303 => f.req.method != Method::HEAD,
            301 | 302 => f.req.method == Method::POST,
            _ => false,
        };
        if to_get {
            f.req.method = Method::GET;
            f.req.body = Bytes::new();
            for name in [
                "content-type",
                "content-length",
                "content-encoding",
                "transfer-encoding",
            ] {
                f.req.headers.remove(name);
            }
        }
        let same_origin = match (f.target.as_ref(), parse_url(&url)) {
            // The origin is the scheme, the host and the port (RFC 6454 §4).
            (Some(old), Ok(new)) => {
                old.tls == new.tls && old.host == new.host && old.port == new.port
            }
            _ => false,
        };
        if !same_origin {
            // Credentials, cookies and an explicit Host belong to the original origin only
            // (RFC 9110 §15.4; curl drops the same fields).
            for name in [HOST, AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE] {
                f.req.headers.remove(name);
            }
        }
        f.req.url = url;
        f.redirects += 1;
        f.reused = false;
        f.retried = false;
    }
    begin_hop(io, shared, fetch_rc);
}
