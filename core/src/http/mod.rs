//! HTTP/1.1 connection machines (h11-style): bytes in, events out; responses in, bytes out.
//!
//! Owns framing (RFC 9112) and message syntax; never touches a socket or the clock.
