//! Deterministic incompressible bytes: a splitmix64 stream, so figures do not depend on an
//! engine's compression and every run writes the same data.

/// `len` pseudo-random bytes determined by `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        assert_eq!(random_bytes(1, 33), random_bytes(1, 33));
        assert_ne!(random_bytes(1, 32), random_bytes(2, 32));
        assert_eq!(random_bytes(7, 5).len(), 5);
    }
}
