//! Deterministic random streams: every dataset, and every entity whose rows other datasets refer to,
//! draws from its own ChaCha8 stream derived from (seed, name, index). The same seed and scale
//! therefore give byte-identical files, and a playlist item can re-derive the catalogue row it
//! renders from the row's index instead of holding the catalogue in memory.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The random generator every dataset uses (portable and reproducible across platforms).
pub type Rng = ChaCha8Rng;

/// A stream for `name` (a dataset or entity kind) and `index` (which one), under `seed`.
pub fn stream(seed: u64, name: &str, index: u64) -> Rng {
    Rng::seed_from_u64(mix(mix(seed ^ fnv1a(name.as_bytes())) ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// FNV-1a: a stable string hash (std's hasher is randomly keyed per process).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// SplitMix64's finaliser: spreads nearby inputs over the whole range.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `len` characters of base62, like Spotify track ids and YouTube video ids.
pub fn base62_id(rng: &mut Rng, len: usize) -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}
