//! Printing: `--json` objects, human-readable text, and errors.
//!
//! Machine output: with `--json`, stdout receives exactly one pretty-printed JSON object,
//! the serde form of the SDK result (the same shape as the MCP tool's structured
//! content; new fields may be added). Errors in `--json` mode are also one object on
//! stdout: `{"ok": false, "error": {"kind": "...", "message": "...", "hint": "..."}}`
//! ([`pyro_contract::ErrorReport`]; `hint` only when there is one).
//!
//! Human output: results on stdout, progress and summaries on stderr, errors as one
//! `error: <message>[; <hint>]` line on stderr.
//!
//! Every write to stdout goes through [`io::Write`] so that a closed pipe surfaces as
//! an error that the caller turns into exit code 0, never a panic.

use super::error::CliError;
use pyro_contract::ErrorReport;
use serde::Serialize;
use std::io::{self, Write};

/// Write `value` as one pretty-printed JSON object and a newline to stdout.
pub fn json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(io::Error::from)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Print `value` as JSON when `json` is set, otherwise run `human` with stdout.
pub fn emit<T: Serialize>(
    json_mode: bool,
    value: &T,
    human: impl FnOnce(&mut dyn Write, &T) -> io::Result<()>,
) -> Result<(), CliError> {
    if json_mode {
        return json(value);
    }
    let mut out = io::stdout().lock();
    human(&mut out, value)?;
    out.flush()?;
    Ok(())
}

/// Write raw text to stdout.
pub fn stdout_text(text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Write raw text to stderr (errors ignored: there is nowhere left to report them).
pub fn stderr_text(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Write one line to stderr (progress, summaries).
pub fn note(line: &str) {
    stderr_text(&format!("{line}\n"));
}

/// The `--json` error object: `{"ok": false, "error": {kind, message, hint}}`.
#[derive(Debug, Serialize)]
pub struct ErrorOutput {
    /// Always false.
    pub ok: bool,
    /// What went wrong ([`CliError::report`]).
    pub error: ErrorReport,
}

/// Report a handled error in the selected mode.
pub fn error(err: &CliError, json_mode: bool) {
    let report = err.report();
    // When stdout is gone, fall back to stderr so the message is not lost.
    if json_mode && json(&ErrorOutput { ok: false, error: report.clone() }).is_ok() {
        return;
    }
    stderr_text(&format!("error: {}\n", report.line()));
}

/// `yes`/`no`.
pub fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The serde name of a unit enum value (`host_compat`, `started`, ...).
pub fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// Epoch seconds as an ISO 8601 UTC timestamp (`2026-01-02T03:04:05Z`).
pub fn timestamp(epoch: f64) -> String {
    if !epoch.is_finite() || epoch < 0.0 {
        return format!("{epoch}");
    }
    // Truncation to whole seconds is intended; the value is finite and non-negative.
    let secs = epoch.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

/// `k=v, k2=v2` of a label map.
pub fn labels_inline(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyro::results::ExecutionMode;

    #[test]
    fn timestamps_are_utc_iso8601() {
        assert_eq!(timestamp(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(951_782_400.5), "2000-02-29T00:00:00Z");
        assert_eq!(timestamp(1_767_225_599.0), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn enum_names_use_serde() {
        assert_eq!(name_of(&ExecutionMode::HostCompat), "host_compat");
        assert_eq!(yes_no(true), "yes");
    }

    #[test]
    fn error_report_shape() {
        let error = ErrorReport::new(pyro_contract::ErrorKind::NotFound, "gone");
        let v = serde_json::to_value(ErrorOutput { ok: false, error }).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"ok": false, "error": {"kind": "not_found", "message": "gone"}})
        );
        let error = ErrorReport::new(pyro_contract::ErrorKind::NotFound, "gone").with_hint("h");
        let v = serde_json::to_value(ErrorOutput { ok: false, error }).expect("json");
        assert_eq!(v["error"]["hint"], "h");
    }
}
