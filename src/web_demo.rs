//! The demo web application (`examples/web.rs`): every feature of `eddy::web` on one
//! route each. Built here, in the library, so the tests drive exactly the app the example
//! serves — through the simulated test client and over real sockets.

use std::collections::BTreeMap;

use eddy_core::http::form::Arguments;
use eddy_core::task::sleep;
use eddy_core::Duration;
use eddy_web::signed::SigningKeys;
use eddy_web::template::memory_loader;
use eddy_web::{Application, Exchange, HttpError, RequestHandler, Route, Settings};
use http::Method;
use sha2::{Digest, Sha256};

/// The largest `ms` `/sleep` accepts.
pub const MAX_SLEEP_MS: u64 = 5000;
/// The largest `n` `/stream` accepts.
pub const MAX_STREAM_LINES: u64 = 1000;

/// The demo application, signing cookies with `cookie_secret`.
pub fn app(cookie_secret: &[u8]) -> Application {
    let mut templates = BTreeMap::new();
    templates.insert(
        "greet.html".to_string(),
        include_str!("web_demo/greet.html").to_string(),
    );
    let settings = Settings {
        cookie_secret: Some(SigningKeys::Single(cookie_secret.to_vec())),
        xsrf_cookies: true,
        compress_response: true,
        login_url: Some("/login".into()),
        template_loader: Some(memory_loader(templates)),
        // Who is logged in: the signed `user` cookie `/login` sets.
        current_user: Some(std::sync::Arc::new(|ex: &Exchange| {
            ex.signed_cookie("user")
        })),
        ..Settings::default()
    };
    Application::try_new(
        vec![
            Route::new("/", || Home),
            Route::new(r"/user/(\d+)", || User).named("user"),
            Route::new("/greet", || Greet),
            Route::new("/args", || Args),
            Route::new("/xsrf", || Xsrf),
            Route::new("/counter", || Counter),
            Route::new("/login", || Login),
            Route::new("/private", || Private),
            Route::new("/old", || Old),
            Route::new("/sleep", || Sleep),
            Route::new("/stream", || Stream),
            Route::new("/panic", || Panic),
            Route::new(r"/status/(\d+)", || Status),
            Route::new("/upload", || Upload),
            Route::new("/reverse", || Reverse),
            Route::websocket("/ws", || WsEcho),
        ],
        settings,
    )
    .expect("the demo's routes are valid")
}

/// A number argument no larger than `max`: else 400.
fn bounded(ex: &mut Exchange, name: &str, max: u64) -> Result<u64, HttpError> {
    let value = ex.argument(name)?;
    match value.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(HttpError::new(400).with_reason(format!("{name} must be 0..={max}"))),
    }
}

struct Home;
impl RequestHandler for Home {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.write("Hello, world");
        Ok(())
    }
}

struct User;
impl RequestHandler for User {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let id: u64 = ex
            .path_arg(0)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| HttpError::new(404))?;
        ex.write_json(&serde_json::json!({ "id": id, "name": format!("user {id}") }))
    }
}

struct Greet;
impl RequestHandler for Greet {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let name = ex.argument("name")?;
        ex.render("greet.html", serde_json::json!({ "name": name }))
    }
}

/// Arguments as `{name: [values]}`.
fn to_json(args: &Arguments) -> serde_json::Value {
    let mut map: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in args.iter() {
        map.entry(name)
            .or_default()
            .push(String::from_utf8_lossy(value).into_owned());
    }
    serde_json::json!(map)
}

struct Args;
impl RequestHandler for Args {
    const METHODS: &'static [Method] = &[Method::GET, Method::HEAD, Method::POST];
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let query = to_json(&ex.all_query_arguments());
        let body = to_json(ex.all_body_arguments()?);
        ex.write_json(&serde_json::json!({ "query": query, "body": body }))
    }
    async fn post(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        self.get(ex).await
    }
}

struct Xsrf;
impl RequestHandler for Xsrf {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let token = ex.xsrf_token();
        ex.set_header("content-type", "text/plain; charset=UTF-8")?;
        ex.write(token);
        Ok(())
    }
}

struct Counter;
impl RequestHandler for Counter {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let seen: u64 = ex
            .signed_cookie("count")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let count = seen + 1;
        ex.set_signed_cookie("count", &count.to_string())?;
        ex.write(count.to_string());
        Ok(())
    }
}

/// True for a path on this site (`/x`), not another origin (`//evil`, `/\evil`, `http:`).
fn is_local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control())
}

struct Login;
impl RequestHandler for Login {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.set_signed_cookie("user", "demo")?;
        let next = ex.argument("next").unwrap_or_default();
        let target = if is_local_path(&next) {
            next
        } else {
            "/".into()
        };
        ex.redirect(&target, false)
    }
}

struct Private;
impl RequestHandler for Private {
    const AUTHENTICATED: &'static [Method] = &[Method::GET];
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let user = ex.current_user().unwrap_or_default().to_owned();
        ex.write(format!("Hello, {user}"));
        Ok(())
    }
}

struct Old;
impl RequestHandler for Old {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.redirect("/", true)
    }
}

struct Sleep;
impl RequestHandler for Sleep {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let ms = bounded(ex, "ms", MAX_SLEEP_MS)?;
        sleep(Duration::from_millis(ms)).await;
        ex.write(format!("slept {ms}"));
        Ok(())
    }
}

struct Stream;
impl RequestHandler for Stream {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let n = bounded(ex, "n", MAX_STREAM_LINES)?;
        ex.set_header("content-type", "text/plain; charset=UTF-8")?;
        for i in 0..n {
            ex.write(format!("chunk {i}\n"));
            ex.flush().await?;
        }
        Ok(())
    }
}

struct Panic;
impl RequestHandler for Panic {
    async fn get(&mut self, _ex: &mut Exchange) -> Result<(), HttpError> {
        panic!("the /panic route panics on purpose");
    }
}

struct Status;
impl RequestHandler for Status {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let code = ex
            .path_arg(0)
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|c| (100..=999).contains(c))
            .ok_or_else(|| HttpError::new(400))?;
        ex.send_error(code);
        Ok(())
    }
}

/// Largest upload `/upload` takes.
pub const MAX_UPLOAD: u64 = 1 << 30;

struct Upload;
impl RequestHandler for Upload {
    const METHODS: &'static [Method] = &[Method::PUT];
    const CHECK_XSRF: bool = false; // an API for non-browser clients (curl --upload-file)
    const STREAMED_BODY_LIMIT: Option<u64> = Some(MAX_UPLOAD);
    async fn put(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let mut hasher = Sha256::new();
        let mut bytes = 0usize;
        if let Some(mut body) = ex.take_body_stream() {
            while let Some(piece) = body.chunk().await {
                let piece =
                    piece.map_err(|e| HttpError::new(400).with_log_message(e.to_string()))?;
                bytes += piece.len();
                hasher.update(&piece);
            }
        }
        let hex: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        ex.write_json(&serde_json::json!({ "bytes": bytes, "sha256": hex }))
    }
}

struct Reverse;
impl RequestHandler for Reverse {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let url = ex.reverse_url("user", &["42"])?;
        ex.set_header("content-type", "text/plain; charset=UTF-8")?;
        ex.write(url);
        Ok(())
    }
}

/// `/ws`: a WebSocket echo (text as text, binary as binary) at the default limits.
struct WsEcho;
impl eddy_web::WebSocketHandler for WsEcho {
    async fn on_message(
        &mut self,
        ws: &eddy_web::websocket::WebSocket,
        message: eddy_web::websocket::Message,
    ) {
        let _ = ws.send(message).await; // waits while the client reads slowly
    }
}

#[cfg(test)]
mod tests {
    use super::is_local_path;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        for ok in ["/", "/private", "/a?b=c"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "",
            "http://evil",
            "//evil.com",
            "/\\evil.com",
            "evil",
            "/x\r\nSet-Cookie:",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }
}
