//! # reclaim-workload
//!
//! What the CLI's `simulate` and the benchmarks share, so that their figures are computed the
//! same way: the synthetic chain they write ([`ChainShape`]: incompressible blocks cut into
//! parts, validator-set and params changes, responses) and the commit-latency percentiles they
//! report ([`Latency`]).

#![deny(missing_docs)]

use rand::rngs::SmallRng;
use rand::{Rng, RngCore};
use reclaim_cometbft::{Block, HeightState};
use serde::Serialize;

/// Incompressible bytes.
pub fn random_bytes(rng: &mut SmallRng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// The shape of every height of a synthetic chain. All sizes are bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChainShape {
    /// Mean size of a block's parts together.
    pub block_bytes: usize,
    /// Relative jitter of the block size: each block is `block_bytes × (1 ± jitter)`, uniform
    /// (0: every block the same size).
    pub block_jitter: f64,
    /// Size of a full block part (CometBFT's is 64 KiB); the last part holds the rest.
    pub part_bytes: usize,
    /// Block meta.
    pub meta_bytes: usize,
    /// Commit and seen commit, each.
    pub commit_bytes: usize,
    /// A full validator set.
    pub validators_bytes: usize,
    /// The validator set changes at the first height and every this many heights (at least 1).
    pub validators_every: u64,
    /// Consensus params.
    pub params_bytes: usize,
    /// The params change at the first height and every this many heights (0: never again).
    pub params_every: u64,
    /// A finalize-block response.
    pub response_bytes: usize,
}

impl ChainShape {
    /// The block at `height`.
    pub fn block(&self, rng: &mut SmallRng, height: u64) -> Block {
        let size = if self.block_jitter == 0.0 {
            self.block_bytes
        } else {
            let factor = 1.0 + self.block_jitter * (rng.random::<f64>() * 2.0 - 1.0);
            ((self.block_bytes as f64) * factor).max(1.0) as usize
        }
        .max(1);
        let part_bytes = self.part_bytes.max(1);
        let parts = size.div_ceil(part_bytes);
        Block {
            height,
            hash: random_bytes(rng, 32),
            meta: random_bytes(rng, self.meta_bytes),
            parts: (0..parts)
                .map(|i| {
                    let len = if i + 1 == parts {
                        size - i * part_bytes
                    } else {
                        part_bytes
                    };
                    random_bytes(rng, len)
                })
                .collect(),
            commit: random_bytes(rng, self.commit_bytes),
            seen_commit: random_bytes(rng, self.commit_bytes),
            extended_commit: None,
        }
    }

    /// The state saved at `height` of a chain whose first height is `first`.
    pub fn state(&self, rng: &mut SmallRng, height: u64, first: u64) -> HeightState {
        let changes = |every: u64| height == first || (every > 0 && height.is_multiple_of(every));
        HeightState {
            height,
            validators: changes(self.validators_every.max(1))
                .then(|| random_bytes(rng, self.validators_bytes)),
            consensus_params: changes(self.params_every)
                .then(|| random_bytes(rng, self.params_bytes)),
            finalize_block_response: random_bytes(rng, self.response_bytes),
        }
    }
}

/// Latency percentiles of one group of block commits, milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq)]
pub struct Latency {
    /// Commits measured.
    pub samples: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl Latency {
    /// The percentiles of `samples` (milliseconds; nearest rank, rounded). All zero when empty.
    pub fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Self {
            samples: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn percentiles_of_a_known_series() {
        let l = Latency::of((1..=100).rev().map(f64::from).collect());
        assert_eq!(l.samples, 100);
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (51.0, 99.0, 100.0));
        assert_eq!(Latency::of(Vec::new()), Latency::default());
    }

    #[test]
    fn blocks_are_cut_into_parts_and_changes_follow_the_shape() {
        let shape = ChainShape {
            block_bytes: 150,
            block_jitter: 0.0,
            part_bytes: 64,
            meta_bytes: 3,
            commit_bytes: 4,
            validators_bytes: 5,
            validators_every: 7,
            params_bytes: 6,
            params_every: 0,
            response_bytes: 2,
        };
        let mut rng = SmallRng::seed_from_u64(1);
        let block = shape.block(&mut rng, 9);
        let sizes: Vec<usize> = block.parts.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![64, 64, 22]);
        assert!(shape.state(&mut rng, 5, 5).consensus_params.is_some());
        assert!(shape.state(&mut rng, 6, 5).consensus_params.is_none());
        assert!(shape.state(&mut rng, 14, 5).validators.is_some());
        assert!(shape.state(&mut rng, 15, 5).validators.is_none());
    }
}
