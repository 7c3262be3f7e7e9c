//! `TlsFailure`: why a TLS stream closed, as a small `Copy` value a caller can match on.
//!
//! It owns the mapping from rustls's errors to causes a user can act on; it keeps no
//! strings, so it fits in [`CloseReason`](crate::CloseReason).

use rustls::{AlertDescription, CertificateError, Error};

/// Why a TLS handshake or session failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsFailure {
    /// The handshake did not finish within its time-out.
    HandshakeTimeout,
    /// The peer's bytes are not TLS at all (e.g. plain HTTP sent to the TLS port).
    NotTls,
    /// A malformed or unexpected TLS message (the peer misbehaved).
    Protocol,
    /// The peer sent a fatal alert; the code is the TLS alert description (RFC 8446 §6).
    AlertReceived(u8),
    /// The peer's certificate was rejected.
    BadCertificate(CertificateProblem),
    /// The peer presented no certificate where one is required.
    NoCertificate,
    /// No protocol version, cipher suite, group or ALPN protocol in common.
    Incompatible,
    /// A record failed to decrypt or authenticate.
    Decrypt,
    /// Any other failure of the TLS library (time, randomness, configuration).
    Other,
}

/// Why a certificate was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertificateProblem {
    /// Not signed by a trusted root.
    UnknownIssuer,
    /// Past its validity period.
    Expired,
    /// Before its validity period.
    NotValidYet,
    /// Not issued for the name that was asked for.
    NotValidForName,
    /// Revoked by its issuer.
    Revoked,
    /// A signature in the chain does not verify.
    BadSignature,
    /// Malformed, wrong purpose, or any other reason.
    Other,
}

impl TlsFailure {
    /// Maps an error from rustls (`handshaking`: it came before the handshake finished).
    pub fn from_rustls(error: &Error, handshaking: bool) -> TlsFailure {
        match error {
            Error::InvalidMessage(_) | Error::InappropriateMessage { .. } if handshaking => {
                TlsFailure::NotTls
            }
            Error::InvalidMessage(_)
            | Error::InappropriateMessage { .. }
            | Error::InappropriateHandshakeMessage { .. }
            | Error::PeerMisbehaved(_)
            | Error::PeerSentOversizedRecord => TlsFailure::Protocol,
            Error::AlertReceived(alert) => TlsFailure::AlertReceived(u8::from(*alert)),
            Error::InvalidCertificate(e) => TlsFailure::BadCertificate(CertificateProblem::from(e)),
            Error::NoCertificatesPresented => TlsFailure::NoCertificate,
            Error::PeerIncompatible(_) | Error::NoApplicationProtocol => TlsFailure::Incompatible,
            Error::DecryptError => TlsFailure::Decrypt,
            _ => TlsFailure::Other,
        }
    }
}

impl From<&CertificateError> for CertificateProblem {
    fn from(e: &CertificateError) -> CertificateProblem {
        match e {
            CertificateError::UnknownIssuer => CertificateProblem::UnknownIssuer,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                CertificateProblem::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                CertificateProblem::NotValidYet
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                CertificateProblem::NotValidForName
            }
            CertificateError::Revoked => CertificateProblem::Revoked,
            CertificateError::BadSignature => CertificateProblem::BadSignature,
            _ => CertificateProblem::Other,
        }
    }
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFailure::HandshakeTimeout => f.write_str("TLS handshake timed out"),
            TlsFailure::NotTls => f.write_str("peer did not speak TLS (plain text on a TLS port?)"),
            TlsFailure::Protocol => f.write_str("TLS protocol violation by the peer"),
            TlsFailure::AlertReceived(code) => {
                write!(f, "peer sent TLS alert {:?}", AlertDescription::from(*code))
            }
            TlsFailure::BadCertificate(p) => write!(f, "certificate rejected: {p}"),
            TlsFailure::NoCertificate => f.write_str("peer presented no certificate"),
            TlsFailure::Incompatible => {
                f.write_str("no TLS version, cipher suite or ALPN protocol in common")
            }
            TlsFailure::Decrypt => f.write_str("TLS record failed to decrypt"),
            TlsFailure::Other => f.write_str("TLS failure"),
        }
    }
}

impl std::fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CertificateProblem::UnknownIssuer => "unknown issuer (not signed by a trusted CA)",
            CertificateProblem::Expired => "expired",
            CertificateProblem::NotValidYet => "not valid yet",
            CertificateProblem::NotValidForName => "not valid for the requested name",
            CertificateProblem::Revoked => "revoked",
            CertificateProblem::BadSignature => "bad signature",
            CertificateProblem::Other => "invalid",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_during_the_handshake_is_not_tls_and_after_it_a_protocol_error() {
        let e = Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert_eq!(TlsFailure::from_rustls(&e, true), TlsFailure::NotTls);
        assert_eq!(TlsFailure::from_rustls(&e, false), TlsFailure::Protocol);
    }

    #[test]
    fn alerts_and_certificate_errors_name_their_cause() {
        let alert = TlsFailure::from_rustls(
            &Error::AlertReceived(AlertDescription::HandshakeFailure),
            true,
        );
        assert_eq!(alert, TlsFailure::AlertReceived(40));
        assert!(alert.to_string().contains("HandshakeFailure"), "{alert}");
        let cert = TlsFailure::from_rustls(
            &Error::InvalidCertificate(CertificateError::UnknownIssuer),
            true,
        );
        assert_eq!(
            cert,
            TlsFailure::BadCertificate(CertificateProblem::UnknownIssuer)
        );
        assert!(cert.to_string().contains("unknown issuer"));
    }
}
