//! Auto's candidates timed in the runtime their file deploys to (onnxruntime, LiteRT, a device
//! reached by a command): modelslim's engine computes quantized models in float, so its own
//! milliseconds say nothing of an int8 kernel. Which candidate to keep under a limit there.
//! The page decides with a mirror of [`runtime_pick`] (www/policy.js `runtimePick`), tested on
//! the same cases: its module has no room for the binding.

use super::Candidate;

/// What the choice reads of a candidate.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    pub kl: f64,
    pub agreement: f64,
    /// Within the search's budget.
    pub fits: bool,
    /// Kept off its device by its RAM or operators.
    pub unfit: bool,
}

impl From<&Candidate> for Timed {
    fn from(c: &Candidate) -> Timed {
        Timed {
            kl: c.kl,
            agreement: c.agreement,
            fits: c.fits,
            unfit: c.target_problem.is_some(),
        }
    }
}

/// The candidate kept and why, in one line.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimePick {
    pub index: usize,
    /// Whether it runs under the limit (always, without one).
    pub under_limit: bool,
    pub message: String,
}

/// Among the candidates within the budget (and fit for the device) whose time `ms[i]` in
/// `runtime` is under `limit`: the least KL of those keeping `min_agreement`, else the most
/// agreeing; none under it: the fastest of them. Without a limit `shown` stays.
pub fn runtime_pick(
    candidates: &[Timed],
    ms: &[f64],
    limit: Option<f64>,
    min_agreement: f64,
    shown: usize,
    runtime: &str,
) -> RuntimePick {
    let n = candidates.len().min(ms.len());
    let at = |i: usize| format!("{} ({:.1} ms)", i + 1, ms[i]);
    // The fastest of `among`, the first of equals.
    let fastest = |among: &mut dyn Iterator<Item = usize>| {
        among.min_by(|&a, &b| ms[a].total_cmp(&ms[b]).then(a.cmp(&b)))
    };
    let timed = format!(
        "{n} candidates timed in {runtime}, the fastest {}",
        fastest(&mut (0..n)).map_or_else(String::new, at)
    );
    let Some(limit) = limit else {
        return RuntimePick {
            index: shown,
            under_limit: true,
            message: timed,
        };
    };
    let ok = |i: &usize| candidates[*i].fits && !candidates[*i].unfit;
    let under: Vec<usize> = (0..n).filter(|i| ok(i) && ms[*i] <= limit).collect();
    if under.is_empty() {
        let index = fastest(&mut (0..n).filter(ok)).unwrap_or(shown);
        return RuntimePick {
            index,
            under_limit: false,
            message: format!(
                "{timed}: none within the budget runs under {limit} ms there; the fastest is {}",
                at(index)
            ),
        };
    }
    let floor: Vec<usize> = under
        .iter()
        .copied()
        .filter(|&i| candidates[i].agreement >= min_agreement)
        .collect();
    let index = if floor.is_empty() {
        under.iter().copied().max_by(|&a, &b| {
            candidates[a]
                .agreement
                .total_cmp(&candidates[b].agreement)
                .then(b.cmp(&a))
        })
    } else {
        floor.iter().copied().min_by(|&a, &b| {
            candidates[a]
                .kl
                .total_cmp(&candidates[b].kl)
                .then(a.cmp(&b))
        })
    }
    .unwrap_or(shown);
    RuntimePick {
        index,
        under_limit: true,
        message: format!(
            "{timed}: kept {}, the {} of the {} under {limit} ms",
            at(index),
            if floor.is_empty() {
                "most agreeing (none keeps the floor)"
            } else {
                "most faithful"
            },
            under.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_faithful_under_the_limit_else_the_fastest() {
        let c = |kl, agreement, fits| Timed {
            kl,
            agreement,
            fits,
            unfit: false,
        };
        // 1 the original (over the budget), 2 and 3 keep the floor, 4 does not.
        let cs = [
            c(0.0, 1.0, false),
            c(0.01, 0.9, true),
            c(0.02, 0.85, true),
            c(0.5, 0.5, true),
        ];
        let ms = [40.0, 30.0, 20.0, 10.0];
        let pick = |limit| runtime_pick(&cs, &ms, limit, 0.8, 1, "LiteRT");
        assert_eq!(
            pick(None).message,
            "4 candidates timed in LiteRT, the fastest 4 (10.0 ms)"
        );
        assert_eq!(pick(None).index, 1);
        assert_eq!(pick(Some(35.0)).index, 1, "the least KL under 35 ms");
        assert_eq!(pick(Some(25.0)).index, 2);
        let few = pick(Some(15.0));
        assert_eq!(few.index, 3);
        assert!(
            few.message
                .ends_with("most agreeing (none keeps the floor) of the 1 under 15 ms"),
            "{}",
            few.message
        );
        let none = pick(Some(5.0));
        assert_eq!((none.index, none.under_limit), (3, false));
        assert!(
            none.message.ends_with("the fastest is 4 (10.0 ms)"),
            "{}",
            none.message
        );
    }
}
