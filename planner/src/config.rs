//! Reading TOML config files with `${ENV}` substitution, shared by `config.toml` and catalog files.

use std::path::{Path, PathBuf};

/// A config file that could not be used. The message names the file, the key and the reason
/// (and never a substituted secret).
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub reason: String,
}

/// Replaces every `${NAME}` in `text` with the environment variable `NAME`.
///
/// Errors with the variable's name when it is unset or the `${` is not closed. `$$` is not special.
pub fn substitute_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated `${` in value".to_string())?;
        let name = &after[..end];
        let value =
            std::env::var(name).map_err(|_| format!("environment variable `{name}` is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads `path` as TOML, then replaces `${ENV}` in its string values (never in keys or the raw text,
/// so a secret can hold any character and a TOML error never quotes one).
///
/// Errors name the file and, for TOML errors, the line and the `toml` crate's reason; for a missing
/// variable, the key path and the variable's name.
pub fn read_toml(path: &Path) -> Result<toml::Table, ConfigError> {
    let err = |reason: String| ConfigError {
        file: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut table = text.parse::<toml::Table>().map_err(|e| {
        let line = e
            .span()
            .map(|span| format!("line {}: ", text[..span.start].lines().count().max(1)))
            .unwrap_or_default();
        err(format!("{line}{}", e.message()))
    })?;
    for (key, value) in table.iter_mut() {
        substitute_value(value).map_err(|reason| err(format!("key `{key}`: {reason}")))?;
    }
    Ok(table)
}

/// Applies [`substitute_env`] to every string inside `value`.
fn substitute_value(value: &mut toml::Value) -> Result<(), String> {
    match value {
        toml::Value::String(s) => *s = substitute_env(s)?,
        toml::Value::Array(items) => items.iter_mut().try_for_each(substitute_value)?,
        toml::Value::Table(table) => table
            .iter_mut()
            .try_for_each(|(_, v)| substitute_value(v))?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_and_reports_missing() {
        // SAFETY: single-threaded test setting a variable only it reads.
        unsafe { std::env::set_var("TRIBUTARY_TEST_SECRET", "s3cr3t") };
        assert_eq!(
            substitute_env("password = \"${TRIBUTARY_TEST_SECRET}\"").unwrap(),
            "password = \"s3cr3t\""
        );
        assert!(
            substitute_env("${TRIBUTARY_NOT_SET_ANYWHERE}")
                .unwrap_err()
                .contains("TRIBUTARY_NOT_SET_ANYWHERE")
        );
        assert!(substitute_env("${OPEN").is_err());
    }

    #[test]
    fn secrets_are_substituted_after_parsing_and_never_quoted_in_errors() {
        // SAFETY: single-threaded test setting a variable only it reads.
        unsafe { std::env::set_var("TRIBUTARY_TEST_QUOTED", "p\"w\\d") };
        let dir = std::env::temp_dir().join(format!("tributary-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "[auth]\npassword = \"${TRIBUTARY_TEST_QUOTED}\"\n").unwrap();
        let table = read_toml(&good).unwrap();
        assert_eq!(table["auth"]["password"].as_str(), Some("p\"w\\d"));

        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "password = \"${TRIBUTARY_TEST_QUOTED}\"\nport = \n").unwrap();
        let e = read_toml(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("line 2"), "{e}");
        assert!(!e.contains("p\"w"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
