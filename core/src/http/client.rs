//! The HTTP/1.1 client: [`ClientConn`], a pure connection machine (request bytes out,
//! response events in), and [`HttpClient`], Tornado's `simple_httpclient` glued to an IoLoop.
//!
//! Framing rules come from [`super::framing`] (one owner, shared with the server); this module
//! never performs I/O, reads a clock or resolves a host name.
//!
//! ```no_run
//! use eddy_core::http::{ClientConfig, HttpClient, HttpRequest};
//! use eddy_core::IoLoop;
//! let mut io = IoLoop::default();
//! let client = HttpClient::new(ClientConfig::default());
//! client.fetch(&mut io, HttpRequest::get("http://127.0.0.1:8888/"), |io, result| {
//!     match result {
//!         Ok(response) => println!("{} {} bytes", response.status, response.body.len()),
//!         Err(e) => eprintln!("fetch failed: {e}"),
//!     }
//!     io.stop();
//! });
//! // ... run `io` on a driver (eddy_drivers::run_sync, or the simulator) ...
//! ```

mod conn;
mod fetch;
#[doc(hidden)]
pub mod fuzz;
mod message;
mod url;

pub use conn::{
    ClientConn, ClientConnConfig, ClientEvent, RequestBody, RequestLine, RequestSendError,
    ResponseError, ResponseHead,
};
pub use fetch::{ClientConfig, ClientStats, FetchHandle, HttpClient, Resolver};
pub use message::{
    ChunkCallback, FetchResult, HeadCallback, HttpError, HttpRequest, HttpResponse, TimeoutPhase,
};
pub use url::{join_location, parse_url, Target};
