//! `RequestHandler`: the trait an application's handlers implement (Tornado's
//! `RequestHandler` subclasses), and how one request is dispatched to it.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use eddy_core::http::Responder;
use eddy_core::IoLoop;
use http::Method;

use crate::application::{spawn_request, Start};
use crate::error::HttpError;
use crate::exchange::Exchange;

/// One async method per HTTP verb; the ones not written answer 405 with `Allow`.
///
/// A handler value is made fresh for every request (by its route's factory), so it may keep
/// per-request state in its fields. A method without `.await` is an ordinary synchronous
/// handler; errors are returned (`Err(HttpError::new(404))`) or sent with `send_error`.
///
/// ```
/// use eddy_web::{Exchange, HttpError, RequestHandler};
/// use http::Method;
///
/// struct Echo;
/// impl RequestHandler for Echo {
///     const METHODS: &'static [Method] = &[Method::GET, Method::HEAD, Method::POST];
///     async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
///         let name = ex.argument("name")?; // missing: 400 Missing argument name
///         ex.write(format!("hi {name}"));
///         Ok(())
///     }
///     async fn post(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
///         let body = ex.request().body().clone();
///         ex.write(body);
///         Ok(())
///     }
/// }
/// ```
#[allow(async_fn_in_trait)] // handlers run on the loop's thread: no Send bound wanted
pub trait RequestHandler: 'static {
    /// The methods this handler implements: others get 405 with these in `Allow` (HEAD is
    /// allowed wherever GET is).
    const METHODS: &'static [Method] = &[Method::GET, Method::HEAD];

    /// Whether `xsrf_cookies` applies to this handler (turn off for an API that non-browser
    /// clients call, as Tornado's handlers override `check_xsrf_cookie`).
    const CHECK_XSRF: bool = true;

    /// `Some(max_body_size)` streams the request body (Tornado's `stream_request_body`): the
    /// handler runs as soon as the head is in and reads pieces with
    /// [`Exchange::take_body_stream`], so a large upload never sits in memory whole. A request
    /// without a body has nothing to stream: `take_body_stream` gives `None` for it.
    const STREAMED_BODY_LIMIT: Option<u64> = None;

    /// The methods that need a logged-in user (Tornado's `@authenticated` on them; HEAD
    /// follows GET): after `prepare`, a visitor without [`Exchange::current_user`] is
    /// redirected to `login_url` (GET, HEAD) or answered 403, and the method does not run.
    const AUTHENTICATED: &'static [Method] = &[];

    /// Runs before the verb method; finishing the exchange here skips it.
    async fn prepare(&mut self, _ex: &mut Exchange) -> Result<(), HttpError> {
        Ok(())
    }
    /// GET.
    async fn get(&mut self, _ex: &mut Exchange) -> Result<(), HttpError> {
        Err(HttpError::new(405))
    }
    /// HEAD: by default runs [`get`](Self::get); the server sends no body.
    async fn head(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        self.get(ex).await
    }
    /// POST.
    async fn post(&mut self, _ex: &mut Exchange) -> Result<(), HttpError> {
        Err(HttpError::new(405))
    }
    /// PUT.
    async fn put(&mut self, _ex: &mut Exchange) -> Result<(), HttpError> {
        Err(HttpError::new(405))
    }
    /// PATCH.
    async fn patch(&mut self, _ex: &mut Exchange) -> Result<(), HttpError> {
        Err(HttpError::new(405))
    }
    /// DELETE.
    async fn delete(&mut self, _ex: &mut Exchange) -> Result<(), HttpError> {
        Err(HttpError::new(405))
    }
    /// OPTIONS.
    async fn options(&mut self, _ex: &mut Exchange) -> Result<(), HttpError> {
        Err(HttpError::new(405))
    }
    /// Writes the body of the page for an error this handler returned or a panic in it
    /// (Tornado's `write_error`): when it runs, the body and headers are cleared and the
    /// status is the error's, with `Content-Type: text/html` (set another for, say, JSON).
    /// `traceback` is the panic's message, given only with `debug` or `serve_traceback`. The
    /// default writes the application's page (see [`Exchange::write_error_page`]). A panic
    /// here is caught and the default page sent.
    fn write_error(&mut self, ex: &mut Exchange, error: &HttpError, traceback: Option<&str>) {
        ex.write_error_page(error, traceback);
    }

    /// Runs after the response is complete (logging, clean-up); not on a cancelled request.
    fn on_finish(&mut self, _ex: &Exchange) {}

    /// The connection closed (reset, error, server shutdown) before the handler finished;
    /// the handler is then dropped without running further (Tornado's
    /// `on_connection_close`). A client that only half-closes (FIN after its request) still
    /// gets its answer, so that is not a close. A handler time-out is not one either.
    fn on_connection_close(&mut self) {}
}

/// Owns a request's handler; if dropped while the handler is still running because its
/// client went away, tells the handler (`on_connection_close`).
struct Running<H: RequestHandler> {
    handler: H,
    finished: bool,
    connection: Option<eddy_core::http::ConnectionProbe>,
}

impl<H: RequestHandler> Drop for Running<H> {
    fn drop(&mut self) {
        if !self.finished && self.connection.as_ref().is_some_and(|c| !c.is_connected()) {
            self.handler.on_connection_close();
        }
    }
}

/// A route's handler with its type erased: spawns the task that answers one request.
pub(crate) trait Endpoint {
    /// Answers the request in `start` in a task of its own (see [`crate::application`]).
    fn spawn(self: Rc<Self>, io: &mut IoLoop, responder: Responder, start: Start);
    /// The handler's [`RequestHandler::STREAMED_BODY_LIMIT`].
    fn body_limit(&self) -> Option<u64>;
}

/// The typed half of an endpoint: makes a handler for one request and runs it. The request
/// task holds the future inline, so a request allocates no box for its handler.
pub(crate) trait Run: 'static {
    async fn run(&self, ex: &mut Exchange) -> Outcome;
}

/// How a handler's run ended.
pub(crate) enum Outcome {
    /// It returned; `Err` is answered with its page.
    Done(Result<(), HttpError>),
    /// It panicked, with this message.
    Panicked(String),
}

/// A factory of handlers of type `H`.
pub(crate) struct Factory<F>(pub(crate) F);

impl<H, F> Endpoint for Factory<F>
where
    H: RequestHandler,
    F: Fn() -> H + 'static,
{
    fn spawn(self: Rc<Self>, io: &mut IoLoop, responder: Responder, start: Start) {
        spawn_request(self, io, responder, start);
    }

    fn body_limit(&self) -> Option<u64> {
        H::STREAMED_BODY_LIMIT
    }
}

impl<H, F> Run for Factory<F>
where
    H: RequestHandler,
    F: Fn() -> H + 'static,
{
    async fn run(&self, ex: &mut Exchange) -> Outcome {
        let mut running = Running {
            handler: (self.0)(),
            finished: false,
            connection: ex.connection(),
        };
        let handler = &mut running.handler;
        let outcome = match CatchUnwind::new(dispatch(handler, ex)).await {
            Ok(result) => Outcome::Done(result),
            Err(message) => Outcome::Panicked(message),
        };
        if let Outcome::Done(Err(e)) = &outcome {
            if e.status() == 405 && !ex.is_finished() {
                let allow = H::METHODS
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                let _ = ex.set_header("allow", &allow);
            }
        }
        match &outcome {
            Outcome::Done(Err(e)) => answer_error(&mut running.handler, ex, e, None),
            Outcome::Panicked(message) => {
                answer_error(
                    &mut running.handler,
                    ex,
                    &HttpError::new(500),
                    Some(message),
                );
            }
            Outcome::Done(Ok(())) => {}
        }
        if !matches!(outcome, Outcome::Panicked(_)) {
            running.handler.on_finish(ex);
        }
        running.finished = true;
        outcome
    }
}

/// Answers `error` with the page `handler` writes (unless the head is already out or the
/// response done; then the application's `end` cuts or leaves the connection).
fn answer_error<H: RequestHandler>(
    handler: &mut H,
    ex: &mut Exchange,
    error: &HttpError,
    traceback: Option<&str>,
) {
    if !ex.begin_error_page(error) {
        return;
    }
    let shown = traceback.filter(|_| ex.settings().serve_traceback());
    let wrote = catch_unwind(AssertUnwindSafe(|| handler.write_error(ex, error, shown)));
    if wrote.is_err() {
        tracing::error!(
            status = error.status(),
            "write_error panicked; sent the default page"
        );
        if ex.begin_error_page(error) {
            ex.write_default_error_page(error, shown);
        }
    }
    ex.finish();
}

/// `prepare`, then the verb's method.
async fn dispatch<H: RequestHandler>(h: &mut H, ex: &mut Exchange) -> Result<(), HttpError> {
    // A method the handler does not implement is a 405 before anything else runs.
    let implemented = H::METHODS.contains(ex.method())
        || (*ex.method() == Method::HEAD && H::METHODS.contains(&Method::GET));
    if !implemented {
        return Err(HttpError::new(405));
    }
    if H::CHECK_XSRF
        && ex.settings().xsrf_cookies
        && !matches!(*ex.method(), Method::GET | Method::HEAD | Method::OPTIONS)
    {
        ex.check_xsrf()?;
    }
    h.prepare(ex).await?;
    if ex.is_finished() {
        return Ok(());
    }
    let guarded = H::AUTHENTICATED.contains(ex.method())
        || (*ex.method() == Method::HEAD && H::AUTHENTICATED.contains(&Method::GET));
    if guarded {
        ex.authenticated()?;
    }
    let method = ex.method().clone();
    match method {
        Method::GET => h.get(ex).await,
        Method::HEAD => h.head(ex).await,
        Method::POST => h.post(ex).await,
        Method::PUT => h.put(ex).await,
        Method::PATCH => h.patch(ex).await,
        Method::DELETE => h.delete(ex).await,
        Method::OPTIONS => h.options(ex).await,
        _ => Err(HttpError::new(405)),
    }
}

pin_project_lite::pin_project! {
    /// Polls a future, turning a panic in it into `Err(message)`; the future lives inline
    /// (no box of its own).
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> CatchUnwind<F> {
    pub(crate) fn new(future: F) -> Self {
        CatchUnwind { future }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".into());
                Poll::Ready(Err(message))
            }
        }
    }
}
