//! `--flag value` pairs and bare `--switch`es: the whole grammar the commands need.

use super::CliError;

/// Parsed `--flag value` pairs and bare `--switch`es.
pub struct Args {
    pairs: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Args {
    pub fn parse(args: &[String], switches: &[&str]) -> std::result::Result<Self, CliError> {
        let mut out = Args {
            pairs: Vec::new(),
            switches: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                return Err(CliError::Usage(format!("unexpected argument '{a}'")));
            };
            if switches.contains(&name) {
                out.switches.push(name.to_string());
            } else {
                let v = it
                    .next()
                    .ok_or_else(|| CliError::Usage(format!("--{name} needs a value")))?;
                out.pairs.push((name.to_string(), v.clone()));
            }
        }
        Ok(out)
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        self.all(name).last().copied()
    }

    pub fn required(&self, name: &str) -> std::result::Result<&str, CliError> {
        self.one(name)
            .ok_or_else(|| CliError::Usage(format!("--{name} is required")))
    }

    pub fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    pub fn check_known(&self, known: &[&str]) -> std::result::Result<(), CliError> {
        match self
            .pairs
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((k, _)) => Err(CliError::Usage(format!("unknown option --{k}"))),
            None => Ok(()),
        }
    }

    /// The number `--name` holds, or `default` without it.
    pub fn number<T: std::str::FromStr>(
        &self,
        name: &str,
        default: T,
    ) -> std::result::Result<T, CliError> {
        match self.one(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| CliError::Usage(format!("--{name}: '{v}' is not a number"))),
        }
    }
}
