//! The description of every option a person sets — its name, kind, range, default and help —
//! from which the CLI's flags and usage text, the page's forms and the range checks are all
//! derived, so that no front end carries its own copy of a setting or of a limit.

use serde::Serialize;

use crate::{Error, Result};

/// One option.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Field {
    /// Its name in the options' JSON (`prune_channels`); the CLI's flag is the same with
    /// dashes (`--prune-channels`).
    pub name: &'static str,
    /// A short label for a form.
    pub label: &'static str,
    /// One or two sentences for `--help` and the form's tooltip.
    pub help: &'static str,
    /// Which part of a form it belongs to.
    pub group: &'static str,
    pub kind: Kind,
    /// For numbers: the values accepted.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub range: Option<Range>,
    /// What the value is, in a sentence's words ("the share of channels to remove"), for
    /// range messages.
    pub what: &'static str,
    /// For `Kind::Choice`: the values accepted.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub choices: &'static [Choice],
    /// For `Kind::Text`: an example of the form a value takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<&'static str>,
    /// Rarely changed: a form may tuck it away.
    pub advanced: bool,
}

/// The kind of value an option holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A real number.
    Number,
    /// A whole number.
    Integer,
    /// An optional whole number (`null`: chosen for you).
    OptionalInteger,
    /// An optional real number (`null`: not used).
    OptionalNumber,
    /// On or off; a CLI switch.
    Bool,
    /// One of `choices`.
    Choice,
    /// Free text in a form the help describes (`group:32`, `percentile:99.9`).
    Text,
    /// `NAME=VALUE` pairs (the CLI repeats the flag).
    Pairs,
}

/// One accepted value of a choice.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
}

/// The values a number accepts: `min ≤ v ≤ max`, or `min < v` when `min_exclusive`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Range {
    pub min: f64,
    pub max: f64,
    pub min_exclusive: bool,
}

impl Range {
    pub const fn closed(min: f64, max: f64) -> Range {
        Range {
            min,
            max,
            min_exclusive: false,
        }
    }

    /// Above `min` (not `min` itself), at most `max`.
    pub const fn above(min: f64, max: f64) -> Range {
        Range {
            min,
            max,
            min_exclusive: true,
        }
    }

    pub fn contains(&self, v: f64) -> bool {
        let low = if self.min_exclusive {
            v > self.min
        } else {
            v >= self.min
        };
        low && v <= self.max
    }
}

impl Field {
    /// A field without a range, choices or placeholder (set those with `..Field::new(…)`).
    pub const fn new(
        name: &'static str,
        label: &'static str,
        group: &'static str,
        kind: Kind,
        help: &'static str,
    ) -> Field {
        Field {
            name,
            label,
            help,
            group,
            kind,
            range: None,
            what: label,
            choices: &[],
            placeholder: None,
            advanced: false,
        }
    }

    /// The CLI's flag, without the dashes.
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }

    /// Whether `v` is in range, as a one-line message naming the field when it is not.
    pub fn check(&self, v: f64) -> Result<()> {
        match self.range {
            Some(r) if !r.contains(v) => {
                let (low, and) = if r.min_exclusive {
                    ("above", ", at most")
                } else {
                    ("between", " and")
                };
                Err(Error::Invalid(format!(
                    "{} must be {low} {}{and} {}: {} is impossible",
                    self.what, r.min, r.max, v as f32
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Check every ranged field of `fields` against its value in `options` (serialised to JSON);
/// a `null` optional value passes.
pub fn check_ranges<T: Serialize>(fields: &[Field], options: &T) -> Result<()> {
    let v = serde_json::to_value(options).map_err(|e| Error::Invalid(e.to_string()))?;
    for f in fields {
        if let Some(x) = v.get(f.name).and_then(serde_json::Value::as_f64) {
            f.check(x)?;
        }
    }
    Ok(())
}

/// The range of a numeric field, for messages and forms.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limit {
    pub name: &'static str,
    /// What it is, for people ("the share of channels to remove").
    pub what: &'static str,
    pub min: f64,
    pub max: f64,
    pub min_exclusive: bool,
}

/// The ranges of `fields`' numbers.
pub fn limits(fields: &[Field]) -> Vec<Limit> {
    fields
        .iter()
        .filter_map(|f| {
            let r = f.range?;
            Some(Limit {
                name: f.name,
                what: f.what,
                min: r.min,
                max: r.max,
                min_exclusive: r.min_exclusive,
            })
        })
        .collect()
}

/// A field with its default, as the page's forms read it.
#[derive(Debug, Clone, Serialize)]
pub struct FieldWithDefault {
    #[serde(flatten)]
    pub field: Field,
    /// The CLI's flag, without the dashes.
    pub flag: String,
    pub default: serde_json::Value,
}

/// `fields` with their defaults read from `defaults`' JSON.
pub fn with_defaults<T: Serialize>(fields: &[Field], defaults: &T) -> Vec<FieldWithDefault> {
    let v = serde_json::to_value(defaults).unwrap_or_default();
    fields
        .iter()
        .map(|f| FieldWithDefault {
            field: *f,
            flag: f.flag(),
            default: v.get(f.name).cloned().unwrap_or_default(),
        })
        .collect()
}
