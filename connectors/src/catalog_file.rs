//! Reading a catalog file into a connector's serde-derived settings struct, with errors that name
//! the key ([`ConnectorError::Config`]).
//!
//! Each connector declares its keys as a `#[serde(deny_unknown_fields)]` struct with its defaults;
//! [`parse`] turns serde's error into the key it is about and serde's reason. Secrets are
//! [`Secret`]s, whose `Debug` prints `***`.

use serde::de::DeserializeOwned;

use crate::ConnectorError;

/// A secret string of a catalog file (a password, an S3 secret key): `Debug` prints `***`, and a value
/// of the wrong type is reported by its type only. Shared with the `[exchange]` section of
/// `config.toml`.
pub use tributary_exchange::Secret;

/// Deserializes a whole catalog file (`${ENV}` already substituted) into `T`.
///
/// Errors: [`ConnectorError::Config`] with the dotted path of the offending key (`region`,
/// `properties.x`) and serde's reason; for an unknown or missing key, which serde reports on the
/// file itself, the key serde names in its reason.
pub(crate) fn parse<T: DeserializeOwned>(config: &toml::Table) -> Result<T, ConnectorError> {
    serde_path_to_error::deserialize(toml::Value::Table(config.clone())).map_err(|e| {
        let reason = e.inner().message().trim_end();
        // serde says "field"; a catalog file has keys.
        let reason = reason.replacen("unknown field", "unknown key", 1).replacen(
            "missing field",
            "missing key",
            1,
        );
        let path = e.path().to_string();
        let key = if path == "." {
            named_key(&reason).unwrap_or(path)
        } else {
            path
        };
        ConnectorError::Config { key, reason }
    })
}

/// The key serde's reason names first (`unknown field `x`, expected ...`), if any.
fn named_key(reason: &str) -> Option<String> {
    let (_, rest) = reason.split_once('`')?;
    let (key, _) = rest.split_once('`')?;
    Some(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        port: Option<u16>,
        password: Option<Secret>,
    }

    fn parse_str(text: &str) -> Result<File, ConnectorError> {
        parse(&toml::from_str(text).expect("toml"))
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [("port = 70000", "port"), ("prot = 1", "prot")] {
            match parse_str(text) {
                Err(ConnectorError::Config { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_not_echoed() {
        match parse_str("password = 918273645") {
            Err(e @ ConnectorError::Config { .. }) => {
                let ConnectorError::Config { key, reason } = &e else {
                    unreachable!()
                };
                assert_eq!(key, "password");
                assert!(!format!("{e} {e:?}").contains("918273645"), "{e}");
                assert!(reason.contains("string"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secrets_are_not_shown() {
        let file = parse_str("password = \"hunter2\"").expect("parses");
        assert!(!format!("{file:?}").contains("hunter2"));
        assert_eq!(file.password.as_ref().map(Secret::expose), Some("hunter2"));
    }
}
