//! Workspace secrets: validation at create time, the host copy, installation in the
//! guest, `secret_env` mapping and output redaction.
//!
//! # Where a value lives
//!
//! - on the host only in `<workspace dir>/secrets/<NAME>.secret` (directory 0700,
//!   files 0600); `workspace.json` lists `{name, source_kind}` and nothing else;
//! - in the guest in `/run/pyro-secrets/<NAME>` (mode 0400, on the `/run` tmpfs, so never
//!   on the workspace disk), rewritten at create, start, reset and before every exec
//!   that maps secrets ([`Runtime::install_secrets`]);
//! - in the environment of a command only when the caller maps it with `secret_env`
//!   ([`Runtime::secret_env`]).
//!
//! Everything pyro returns or persists that a command could have printed goes through a
//! [`Redactor`] first ([`Runtime::redactor`]): every value, longest first, becomes
//! `[REDACTED]`. Error messages built here name secrets and files, never values.
//!
//! Shells and services use the same two functions for their `secret_env` and output.

use super::agent::{self, b64, QUICK};
use super::error::{PyroError, Result};
use super::state::{new_id, WorkspaceDir, WorkspaceRecord};
use super::Runtime;
use crate::backend::{AgentChannel, Capabilities};
use pyro_contract::params::SecretInput;
use pyro_contract::results::SecretInfo;
use pyro_protocol::Request;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

/// What replaces a secret value in output.
pub const REDACTED: &str = "[REDACTED]";
/// Largest secret value in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// Why a workspace on the host cannot have secrets.
const HOST_COMPAT_REASON: &str =
    "it runs in host_compat mode on the host, without a guest to hold them";

/// A validated secret, ready to store.
#[derive(Clone)]
pub(crate) struct PreparedSecret {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) source_kind: &'static str,
}

impl std::fmt::Debug for PreparedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedSecret")
            .field("name", &self.name)
            .field("value", &REDACTED)
            .field("source_kind", &self.source_kind)
            .finish()
    }
}

/// Whether `name` is a valid secret or environment variable name.
pub fn is_valid_name(name: &str) -> bool {
    pyro_agent::secrets::is_valid_name(name)
}

/// The host directory of a workspace's secrets.
pub(crate) fn secrets_dir(dir: &WorkspaceDir) -> PathBuf {
    dir.root.join("secrets")
}

fn secret_file(dir: &WorkspaceDir, name: &str) -> PathBuf {
    secrets_dir(dir).join(format!("{name}.secret"))
}

/// The error for secrets on a workspace without a guest.
pub(crate) fn unavailable(reason: &str) -> PyroError {
    PyroError::invalid(format!(
        "workspace secrets require guest execution and are unavailable for this workspace: {reason}"
    ))
}

fn check_value(name: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(PyroError::invalid(format!("secret '{name}' must have a non-empty value")));
    }
    if value.len() > MAX_SECRET_BYTES {
        return Err(PyroError::invalid(format!(
            "secret '{name}' is {} bytes; the limit is {MAX_SECRET_BYTES} bytes",
            value.len()
        )));
    }
    Ok(())
}

/// Validate `workspace_create.secrets`: names, exactly one source each, no duplicates,
/// values non-empty UTF-8 of at most 64 KiB; files are read now. Sorted by name.
pub(crate) fn prepare(inputs: &[SecretInput]) -> Result<Vec<PreparedSecret>> {
    let mut out: Vec<PreparedSecret> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let name = input.name.trim();
        if !is_valid_name(name) {
            return Err(PyroError::invalid(format!(
                "secret name '{}' must match [A-Za-z_][A-Za-z0-9_]{{0,63}}",
                input.name
            )));
        }
        if out.iter().any(|s| s.name == name) {
            return Err(PyroError::invalid(format!("duplicate secret name '{name}'")));
        }
        let (value, source_kind) = match (&input.value, &input.file_path) {
            (Some(value), None) => (value.clone(), "literal"),
            (None, Some(path)) => (read_secret_file(name, path)?, "file"),
            _ => {
                return Err(PyroError::invalid(format!(
                    "secret '{name}' must set exactly one of value or file_path"
                )))
            }
        };
        check_value(name, &value)?;
        out.push(PreparedSecret { name: name.to_string(), value, source_kind });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn read_secret_file(name: &str, path: &str) -> Result<String> {
    let path = super::seed::absolute(path)?;
    let meta = fs::metadata(&path).map_err(|e| {
        PyroError::invalid(format!(
            "secret '{name}' file_path {} is unreadable: {e}",
            path.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(PyroError::invalid(format!(
            "secret '{name}' file_path {} is not a regular file",
            path.display()
        )));
    }
    if meta.len() > MAX_SECRET_BYTES as u64 {
        return Err(PyroError::invalid(format!(
            "secret '{name}' file {} is {} bytes; the limit is {MAX_SECRET_BYTES} bytes",
            path.display(),
            meta.len()
        )));
    }
    let bytes = fs::read(&path).map_err(|e| {
        PyroError::invalid(format!(
            "secret '{name}' file_path {} is unreadable: {e}",
            path.display()
        ))
    })?;
    String::from_utf8(bytes).map_err(|_| {
        PyroError::invalid(format!("secret '{name}' file {} is not UTF-8 text", path.display()))
    })
}

/// Write the host copy (`secrets/<NAME>.secret`, 0600 in a 0700 directory) and return
/// what the record may show.
pub(crate) fn store(dir: &WorkspaceDir, secrets: &[PreparedSecret]) -> Result<Vec<SecretInfo>> {
    if secrets.is_empty() {
        return Ok(Vec::new());
    }
    let root = secrets_dir(dir);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&root)
        .map_err(|e| PyroError::io("could not create the secrets directory", &root, e))?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
        .map_err(|e| PyroError::io("could not restrict the secrets directory", &root, e))?;
    for s in secrets {
        let path = secret_file(dir, &s.name);
        let tmp = root.join(format!(".{}.tmp-{}", s.name, new_id()));
        let written = (|| -> std::io::Result<()> {
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(s.value.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(PyroError::io("could not store a secret", &path, e));
        }
    }
    Ok(secrets
        .iter()
        .map(|s| SecretInfo { name: s.name.clone(), source_kind: s.source_kind.to_string() })
        .collect())
}

/// Read the host copy of every secret of `rec` (name -> value).
fn load(dir: &WorkspaceDir, rec: &WorkspaceRecord) -> Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    for info in &rec.secrets {
        let path = secret_file(dir, &info.name);
        let bytes = fs::read(&path).map_err(|e| {
            PyroError::io(format!("could not read secret '{}'", info.name), &path, e)
        })?;
        let value = String::from_utf8(bytes).map_err(|_| PyroError::CorruptState {
            path: path.clone(),
            message: format!("secret '{}' is not UTF-8", info.name),
        })?;
        values.insert(info.name.clone(), value);
    }
    Ok(values)
}

/// Every value found in the secrets directory, whatever the record says (so a value is
/// redacted even while the record is being rewritten).
fn all_values(dir: &WorkspaceDir) -> Vec<String> {
    let root = secrets_dir(dir);
    let mut values = Vec::new();
    for entry in fs::read_dir(&root).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "secret") {
            match fs::read(&path) {
                Ok(bytes) => values.push(String::from_utf8_lossy(&bytes).into_owned()),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not read a secret for redaction")
                }
            }
        }
    }
    values
}

/// Replaces secret values in text with `[REDACTED]`.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Non-empty values, longest first.
    values: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("values", &self.values.len()).finish()
    }
}

impl Redactor {
    /// A redactor for `values` (empty values are ignored).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        values.dedup();
        Redactor { values }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values, longest first (for redaction inside the guest, e.g. shell output).
    pub(crate) fn values(&self) -> &[String] {
        &self.values
    }

    /// `text` with every value (longest first) replaced by `[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        out
    }

    /// Like [`Redactor::redact`], for output that was cut at a size limit: a trailing
    /// piece that is the start of a value (at least 4 bytes, or the whole value's
    /// length minus one when shorter) is redacted too, so a cut never leaks a prefix.
    pub fn redact_truncated(&self, text: &str) -> String {
        let mut cut = 0;
        for v in &self.values {
            let min = 4.min(v.len().saturating_sub(1)).max(1);
            let longest = v.len().saturating_sub(1).min(text.len());
            for n in (min..=longest).rev() {
                if v.is_char_boundary(n) && text.ends_with(&v[..n]) {
                    cut = cut.max(n);
                    break;
                }
            }
        }
        let mut out = self.redact(&text[..text.len() - cut]);
        if cut > 0 {
            out.push_str(REDACTED);
        }
        out
    }

    /// Redact the message of an error (when anything was replaced, the error keeps its
    /// kind and carries the redacted text).
    pub fn redact_error(&self, err: PyroError) -> PyroError {
        if self.is_empty() {
            return err;
        }
        let text = err.to_string();
        let redacted = self.redact(&text);
        match err {
            _ if redacted == text => err,
            PyroError::Guest { kind, .. } => PyroError::Guest { kind, message: redacted },
            other => {
                PyroError::Redacted { kind: other.kind(), message: redacted, hint: other.hint() }
            }
        }
    }
}

impl Runtime {
    /// The environment for a command that maps secrets: `map` is SECRET -> ENV_VAR (as
    /// in `secret_env`), the answer ENV_VAR -> value. Unknown secrets and invalid
    /// variable names are refused; a workspace without a guest cannot map secrets.
    pub(crate) fn secret_env(
        &self,
        dir: &WorkspaceDir,
        rec: &WorkspaceRecord,
        map: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        if map.is_empty() {
            return Ok(BTreeMap::new());
        }
        if !self.capabilities(rec.backend).secrets {
            return Err(unavailable(HOST_COMPAT_REASON));
        }
        for (secret, var) in map {
            if !rec.secrets.iter().any(|s| &s.name == secret) {
                return Err(PyroError::invalid(format!(
                    "secret_env references unknown workspace secret '{secret}'"
                )));
            }
            if !is_valid_name(var) {
                return Err(PyroError::invalid(format!(
                    "secret_env maps secret '{secret}' to an invalid environment variable name '{var}'; \
                     names must match [A-Za-z_][A-Za-z0-9_]{{0,63}}"
                )));
            }
        }
        let mut seen = BTreeMap::new();
        for (secret, var) in map {
            if let Some(other) = seen.insert(var.clone(), secret.clone()) {
                return Err(PyroError::invalid(format!(
                    "secret_env maps both '{other}' and '{secret}' to environment variable '{var}'"
                )));
            }
        }
        let values = load(dir, rec)?;
        Ok(map
            .iter()
            .filter_map(|(secret, var)| values.get(secret).map(|v| (var.clone(), v.clone())))
            .collect())
    }

    /// A redactor for everything a workspace's commands may print.
    pub(crate) fn redactor(&self, dir: &WorkspaceDir) -> Redactor {
        Redactor::new(all_values(dir))
    }

    /// Write the workspace's secrets into the guest (`/run/pyro-secrets`, wiped and
    /// rewritten). A workspace without secrets needs nothing.
    pub(crate) fn install_secrets(
        &self,
        dir: &WorkspaceDir,
        rec: &WorkspaceRecord,
        channel: &mut dyn AgentChannel,
    ) -> Result<()> {
        if rec.secrets.is_empty() {
            return Ok(());
        }
        if !self.capabilities(rec.backend).secrets {
            return Err(unavailable(HOST_COMPAT_REASON));
        }
        let secrets = load(dir, rec)?.into_iter().map(|(k, v)| (k, b64(v.as_bytes()))).collect();
        agent::call(channel, Request::InstallSecrets { secrets }, QUICK)
            .map_err(|e| self.redactor(dir).redact_error(e))?;
        Ok(())
    }
}

/// Refuse secrets for a workspace whose backend cannot keep them in a guest.
pub(crate) fn refuse_without_guest(secrets: &[PreparedSecret], caps: Capabilities) -> Result<()> {
    if !secrets.is_empty() && !caps.secrets {
        return Err(unavailable(HOST_COMPAT_REASON));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn literal(name: &str, value: &str) -> SecretInput {
        SecretInput { name: name.into(), value: Some(value.into()), file_path: None }
    }

    #[test]
    fn prepare_validates_names_sources_sizes_and_duplicates() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("tok");
        fs::write(&file, "from-file\n").expect("write");
        let ok = prepare(&[
            literal("ZED", "z-value"),
            SecretInput {
                name: "A_FILE".into(),
                value: None,
                file_path: Some(file.display().to_string()),
            },
        ])
        .expect("prepare");
        assert_eq!(ok.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["A_FILE", "ZED"]);
        assert_eq!((ok[0].value.as_str(), ok[0].source_kind), ("from-file\n", "file"));
        assert!(!format!("{ok:?}").contains("z-value"), "Debug must not show values");

        let cases: Vec<(Vec<SecretInput>, &str)> = vec![
            (vec![literal("1BAD", "v")], "must match"),
            (vec![literal("A-B", "v")], "must match"),
            (vec![literal("A", "")], "non-empty"),
            (vec![literal("A", &"x".repeat(MAX_SECRET_BYTES + 1))], "limit"),
            (vec![literal("A", "v1"), literal("A", "v2")], "duplicate secret name 'A'"),
            (
                vec![SecretInput {
                    name: "A".into(),
                    value: Some("v".into()),
                    file_path: Some("/x".into()),
                }],
                "exactly one",
            ),
            (vec![SecretInput { name: "A".into(), value: None, file_path: None }], "exactly one"),
            (
                vec![SecretInput {
                    name: "A".into(),
                    value: None,
                    file_path: Some(tmp.path().display().to_string()),
                }],
                "not a regular file",
            ),
        ];
        for (inputs, want) in cases {
            let err = prepare(&inputs).expect_err(want).to_string();
            assert!(err.contains(want), "{err}");
            assert!(!err.contains("v1") && !err.contains("v2"), "{err}");
        }
        let bin = tmp.path().join("bin");
        fs::write(&bin, [0xff, 0xfe]).expect("write");
        let err = prepare(&[SecretInput {
            name: "B".into(),
            value: None,
            file_path: Some(bin.display().to_string()),
        }])
        .expect_err("binary");
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn store_uses_tight_modes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = WorkspaceDir { root: tmp.path().to_path_buf() };
        let infos =
            store(&dir, &prepare(&[literal("TOKEN", "tok-123")]).expect("prepare")).expect("store");
        assert_eq!(infos, [SecretInfo { name: "TOKEN".into(), source_kind: "literal".into() }]);
        let file = secrets_dir(&dir).join("TOKEN.secret");
        assert_eq!(fs::read_to_string(&file).expect("read"), "tok-123");
        let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&secrets_dir(&dir)), 0o700);
        assert_eq!(fs::read_dir(secrets_dir(&dir)).expect("ls").count(), 1, "no temp files");
    }

    #[test]
    fn redaction_replaces_longest_first_and_cut_prefixes() {
        let r = Redactor::new(["abc".to_string(), "abcdef".to_string(), String::new()]);
        assert_eq!(r.redact("x abcdef y abc z"), "x [REDACTED] y [REDACTED] z");
        assert_eq!(r.redact("nothing"), "nothing");
        assert_eq!(r.redact_truncated("tail abcde"), "tail [REDACTED]");
        assert_eq!(r.redact_truncated("tail ab"), "tail [REDACTED]");
        assert_eq!(r.redact_truncated("tail a"), "tail a");
        assert!(Redactor::default().is_empty());
        let err = r.redact_error(PyroError::invalid("failed: abcdef"));
        assert_eq!(err.to_string(), "failed: [REDACTED]");
        assert!(!format!("{r:?}").contains("abc"));
    }
}
