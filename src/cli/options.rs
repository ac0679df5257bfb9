//! Flags generated from the core's option descriptions ([`modelslim::spec::Field`]): the
//! compression settings, distillation's and synthesis's options each become one group of
//! flags, with `--help` lines that give the default and the range, read back as the options'
//! JSON. A setting added to the core is a flag here without a line changed.

use std::marker::PhantomData;

use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches, value_parser};
use modelslim::compress::{SETTINGS, Settings};
use modelslim::spec::{Field, Kind};
use modelslim::train::{DISTILL, DistillOptions, SYNTH, SynthOptions};
use modelslim::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Options described by a list of fields.
pub trait Described: Serialize + DeserializeOwned + Default {
    const FIELDS: &'static [Field];
    /// Switches that may also take a value (`--recalibrate-bn [DIR]`), with its name and
    /// meaning.
    const SWITCH_VALUES: &'static [(&'static str, &'static str, &'static str)] = &[];
}

impl Described for Settings {
    const FIELDS: &'static [Field] = SETTINGS;
    const SWITCH_VALUES: &'static [(&'static str, &'static str, &'static str)] = &[(
        "recalibrate_bn",
        "DIR",
        "with DIR, on the photos there instead of the calibration photos",
    )];
}

impl Described for DistillOptions {
    const FIELDS: &'static [Field] = DISTILL;
}

impl Described for SynthOptions {
    const FIELDS: &'static [Field] = SYNTH;
}

/// The flags of `T`'s fields, as parsed: read with [`Flags::options`].
#[derive(Debug, Clone)]
pub struct Flags<T> {
    values: serde_json::Map<String, serde_json::Value>,
    /// Values given to switches that take one (`--recalibrate-bn DIR`).
    switch_values: Vec<(&'static str, String)>,
    _options: PhantomData<T>,
}

impl<T: Described> Flags<T> {
    /// The options, defaults where no flag was given; a value the core does not accept is a
    /// one-line error.
    pub fn options(&self) -> Result<T> {
        serde_json::from_value(serde_json::Value::Object(self.values.clone()))
            .map_err(|e| Error::Invalid(e.to_string()))
    }

    /// The value given to switch `name`, if it took one.
    pub fn switch_value(&self, name: &str) -> Option<&str> {
        self.switch_values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The flag a switch whose default is on is given as: `--no-augment`.
fn switch_flag(f: &Field, default_on: bool) -> String {
    if default_on {
        format!("no-{}", f.flag())
    } else {
        f.flag()
    }
}

/// `--help`'s line for `f`: its help, its choices, default and range.
fn help_of(f: &Field, default: &serde_json::Value) -> String {
    let mut h = f.help.to_string();
    if let Some(p) = f.placeholder {
        h.push_str(&format!(" E.g. {p}."));
    }
    if !f.choices.is_empty() {
        let values: Vec<&str> = f.choices.iter().map(|c| c.value).collect();
        h.push_str(&format!(" One of {}.", values.join(", ")));
    }
    match (f.kind, default) {
        (Kind::Bool, _) | (_, serde_json::Value::Null) => {}
        (Kind::Pairs, _) => {}
        (_, serde_json::Value::String(s)) => h.push_str(&format!(" [default: {s}]")),
        (_, v) => h.push_str(&format!(" [default: {v}]")),
    }
    if let Some(r) = f.range {
        let low = if r.min_exclusive { "above " } else { "" };
        h.push_str(&format!(" [range: {low}{}–{}]", r.min, r.max));
    }
    h
}

fn value_name(f: &Field) -> String {
    match f.kind {
        Kind::Number | Kind::OptionalNumber => "X".into(),
        Kind::Integer | Kind::OptionalInteger => "N".into(),
        Kind::Choice => f
            .choices
            .iter()
            .map(|c| c.value)
            .collect::<Vec<_>>()
            .join("|"),
        Kind::Pairs => "LAYER=PRECISION".into(),
        Kind::Text | Kind::Bool => f.name.to_uppercase(),
    }
}

/// The name clap stores a field under: the field's own (flags may differ, `--no-mixup`).
fn id(f: &Field) -> &'static str {
    f.name
}

impl<T: Described> clap::Args for Flags<T> {
    fn augment_args(cmd: Command) -> Command {
        let defaults = serde_json::to_value(T::default()).unwrap_or_default();
        T::FIELDS.iter().fold(cmd, |cmd, f| {
            let default = defaults.get(f.name).cloned().unwrap_or_default();
            let help = help_of(f, &default);
            let arg = Arg::new(id(f)).help(help);
            let arg = match f.kind {
                Kind::Bool => {
                    let on = default == serde_json::Value::Bool(true);
                    let arg = arg.long(switch_flag(f, on));
                    match T::SWITCH_VALUES.iter().find(|(n, _, _)| *n == f.name) {
                        Some((_, value, meaning)) => arg
                            .num_args(0..=1)
                            .value_name(*value)
                            .action(ArgAction::Set)
                            .default_missing_value("")
                            .help(format!(
                                "{} Alone: on the calibration photos; {meaning}.",
                                f.help
                            )),
                        None => arg.action(ArgAction::SetTrue),
                    }
                }
                Kind::Number | Kind::OptionalNumber => {
                    arg.long(f.flag()).value_parser(value_parser!(f64))
                }
                Kind::Integer | Kind::OptionalInteger => {
                    arg.long(f.flag()).value_parser(value_parser!(u64))
                }
                Kind::Pairs => arg.long(f.flag()).action(ArgAction::Append),
                Kind::Choice | Kind::Text => arg.long(f.flag()),
            };
            let arg = if f.kind == Kind::Bool {
                arg
            } else {
                arg.value_name(value_name(f))
            };
            cmd.arg(arg)
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl<T: Described> FromArgMatches for Flags<T> {
    fn from_arg_matches(m: &ArgMatches) -> std::result::Result<Self, clap::Error> {
        let defaults = serde_json::to_value(T::default()).unwrap_or_default();
        let mut values = serde_json::Map::new();
        let mut switch_values = Vec::new();
        for f in T::FIELDS {
            let v = match f.kind {
                Kind::Bool => {
                    if T::SWITCH_VALUES.iter().any(|(n, _, _)| *n == f.name) {
                        match m.get_one::<String>(id(f)) {
                            Some(dir) => {
                                if !dir.is_empty() {
                                    switch_values.push((f.name, dir.clone()));
                                }
                                Some(serde_json::Value::Bool(true))
                            }
                            None => None,
                        }
                    } else if m.get_flag(id(f)) {
                        let on = defaults.get(f.name) == Some(&serde_json::Value::Bool(true));
                        Some(serde_json::Value::Bool(!on))
                    } else {
                        None
                    }
                }
                Kind::Number | Kind::OptionalNumber => {
                    m.get_one::<f64>(id(f)).map(|v| serde_json::json!(v))
                }
                Kind::Integer | Kind::OptionalInteger => {
                    m.get_one::<u64>(id(f)).map(|v| serde_json::json!(v))
                }
                Kind::Choice | Kind::Text => m
                    .get_one::<String>(id(f))
                    .map(|v| serde_json::Value::String(v.clone())),
                Kind::Pairs => match m.get_many::<String>(id(f)) {
                    None => None,
                    Some(pairs) => {
                        let mut map = serde_json::Map::new();
                        for p in pairs {
                            let Some((k, v)) = p.split_once('=') else {
                                return Err(clap::Error::raw(
                                    clap::error::ErrorKind::ValueValidation,
                                    format!("--{} '{p}': expected {}", f.flag(), value_name(f)),
                                ));
                            };
                            map.insert(k.into(), serde_json::Value::String(v.into()));
                        }
                        Some(serde_json::Value::Object(map))
                    }
                },
            };
            if let Some(v) = v {
                values.insert(f.name.into(), v);
            }
        }
        Ok(Flags {
            values,
            switch_values,
            _options: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> std::result::Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}
