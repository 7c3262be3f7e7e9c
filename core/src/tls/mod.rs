//! TLS on rustls as a layer of [`Stream`](crate::Stream): Tornado's `SSLIOStream` and
//! `ssl_options`, sans-IO.
//!
//! A stream started with [`IoLoop::start_tls`](crate::IoLoop::start_tls) keeps its plaintext
//! API (reads, writes, flush, back-pressure, `max_buffer_size`) while the driver moves only
//! ciphertext; the handshake runs on the same readiness, buffers and timers. This module
//! never touches a socket or a system clock: time is the loop's, randomness is ring's or
//! the simulator's seed (see [`seed_crypto`]).
//!
//! ```no_run
//! # fn demo(io: &mut eddy_core::IoLoop, chain: &[u8], key: &[u8]) {
//! use eddy_core::tls::TlsAcceptor;
//! let tls = TlsAcceptor::from_pem(chain, key).expect("certificate and key");
//! let addr = "127.0.0.1:8443".parse().unwrap();
//! io.listen(addr, Default::default(), move |io, stream, _peer| {
//!     io.start_tls(stream, tls.session()).ok();
//!     io.write(stream, &b"hello over TLS\n"[..]).ok();
//! });
//! # }
//! ```

mod config;
mod crypto;
mod failure;
pub mod fixture;
pub mod fuzz_entry;
mod layer;

pub use config::{
    certificates_from_pem, private_key_from_pem, TlsAcceptor, TlsAcceptorBuilder, TlsConfigError,
    TlsConnector, TlsConnectorBuilder, TlsSession, DEFAULT_HANDSHAKE_TIMEOUT,
};
pub(crate) use crypto::set_loop_time;
pub use crypto::{crypto_provider, crypto_seeded, loop_time, seed_crypto};
pub use failure::{CertificateProblem, TlsFailure};
pub use layer::{TlsLayer, TLS_OUT_HIGH_WATER};

#[cfg(test)]
mod tests;
