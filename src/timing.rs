//! Latency statistics over repeated runs, defined once for the CLI's `bench`, the page's
//! benchmark and its per-photo latencies: the cold first run is reported apart by the caller;
//! of the warm runs, min, median and p90 by nearest rank on the sorted times.

use serde::Serialize;

/// Warm-run statistics in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timing {
    pub runs: usize,
    pub min_ms: f64,
    pub median_ms: f64,
    pub p90_ms: f64,
}

impl Timing {
    /// The statistics of `times_ms` (any order); `None` for no runs.
    pub fn of(times_ms: &[f64]) -> Option<Timing> {
        let mut t = times_ms.to_vec();
        t.sort_by(f64::total_cmp);
        let at = |p: f64| t[((t.len() - 1) as f64 * p).round() as usize];
        (!t.is_empty()).then(|| Timing {
            runs: t.len(),
            min_ms: t[0],
            median_ms: at(0.5),
            p90_ms: at(0.9),
        })
    }
}

/// The input latencies are timed on: one constant image of the network's `[height, width]`,
/// so that runs differ only in the device's time.
pub fn benchmark_input([height, width]: [usize; 2]) -> Vec<f32> {
    vec![0.1f32; 3 * height * width]
}

#[cfg(test)]
mod tests {
    use super::Timing;

    #[test]
    fn nearest_rank_on_sorted_times() {
        let t = Timing::of(&[9.0, 1.0, 5.0, 3.0, 7.0, 2.0, 4.0, 6.0, 8.0, 10.0, 11.0]).unwrap();
        assert_eq!(
            (t.runs, t.min_ms, t.median_ms, t.p90_ms),
            (11, 1.0, 6.0, 10.0)
        );
        assert_eq!(Timing::of(&[4.0]).unwrap().p90_ms, 4.0);
        assert!(Timing::of(&[]).is_none());
    }
}
