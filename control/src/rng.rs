//! Control's randomness: ephemeral keys, sender indices, cookie secrets and the nonce of
//! every cookie reply.
//!
//! Under a handshake flood control draws a 24-byte nonce per cookie reply. From the kernel
//! (getrandom) that is a system call per refused message; a ChaCha20 generator seeded from the
//! kernel and reseeded from it every [`RESEED_AFTER`] bytes (rand's `ThreadRng` design, the
//! kernel's own CSPRNG is ChaCha20 too) gives the same guarantee without it.

use rand::rngs::adapter::ReseedingRng;
use rand::SeedableRng;
use rand_chacha::ChaCha20Core;
use rand_core::OsRng;

/// Bytes drawn between reseeds from the kernel: rand's `ThreadRng` figure.
pub const RESEED_AFTER: u64 = 64 << 10;

/// The generator control runs on outside tests. Fails only where the kernel's random source
/// does (getrandom refused).
pub fn system() -> Result<super::daemon::Rng, rand_core::Error> {
    let core = ChaCha20Core::from_rng(OsRng)?;
    Ok(Box::new(ReseedingRng::new(core, RESEED_AFTER, OsRng)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::RngCore;

    /// Two generators seeded from the kernel never agree; one never repeats a block.
    #[test]
    fn draws_differ_between_generators_and_draws() {
        let (mut a, mut b) = (system().unwrap(), system().unwrap());
        let (mut x, mut y, mut z) = ([0u8; 32], [0u8; 32], [0u8; 32]);
        a.fill_bytes(&mut x);
        b.fill_bytes(&mut y);
        a.fill_bytes(&mut z);
        assert_ne!(x, y);
        assert_ne!(x, z);
        assert_ne!(x, [0; 32]);
    }
}
