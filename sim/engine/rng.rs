//! The RNG tree: one root seed per run, one named ChaCha8 stream per consumer.
//!
//! A stream's seed is a hash of the root seed and the stream's label alone, so adding a consumer
//! (a new service, a new fault) leaves every other stream's draws unchanged. ChaCha8 is named
//! after its algorithm and is portable across platforms and rand versions, unlike `StdRng`.
//!
//! Invariant: nothing in `sim` draws randomness except through a stream from this tree.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator every consumer gets.
pub type SimRng = ChaCha8Rng;

/// The root of a run's randomness.
#[derive(Clone, Debug)]
pub struct RngTree {
    seed: u64,
}

/// FNV-1a over the label, then SplitMix64 finalization with the seed mixed in. Stable by
/// construction: it depends on nothing but the bytes.
fn mix(seed: u64, label: &str, lane: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in label.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = seed ^ hash.rotate_left(17) ^ lane.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RngTree {
    pub fn new(seed: u64) -> Self {
        RngTree { seed }
    }

    /// The run's root seed, printed in every report so a run can be repeated.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The stream for one consumer, e.g. `"workload/agno-coordinator/arrivals"`.
    pub fn stream(&self, label: &str) -> SimRng {
        let mut key = [0u8; 32];
        for (lane, chunk) in key.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&mix(self.seed, label, lane as u64).to_le_bytes());
        }
        ChaCha8Rng::from_seed(key)
    }

    /// A subtree for a component that names its own streams (`child("mesh").stream("lb")`
    /// equals `stream("mesh/lb")`).
    pub fn child(&self, label: &str) -> ChildTree {
        ChildTree {
            root: self.clone(),
            prefix: label.to_string(),
        }
    }
}

/// A named branch of an [`RngTree`].
#[derive(Clone, Debug)]
pub struct ChildTree {
    root: RngTree,
    prefix: String,
}

impl ChildTree {
    pub fn stream(&self, label: &str) -> SimRng {
        self.root.stream(&format!("{}/{}", self.prefix, label))
    }
}
