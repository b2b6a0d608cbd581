//! Value types the configuration is made of: each checks itself when it is deserialized, so
//! a bad value is reported with the field's path by the deserializer, not by hand-written
//! range checks that repeat field names.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, de::DeserializeOwned};

use super::error::ConfigError;

/// An integer within `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    /// The value.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The value, or `default` when the field was absent.
    pub fn or(value: Option<Self>, default: u64) -> u64 {
        value.map_or(default, Self::get)
    }

    /// [`Bounded::or`] as a `usize` (the bounds are far below `usize::MAX` on every target).
    pub fn or_usize(value: Option<Self>, default: u64) -> usize {
        usize::try_from(Self::or(value, default)).unwrap_or(usize::MAX)
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        if (MIN..=MAX).contains(&value) {
            Ok(Bounded(value))
        } else if MIN == 0 {
            Err(de::Error::custom(format!("must be at most {MAX}")))
        } else {
            Err(de::Error::custom(format!(
                "must be between {MIN} and {MAX}"
            )))
        }
    }
}

/// A secret that never shows up in `Debug` output (and so never in a log line).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The name of a provider or a rule: it appears in metric names, so 1–64 characters of
/// `a-z 0-9 _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name known to be valid (the implicit provider and rule of a single-issuer config).
    pub(crate) fn fixed(name: &str) -> Name {
        Name(name.to_owned())
    }

    fn is_valid(name: &str) -> bool {
        (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if Name::is_valid(&name) {
            Ok(Name(name))
        } else {
            Err(de::Error::custom(format!(
                "`{name}` is not a valid name: 1-64 characters of a-z, 0-9, `_` and `-`"
            )))
        }
    }
}

/// A JSON object read in order, whose keys are [`Name`]s and must be distinct (a repeated
/// provider would otherwise silently replace the first).
#[derive(Debug)]
pub struct NamedMap<T>(pub Vec<(Name, T)>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for NamedMap<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamedMapVisitor<T>(PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for NamedMapVisitor<T> {
            type Value = NamedMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of named entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(Name, T)> = Vec::new();
                while let Some(name) = access.next_key::<Name>()? {
                    if entries.iter().any(|(existing, _)| *existing == name) {
                        return Err(de::Error::custom(format!("`{name}` is defined twice")));
                    }
                    let value = access.next_value::<T>()?;
                    entries.push((name, value));
                }
                Ok(NamedMap(entries))
            }
        }
        deserializer.deserialize_map(NamedMapVisitor(PhantomData))
    }
}

/// A value that may be given as one item or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// One item.
    One(T),
    /// A list.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The items as a list.
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(item) => vec![item],
            OneOrMany::Many(items) => items,
        }
    }
}

/// RFC 9110 token characters.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// RFC 3986 unreserved characters.
pub fn is_unreserved_url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// Printable ASCII without `"` or `\`: safe inside an HTTP quoted-string.
pub fn is_quoted_string_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// RFC 6749 §3.3 `scope-token`: %x21 / %x23-5B / %x5D-7E.
pub fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// `field` must not be empty.
pub(crate) fn non_empty(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        Err(ConfigError::new(field, "must not be empty"))
    } else {
        Ok(())
    }
}

/// `field` must be a path starting with `/`.
pub(crate) fn absolute_path(field: &str, path: &str) -> Result<(), ConfigError> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(ConfigError::new(field, "must start with `/`"))
    }
}
