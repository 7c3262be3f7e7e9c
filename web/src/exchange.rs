//! `Exchange`: one request being handled and the response being built — what Tornado's
//! `RequestHandler` instance holds besides the application's own fields.
//!
//! A handler reads the request (arguments, cookies, path captures) and writes the answer
//! (status, headers, body pieces). The body is buffered until [`Exchange::flush`] (which
//! sends what is written so far as a chunk, with back-pressure) or the end of the handler.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use eddy_core::http::form::Arguments;
use eddy_core::http::{Request, ResponseWriter};
use eddy_core::task::with_loop;
use http::header::{
    HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, LOCATION,
};
use http::{HeaderMap, Method, StatusCode};

use crate::application::AppShared;
use crate::compress;
use crate::cookie::{CookieError, SetCookie};
use crate::error::{error_page, HttpError};
use crate::pool::ValueArena;
use crate::routing::PathArgs;
use crate::signed::{create_signed_value, decode_signed_value, DEFAULT_MAX_AGE_DAYS};
use crate::template::RenderNamespace;
use crate::xsrf;

/// Tornado's default content type.
const HTML_UTF8: HeaderValue = HeaderValue::from_static("text/html; charset=UTF-8");

/// One request and the response being built; handed to every [`crate::RequestHandler`] method.
pub struct Exchange {
    request: Request,
    path_args: PathArgs,
    app: Rc<AppShared>,
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
    writer: Option<ResponseWriter>,
    /// The status line and headers went out with a flush: the rest is a chunked body.
    flushed: bool,
    finished: bool,
    body_arguments: Option<Arguments>,
    xsrf_token: Option<String>,
    /// A flushed response being gzipped as one stream (boxed: rare, and large).
    gzip: Option<Box<compress::GzipStream>>,
    /// The body length announced by [`Exchange::send_head`], when the handler set one.
    content_length: Option<u64>,
    /// The logged-in user, once asked (`Some(None)`: asked, nobody).
    current_user: Option<Option<String>>,
}

impl Exchange {
    pub(crate) fn new(
        request: Request,
        path_args: PathArgs,
        app: Rc<AppShared>,
        writer: ResponseWriter,
    ) -> Exchange {
        let mut headers = app.header_maps.take();
        headers.insert(CONTENT_TYPE, HTML_UTF8);
        let body = app.body_buffers.take();
        Exchange {
            request,
            path_args,
            app,
            status: 200,
            headers,
            body,
            writer: Some(writer),
            flushed: false,
            finished: false,
            body_arguments: None,
            xsrf_token: None,
            gzip: None,
            content_length: None,
            current_user: None,
        }
    }

    // ----- the request -----

    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The request body as pieces, for a handler with `STREAMED_BODY_LIMIT` (once).
    pub fn take_body_stream(&mut self) -> Option<eddy_core::http::BodyStream> {
        self.request.take_body_stream()
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        self.request.method()
    }

    /// The route's captures, percent-decoded.
    pub fn path_args(&self) -> &PathArgs {
        &self.path_args
    }

    /// Takes the `i`-th positional capture out (it reads as absent afterwards), for a
    /// handler that wants to own it without a copy.
    pub fn take_path_arg(&mut self, i: usize) -> Option<String> {
        self.path_args.positional.get_mut(i).and_then(Option::take)
    }

    /// The `i`-th positional capture.
    pub fn path_arg(&self, i: usize) -> Option<&str> {
        self.path_args.get(i)
    }

    /// The client's address (the proxy-reported one with `xheaders` from trusted peers).
    pub fn remote_ip(&self) -> std::net::IpAddr {
        self.request.remote_ip()
    }

    /// The last value of argument `name`, from the query or the body (Tornado's
    /// `get_argument`): control characters become spaces and surrounding whitespace is
    /// stripped, as Tornado does; missing → `400 Missing argument NAME`.
    pub fn argument(&mut self, name: &str) -> Result<String, HttpError> {
        self.arguments(name)?
            .pop()
            .ok_or_else(|| HttpError::new(400).with_reason(format!("Missing argument {name}")))
    }

    /// Every value of argument `name`, query values first, then body values (cleaned as
    /// [`Exchange::argument`]'s).
    pub fn arguments(&mut self, name: &str) -> Result<Vec<String>, HttpError> {
        let mut values = self.arguments_unstripped(name)?;
        for value in &mut values {
            strip_in_place(value);
        }
        Ok(values)
    }

    /// [`Exchange::arguments`] without the stripping (Tornado's `strip=False`): control
    /// characters still become spaces.
    pub fn arguments_unstripped(&mut self, name: &str) -> Result<Vec<String>, HttpError> {
        let mut values = self.query_arguments(name)?;
        values.extend(self.body_arguments(name)?);
        Ok(values)
    }

    /// Values of `name` in the query string (control characters become spaces; not
    /// stripped).
    pub fn query_arguments(&self, name: &str) -> Result<Vec<String>, HttpError> {
        decode_all(self.request.query_arguments().get_all(name))
    }

    /// Values of `name` in an urlencoded or multipart body (control characters become
    /// spaces; not stripped).
    pub fn body_arguments(&mut self, name: &str) -> Result<Vec<String>, HttpError> {
        decode_all(self.body_args()?.get_all(name))
    }

    /// Every query argument, in order (names with their raw values).
    pub fn all_query_arguments(&self) -> Arguments {
        self.request.query_arguments()
    }

    /// Every body argument, in order.
    pub fn all_body_arguments(&mut self) -> Result<&Arguments, HttpError> {
        self.body_args()
    }

    fn body_args(&mut self) -> Result<&Arguments, HttpError> {
        if self.body_arguments.is_none() {
            let form = self.request.form().map_err(|e| {
                HttpError::new(400)
                    .with_reason("Invalid request body")
                    .with_log_message(e.to_string())
            })?;
            self.body_arguments = Some(form.arguments);
        }
        Ok(self.body_arguments.as_ref().expect("just parsed"))
    }

    /// The request's cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.request.cookie(name)
    }

    /// The payload of the signed cookie `name` (Tornado's `get_signed_cookie`, version 2):
    /// `None` when missing, tampered, older than 31 days, or signed with another key.
    pub fn signed_cookie(&self, name: &str) -> Option<String> {
        self.signed_cookie_max_age(name, DEFAULT_MAX_AGE_DAYS)
    }

    /// [`Exchange::signed_cookie`] with a maximum age in days.
    pub fn signed_cookie_max_age(&self, name: &str, max_age_days: u64) -> Option<String> {
        let keys = self.app.settings.cookie_secret.as_ref()?;
        let value = self.cookie(name)?;
        let value = value.trim_matches('"');
        let payload = decode_signed_value(keys, name, value, unix_now(), max_age_days)?;
        String::from_utf8(payload).ok()
    }

    /// The URL path of the named route (Tornado's `reverse_url`).
    pub fn reverse_url(&self, name: &str, args: &[&str]) -> Result<String, HttpError> {
        self.app
            .router
            .borrow()
            .reverse_url(name, args)
            .map_err(|e| HttpError::new(500).with_log_message(e.to_string()))
    }

    // ----- the response -----

    /// Sets the status (unknown codes are allowed; their reason is "Unknown").
    pub fn set_status(&mut self, status: u16) {
        self.status = status.clamp(100, 999);
    }

    /// The status set so far.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Replaces header `name` (a value with CR, LF or other control bytes is an error).
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), HttpError> {
        let (name, value) = header_pair(name, value)?;
        self.headers.insert(name, value);
        Ok(())
    }

    /// Adds a value to header `name` (several `Set-Cookie`s, say).
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<(), HttpError> {
        let (name, value) = header_pair(name, value)?;
        self.headers.append(name, value);
        Ok(())
    }

    /// Removes header `name` from the response.
    pub fn clear_header(&mut self, name: &str) {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            self.headers.remove(name);
        }
    }

    /// The response headers so far.
    pub fn response_headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Appends to the body (text or bytes).
    pub fn write(&mut self, data: impl AsRef<[u8]>) {
        self.body.extend_from_slice(data.as_ref());
    }

    /// Writes `value` as JSON, as Tornado's `write(dict)` does (`json_encode`: Python's
    /// spacing and `\uXXXX` escapes, `</` as `<\/`), and sets `Content-Type:
    /// application/json; charset=UTF-8`.
    pub fn write_json(&mut self, value: &impl serde::Serialize) -> Result<(), HttpError> {
        let start = self.body.len();
        if let Err(e) = crate::escape::write_json(&mut self.body, value) {
            self.body.truncate(start); // nothing of a value that did not encode
            return Err(HttpError::new(500).with_log_message(format!("JSON encoding failed: {e}")));
        }
        self.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        Ok(())
    }

    /// Sets a cookie (`Path=/` unless `cookie` says otherwise).
    ///
    /// A cookie set again under the same name replaces the earlier one in this response, as
    /// in Tornado.
    pub fn set_cookie(&mut self, cookie: SetCookie) -> Result<(), CookieError> {
        let value = cookie.render()?;
        let Ok(value) = HeaderValue::from_str(&value) else {
            return Err(CookieError::Value(cookie.name));
        };
        let name = cookie.name.as_bytes();
        let same_name = |v: &HeaderValue| {
            let bytes = v.as_bytes();
            bytes.len() > name.len() && bytes.starts_with(name) && bytes[name.len()] == b'='
        };
        if let http::header::Entry::Occupied(set) = self.headers.entry(http::header::SET_COOKIE) {
            if set.iter().any(same_name) {
                let kept: Vec<HeaderValue> =
                    set.iter().filter(|v| !same_name(v)).cloned().collect();
                set.remove_entry_mult();
                for v in kept {
                    self.headers.append(http::header::SET_COOKIE, v);
                }
            }
        }
        self.headers.append(http::header::SET_COOKIE, value);
        Ok(())
    }

    /// Deletes cookie `name` in the client.
    pub fn clear_cookie(&mut self, name: &str) -> Result<(), CookieError> {
        self.set_cookie(SetCookie::removal(name, unix_now()))
    }

    /// Deletes every cookie the request carried (Tornado's `clear_all_cookies`); names that
    /// cannot be sent back are skipped.
    pub fn clear_all_cookies(&mut self) {
        let names: Vec<String> = self.request.cookies().map(|(n, _)| n.to_owned()).collect();
        for name in names {
            let _ = self.clear_cookie(&name);
        }
    }

    /// Forgets the response written so far (Tornado's `clear`): status 200, the default
    /// headers, no body. Nothing changes once the head is out.
    pub fn clear(&mut self) {
        if self.flushed || self.finished {
            return;
        }
        self.status = 200;
        self.headers.clear();
        self.headers.insert(CONTENT_TYPE, HTML_UTF8);
        self.body.clear();
        self.content_length = None;
    }

    /// Sets a cookie signed with the application's `cookie_secret` (Tornado's
    /// `set_signed_cookie`); an error if no secret is configured.
    pub fn set_signed_cookie(&mut self, name: &str, value: &str) -> Result<(), HttpError> {
        let keys = self.app.settings.cookie_secret.as_ref().ok_or_else(|| {
            HttpError::new(500)
                .with_log_message("set_signed_cookie needs the cookie_secret setting")
        })?;
        let signed =
            create_signed_value(keys, name, value.as_bytes(), unix_now()).ok_or_else(|| {
                HttpError::new(500).with_log_message("no key for the current key version")
            })?;
        let mut cookie = SetCookie::new(name, signed);
        cookie.max_age = Some(30 * 86_400);
        cookie.http_only = true;
        self.set_cookie(cookie)
            .map_err(|e| HttpError::new(500).with_log_message(e.to_string()))
    }

    /// Redirects to `url` (302, or 301 when `permanent`) and finishes.
    pub fn redirect(&mut self, url: &str, permanent: bool) -> Result<(), HttpError> {
        self.redirect_with_status(url, if permanent { 301 } else { 302 })
    }

    /// Redirects with a given 3xx status and finishes.
    pub fn redirect_with_status(&mut self, url: &str, status: u16) -> Result<(), HttpError> {
        if !(300..400).contains(&status) {
            return Err(HttpError::new(500).with_log_message("redirect status must be 3xx"));
        }
        let location = HeaderValue::from_str(url)
            .map_err(|_| HttpError::new(500).with_log_message("redirect URL has control bytes"))?;
        self.set_status(status);
        self.headers.insert(LOCATION, location);
        self.finish();
        Ok(())
    }

    /// Answers with the error page for `status` and finishes (Tornado's `send_error`): the
    /// application's (`Settings::write_error`) or the default one. A handler's own
    /// [`RequestHandler::write_error`](crate::RequestHandler::write_error) writes the page of
    /// errors it returns (`Err(HttpError::new(status))`) instead.
    pub fn send_error(&mut self, status: u16) {
        self.send_error_page(&HttpError::new(status), None);
    }

    /// The error page for `error`, with `traceback` in debug mode; nothing if already sent.
    pub(crate) fn send_error_page(&mut self, error: &HttpError, traceback: Option<&str>) {
        if self.begin_error_page(error) {
            self.write_error_page(error, traceback);
            self.finish();
        }
    }

    /// Clears what was written for the answer to `error`: the body and the headers (but
    /// `Allow` of a 405) go, the status is the error's and the type HTML. False when the head
    /// is already out or the response done (a page can no longer be sent).
    pub(crate) fn begin_error_page(&mut self, error: &HttpError) -> bool {
        if self.flushed || self.finished {
            return false; // the head is out: the connection closes instead (see `finish`)
        }
        self.body.clear();
        let allow = self.headers.remove(http::header::ALLOW);
        // Cookies already set still go out with the error (as Tornado's `_new_cookie`).
        let cookies: Vec<HeaderValue> = match self.headers.entry(http::header::SET_COOKIE) {
            http::header::Entry::Occupied(set) => set.remove_entry_mult().1.collect(),
            http::header::Entry::Vacant(_) => Vec::new(),
        };
        self.headers.clear();
        if let (Some(allow), 405) = (allow, error.status()) {
            self.headers.insert(http::header::ALLOW, allow);
        }
        for cookie in cookies {
            self.headers.append(http::header::SET_COOKIE, cookie);
        }
        self.headers.insert(CONTENT_TYPE, HTML_UTF8);
        self.status = error.status();
        true
    }

    /// Writes the application's error page for `error` (its `write_error` setting, or
    /// Tornado's default page); `traceback` only shows with `debug` or `serve_traceback`.
    pub fn write_error_page(&mut self, error: &HttpError, traceback: Option<&str>) {
        if !status_has_body(error.status()) {
            return; // 1xx, 204 and 304 carry no page
        }
        let traceback = traceback.filter(|_| self.app.settings.serve_traceback());
        match self.app.settings.write_error.clone() {
            Some(write) => write(self, error, traceback),
            None => self.write_default_error_page(error, traceback),
        }
    }

    /// Writes Tornado's default error page for `error` (the traceback as given).
    pub(crate) fn write_default_error_page(&mut self, error: &HttpError, traceback: Option<&str>) {
        let page = error_page(error.status(), error.reason(), traceback);
        self.body.extend_from_slice(page.as_bytes());
    }

    /// True once the response is complete (the handler may still run `on_finish`).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Sends the status, headers and the body written so far as a chunk, and waits until the
    /// socket has taken them (back-pressure). The response stays open for more writes.
    pub async fn flush(&mut self) -> Result<(), HttpError> {
        if self.finished {
            return Err(HttpError::new(500).with_log_message("flush after finish"));
        }
        let closed = client_gone;
        let writer = self.writer.as_mut().ok_or_else(closed)?;
        if !self.flushed {
            self.flushed = true;
            self.headers.remove(CONTENT_LENGTH);
            if self.app.settings.compress_response {
                compress::add_vary(&mut self.headers);
            }
            if self.app.settings.compress_response
                && compress::may_compress(self.status, &self.headers)
                && compress::accepts_gzip(self.request.header_all("accept-encoding"))
            {
                self.headers
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                self.gzip = Some(Box::default());
            }
            writer
                .start(status_code(self.status), &self.headers)
                .map_err(|_| closed())?;
        }
        if !self.body.is_empty() {
            let body = std::mem::take(&mut self.body);
            let piece = match &mut self.gzip {
                Some(gz) => Bytes::from(gz.piece(&body)),
                None => Bytes::from(body),
            };
            writer.write(piece).map_err(|_| closed())?;
        }
        writer.flush().await.map_err(|_| closed())
    }

    /// Fills `buf` with unpredictable bytes from the application's generator.
    pub(crate) fn random_bytes(&self, buf: &mut [u8]) {
        self.app.random_bytes(buf);
    }

    /// The URL of static file `path` with its version (`/static/app.css?v=…`), as
    /// Tornado's `static_url`; an error when the application serves no static files.
    pub fn static_url(&self, path: &str) -> Result<String, HttpError> {
        static_url(&self.app.settings, path).map_err(|e| HttpError::new(500).with_log_message(e))
    }

    /// Mutable access to the response headers (for handlers that build many at once).
    pub fn response_headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// Announces the length of a body sent after [`Exchange::send_head`] (its
    /// `Content-Length`, written straight into the head).
    pub fn set_content_length(&mut self, len: u64) {
        self.content_length = Some(len);
    }

    /// Sends the status and headers exactly as set, for a body the handler frames itself:
    /// the length from [`Exchange::set_content_length`] or a `Content-Length` header is kept
    /// (else the body is chunked), nothing is compressed and no `ETag` is added. The body then goes out with [`Exchange::write_file`] and
    /// [`Exchange::write_bytes`], and [`Exchange::flush`] waits for the socket.
    pub fn send_head(&mut self) -> Result<(), HttpError> {
        if self.flushed || self.finished {
            return Err(HttpError::new(500).with_log_message("send_head after the head went out"));
        }
        let writer = self.writer.as_mut().ok_or_else(client_gone)?;
        self.flushed = true;
        let status = status_code(self.status);
        match self.content_length {
            Some(len) => writer.start_sized(status, &self.headers, len),
            None => writer.start(status, &self.headers),
        }
        .map_err(|e| client_gone().with_log_message(format!("response head refused: {e}")))
    }

    /// Queues a range of an open file as the next piece of a body started by
    /// [`Exchange::send_head`]; the OS driver sends it with `sendfile(2)`.
    pub fn write_file(&mut self, range: eddy_core::file::FileRange) -> Result<(), HttpError> {
        self.body_writer()?
            .write_file(range)
            .map_err(|_| client_gone())
    }

    /// Queues `data` as the next piece of a body started by [`Exchange::send_head`],
    /// without copying it.
    pub fn write_bytes(&mut self, data: Bytes) -> Result<(), HttpError> {
        self.body_writer()?.write(data).map_err(|_| client_gone())
    }

    fn body_writer(&mut self) -> Result<&mut ResponseWriter, HttpError> {
        if !self.flushed || self.finished {
            return Err(HttpError::new(500).with_log_message("body piece before send_head"));
        }
        self.writer.as_mut().ok_or_else(client_gone)
    }

    /// Completes the response now: the body written so far is sent, with an `ETag` (and a
    /// 304 instead when the client's `If-None-Match` matches). Idempotent.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let Some(mut writer) = self.writer.take() else {
            return;
        };
        if self.flushed {
            let body = std::mem::take(&mut self.body);
            let last = match self.gzip.take() {
                Some(gz) => gz.finish(&body),
                None => body,
            };
            if !last.is_empty() {
                let _ = writer.write(Bytes::from(last));
            }
            let _ = writer.finish();
            return;
        }
        // One pass over the (few) fields instead of a hash lookup per question.
        let fields = FinishFields::scan(&self.headers);
        if self.status == 200 && matches!(*self.method(), Method::GET | Method::HEAD) {
            let computed;
            let ours = match &fields.etag {
                Some(tag) => tag.as_bytes(),
                None => {
                    computed = body_etag(&self.body);
                    &computed[..]
                }
            };
            let matched = etag_matches(ours, self.request.header_all("if-none-match"));
            if fields.etag.is_none() {
                let value = self.app.header_values.value(ours);
                self.headers
                    .insert(ETAG, value.expect("a quoted hex digest is a valid value"));
            }
            if matched {
                self.status = 304; // its body and representation fields go below
                self.headers.remove(CONTENT_LENGTH);
            }
        }
        let has_body = status_has_body(self.status);
        if !has_body {
            // Tornado's `_clear_representation_headers`: a 1xx, 204 or 304 describes no body.
            self.body.clear();
            for name in [
                CONTENT_TYPE,
                CONTENT_ENCODING,
                http::header::CONTENT_LANGUAGE,
            ] {
                self.headers.remove(name);
            }
        }
        if self.app.settings.compress_response {
            // On every response, so caches key a 304 as they keyed its 200 (as Tornado).
            compress::add_vary(&mut self.headers);
        }
        if self.app.settings.compress_response
            && has_body
            && fields.compressible
            && self.body.len() >= compress::MIN_LENGTH
            && compress::accepts_gzip(self.request.header_all("accept-encoding"))
        {
            self.body = compress::gzip(&self.body);
            self.headers
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        // A short body is copied into the output buffer anyway: cut it from the arena and
        // keep the buffer for the next exchange, instead of allocating a `Bytes` for it.
        let body = if self.body.len() <= ValueArena::PIECE_MAX {
            self.app.header_values.bytes(&self.body)
        } else {
            Bytes::from(std::mem::take(&mut self.body))
        };
        // The client may have gone; the map stays for the next exchange (see `Drop`).
        let _ = writer.respond_with(status_code(self.status), &self.headers, body);
    }

    /// Whether the head already went out (a later error can only cut the connection).
    pub(crate) fn is_flushed(&self) -> bool {
        self.flushed
    }

    /// Drops the writer without answering: the connection closes (after a flush, an error
    /// cannot be reported in-band).
    pub(crate) fn abandon(&mut self) {
        self.finished = true;
        self.writer = None;
    }

    /// The XSRF token for this response (Tornado's `xsrf_token`): the `_xsrf` cookie's
    /// secret, freshly masked; a new secret (and cookie) when the request had none.
    pub fn xsrf_token(&mut self) -> String {
        if let Some(token) = &self.xsrf_token {
            return token.clone();
        }
        let (token, new_cookie) =
            make_xsrf_token(&self.app, self.cookie(xsrf::XSRF_COOKIE), unix_now());
        self.keep_xsrf_token(token.clone(), new_cookie);
        token
    }

    /// Keeps `token` as this response's XSRF token, setting the `_xsrf` cookie a new secret
    /// needs.
    fn keep_xsrf_token(&mut self, token: String, new_cookie: Option<String>) {
        if let Some(value) = new_cookie {
            let _ = self.set_cookie(SetCookie::new(xsrf::XSRF_COOKIE, value));
        }
        self.xsrf_token = Some(token);
    }

    /// The hidden form field with the XSRF token (Tornado's `xsrf_form_html`).
    pub fn xsrf_form_html(&mut self) -> String {
        let token = self.xsrf_token();
        xsrf::form_html(&token)
    }

    /// 403 unless the `_xsrf` argument or the `X-XSRFToken`/`X-CSRFToken` header carries the
    /// secret of the `_xsrf` cookie (Tornado's `check_xsrf_cookie`).
    pub fn check_xsrf(&mut self) -> Result<(), HttpError> {
        // An empty field falls through to the headers, as Tornado's `get_argument(...) or`.
        let submitted = match self
            .arguments(xsrf::XSRF_COOKIE)
            .ok()
            .and_then(|mut v| v.pop())
            .filter(|token| !token.is_empty())
        {
            Some(token) => Some(token),
            None => self
                .request
                .header_str("x-xsrftoken")
                .or_else(|| self.request.header_str("x-csrftoken"))
                .map(str::to_owned),
        };
        let Some(submitted) = submitted else {
            return Err(HttpError::new(403).with_reason("'_xsrf' argument missing from POST"));
        };
        let cookie = self.cookie(xsrf::XSRF_COOKIE).unwrap_or("");
        if xsrf::matches(&submitted, cookie, unix_now()) {
            Ok(())
        } else {
            Err(HttpError::new(403).with_reason("XSRF cookie does not match POST argument"))
        }
    }

    /// The logged-in user (Tornado's `current_user`): what [`Exchange::set_current_user`]
    /// set, else what the `current_user` setting's hook says, asked once per request.
    pub fn current_user(&mut self) -> Option<&str> {
        if self.current_user.is_none() {
            let hook = self.app.settings.current_user.clone();
            self.current_user = Some(hook.and_then(|who| who(self)));
        }
        self.current_user.as_ref().and_then(|u| u.as_deref())
    }

    /// Sets the logged-in user for the rest of the request (Tornado's assignment to
    /// `self.current_user` in `prepare`, for a lookup the hook cannot make, such as an
    /// `.await`ed one).
    pub fn set_current_user(&mut self, user: Option<String>) {
        self.current_user = Some(user);
    }

    /// The logged-in user, or the answer for a visitor who is not (Tornado's
    /// `@authenticated`; see also [`crate::RequestHandler::AUTHENTICATED`]): GET and HEAD
    /// are redirected to `login_url?next=URI` (returning an error that only ends the
    /// handler), other methods, or any without a `login_url`, get 403.
    pub fn authenticated(&mut self) -> Result<String, HttpError> {
        let user = self.current_user().map(str::to_owned);
        self.require_user(user)
    }

    /// [`Exchange::authenticated`] for a user the handler found itself.
    pub fn require_user(&mut self, user: Option<String>) -> Result<String, HttpError> {
        if let Some(user) = user {
            return Ok(user);
        }
        let login = self.app.settings.login_url.clone();
        match login {
            Some(login) if matches!(*self.method(), Method::GET | Method::HEAD) => {
                // As Tornado: a login URL with a query of its own is used as it is; else
                // `next` is the target, or the whole URL for a login page on another site.
                let url = if login.contains('?') {
                    login
                } else {
                    let back = if login.contains("://") {
                        self.request.full_url()
                    } else {
                        self.request.target().to_owned()
                    };
                    format!("{login}?next={}", crate::escape::url_escape(&back, false))
                };
                self.redirect(&url, false)?;
                Err(HttpError::new(302)) // answered already: only ends the handler
            }
            _ => Err(HttpError::new(403)),
        }
    }

    /// Renders template `name` with `context` into the body.
    pub fn render(&mut self, name: &str, context: impl serde::Serialize) -> Result<(), HttpError> {
        let app = self.app.clone();
        let templates = app.templates.as_ref().ok_or_else(|| {
            HttpError::new(500).with_log_message("render needs the template_loader setting")
        })?;
        let context = self.template_context(context);
        let namespace = self.template_namespace();
        let page = templates.render_in(name, context, Some(namespace.clone()));
        self.adopt(&namespace);
        let page = page.map_err(|e| HttpError::new(500).with_log_message(e.to_string()))?;
        self.body.extend_from_slice(page.as_bytes());
        Ok(())
    }

    /// Renders a template given as a string into the body.
    pub fn render_string(
        &mut self,
        source: &str,
        context: impl serde::Serialize,
    ) -> Result<(), HttpError> {
        let app = self.app.clone();
        let context = self.template_context(context);
        let namespace = self.template_namespace();
        let page = match app.templates.as_ref() {
            Some(t) => t.render_string_in(source, context, Some(namespace.clone())),
            None => crate::template::Templates::new(
                crate::template::memory_loader(Default::default()),
                false,
            )
            .render_string_in(source, context, Some(namespace.clone())),
        };
        self.adopt(&namespace);
        let page = page.map_err(|e| HttpError::new(500).with_log_message(e.to_string()))?;
        self.body.extend_from_slice(page.as_bytes());
        Ok(())
    }

    /// `context` with `current_user` and `request` added (Tornado's template namespace; a
    /// name of the handler's own context wins).
    fn template_context(&mut self, context: impl serde::Serialize) -> minijinja::Value {
        let current_user = self.current_user().map(str::to_owned);
        let r = &self.request;
        let request = minijinja::context! {
            method => r.method().as_str(),
            uri => r.target(),
            path => r.path(),
            query => r.query(),
            host => r.host(),
            protocol => r.protocol().as_str(),
            remote_ip => r.remote_ip().to_string(),
            full_url => r.full_url(),
        };
        minijinja::context! {
            ..minijinja::Value::from_serialize(&context),
            ..minijinja::context! { current_user, request }
        }
    }

    /// The namespace a template rendered for this request calls into.
    fn template_namespace(&self) -> Rc<RequestNamespace> {
        Rc::new(RequestNamespace {
            app: self.app.clone(),
            xsrf_cookie: self.cookie(xsrf::XSRF_COOKIE).map(str::to_owned),
            now: unix_now(),
            xsrf: RefCell::new(self.xsrf_token.clone().map(|token| (token, None))),
        })
    }

    /// Keeps the XSRF token a render made (and sets its new cookie).
    fn adopt(&mut self, namespace: &RequestNamespace) {
        if self.xsrf_token.is_some() {
            return;
        }
        let made = namespace.xsrf.borrow_mut().take();
        if let Some((token, new_cookie)) = made {
            self.keep_xsrf_token(token, new_cookie);
        }
    }

    /// Takes the response writer for a protocol upgrade; the exchange then answers nothing.
    pub(crate) fn take_writer(&mut self) -> Option<ResponseWriter> {
        self.finished = true;
        self.writer.take()
    }

    /// A handle that tells whether the client is still connected.
    pub(crate) fn connection(&self) -> Option<eddy_core::http::ConnectionProbe> {
        self.writer.as_ref().and_then(ResponseWriter::connection)
    }

    /// The application's settings.
    pub fn settings(&self) -> &crate::Settings {
        &self.app.settings
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.app.header_maps.give(std::mem::take(&mut self.headers));
        self.app.path_args.give(std::mem::take(&mut self.path_args));
        self.app.body_buffers.give(std::mem::take(&mut self.body));
    }
}

/// Tornado's `compute_etag`: the body's SHA-1 in hex, quoted (written without `fmt`,
/// which costs more than the hash itself on a small body; `sha1` uses the CPU's SHA
/// instructions where it has them).
fn body_etag(body: &[u8]) -> [u8; 42] {
    use sha1::Digest;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha1::Sha1::digest(body);
    let mut tag = [b'"'; 42];
    for (i, b) in digest.iter().enumerate() {
        tag[1 + 2 * i] = HEX[usize::from(b >> 4)];
        tag[2 + 2 * i] = HEX[usize::from(b & 0xf)];
    }
    tag
}

/// Whether `If-None-Match` values name the entity tag `ours` (weak comparison, or `*`).
fn etag_matches<'a>(ours: &[u8], mut if_none_match: impl Iterator<Item = &'a [u8]>) -> bool {
    fn weakless(tag: &[u8]) -> &[u8] {
        tag.strip_prefix(b"W/").unwrap_or(tag)
    }
    let ours = weakless(ours);
    if_none_match.any(|value| {
        value.split(|&b| b == b',').any(|tag| {
            let tag = tag.trim_ascii();
            tag == b"*" || weakless(tag) == ours
        })
    })
}

/// What `finish` needs to know of the response fields, found in one pass.
#[derive(Default)]
struct FinishFields {
    /// The handler's own `ETag`.
    etag: Option<HeaderValue>,
    /// The type is compressible and nothing encodes or slices the body yet.
    compressible: bool,
}

impl FinishFields {
    fn scan(headers: &HeaderMap) -> FinishFields {
        let mut f = FinishFields::default();
        let (mut typed, mut encoded) = (false, false);
        for (name, value) in headers {
            if name == CONTENT_TYPE {
                typed = value.to_str().is_ok_and(compress::is_compressible);
            } else if name == ETAG {
                f.etag = Some(value.clone());
            } else if name == CONTENT_ENCODING || name == http::header::CONTENT_RANGE {
                encoded = true;
            }
        }
        f.compressible = typed && !encoded;
        f
    }
}

/// A template's view of one request (Tornado's template namespace; see [`crate::template`]).
struct RequestNamespace {
    app: Rc<AppShared>,
    /// The request's `_xsrf` cookie.
    xsrf_cookie: Option<String>,
    now: u64,
    /// The token handed out, with the `_xsrf` cookie to set when the request had none.
    xsrf: RefCell<Option<(String, Option<String>)>>,
}

impl RenderNamespace for RequestNamespace {
    fn static_url(&self, path: &str) -> Result<String, String> {
        static_url(&self.app.settings, path).map_err(str::to_owned)
    }

    fn reverse_url(&self, name: &str, args: &[&str]) -> Result<String, String> {
        self.app
            .router
            .borrow()
            .reverse_url(name, args)
            .map_err(|e| e.to_string())
    }

    fn xsrf_token(&self) -> Result<String, String> {
        let mut xsrf = self.xsrf.borrow_mut();
        let (token, _) = xsrf.get_or_insert_with(|| {
            make_xsrf_token(&self.app, self.xsrf_cookie.as_deref(), self.now)
        });
        Ok(token.clone())
    }
}

/// A freshly masked XSRF token for a request with `_xsrf` cookie `cookie`, and the cookie
/// to set when that is missing or malformed (a new secret).
fn make_xsrf_token(app: &AppShared, cookie: Option<&str>, now: u64) -> (String, Option<String>) {
    let (raw, new_cookie) = match cookie.and_then(|c| xsrf::decode(c, now)) {
        Some(raw) => (raw, None),
        None => {
            let mut token = vec![0u8; 16];
            app.random_bytes(&mut token);
            let raw = xsrf::RawToken {
                token,
                timestamp: now,
            };
            let mut key = [0u8; 4];
            app.random_bytes(&mut key);
            let cookie = xsrf::encode(&raw, key);
            (raw, Some(cookie))
        }
    };
    let mut key = [0u8; 4];
    app.random_bytes(&mut key);
    (xsrf::encode(&raw, key), new_cookie)
}

/// The versioned URL of static file `path`; an error without the `static_files` setting.
fn static_url(settings: &crate::Settings, path: &str) -> Result<String, &'static str> {
    let files = settings
        .static_files
        .as_ref()
        .ok_or("static_url needs the static_files setting")?;
    Ok(files.static_url(&settings.static_url_prefix, path))
}

/// Whether a response with `status` has a body (not 1xx, 204 or 304).
fn status_has_body(status: u16) -> bool {
    status >= 200 && status != 204 && status != 304
}

/// The error for a client that is gone (logged as 499, never sent).
fn client_gone() -> HttpError {
    HttpError::new(499).with_log_message("client went away")
}

/// The loop's wall clock, in Unix seconds.
fn unix_now() -> u64 {
    with_loop(|io| io.unix_time_secs())
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), HttpError> {
    let bad = |what: &str| {
        HttpError::new(500).with_log_message(format!("invalid header {what}: {name:?}"))
    };
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("name"))?;
    let value = HeaderValue::from_str(value).map_err(|_| bad("value"))?;
    Ok((name, value))
}

/// Argument values as text, control characters other than tab, line feed, vertical tab,
/// form feed and carriage return replaced by spaces (Tornado's `_remove_control_chars_regex`);
/// a value that is not UTF-8 is a 400.
fn decode_all<'a>(values: impl Iterator<Item = &'a Bytes>) -> Result<Vec<String>, HttpError> {
    values
        .map(|v| match String::from_utf8_lossy(v) {
            Cow::Borrowed(s) => Ok(s
                .chars()
                .map(|c| match c {
                    '\x00'..='\x08' | '\x0e'..='\x1f' => ' ',
                    c => c,
                })
                .collect()),
            Cow::Owned(_) => Err(HttpError::new(400).with_reason("Invalid unicode in argument")),
        })
        .collect()
}

/// Strips surrounding whitespace (Unicode's, as Python's `str.strip`) without a new string.
fn strip_in_place(value: &mut String) {
    let end = value.trim_end().len();
    value.truncate(end);
    let start = value.len() - value.trim_start().len();
    value.drain(..start);
}
