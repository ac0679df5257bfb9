//! The memory a TFLite interpreter needs for a model's activations, planned as TensorFlow Lite
//! Micro's greedy planner does: every tensor that is not a constant gets an offset in one
//! arena, the largest tensors first, each at the lowest offset where it overlaps no tensor
//! placed before it that is alive at the same time. The arena's size is the highest end.

/// TFLite Micro aligns every planned buffer to 16 bytes.
const ALIGN: usize = 16;

/// One planned tensor: its bytes and the operators from the one that writes it (0 for the
/// graph's input) to the last one that reads it (the last operator for the graph's output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub bytes: usize,
    pub first: usize,
    pub last: usize,
}

/// The arena's size for `tensors`.
pub fn arena_bytes(tensors: &[Lifetime]) -> usize {
    let mut order: Vec<&Lifetime> = tensors.iter().collect();
    // Largest first; among equals, the earlier first (a stable order).
    order.sort_by_key(|t| (std::cmp::Reverse(t.bytes), t.first, t.last));
    // Placed tensors as (offset, end, lifetime), kept sorted by offset.
    let mut placed: Vec<(usize, usize, &Lifetime)> = Vec::with_capacity(order.len());
    let mut size = 0;
    for t in order {
        let bytes = t.bytes.div_ceil(ALIGN) * ALIGN;
        let mut offset = 0;
        for &(start, end, other) in &placed {
            let alive_together = !(other.last < t.first || t.last < other.first);
            if !alive_together {
                continue;
            }
            if start >= offset + bytes {
                break;
            }
            offset = offset.max(end);
        }
        let at = placed.partition_point(|&(start, _, _)| start <= offset);
        placed.insert(at, (offset, offset + bytes, t));
        size = size.max(offset + bytes);
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(bytes: usize, first: usize, last: usize) -> Lifetime {
        Lifetime { bytes, first, last }
    }

    #[test]
    fn a_chain_needs_its_largest_neighbouring_pair() {
        // input → a → b → c: only neighbours are alive together.
        let chain = [t(160, 0, 0), t(320, 0, 1), t(480, 1, 2), t(32, 2, 2)];
        assert_eq!(arena_bytes(&chain), 320 + 480);
    }

    #[test]
    fn a_residual_keeps_the_shortcut_alive_across_the_branch() {
        // x is read by the branch's first op (1) and by the add (3).
        let block = [t(64, 0, 3), t(128, 1, 2), t(64, 2, 3), t(64, 3, 3)];
        // At op 2: x, the branch's first output and its second are alive: 64 + 128 + 64.
        assert_eq!(arena_bytes(&block), 256);
    }

    #[test]
    fn a_gap_left_by_a_dead_tensor_is_reused_and_sizes_are_aligned() {
        // The two 100-byte tensors never live together and share one aligned slot.
        let two = [t(100, 0, 1), t(100, 2, 3), t(20, 1, 2)];
        assert_eq!(arena_bytes(&two), 112 + 32);
    }
}
