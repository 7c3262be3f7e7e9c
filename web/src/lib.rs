//! eddy-web: Tornado's `tornado.web` on eddy — an [`Application`] of routes to
//! [`RequestHandler`]s, run as async tasks on eddy-core's `HttpServer`.
//!
//! ```
//! use eddy_web::{Application, Exchange, HttpError, RequestHandler, Route};
//!
//! struct MainPage;
//! impl RequestHandler for MainPage {
//!     async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
//!         ex.write("Hello, world");
//!         Ok(())
//!     }
//! }
//!
//! let app = Application::new(vec![Route::new(r"/", || MainPage)]);
//! let mut client = eddy_web::testing::TestClient::new(app);
//! let response = client.get("/");
//! assert_eq!(response.status, 200);
//! assert_eq!(response.text(), "Hello, world");
//! ```
//!
//! Like eddy-core it touches no socket and no file: the same application runs on the OS
//! drivers (`Application::into_server`, then listen) and in-process on the simulator
//! ([`testing::TestClient`]), deterministically and optionally under faults.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod application;
pub mod compress;
pub mod cookie;
pub mod directory;
mod error;
pub mod escape;
mod exchange;
#[doc(hidden)]
pub mod fuzz_entry;
mod handler;
pub mod metrics;
mod pool;
pub mod range;
pub mod routing;
mod run_pattern;
pub mod signed;
pub mod static_files;
pub mod template;
pub mod testing;
pub mod websocket;
pub mod xsrf;

pub use application::{
    Application, CurrentUserFn, LogFunction, RequestLog, Route, Settings, WriteErrorFn,
};
pub use error::{error_page, reason_phrase, HttpError};
pub use exchange::Exchange;
pub use handler::RequestHandler;
pub use metrics::Metrics;
pub use routing::RouteError;
pub use static_files::{StaticFileHandler, StaticFiles};
pub use websocket::{websocket_connect, WebSocketHandler};
