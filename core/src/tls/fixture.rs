//! A fixed Ed25519 test PKI (a CA and a server certificate for `localhost`, `127.0.0.1` and
//! the simulator's first host, `10.0.0.1`), valid from 1970 to 4000.
//!
//! For tests, simulations, fuzzing and benchmarks only: the private key is public. Fixed
//! bytes keep simulated traces identical across processes, and Ed25519 signs
//! deterministically, so a seed still gives one trace.

/// The CA certificate (PEM) that signed [`SERVER_CHAIN_PEM`].
pub const CA_PEM: &str = include_str!("fixture/ca.pem");
/// The server certificate chain (PEM).
pub const SERVER_CHAIN_PEM: &str = include_str!("fixture/server.pem");
/// The server's private key (PEM, PKCS#8). Public: never use it outside tests.
pub const SERVER_KEY_PEM: &str = include_str!("fixture/server.key");

/// An acceptor presenting the fixture certificate.
pub fn acceptor() -> super::TlsAcceptor {
    super::TlsAcceptor::from_pem(SERVER_CHAIN_PEM.as_bytes(), SERVER_KEY_PEM.as_bytes())
        .expect("the fixture parses")
}

/// A connector that trusts only the fixture CA.
pub fn connector() -> super::TlsConnector {
    super::TlsConnector::from_ca_pem(CA_PEM.as_bytes()).expect("the fixture parses")
}
