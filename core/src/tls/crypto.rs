//! Where TLS gets its randomness and time: ring's provider on the OS, or draws from a seeded
//! generator (the simulator's), and the loop's clock in both.
//!
//! It owns the per-thread crypto seed and the loop time rustls reads; it never reads a
//! system clock. Only this module decides which [`CryptoProvider`] a configuration gets.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, SecureRandom, SharedSecret, SupportedKxGroup,
};
use rustls::pki_types::UnixTime;
use rustls::time_provider::TimeProvider;
use rustls::{Error, NamedGroup};

thread_local! {
    /// Unix time in nanoseconds of the loop that is driving TLS on this thread right now.
    static LOOP_UNIX_NANOS: Cell<u64> = const { Cell::new(0) };
    /// The seeded generator, when this thread runs a simulation.
    static SEEDED: RefCell<Option<ChaCha20Rng>> = const { RefCell::new(None) };
}

/// Makes TLS on this thread draw its randomness from a generator seeded with `seed` (the
/// simulator calls this per world), or from the OS again with `None`.
///
/// Configurations built while a seed is set use a provider whose key exchange (X25519 only)
/// and random bytes come from that generator, so a simulated handshake is a function of the
/// seed. Use Ed25519 certificates there: ECDSA and RSA-PSS signing in ring draw from the OS.
pub fn seed_crypto(seed: Option<u64>) {
    SEEDED.with(|s| *s.borrow_mut() = seed.map(ChaCha20Rng::seed_from_u64));
}

/// True while this thread's TLS randomness is seeded.
pub fn crypto_seeded() -> bool {
    SEEDED.with(|s| s.borrow().is_some())
}

/// The provider new configurations use: ring's, or the seeded one (see [`seed_crypto`]).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    let ring = rustls::crypto::ring::default_provider();
    if !crypto_seeded() {
        return Arc::new(ring);
    }
    Arc::new(CryptoProvider {
        kx_groups: vec![&SEEDED_X25519],
        secure_random: &SEEDED_RANDOM,
        ..ring
    })
}

/// The time provider of every configuration: the clock of the loop driving the handshake.
pub fn loop_time() -> Arc<dyn TimeProvider> {
    Arc::new(LoopTime)
}

/// Called by the loop before it hands rustls any work, so certificate checks use loop time.
pub(crate) fn set_loop_time(unix_nanos: u64) {
    LOOP_UNIX_NANOS.with(|t| t.set(unix_nanos));
}

/// Fills `out` from the seeded generator, or from ring's when unseeded.
fn fill(out: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
    let seeded = SEEDED.with(|s| match s.borrow_mut().as_mut() {
        Some(rng) => {
            rng.fill_bytes(out);
            true
        }
        None => false,
    });
    if seeded {
        return Ok(());
    }
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(out)
}

#[derive(Debug)]
struct LoopTime;

impl TimeProvider for LoopTime {
    fn current_time(&self) -> Option<UnixTime> {
        let nanos = LOOP_UNIX_NANOS.with(Cell::get);
        Some(UnixTime::since_unix_epoch(
            core::time::Duration::from_nanos(nanos),
        ))
    }
}

#[derive(Debug)]
struct SeededRandom;

static SEEDED_RANDOM: SeededRandom = SeededRandom;

impl SecureRandom for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        fill(buf)
    }
}

/// X25519 whose private key is drawn from [`fill`] (ring's key exchange takes only the OS).
#[derive(Debug)]
struct SeededX25519;

static SEEDED_X25519: SeededX25519 = SeededX25519;

impl SupportedKxGroup for SeededX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mut bytes = [0u8; 32];
        fill(&mut bytes).map_err(|_| Error::FailedToGetRandomBytes)?;
        let secret = x25519_dalek::StaticSecret::from(bytes);
        let public = x25519_dalek::PublicKey::from(&secret);
        Ok(Box::new(X25519Exchange { secret, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

struct X25519Exchange {
    secret: x25519_dalek::StaticSecret,
    public: x25519_dalek::PublicKey,
}

impl ActiveKeyExchange for X25519Exchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, Error> {
        let peer: [u8; 32] = peer_pub_key
            .try_into()
            .map_err(|_| Error::from(rustls::PeerMisbehaved::InvalidKeyShare))?;
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer));
        if !shared.was_contributory() {
            // An all-zero result: the peer sent a low-order point (RFC 7748 §6.1).
            return Err(rustls::PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared.as_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        self.public.as_bytes()
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_random_bytes_and_none_gives_os_bytes() {
        let draw = || {
            let mut b = [0u8; 16];
            SEEDED_RANDOM.fill(&mut b).unwrap();
            b
        };
        seed_crypto(Some(7));
        let a = draw();
        seed_crypto(Some(7));
        assert_eq!(a, draw());
        seed_crypto(Some(8));
        assert_ne!(a, draw());
        seed_crypto(None);
        assert!(!crypto_seeded());
        assert_ne!(draw(), draw(), "OS randomness differs per draw");
    }

    #[test]
    fn seeded_x25519_agrees_with_itself() {
        seed_crypto(Some(1));
        let a = SEEDED_X25519.start().unwrap();
        let b = SEEDED_X25519.start().unwrap();
        let (a_pub, b_pub) = (a.pub_key().to_vec(), b.pub_key().to_vec());
        let s1 = a.complete(&b_pub).unwrap();
        let s2 = b.complete(&a_pub).unwrap();
        assert_eq!(s1.secret_bytes(), s2.secret_bytes());
        assert!(SEEDED_X25519.start().unwrap().complete(&[0u8; 32]).is_err());
        seed_crypto(None);
    }
}
