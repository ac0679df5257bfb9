//! Photos kept out of fitting, so that agreement measures what a compression does on photos it
//! has not seen. GPTQ, refitting, bias correction and batch-norm statistics are fitted to the
//! photos they are given; agreement on those same photos flatters them.

use crate::{Error, Result};

/// How many of the kept photos a compression holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldBack {
    /// None: every photo is fitted on (agreement is then reported as measured on the fitting
    /// photos).
    None,
    /// A fifth of them, at most 50, once there are at least [`HoldBack::ENOUGH`].
    Share,
    /// Exactly this many (fewer than the photos).
    Count(usize),
}

impl HoldBack {
    /// Below this many photos every one is needed for fitting.
    pub const ENOUGH: usize = 10;
}

/// The indices of the photos held back out of `n`, spread evenly over them (photos are often
/// added class by class): for a fifth of 20, photos 4, 9, 14 and 19.
pub fn held_back(policy: HoldBack, n: usize) -> Result<Vec<usize>> {
    let k = match policy {
        HoldBack::None => 0,
        HoldBack::Share if n >= HoldBack::ENOUGH => (n / 5).min(50),
        HoldBack::Share => 0,
        HoldBack::Count(k) if k >= n && k > 0 => {
            return Err(Error::Invalid(format!(
                "{k} photos held back leaves none of the {n} to fit on: hold back fewer"
            )));
        }
        HoldBack::Count(k) => k,
    };
    Ok((0..k).map(|j| (j + 1) * n / k - 1).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifth_spread_over_the_photos() {
        assert_eq!(held_back(HoldBack::Share, 20).unwrap(), [4, 9, 14, 19]);
        assert!(held_back(HoldBack::Share, 9).unwrap().is_empty());
        assert_eq!(held_back(HoldBack::Share, 1000).unwrap().len(), 50);
        assert_eq!(held_back(HoldBack::Count(2), 10).unwrap(), [4, 9]);
        assert!(held_back(HoldBack::Count(10), 10).is_err());
    }
}
