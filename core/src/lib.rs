//! eddy-core: Tornado's IOLoop, IOStream and HTTP/1.1 machinery as pure state machines.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod http;
