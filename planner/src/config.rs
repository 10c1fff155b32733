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

/// Reads `path` as TOML after `${ENV}` substitution. Errors name the file and, for TOML errors,
/// the line and key as the `toml` crate reports them.
pub fn read_toml(path: &Path) -> Result<toml::Table, ConfigError> {
    let err = |reason: String| ConfigError {
        file: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let text = substitute_env(&text).map_err(err)?;
    text.parse::<toml::Table>().map_err(|e| err(e.to_string()))
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
}
