//! Configuration errors: one line naming the field at fault.

use std::fmt;

/// A configuration problem, naming the offending field as a path such as
/// `jwks.remote.cluster` or `rules[2].requires.any[1].provider`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where: a dotted path with `[index]` for list items; empty for the whole document.
    pub field: String,
    /// What is wrong, in words.
    pub problem: String,
}

impl ConfigError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The same problem, seen from a containing object: `prefix` is prepended to the path.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = join(prefix, &self.field);
        self
    }
}

/// `prefix.field`, or either alone when the other is empty.
pub fn join(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if field.starts_with('[') => format!("{prefix}{field}"),
        (false, false) => format!("{prefix}.{field}"),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration: ")?;
        if !self.field.is_empty() {
            f.write_str("field `")?;
            write_escaped(f, &self.field)?;
            f.write_str("`: ")?;
        }
        write_escaped(f, &self.problem)
    }
}

/// Field names and problems quote the configuration's own text (a provider's name, say):
/// control characters are escaped so that the error stays one log line.
fn write_escaped(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for c in text.chars() {
        if c.is_control() {
            write!(f, "{}", c.escape_default())?;
        } else {
            write!(f, "{c}")?;
        }
    }
    Ok(())
}

impl std::error::Error for ConfigError {}

/// Deserializes `T` from JSON bytes; an error names the path where it happened.
pub fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let field = err.path().to_string();
        let field = if field == "." { String::new() } else { field };
        ConfigError::new(field, err.into_inner().to_string())
    })
}
