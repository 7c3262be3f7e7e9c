//! `WebSocketHandler`: Tornado's `tornado.websocket.WebSocketHandler` on eddy-web — a route
//! whose GET upgrades to a WebSocket session, run as a task of its own; and
//! [`websocket_connect`], the client.
//!
//! Owns the server handshake's policy (method, headers, version, origin, subprotocol,
//! compression) and the session loop; framing and the I/O cycle stay in eddy-core's `ws`.
//!
//! ```
//! use eddy_web::websocket::{Message, WebSocket, WebSocketHandler};
//! use eddy_web::{Application, Route};
//!
//! struct Echo;
//! impl WebSocketHandler for Echo {
//!     async fn on_message(&mut self, ws: &WebSocket, message: Message) {
//!         let _ = ws.send(message).await; // waits while the peer reads slowly
//!     }
//! }
//! let app = Application::new(vec![Route::websocket(r"/ws", || Echo)]);
//! # drop(app);
//! ```
//!
//! A session's messages are handled one at a time, in order: `on_message` is awaited before
//! the next is read, and reading from the socket stops while messages pile up, so a slow
//! handler slows its peer down instead of growing the server.

use std::rc::Rc;

use eddy_core::http::Responder;
use eddy_core::task::with_loop;
pub use eddy_core::ws::MaskSource;
use eddy_core::ws::{validate_request, HandshakeError, Negotiated};
pub use eddy_core::ws::{
    CloseStatus, ConnectError, DeflateConfig, Message, SendError, WebSocket, WsConnect, WsOptions,
    WsSender,
};
use eddy_core::IoLoop;
use http::header::{ALLOW, SEC_WEBSOCKET_VERSION};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::application::{spawn_request, Start};
use crate::error::HttpError;
use crate::exchange::Exchange;
use crate::handler::{CatchUnwind, Endpoint, Outcome, Run};

/// A WebSocket endpoint: hooks for the handshake, then one method per session event.
///
/// A handler value is made fresh for every connection (by its route's factory), so it may
/// keep per-session state in its fields.
#[allow(async_fn_in_trait)] // sessions run on the loop's thread: no Send bound wanted
pub trait WebSocketHandler: 'static {
    /// The session's limits, ping interval and time-outs (Tornado's defaults).
    fn options(&self) -> WsOptions {
        WsOptions::default()
    }

    /// permessage-deflate to accept when offered (Tornado's `get_compression_options`);
    /// `None`, the default, declines it.
    fn compression(&self) -> Option<DeflateConfig> {
        None
    }

    /// Whether a browser page from `origin` may connect; by default only a page of the same
    /// host (cross-origin requests get 403). Requests without `Origin` are not checked.
    fn check_origin(&self, origin: &str, ex: &Exchange) -> bool {
        same_origin(origin, ex)
    }

    /// Picks one of the subprotocols the client offers (in its order), or none (the default).
    fn select_subprotocol(&mut self, _protocols: &[String]) -> Option<String> {
        None
    }

    /// Runs before the upgrade, like `RequestHandler::prepare`: an error answers the request
    /// with its page instead (e.g. for a missing login).
    async fn prepare(&mut self, _ex: &mut Exchange) -> Result<(), HttpError> {
        Ok(())
    }

    /// The session is open; the request (arguments, cookies, captures) is still readable.
    async fn open(&mut self, _ex: &mut Exchange, _ws: &WebSocket) {}

    /// A text or binary message arrived; the next is read once this returns.
    async fn on_message(&mut self, ws: &WebSocket, message: Message);

    /// The session ended: the peer's close code and reason (1005: its close had no code;
    /// 1006: the connection ended without a close frame).
    async fn on_close(&mut self, _status: &CloseStatus) {}
}

/// Tornado's default `check_origin`: the origin's host (and port) is the request's `Host`.
pub fn same_origin(origin: &str, ex: &Exchange) -> bool {
    let netloc = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("");
    let host = ex.request().header("host").unwrap_or(b"");
    !netloc.is_empty() && netloc.as_bytes().eq_ignore_ascii_case(host)
}

/// A route's WebSocket handler factory, as an endpoint of the router.
pub(crate) struct WsFactory<F>(pub(crate) F);

impl<H, F> Endpoint for WsFactory<F>
where
    H: WebSocketHandler,
    F: Fn() -> H + 'static,
{
    fn spawn(self: Rc<Self>, io: &mut IoLoop, responder: Responder, start: Start) {
        spawn_request(self, io, responder, start);
    }

    fn body_limit(&self) -> Option<u64> {
        None
    }
}

impl<H, F> Run for WsFactory<F>
where
    H: WebSocketHandler,
    F: Fn() -> H + 'static,
{
    async fn run(&self, ex: &mut Exchange) -> Outcome {
        let handler = (self.0)();
        match CatchUnwind::new(upgrade(handler, ex)).await {
            Ok(result) => Outcome::Done(result),
            Err(message) => Outcome::Panicked(message),
        }
    }
}

/// Checks the handshake, answers 101, runs `open`, and spawns the session's task.
async fn upgrade<H: WebSocketHandler>(mut handler: H, ex: &mut Exchange) -> Result<(), HttpError> {
    let request = match validate_request(ex.method(), ex.request().header_map()) {
        Ok(request) => request,
        Err(e) => return refuse(ex, &e),
    };
    let origin = ex
        .request()
        .header("origin")
        .map(|o| String::from_utf8_lossy(o).into_owned());
    if let Some(origin) = origin {
        if !handler.check_origin(&origin, ex) {
            ex.set_status(403);
            ex.write("Cross origin websockets not allowed");
            ex.finish();
            return Ok(());
        }
    }
    handler.prepare(ex).await?;
    if ex.is_finished() {
        return Ok(());
    }
    let negotiated = Negotiated {
        protocol: handler
            .select_subprotocol(&request.protocols)
            .filter(|p| request.protocols.contains(p)),
        deflate: handler
            .compression()
            .and_then(|config| config.negotiate(&request.extensions)),
    };
    let options = Rc::new(handler.options());
    let Some(writer) = ex.take_writer() else {
        return Ok(()); // the client is gone
    };
    ex.set_status(101);
    let ws = match WebSocket::accept(writer, &request, negotiated, options) {
        Ok(ws) => ws,
        Err(e) => {
            tracing::warn!(error = %e, "websocket upgrade failed");
            return Ok(());
        }
    };
    handler.open(ex, &ws).await;
    with_loop(|io| io.spawn_detached(run_session(handler, ws)));
    Ok(())
}

/// Answers a refused handshake as Tornado does (405, 400, or 426 with the version we speak).
fn refuse(ex: &mut Exchange, error: &HandshakeError) -> Result<(), HttpError> {
    let status = error.status().as_u16();
    ex.set_status(status);
    match error {
        HandshakeError::MethodNotGet => {
            let _ = ex.set_header(ALLOW.as_str(), "GET");
        }
        HandshakeError::UnsupportedVersion => {
            let _ = ex.set_header(SEC_WEBSOCKET_VERSION.as_str(), "13");
        }
        _ => {}
    }
    ex.write(match error {
        HandshakeError::BadUpgrade => "Can \"Upgrade\" only to \"WebSocket\".".to_owned(),
        HandshakeError::BadConnection => "\"Connection\" must be \"Upgrade\".".to_owned(),
        e => e.to_string(),
    });
    ex.finish();
    Ok(())
}

/// The session: messages one at a time, then `on_close`; a panic closes with 1011.
async fn run_session<H: WebSocketHandler>(mut handler: H, mut ws: WebSocket) {
    while let Some(message) = ws.recv().await {
        if let Err(panic) = CatchUnwind::new(handler.on_message(&ws, message)).await {
            tracing::error!(%panic, "websocket on_message panicked; closing with 1011");
            ws.close(1011, "internal error");
        }
    }
    let status = ws.close_status().unwrap_or(CloseStatus {
        code: 1006,
        reason: String::new(),
    });
    if let Err(panic) = CatchUnwind::new(handler.on_close(&status)).await {
        tracing::error!(%panic, "websocket on_close panicked");
    }
}

/// Masking keys from a ChaCha20 generator seeded by the operating system.
pub fn os_mask_source() -> MaskSource {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).expect("the OS gives random bytes");
    rng_mask_source(ChaCha20Rng::from_seed(seed))
}

/// Masking keys from a generator seeded with `seed`: reproducible, for the simulator only.
pub fn seeded_mask_source(seed: u64) -> MaskSource {
    rng_mask_source(ChaCha20Rng::seed_from_u64(seed))
}

fn rng_mask_source(mut rng: ChaCha20Rng) -> MaskSource {
    Box::new(move || {
        let mut key = [0u8; 4];
        rng.fill_bytes(&mut key);
        key
    })
}

/// Connects to a `ws://` URL with default options (Tornado's `websocket_connect`); call
/// from a task.
pub async fn websocket_connect(url: &str) -> Result<WebSocket, ConnectError> {
    websocket_connect_with(WsConnect::new(url), os_mask_source()).await
}

/// Connects with the given subprotocols, headers, compression, limits and time-outs.
pub async fn websocket_connect_with(
    request: WsConnect,
    keys: MaskSource,
) -> Result<WebSocket, ConnectError> {
    eddy_core::ws::connect(request, keys).await
}
