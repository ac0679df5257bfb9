//! Scores on labelled photos, as an engineer checks a compressed model first: its accuracy with
//! a confidence interval beside the reference's (the original), accuracy per class, the
//! confusions it makes that the reference did not, and the photos whose answer changed.

use serde::Serialize;

use crate::predict::top_k;

/// The z of a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// Most confusions listed, most frequent first.
pub const MAX_CONFUSIONS: usize = 10;

/// Most changed photos listed.
pub const MAX_CHANGED: usize = 50;

/// `k` of `n` with the share's 95 % Wilson score interval: honest at small counts, where 2 of
/// 3 is anything from 21 % to 94 %.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Count {
    pub k: usize,
    pub n: usize,
    pub share: f64,
    pub low: f64,
    pub high: f64,
}

impl Count {
    pub fn of(k: usize, n: usize) -> Option<Count> {
        if n == 0 {
            return None;
        }
        let (kf, nf) = (k as f64, n as f64);
        let p = kf / nf;
        let z2 = Z95 * Z95;
        let centre = (p + z2 / (2.0 * nf)) / (1.0 + z2 / nf);
        let half = Z95 * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / (1.0 + z2 / nf);
        Some(Count {
            k,
            n,
            share: p,
            // The interval holds the share; clamped so that rounding never says otherwise
            // (at 0 of n its low end comes out 1e-17).
            low: (centre - half).clamp(0.0, p),
            high: (centre + half).clamp(p, 1.0),
        })
    }
}

/// One class's photos and how many each model got right.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    pub class: usize,
    pub name: String,
    pub photos: usize,
    /// Right by the model scored (top-1).
    pub correct: usize,
    /// Right by the reference, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_correct: Option<usize>,
}

/// Photos of class `truth` the model calls `answer` where the reference was right.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confusion {
    pub truth: usize,
    pub truth_name: String,
    pub answer: usize,
    pub answer_name: String,
    pub photos: usize,
}

/// A photo whose top-1 differs between the reference and the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changed {
    pub photo: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<usize>,
    pub reference: usize,
    pub model: usize,
    /// `lost` (the reference was right, the model is not), `gained`, or `other` (both wrong,
    /// or no label).
    pub change: &'static str,
}

/// Everything [`scores`] measures.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Scores {
    /// The model's top-1 on the labelled photos.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top1_count: Option<Count>,
    /// The reference's top-1 on the same photos.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_top1: Option<Count>,
    /// Photos where both give the same top-1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_count: Option<Count>,
    /// Per class with a labelled photo, in class order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassScore>,
    /// The model's mistakes on photos the reference got right, by (truth, answer), most
    /// frequent first (at most [`MAX_CONFUSIONS`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub new_confusions: Vec<Confusion>,
    /// Photos whose answer changed: lost first, then gained, then the rest, each in photo order
    /// (at most [`MAX_CHANGED`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<Changed>,
}

fn top1(logits: &[f32]) -> Option<usize> {
    top_k(logits, 1).first().map(|c| c.index)
}

/// Scores of the model whose logits are `model` on photos `names` with `labels` (where known),
/// against the reference's logits `reference` when given; `name` names a class.
pub fn scores(
    names: &[String],
    labels: &[Option<usize>],
    model: &[Vec<f32>],
    reference: Option<&[Vec<f32>]>,
    name: impl Fn(usize) -> String,
) -> Scores {
    let answers: Vec<Option<usize>> = model.iter().map(|l| top1(l)).collect();
    let reference: Option<Vec<Option<usize>>> =
        reference.map(|r| r.iter().map(|l| top1(l)).collect());
    let mut classes: Vec<ClassScore> = Vec::new();
    let (mut right, mut reference_right, mut labelled) = (0, 0, 0);
    for (i, label) in labels.iter().enumerate() {
        let Some(label) = *label else { continue };
        labelled += 1;
        let ok = answers.get(i).copied().flatten() == Some(label);
        let ref_ok = reference
            .as_ref()
            .map(|r| r.get(i).copied().flatten() == Some(label));
        right += usize::from(ok);
        reference_right += usize::from(ref_ok == Some(true));
        let at = match classes.binary_search_by_key(&label, |c| c.class) {
            Ok(at) => at,
            Err(at) => {
                classes.insert(
                    at,
                    ClassScore {
                        class: label,
                        name: name(label),
                        photos: 0,
                        correct: 0,
                        reference_correct: ref_ok.map(|_| 0),
                    },
                );
                at
            }
        };
        let c = &mut classes[at];
        c.photos += 1;
        c.correct += usize::from(ok);
        if let (Some(n), Some(true)) = (c.reference_correct.as_mut(), ref_ok) {
            *n += 1;
        }
    }
    let Some(reference) = reference else {
        return Scores {
            top1_count: Count::of(right, labelled),
            classes,
            ..Scores::default()
        };
    };
    let mut confusions: Vec<Confusion> = Vec::new();
    let mut changed: Vec<Changed> = Vec::new();
    let mut same = 0;
    let n = answers.len().min(reference.len());
    for i in 0..n {
        let (Some(m), Some(r)) = (answers[i], reference[i]) else {
            continue;
        };
        if m == r {
            same += 1;
            continue;
        }
        let label = labels.get(i).copied().flatten();
        let change = match label {
            Some(l) if r == l => "lost",
            Some(l) if m == l => "gained",
            _ => "other",
        };
        if let (Some(l), "lost") = (label, change) {
            match confusions
                .iter_mut()
                .find(|c| c.truth == l && c.answer == m)
            {
                Some(c) => c.photos += 1,
                None => confusions.push(Confusion {
                    truth: l,
                    truth_name: name(l),
                    answer: m,
                    answer_name: name(m),
                    photos: 1,
                }),
            }
        }
        changed.push(Changed {
            photo: names.get(i).cloned().unwrap_or_default(),
            label,
            reference: r,
            model: m,
            change,
        });
    }
    // Stable sorts: ties stay in photo (first-seen) order.
    confusions.sort_by_key(|c| std::cmp::Reverse(c.photos));
    confusions.truncate(MAX_CONFUSIONS);
    changed.sort_by_key(|c| match c.change {
        "lost" => 0,
        "gained" => 1,
        _ => 2,
    });
    changed.truncate(MAX_CHANGED);
    Scores {
        top1_count: Count::of(right, labelled),
        reference_top1: Count::of(reference_right, labelled),
        agreement_count: Count::of(same, n),
        classes,
        new_confusions: confusions,
        changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits whose top-1 is `class` of 4.
    fn says(class: usize) -> Vec<f32> {
        (0..4).map(|i| if i == class { 1.0 } else { 0.0 }).collect()
    }

    #[test]
    fn wilson_intervals_match_the_textbook_values() {
        // 2 of 3: 20.8 % to 93.9 %; 0 of 10: 0 to 27.8 %; 50 of 100: 40.4 % to 59.6 %.
        let c = Count::of(2, 3).unwrap();
        assert!(
            (c.low - 0.2077).abs() < 1e-3 && (c.high - 0.9385).abs() < 1e-3,
            "{c:?}"
        );
        let c = Count::of(0, 10).unwrap();
        assert!(c.low == 0.0 && (c.high - 0.2775).abs() < 1e-3, "{c:?}");
        let c = Count::of(50, 100).unwrap();
        assert!(
            (c.low - 0.4038).abs() < 1e-3 && (c.high - 0.5962).abs() < 1e-3,
            "{c:?}"
        );
        assert!(Count::of(0, 0).is_none());
        for (k, n) in [(0, 3), (3, 3), (1, 7), (0, 1)] {
            let c = Count::of(k, n).unwrap();
            assert!(c.low <= c.share && c.share <= c.high, "{c:?}");
        }
    }

    #[test]
    fn per_class_scores_new_confusions_and_changed_photos() {
        let names: Vec<String> = (0..6).map(|i| format!("p{i}")).collect();
        let labels = [Some(0), Some(0), Some(1), Some(1), Some(2), None];
        // The reference gets p0..p4 right; the model loses p1 (to 3) and p3 (to 3), gains
        // nothing, and changes the unlabelled p5.
        let reference = [says(0), says(0), says(1), says(1), says(2), says(1)];
        let model = [says(0), says(3), says(1), says(3), says(2), says(2)];
        let s = scores(&names, &labels, &model, Some(&reference), |c| {
            format!("c{c}")
        });
        assert_eq!(s.top1_count.map(|c| (c.k, c.n)), Some((3, 5)));
        assert_eq!(s.reference_top1.map(|c| (c.k, c.n)), Some((5, 5)));
        assert_eq!(s.agreement_count.map(|c| (c.k, c.n)), Some((3, 6)));
        let per: Vec<_> = s
            .classes
            .iter()
            .map(|c| (c.class, c.photos, c.correct, c.reference_correct))
            .collect();
        assert_eq!(
            per,
            [(0, 2, 1, Some(2)), (1, 2, 1, Some(2)), (2, 1, 1, Some(1))]
        );
        let conf: Vec<_> = s
            .new_confusions
            .iter()
            .map(|c| (c.truth, c.answer, c.photos))
            .collect();
        assert_eq!(conf, [(0, 3, 1), (1, 3, 1)]);
        let changed: Vec<_> = s
            .changed
            .iter()
            .map(|c| (c.photo.as_str(), c.change))
            .collect();
        assert_eq!(changed, [("p1", "lost"), ("p3", "lost"), ("p5", "other")]);
        // A gain sorts after the losses.
        let model = [says(1), says(0), says(1), says(1), says(2), says(1)];
        let reference = [says(0), says(1), says(1), says(1), says(2), says(1)];
        let s = scores(&names, &labels, &model, Some(&reference), |c| {
            format!("c{c}")
        });
        let changed: Vec<_> = s.changed.iter().map(|c| c.change).collect();
        assert_eq!(changed, ["lost", "gained"]);
        // Without a reference: the model's scores only.
        let s = scores(&names, &labels, &model, None, |c| format!("c{c}"));
        assert!(s.reference_top1.is_none() && s.changed.is_empty());
        assert_eq!(s.classes[0].reference_correct, None);
    }
}
