//! Stage two of parsing: option values into the contract's parameter types.
//!
//! Each function takes the raw strings clap collected and returns the typed value or a
//! [`CliError::Invalid`] whose message names the flag and the expected form. Only
//! [`text_source`] does I/O (it reads `--text-file`/`--patch-file`).

use super::error::CliError;
use pyro::params::{PublishedPortInput, SecretInput};
use pyro::runtime::validate::MAX_FILE_BYTES;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

fn is_shell_safe(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '_' | '@' | '%' | '+' | '=' | ':' | ',' | '.' | '/' | '-')
}

/// Quote one word for a POSIX shell (like Python's `shlex.quote`).
pub fn shell_quote(word: &str) -> Cow<'_, str> {
    if !word.is_empty() && word.chars().all(is_shell_safe) {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r#"'"'"'"#)))
    }
}

/// Join words with POSIX shell quoting (like Python's `shlex.join`), so that
/// `/bin/sh -c` sees exactly these words again.
pub fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|w| shell_quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

/// The command given after `--`, joined into one shell string.
pub fn command(words: &[String]) -> Result<String, CliError> {
    if words.is_empty() {
        return Err(CliError::invalid("command is required after `--`"));
    }
    Ok(shell_join(words))
}

fn split_pair(raw: &str) -> Option<(&str, &str)> {
    raw.split_once('=')
}

/// `--label KEY=VALUE`: split at the first `=`; key and value trimmed, both non-empty.
pub fn label(raw: &str) -> Result<(String, String), CliError> {
    let bad = || CliError::invalid(format!("workspace labels must use KEY=VALUE (got '{raw}')"));
    let (key, value) = split_pair(raw).ok_or_else(bad)?;
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() || value.is_empty() {
        return Err(bad());
    }
    Ok((key.to_string(), value.to_string()))
}

/// All `--label` values as a map (`None` when there are none; a repeated key keeps the
/// last value).
pub fn labels(raw: &[String]) -> Result<Option<BTreeMap<String, String>>, CliError> {
    if raw.is_empty() {
        return Ok(None);
    }
    raw.iter().map(|r| label(r)).collect::<Result<BTreeMap<_, _>, _>>().map(Some)
}

/// `--secret NAME=VALUE`: name trimmed and non-empty, value verbatim and non-empty.
pub fn secret(raw: &str) -> Result<SecretInput, CliError> {
    let bad = || CliError::invalid("workspace secrets must use NAME=VALUE");
    let (name, value) = split_pair(raw).ok_or_else(bad)?;
    let name = name.trim();
    if name.is_empty() || value.is_empty() {
        return Err(bad());
    }
    Ok(SecretInput { name: name.to_string(), value: Some(value.to_string()), file_path: None })
}

/// `--secret-file NAME=PATH`: name and path trimmed and non-empty; a relative path is
/// made absolute against the current directory.
pub fn secret_file(raw: &str) -> Result<SecretInput, CliError> {
    let bad =
        || CliError::invalid(format!("workspace secret files must use NAME=PATH (got '{raw}')"));
    let (name, path) = split_pair(raw).ok_or_else(bad)?;
    let (name, path) = (name.trim(), path.trim());
    if name.is_empty() || path.is_empty() {
        return Err(bad());
    }
    let path = absolute(Path::new(path))?;
    Ok(SecretInput {
        name: name.to_string(),
        value: None,
        file_path: Some(path.display().to_string()),
    })
}

/// `--secret-env SECRET[=ENV]` values as the `secret_env` map (`None` when empty). ENV
/// defaults to SECRET; naming the same secret twice is an error.
pub fn secret_env(raw: &[String]) -> Result<Option<BTreeMap<String, String>>, CliError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let mut map = BTreeMap::new();
    for item in raw {
        let (secret, env) = match split_pair(item) {
            Some((s, e)) => (s.trim(), e.trim()),
            None => (item.trim(), item.trim()),
        };
        if secret.is_empty() || env.is_empty() {
            return Err(CliError::invalid(format!(
                "--secret-env must use SECRET or SECRET=ENV_VAR (got '{item}')"
            )));
        }
        if map.insert(secret.to_string(), env.to_string()).is_some() {
            return Err(CliError::invalid(format!(
                "--secret-env names secret '{secret}' more than once"
            )));
        }
    }
    Ok(Some(map))
}

/// `--publish GUEST_PORT` or `--publish HOST_PORT:GUEST_PORT`.
pub fn publish(raw: &str) -> Result<PublishedPortInput, CliError> {
    let bad = || {
        CliError::invalid(format!(
            "published ports must use GUEST_PORT or HOST_PORT:GUEST_PORT (got '{raw}')"
        ))
    };
    let port = |s: &str| s.trim().parse::<u16>().map_err(|_| bad());
    match raw.split_once(':') {
        None => Ok(PublishedPortInput { guest_port: port(raw)?, host_port: None }),
        Some((host, guest)) => {
            Ok(PublishedPortInput { guest_port: port(guest)?, host_port: Some(port(host)?) })
        }
    }
}

/// All `--publish` values (`None` when there are none).
pub fn publish_all(raw: &[String]) -> Result<Option<Vec<PublishedPortInput>>, CliError> {
    if raw.is_empty() {
        return Ok(None);
    }
    raw.iter().map(|r| publish(r)).collect::<Result<Vec<_>, _>>().map(Some)
}

/// `service start` readiness flags: at most one may be given.
pub fn at_most_one_readiness(given: [bool; 4]) -> Result<(), CliError> {
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(CliError::invalid(
            "choose at most one of --ready-file, --ready-tcp, --ready-http, or --ready-command",
        ));
    }
    Ok(())
}

fn too_large(what: &str, len: u64) -> CliError {
    CliError::invalid(format!("{what} is {len} bytes; the limit is {MAX_FILE_BYTES} bytes (1 MiB)"))
}

/// The content of `--text`/`--text-file` (or `--patch`/`--patch-file`): exactly one is
/// set (clap enforces that). Inline text and files are limited to 1 MiB; a file must be
/// an existing regular UTF-8 file.
pub fn text_source(
    inline_flag: &str,
    inline: Option<String>,
    file_flag: &str,
    file: Option<&Path>,
) -> Result<String, CliError> {
    if let Some(text) = inline {
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(too_large(inline_flag, text.len() as u64));
        }
        return Ok(text);
    }
    let Some(path) = file else {
        return Err(CliError::invalid(format!("one of {inline_flag} or {file_flag} is required")));
    };
    if path.as_os_str().is_empty() {
        return Err(CliError::invalid(format!("{file_flag} must not be empty")));
    }
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CliError::invalid(format!("{file_flag} {shown} does not exist")),
        _ => CliError::invalid(format!("{file_flag} {shown} cannot be read: {e}")),
    })?;
    if meta.is_dir() {
        return Err(CliError::invalid(format!("{file_flag} {shown} is a directory, not a file")));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(&format!("{file_flag} {shown}"), meta.len()));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::invalid(format!("{file_flag} {shown} cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(&format!("{file_flag} {shown}"), bytes.len() as u64));
    }
    String::from_utf8(bytes)
        .map_err(|_| CliError::invalid(format!("{file_flag} {shown} is not valid UTF-8")))
}

/// A host path made absolute against the current directory (no file system access
/// beyond reading the current directory), so results name the path unambiguously.
pub fn absolute(path: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(path)
        .map_err(|e| CliError::invalid(format!("invalid path {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn words(ws: &[&str]) -> Vec<String> {
        ws.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shell_join_quotes_like_shlex() {
        assert_eq!(shell_join(&["echo", "hi"]), "echo hi");
        assert_eq!(shell_join(&["sh", "-c", "exit 3"]), "sh -c 'exit 3'");
        assert_eq!(shell_join(&["echo", ""]), "echo ''");
        assert_eq!(shell_join(&["echo", "it's"]), r#"echo 'it'"'"'s'"#);
        assert_eq!(shell_join(&["a=b", "x/y.z", "-n"]), "a=b x/y.z -n");
        assert_eq!(shell_join(&["$HOME", "*", "a;b"]), "'$HOME' '*' 'a;b'");
    }

    #[test]
    fn shell_join_round_trips_through_sh() {
        let original = ["printf", "%s|", "it's", "$HOME", "a b", "", "\"q\"", "\\", "x\ny"];
        let out =
            Command::new("/bin/sh").arg("-c").arg(shell_join(&original)).output().expect("run sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's|$HOME|a b||\"q\"|\\|x\ny|");
    }

    #[test]
    fn command_requires_words() {
        let err = command(&[]).expect_err("empty");
        assert_eq!(err.to_string(), "command is required after `--`");
        assert_eq!(command(&words(&["ls", "-l"])).expect("ok"), "ls -l");
    }

    #[test]
    fn label_splits_at_first_equals_and_trims() {
        assert_eq!(label(" k = v=w ").expect("ok"), ("k".into(), "v=w".into()));
        for bad in ["k", "=v", "k=", " = "] {
            let err = label(bad).expect_err(bad).to_string();
            assert!(err.contains("KEY=VALUE"), "{err}");
        }
        assert_eq!(labels(&[]).expect("ok"), None);
        let map = labels(&words(&["a=1", "b=2", "a=3"])).expect("ok").expect("some");
        assert_eq!(map.get("a").map(String::as_str), Some("3"));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn secret_keeps_value_verbatim() {
        let s = secret(" TOKEN= a b ").expect("ok");
        assert_eq!(s.name, "TOKEN");
        assert_eq!(s.value.as_deref(), Some(" a b "));
        assert_eq!(s.file_path, None);
        for bad in ["TOKEN", "=x", "TOKEN="] {
            assert_eq!(
                secret(bad).expect_err(bad).to_string(),
                "workspace secrets must use NAME=VALUE"
            );
        }
    }

    #[test]
    fn secret_file_makes_the_path_absolute() {
        let s = secret_file("KEY=rel/key.txt").expect("ok");
        assert_eq!(s.name, "KEY");
        let path = s.file_path.expect("path");
        assert!(path.starts_with('/') && path.ends_with("rel/key.txt"), "{path}");
        assert!(secret_file("KEY=").is_err());
        assert!(secret_file("KEY").expect_err("x").to_string().contains("NAME=PATH"));
    }

    #[test]
    fn secret_env_defaults_and_rejects_duplicates() {
        let map = secret_env(&words(&["TOKEN", "API=API_KEY"])).expect("ok").expect("some");
        assert_eq!(map.get("TOKEN").map(String::as_str), Some("TOKEN"));
        assert_eq!(map.get("API").map(String::as_str), Some("API_KEY"));
        assert_eq!(secret_env(&[]).expect("ok"), None);
        let err = secret_env(&words(&["A", "A=B"])).expect_err("dup").to_string();
        assert!(err.contains("more than once"), "{err}");
        assert!(secret_env(&words(&["A="])).is_err());
        assert!(secret_env(&words(&["=B"])).is_err());
    }

    #[test]
    fn publish_accepts_guest_or_host_guest() {
        assert_eq!(
            publish("8080").expect("ok"),
            PublishedPortInput { guest_port: 8080, host_port: None }
        );
        assert_eq!(
            publish("18080:8080").expect("ok"),
            PublishedPortInput { guest_port: 8080, host_port: Some(18080) }
        );
        for bad in ["", "x", "1:2:3", "80:", ":80", "70000", "-1"] {
            let err = publish(bad).expect_err(bad).to_string();
            assert!(err.starts_with("published ports must use GUEST_PORT or HOST_PORT:GUEST_PORT"));
        }
        assert_eq!(publish_all(&[]).expect("ok"), None);
        assert_eq!(publish_all(&words(&["1", "2:3"])).expect("ok").map(|v| v.len()), Some(2));
    }

    #[test]
    fn readiness_flags_are_exclusive() {
        assert!(at_most_one_readiness([false; 4]).is_ok());
        assert!(at_most_one_readiness([false, true, false, false]).is_ok());
        let err = at_most_one_readiness([true, false, false, true]).expect_err("two");
        assert_eq!(
            err.to_string(),
            "choose at most one of --ready-file, --ready-tcp, --ready-http, or --ready-command"
        );
    }

    #[test]
    fn text_source_reads_and_checks_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = dir.path().join("ok.txt");
        std::fs::write(&ok, "héllo\n").expect("write");
        let bin = dir.path().join("bin");
        std::fs::write(&bin, [0xff, 0xfe, 0x00]).expect("write");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_FILE_BYTES as usize + 1]).expect("write");

        let read = |p: &Path| text_source("--text", None, "--text-file", Some(p));
        assert_eq!(read(&ok).expect("ok"), "héllo\n");
        assert!(read(&dir.path().join("missing"))
            .expect_err("x")
            .to_string()
            .contains("does not exist"));
        assert!(read(dir.path()).expect_err("x").to_string().contains("is a directory"));
        assert!(read(&bin).expect_err("x").to_string().contains("not valid UTF-8"));
        assert!(read(&big).expect_err("x").to_string().contains("the limit is 1048576 bytes"));
        assert!(read(Path::new("")).expect_err("x").to_string().contains("must not be empty"));
    }

    #[test]
    fn text_source_limits_inline_text() {
        let fits = "a".repeat(MAX_FILE_BYTES as usize);
        assert_eq!(
            text_source("--text", Some(fits.clone()), "--text-file", None).expect("ok"),
            fits
        );
        let err = text_source("--patch", Some(fits + "a"), "--patch-file", None).expect_err("big");
        assert_eq!(err.to_string(), "--patch is 1048577 bytes; the limit is 1048576 bytes (1 MiB)");
    }
}
