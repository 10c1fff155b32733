//! [`Secret`]: a secret string of a config file.

use std::fmt;

use serde::Deserialize;

/// A secret string of a config file (a password, an S3 secret key): shown as `***` by `Debug`, never
/// written into an error (a value of the wrong type is reported by its type only). Used by the
/// `[exchange]` section of `config.toml` and by catalog files.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret's value, for handing to the client library only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Through `toml::Value` so that serde's "invalid type: integer `123`" never echoes it.
        match toml::Value::deserialize(deserializer)? {
            toml::Value::String(s) => Ok(Secret(s)),
            other => Err(serde::de::Error::custom(format!(
                "must be a string, found a {}",
                other.type_str()
            ))),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
