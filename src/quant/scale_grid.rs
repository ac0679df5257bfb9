//! The grids scales are rounded onto so that a QDQ graph's float arithmetic is exact (see
//! [`super::ActQuant`] for why that matters).

/// Significant bits an integer weight scale keeps when the layer's activations are quantized
/// too (see [`ActQuant`]). A product `(q_x − z)·q_w` needs 8 + 7 bits, so with 5-bit scales an
/// accumulator is exact in f32's 24 bits up to 2^19 (8-bit scales left only 2^16, and real
/// accumulators reach 2^17). Rounding a scale up to 5 bits coarsens it by at most 1/16, 3 % on
/// average: small beside the activations' power-of-two steps.
pub const EXACT_WEIGHT_SCALE_BITS: u32 = 5;

/// The smallest power of two ≥ `s` (positive, finite `s`; anything else is returned as is).
pub fn power_of_two_at_least(s: f32) -> f32 {
    round_up_to_bits(s, 1)
}

/// The smallest f32 ≥ `s` with at most `bits` significant bits (positive, finite, normal `s`;
/// anything else is returned as is).
pub fn round_up_to_bits(s: f32, bits: u32) -> f32 {
    if !(s.is_normal() && s > 0.0) || bits == 0 || bits >= 24 {
        return s;
    }
    // An f32 has 24 significant bits; clear the low ones and, if any was set, add one unit of
    // the last kept bit (a carry into the exponent gives the next power of two, as it should).
    let mask = (1u32 << (24 - bits)) - 1;
    let b = s.to_bits();
    if b & mask == 0 {
        s
    } else {
        f32::from_bits((b & !mask) + mask + 1)
    }
}
