//! TLS configurations: [`TlsAcceptor`] (Tornado's `ssl_options` for servers) and
//! [`TlsConnector`] (clients), built from PEM bytes.
//!
//! It owns certificate loading, SNI selection and verification policy; it never reads a
//! file (callers pass the bytes) and never enables an insecure client by default.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::crypto::{crypto_provider, loop_time};
use crate::time::Duration;

/// The handshake time-out of a new configuration.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The certificate PEM holds no `CERTIFICATE` block.
    #[error("no certificate found in the PEM data")]
    NoCertificate,
    /// The key PEM holds no private key (PKCS#8, PKCS#1 or SEC1).
    #[error("no private key found in the PEM data")]
    NoKey,
    /// A PEM block could not be decoded.
    #[error("malformed PEM: {0}")]
    Pem(String),
    /// A server configuration has no certificate at all.
    #[error("a TLS server needs at least one certificate")]
    NoServerCertificate,
    /// A host name is not a valid DNS name or IP address.
    #[error("invalid server name {0:?}")]
    BadServerName(String),
    /// rustls refused the material (e.g. the key does not match the certificate).
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

/// TLS 1.3 and 1.2, the versions a configuration offers unless told otherwise.
const ALL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
/// TLS 1.3 only.
const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
/// TLS 1.2 only.
const TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// The static version list equal to `versions` (all of them for anything else).
fn version_list(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match versions {
        [v] if v.version == rustls::ProtocolVersion::TLSv1_3 => TLS13_ONLY,
        [v] if v.version == rustls::ProtocolVersion::TLSv1_2 => TLS12_ONLY,
        _ => ALL_VERSIONS,
    }
}

/// Parses every certificate in a PEM chain, leaf first.
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate);
    }
    Ok(certs)
}

/// Parses the first private key in a PEM file.
pub fn private_key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsConfigError::NoKey,
        other => TlsConfigError::Pem(other.to_string()),
    })
}

fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, TlsConfigError> {
    let chain = certificates_from_pem(chain_pem)?;
    let key = private_key_from_pem(key_pem)?;
    let signer = crypto_provider().key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Arc::new(certified))
}

fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates_from_pem(pem)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// Server-side TLS (Tornado's `ssl_options`): certificates by SNI name, client-certificate
/// policy, ALPN, handshake time-out. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<rustls::ServerConfig>,
    handshake_timeout: Option<Duration>,
}

impl TlsAcceptor {
    /// One certificate chain and key (PEM), no client certificates, ALPN `http/1.1`.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, TlsConfigError> {
        TlsAcceptor::builder()
            .certificate(chain_pem, key_pem)
            .build()
    }

    /// A builder for several certificates, client verification or other protocols.
    pub fn builder() -> TlsAcceptorBuilder {
        TlsAcceptorBuilder {
            default: None,
            by_name: Vec::new(),
            client_ca: None,
            alpn: vec![b"http/1.1".to_vec()],
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            versions: ALL_VERSIONS,
            error: None,
        }
    }

    /// The rustls configuration, for inspection or for use elsewhere.
    pub fn config(&self) -> &Arc<rustls::ServerConfig> {
        &self.config
    }

    /// A session for one accepted stream, for [`IoLoop::start_tls`](crate::IoLoop::start_tls).
    pub fn session(&self) -> TlsSession {
        TlsSession {
            side: Side::Server(self.config.clone()),
            handshake_timeout: self.handshake_timeout,
        }
    }
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("alpn", &self.config.alpn_protocols)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TlsAcceptor {
    fn eq(&self, other: &TlsAcceptor) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
            && self.handshake_timeout == other.handshake_timeout
    }
}

impl Eq for TlsAcceptor {}

/// Builds a [`TlsAcceptor`]; the first error met is reported by [`TlsAcceptorBuilder::build`].
pub struct TlsAcceptorBuilder {
    default: Option<Arc<CertifiedKey>>,
    by_name: Vec<(String, Arc<CertifiedKey>)>,
    client_ca: Option<(RootCertStore, bool)>,
    alpn: Vec<Vec<u8>>,
    handshake_timeout: Option<Duration>,
    versions: &'static [&'static rustls::SupportedProtocolVersion],
    error: Option<TlsConfigError>,
}

impl TlsAcceptorBuilder {
    fn keep<T>(&mut self, r: Result<T, TlsConfigError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    /// The certificate for clients that send no SNI name or one no other certificate has.
    pub fn certificate(mut self, chain_pem: &[u8], key_pem: &[u8]) -> TlsAcceptorBuilder {
        self.default = self.keep(certified_key(chain_pem, key_pem));
        self
    }

    /// A certificate chosen when the client asks for `name` by SNI (case-insensitive).
    pub fn sni_certificate(
        mut self,
        name: &str,
        chain_pem: &[u8],
        key_pem: &[u8],
    ) -> TlsAcceptorBuilder {
        if let Some(key) = self.keep(certified_key(chain_pem, key_pem)) {
            self.by_name.push((name.to_ascii_lowercase(), key));
        }
        self
    }

    /// Verifies client certificates against the CAs in `ca_pem`; `required` refuses clients
    /// that present none, otherwise they are let in unauthenticated.
    pub fn client_ca(mut self, ca_pem: &[u8], required: bool) -> TlsAcceptorBuilder {
        if let Some(roots) = self.keep(roots_from_pem(ca_pem)) {
            self.client_ca = Some((roots, required));
        }
        self
    }

    /// The ALPN protocols offered, most preferred first (default: `http/1.1`).
    pub fn alpn(mut self, protocols: &[&[u8]]) -> TlsAcceptorBuilder {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Restricts the protocol versions (default: TLS 1.3 and 1.2).
    pub fn versions(
        mut self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> TlsAcceptorBuilder {
        self.versions = version_list(versions);
        self
    }

    /// How long a handshake may take before the stream closes (`None`: no limit).
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> TlsAcceptorBuilder {
        self.handshake_timeout = timeout;
        self
    }

    /// The acceptor, or the first problem with the material given.
    pub fn build(self) -> Result<TlsAcceptor, TlsConfigError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.default.is_none() && self.by_name.is_empty() {
            return Err(TlsConfigError::NoServerCertificate);
        }
        let provider = crypto_provider();
        let builder = rustls::ServerConfig::builder_with_details(provider.clone(), loop_time())
            .with_protocol_versions(self.versions)?;
        let builder = match self.client_ca {
            None => builder.with_no_client_auth(),
            Some((roots, required)) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsConfigError::Rustls(rustls::Error::General(e.to_string())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let resolver = SniResolver {
            by_name: self.by_name.into_iter().collect(),
            default: self.default,
        };
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = self.alpn;
        Ok(TlsAcceptor {
            config: Arc::new(config),
            handshake_timeout: self.handshake_timeout,
        })
    }
}

/// Picks the certificate by the client's SNI name, else the default one.
#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|name| self.by_name.get(&name.to_ascii_lowercase()))
            .or(self.default.as_ref())
            .cloned()
    }
}

/// Client-side TLS: trusted roots (webpki's by default), an optional client certificate,
/// ALPN. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    handshake_timeout: Option<Duration>,
}

impl TlsConnector {
    /// Verifies servers against the Mozilla roots shipped in `webpki-roots`.
    pub fn webpki_roots() -> TlsConnector {
        TlsConnector::builder()
            .build()
            .expect("the built-in roots always build")
    }

    /// Verifies servers against the CA certificates in `ca_pem` only (`--cacert`).
    pub fn from_ca_pem(ca_pem: &[u8]) -> Result<TlsConnector, TlsConfigError> {
        TlsConnector::builder().ca_pem(ca_pem).build()
    }

    /// A builder for other roots, a client certificate or an explicit opt-out of verification.
    pub fn builder() -> TlsConnectorBuilder {
        TlsConnectorBuilder {
            roots: None,
            verify: true,
            client_cert: None,
            alpn: vec![b"http/1.1".to_vec()],
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            versions: ALL_VERSIONS,
            error: None,
        }
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<rustls::ClientConfig> {
        &self.config
    }

    /// A session to `server_name` (a DNS name, sent as SNI and verified; or an IP address).
    pub fn session(&self, server_name: &str) -> Result<TlsSession, TlsConfigError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsConfigError::BadServerName(server_name.to_owned()))?;
        Ok(TlsSession {
            side: Side::Client(self.config.clone(), name),
            handshake_timeout: self.handshake_timeout,
        })
    }
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("alpn", &self.config.alpn_protocols)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TlsConnector {
    fn eq(&self, other: &TlsConnector) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for TlsConnector {}

/// Builds a [`TlsConnector`].
pub struct TlsConnectorBuilder {
    roots: Option<RootCertStore>,
    verify: bool,
    client_cert: Option<Arc<CertifiedKey>>,
    alpn: Vec<Vec<u8>>,
    handshake_timeout: Option<Duration>,
    versions: &'static [&'static rustls::SupportedProtocolVersion],
    error: Option<TlsConfigError>,
}

impl TlsConnectorBuilder {
    /// Trusts the CA certificates in `ca_pem` instead of the built-in roots.
    pub fn ca_pem(mut self, ca_pem: &[u8]) -> TlsConnectorBuilder {
        match roots_from_pem(ca_pem) {
            Ok(roots) => self.roots = Some(roots),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Presents this certificate chain and key when the server asks for one.
    pub fn client_certificate(mut self, chain_pem: &[u8], key_pem: &[u8]) -> TlsConnectorBuilder {
        match certified_key(chain_pem, key_pem) {
            Ok(k) => self.client_cert = Some(k),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// **Insecure**: accepts any server certificate (signatures are still checked). Only
    /// for tests and explicit user opt-outs (`--insecure`).
    pub fn danger_accept_invalid_certificates(mut self, accept: bool) -> TlsConnectorBuilder {
        self.verify = !accept;
        self
    }

    /// The ALPN protocols offered (default: `http/1.1`).
    pub fn alpn(mut self, protocols: &[&[u8]]) -> TlsConnectorBuilder {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Restricts the protocol versions (default: TLS 1.3 and 1.2).
    pub fn versions(
        mut self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> TlsConnectorBuilder {
        self.versions = version_list(versions);
        self
    }

    /// How long a handshake may take (`None`: no limit beyond the caller's own).
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> TlsConnectorBuilder {
        self.handshake_timeout = timeout;
        self
    }

    /// The connector, or the first problem with the material given.
    pub fn build(self) -> Result<TlsConnector, TlsConfigError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let provider = crypto_provider();
        let builder = rustls::ClientConfig::builder_with_details(provider.clone(), loop_time())
            .with_protocol_versions(self.versions)?;
        let builder = if self.verify {
            let roots = self.roots.unwrap_or_else(|| RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            });
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        };
        let mut config = match self.client_cert {
            Some(key) => builder.with_client_cert_resolver(Arc::new(ClientCertificate(key))),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        Ok(TlsConnector {
            config: Arc::new(config),
            handshake_timeout: self.handshake_timeout,
        })
    }
}

/// The client certificate, presented whenever the server asks.
#[derive(Debug)]
struct ClientCertificate(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The explicit opt-out: any certificate is accepted, handshake signatures still verified.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Which side a [`TlsSession`] plays, with what it needs to start.
#[derive(Clone)]
pub(crate) enum Side {
    Server(Arc<rustls::ServerConfig>),
    Client(Arc<rustls::ClientConfig>, ServerName<'static>),
}

/// One stream's TLS, not yet started: hand it to [`IoLoop::start_tls`](crate::IoLoop::start_tls).
#[derive(Clone)]
pub struct TlsSession {
    pub(crate) side: Side,
    pub(crate) handshake_timeout: Option<Duration>,
}

impl TlsSession {
    /// The handshake time-out this session will run with.
    pub fn handshake_timeout(&self) -> Option<Duration> {
        self.handshake_timeout
    }

    /// The rustls connection (created when the loop starts it, under the loop's clock).
    pub(crate) fn connect(self) -> Result<rustls::Connection, rustls::Error> {
        Ok(match self.side {
            Side::Server(config) => rustls::ServerConnection::new(config)?.into(),
            Side::Client(config, name) => rustls::ClientConnection::new(config, name)?.into(),
        })
    }
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = match &self.side {
            Side::Server(_) => "server".to_owned(),
            Side::Client(_, name) => format!("client to {}", name.to_str()),
        };
        f.debug_struct("TlsSession")
            .field("side", &side)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}
