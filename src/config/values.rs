//! The merged view of the layers: for each setting, the value of the highest layer that has it
//! (or the row's default), parsed by the row's kind and checked against its bounds. Every
//! error names the key, the value and the layer it really came from (the file, the row's
//! environment variable or flag, or the default).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::layer::Raw;
use super::settings::{self, DurationBounds, Kind, Setting, MAX_LIST};
use super::{parse_seed, ConfigError, Layer, Source, Sourced};

/// The layers, lowest first, each with where it came from.
pub(super) struct Values<'a> {
    layers: &'a [(&'a Layer, Source)],
}

impl<'a> Values<'a> {
    pub(super) fn new(layers: &'a [(&'a Layer, Source)]) -> Self {
        Self { layers }
    }

    /// The raw value of the highest layer that has `setting`, with its true source.
    fn raw(&self, setting: &Setting) -> Option<Sourced<Raw>> {
        self.layers.iter().rev().find_map(|(layer, source)| {
            layer.get(setting).map(|raw| Sourced {
                value: raw.clone(),
                source: match source {
                    Source::Env(_) => Source::Env(setting.env.unwrap_or("-")),
                    Source::Flag(_) => Source::Flag(setting.flag.unwrap_or("-")),
                    other => other.clone(),
                },
            })
        })
    }

    /// The raw value, or the row's default as a value from [`Source::Default`]; `None` when
    /// unset with a computed or no default.
    fn raw_or_default(&self, setting: &Setting) -> Option<Sourced<Raw>> {
        self.raw(setting).or_else(|| match setting.default {
            settings::Default::Value(text) => Some(Sourced {
                value: match setting.kind {
                    Kind::Seeds | Kind::AbsolutePaths | Kind::Interfaces | Kind::Tags => {
                        Raw::Many(vec![text.to_owned()])
                    }
                    _ => Raw::One(text.to_owned()),
                },
                source: Source::Default,
            }),
            settings::Default::Computed(_) | settings::Default::Unset(_) => None,
        })
    }

    /// Parses the value of `setting` with `parse`; `None` if unset without a default value.
    fn parsed<T>(
        &self,
        setting: &Setting,
        parse: impl FnOnce(&Raw) -> Result<T, String>,
    ) -> Result<Option<Sourced<T>>, ConfigError> {
        let Some(raw) = self.raw_or_default(setting) else {
            return Ok(None);
        };
        match parse(&raw.value) {
            Ok(value) => Ok(Some(Sourced {
                value,
                source: raw.source,
            })),
            Err(problem) => Err(ConfigError::Invalid {
                key: setting.key,
                value: raw.value.shown(),
                origin: raw.source,
                problem,
            }),
        }
    }

    /// A text value of the `Name`, `Path`, `Choice` or `Invitation` kinds.
    pub(super) fn text(&self, setting: &Setting) -> Result<Option<Sourced<String>>, ConfigError> {
        self.parsed(setting, |raw| {
            let text = one(raw)?;
            match setting.kind {
                Kind::Name => name(text),
                Kind::Path if text.trim().is_empty() => Err("must not be empty".into()),
                Kind::Path if text.contains('\0') => Err("must not hold a NUL byte".into()),
                Kind::Path => Ok(text.to_owned()),
                Kind::Invitation => Ok(text.trim().to_owned()),
                Kind::LogFilter => tracing_subscriber::EnvFilter::try_new(text.trim())
                    .map(|_| text.trim().to_owned())
                    .map_err(|e| format!("not a log filter: {e}")),
                Kind::Choice(words) if words.contains(&text.trim()) => Ok(text.trim().to_owned()),
                Kind::Choice(words) => Err(format!("expected one of {}", words.join(", "))),
                other => Err(mismatch(setting, &other)),
            }
        })
    }

    /// An `Address` value, checked against the row's bounds.
    pub(super) fn address(
        &self,
        setting: &Setting,
    ) -> Result<Option<Sourced<SocketAddr>>, ConfigError> {
        self.parsed(setting, |raw| {
            let Kind::Address {
                loopback_only,
                concrete,
            } = setting.kind
            else {
                return Err(mismatch(setting, &setting.kind));
            };
            let addr: SocketAddr = one(raw)?
                .trim()
                .parse()
                .map_err(|_| "expected IP:PORT, e.g. 127.0.0.1:7900 or [::1]:7900".to_owned())?;
            if loopback_only && !addr.ip().is_loopback() {
                return Err(
                    "the local API must bind to a loopback address (127.0.0.0/8 or [::1])".into(),
                );
            }
            if concrete && (addr.ip().is_unspecified() || addr.port() == 0) {
                return Err("must be a concrete address other agents can reach".into());
            }
            Ok(addr)
        })
    }

    /// A `Seeds` list, each resolved (`host:port`, port 7900 if omitted).
    pub(super) fn seeds(&self, setting: &Setting) -> Result<Vec<SocketAddr>, ConfigError> {
        let Some(raw) = self.raw_or_default(setting) else {
            return Ok(Vec::new());
        };
        let invalid = |value: String, problem: String| ConfigError::Invalid {
            key: setting.key,
            value,
            origin: raw.source.clone(),
            problem,
        };
        let items = many(&raw.value).map_err(|p| invalid(raw.value.shown(), p))?;
        items
            .iter()
            .map(|seed| parse_seed(seed).map_err(|p| invalid(seed.clone(), p)))
            .collect()
    }

    /// A `Tags` map, every tag and the whole checked (a bad one names its key).
    pub(super) fn tags(&self, setting: &Setting) -> Result<rover_membership::Tags, ConfigError> {
        let Some(raw) = self.raw_or_default(setting) else {
            return Ok(rover_membership::Tags::new());
        };
        let invalid = |value: String, problem: String| ConfigError::Invalid {
            key: setting.key,
            value,
            origin: raw.source.clone(),
            problem,
        };
        let items = many(&raw.value).map_err(|p| invalid(raw.value.shown(), p))?;
        let mut tags = rover_membership::Tags::new();
        for item in items {
            let (key, value) = rover_membership::tags::parse_tag(item)
                .map_err(|e| invalid(item.clone(), e.to_string()))?;
            tags.insert(key, value);
        }
        rover_membership::tags::validate_tags(&tags)
            .map_err(|e| invalid(raw.value.shown(), e.to_string()))?;
        Ok(tags)
    }

    /// An `AbsolutePaths` list.
    pub(super) fn paths(&self, setting: &Setting) -> Result<Vec<PathBuf>, ConfigError> {
        let paths = self.parsed(setting, |raw| {
            let items = many(raw)?;
            match items.iter().find(|p| !p.starts_with('/')) {
                Some(relative) => Err(format!("{relative:?} is not an absolute path")),
                None => Ok(items.iter().map(PathBuf::from).collect()),
            }
        })?;
        Ok(paths.map(|p| p.value).unwrap_or_default())
    }

    /// An `Interfaces` list (empty when unset).
    pub(super) fn interfaces(&self, setting: &Setting) -> Result<Vec<String>, ConfigError> {
        let names = self.parsed(setting, |raw| {
            let items = many(raw)?;
            match items
                .iter()
                .find(|n| n.is_empty() || n.len() > 15 || n.contains(['/', ' ']))
            {
                Some(bad) => Err(format!(
                    "{bad:?}: an interface name has 1 to 15 characters, no '/' or space"
                )),
                None => Ok(items.to_vec()),
            }
        })?;
        Ok(names.map(|n| n.value).unwrap_or_default())
    }

    /// A `Duration` value within the row's bounds; `None` for a zero the row allows (e.g.
    /// "never"), or when unset without a default value.
    pub(super) fn duration(
        &self,
        setting: &Setting,
    ) -> Result<Option<Sourced<Option<Duration>>>, ConfigError> {
        self.parsed(setting, |raw| match setting.kind {
            Kind::Duration(bounds) => duration(one(raw)?, bounds),
            other => Err(mismatch(setting, &other)),
        })
    }

    /// A `Duration` value that has a default and no zero meaning.
    pub(super) fn required_duration(
        &self,
        setting: &Setting,
    ) -> Result<Sourced<Duration>, ConfigError> {
        match self.duration(setting)? {
            Some(Sourced {
                value: Some(value),
                source,
            }) => Ok(Sourced { value, source }),
            _ => Err(ConfigError::Invalid {
                key: setting.key,
                value: String::new(),
                origin: Source::Default,
                problem: "(internal) this setting needs a default duration".into(),
            }),
        }
    }

    /// A `Count` value within the row's bounds.
    pub(super) fn count(&self, setting: &Setting) -> Result<u64, ConfigError> {
        let value = self.parsed(setting, |raw| {
            let Kind::Count { min, max } = setting.kind else {
                return Err(mismatch(setting, &setting.kind));
            };
            match one(raw)?.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(format!("must be a whole number from {min} to {max}")),
            }
        })?;
        Ok(value.map_or(0, |v| v.value))
    }

    /// A `Switch` value; `None` when unset without a default value.
    pub(super) fn switch(&self, setting: &Setting) -> Result<Option<bool>, ConfigError> {
        let value = self.parsed(setting, |raw| match (setting.kind, one(raw)?.trim()) {
            (Kind::Switch, "true") => Ok(true),
            (Kind::Switch, "false") => Ok(false),
            (Kind::Switch, _) => Err("expected true or false".into()),
            (other, _) => Err(mismatch(setting, &other)),
        })?;
        Ok(value.map(|v| v.value))
    }
}

fn one(raw: &Raw) -> Result<&str, String> {
    match raw {
        Raw::One(text) => Ok(text),
        Raw::Many(_) => Err("expected one value, not a list".into()),
    }
}

fn many(raw: &Raw) -> Result<&[String], String> {
    let items: &[String] = match raw {
        Raw::Many(items) => items,
        Raw::One(text) => std::slice::from_ref(text),
    };
    if items.len() > MAX_LIST {
        return Err(format!("at most {MAX_LIST} entries, not {}", items.len()));
    }
    Ok(items)
}

fn mismatch(setting: &Setting, kind: &Kind) -> String {
    format!("(internal) {} is declared as {kind:?}", setting.key)
}

/// 1 to 128 letters, digits, `-`, `_` or `.`.
pub(super) fn name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(text.to_owned())
    } else {
        Err("must be 1 to 128 characters of letters, digits, '-', '_' or '.'".into())
    }
}

/// Parses a duration and checks it against `bounds`; `Ok(None)` is an allowed zero.
pub(super) fn duration(text: &str, bounds: DurationBounds) -> Result<Option<Duration>, String> {
    let range = || {
        format!(
            "{} to {}",
            settings::short_duration(bounds.min),
            settings::short_duration(bounds.max)
        )
    };
    let value = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e} (e.g. 5s, 10m, 48h, 30d)"))?;
    if value.is_zero() {
        return match bounds.zero {
            Some(_) => Ok(None),
            None if bounds.min.is_zero() => Ok(Some(value)),
            None => Err(format!("must not be zero: {}", range())),
        };
    }
    if value < bounds.min {
        return Err(match bounds.zero {
            Some(meaning) => format!("must be 0s ({meaning}) or {}", range()),
            None => format!(
                "must be at least {}: {}",
                settings::short_duration(bounds.min),
                range()
            ),
        });
    }
    if value > bounds.max {
        return Err(format!(
            "must be at most {}: {}",
            settings::short_duration(bounds.max),
            range()
        ));
    }
    Ok(Some(value))
}
