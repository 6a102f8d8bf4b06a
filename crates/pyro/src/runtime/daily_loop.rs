//! The daily loop: `pyro prepare` makes the machine warm for one environment and
//! proves it; `pyro doctor --environment` says whether it still is.
//!
//! Prepare pulls the environment when it is missing, then runs one throwaway workspace
//! through create → exec → reset → exec → delete on the guest backend, and records a
//! manifest in `<cache>/daily-loop/<environment>.json` holding the fingerprint of what
//! it proved: pyro's version, the environment image (build time and size), the guest
//! kernel and the guest agent baked into the initramfs (its sha256), plus the timings.
//!
//! States: `warm` (a manifest whose fingerprint matches what is installed now), `cold`
//! (no manifest, or the environment is not installed) and `stale` (a manifest from a
//! different image, kernel, agent or pyro version; `reasons` says which).
//!
//! The first guest start of an environment makes its template (a booted, frozen guest
//! that later starts clone in a fraction of a second); the proof's create does that, and
//! its reset then starts from the template. The manifest records how each started
//! (`create_boot`, `reset_boot`: `cold` or `clone`).

use super::error::{PyroError, Result};
use super::state;
use super::Runtime;
use pyro_contract::params::*;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

const MANIFEST_VERSION: u32 = 1;

/// What a warm machine was proven with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DailyLoopFingerprint {
    /// pyro's version.
    pub pyro_version: String,
    /// Environment name.
    pub environment: String,
    /// Image build time and size, `built_at:size_bytes`.
    pub image: Option<String>,
    /// Guest kernel package (and release).
    pub kernel: Option<String>,
    /// sha256 of the guest agent in the initramfs.
    pub agent: Option<String>,
}

/// Seconds each proof step took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DailyLoopTimings {
    /// Pulling the environment (0 when it was installed).
    pub pull_ms: u64,
    /// `workspace_create` (boot).
    pub create_ms: u64,
    /// First `workspace_exec`.
    pub exec_ms: u64,
    /// `workspace_reset` (a second boot).
    pub reset_ms: u64,
    /// `workspace_delete`.
    pub delete_ms: u64,
    /// How the create started the guest: `cold` (which also makes the environment's
    /// template) or `clone` (from a template).
    #[serde(default)]
    pub create_boot: Option<String>,
    /// How the reset started it; `clone` proves the template is warm.
    #[serde(default)]
    pub reset_boot: Option<String>,
    /// Why the reset still booted cold (the template could not be made or used).
    #[serde(default)]
    pub reset_cold_reason: Option<String>,
}

/// `<cache>/daily-loop/<environment>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DailyLoopManifest {
    /// Format version.
    pub manifest_version: u32,
    /// When the proof ran (epoch seconds).
    pub prepared_at: f64,
    /// What was proven.
    pub fingerprint: DailyLoopFingerprint,
    /// The proof also used guest networking (`--network`).
    pub network: bool,
    /// The proof's timings.
    pub timings: DailyLoopTimings,
    /// The guest kernel the proof's exec reported (`uname -r`).
    pub guest_kernel: String,
}

/// `warm`, `cold` or `stale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DailyLoopState {
    /// Proven with what is installed now.
    Warm,
    /// Never proven (or not installed).
    Cold,
    /// Proven with something that changed since.
    Stale,
}

/// Readiness of one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DailyLoopStatus {
    /// Environment.
    pub environment: String,
    /// State.
    pub state: DailyLoopState,
    /// Why `cold` or `stale`, one sentence each.
    pub reasons: Vec<String>,
    /// The manifest file.
    pub manifest_path: String,
    /// When it was last proven.
    pub prepared_at: Option<f64>,
    /// What to run next, when not warm.
    pub fix: Option<String>,
    /// Facts that do not change the state, such as why the proof's reset booted cold
    /// instead of cloning a template.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Result of `pyro prepare`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrepareResult {
    /// Environment.
    pub environment: String,
    /// `proved` (the loop ran now) or `already_warm` (nothing to do; `--force` reruns).
    pub action: String,
    /// The environment was pulled first.
    pub pulled: bool,
    /// The manifest now on disk.
    pub manifest: DailyLoopManifest,
    /// Its path.
    pub manifest_path: String,
    /// Readiness after prepare (always warm).
    pub status: DailyLoopStatus,
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Runtime {
    fn manifest_path(&self, environment: &str) -> PathBuf {
        let file = super::environments::EnvironmentCatalog::dir_name(environment);
        self.config.cache_dir.join("daily-loop").join(format!("{file}.json"))
    }

    /// The fingerprint of what is installed now (`None` fields: not installed).
    pub fn daily_loop_fingerprint(&self, environment: &str) -> Result<DailyLoopFingerprint> {
        let info = self.env_inspect(environment)?;
        let boot = self.boot_assets();
        Ok(DailyLoopFingerprint {
            pyro_version: env!("CARGO_PKG_VERSION").to_string(),
            environment: environment.to_string(),
            image: info.installed.then(|| {
                format!("{}:{}", info.built_at.unwrap_or(0), info.size_bytes.unwrap_or(0))
            }),
            kernel: boot
                .as_ref()
                .and_then(|b| b.kernel_package.clone().or_else(|| b.kernel_release.clone())),
            agent: boot.and_then(|b| b.agent_sha256),
        })
    }

    /// Whether `environment` is warm, cold or stale, and why.
    pub fn daily_loop_status(&self, environment: &str) -> Result<DailyLoopStatus> {
        let now = self.daily_loop_fingerprint(environment)?;
        let path = self.manifest_path(environment);
        let manifest: Option<DailyLoopManifest> =
            if path.exists() { state::read_json(&path).ok() } else { None };
        let mut reasons = Vec::new();
        if now.image.is_none() {
            reasons.push(format!("environment {environment} is not installed"));
        }
        if now.kernel.is_none() {
            reasons.push("the guest kernel and initramfs are not built".into());
        }
        let state = match (&manifest, reasons.is_empty()) {
            (_, false) => DailyLoopState::Cold,
            (None, true) => {
                reasons.push(format!("{environment} was never proven on this machine"));
                DailyLoopState::Cold
            }
            (Some(m), true) => {
                let old = &m.fingerprint;
                if m.manifest_version != MANIFEST_VERSION {
                    reasons.push("the manifest was written by another pyro format".into());
                }
                if old.pyro_version != now.pyro_version {
                    reasons.push(format!(
                        "pyro version changed ({} → {})",
                        old.pyro_version, now.pyro_version
                    ));
                }
                if old.image != now.image {
                    reasons.push("the environment image changed (rebuilt or pulled again)".into());
                }
                if old.kernel != now.kernel {
                    reasons.push(format!(
                        "the guest kernel changed ({} → {})",
                        old.kernel.as_deref().unwrap_or("-"),
                        now.kernel.as_deref().unwrap_or("-")
                    ));
                }
                if old.agent != now.agent {
                    reasons.push("the guest agent changed (initramfs rebuilt)".into());
                }
                if reasons.is_empty() {
                    DailyLoopState::Warm
                } else {
                    DailyLoopState::Stale
                }
            }
        };
        let fix = (state != DailyLoopState::Warm).then(|| format!("pyro prepare {environment}"));
        let notes = manifest
            .as_ref()
            .and_then(|m| m.timings.reset_cold_reason.clone())
            .map(|r| format!("guests boot cold instead of cloning a template: {r}"))
            .into_iter()
            .collect();
        Ok(DailyLoopStatus {
            environment: environment.to_string(),
            state,
            reasons,
            manifest_path: path.display().to_string(),
            prepared_at: manifest.map(|m| m.prepared_at),
            fix,
            notes,
        })
    }

    /// Make `environment` warm and prove it (see the module docs). `progress` gets one
    /// line per phase.
    pub fn prepare(
        &self,
        environment: &str,
        network: bool,
        force: bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<PrepareResult> {
        super::environments::EnvironmentCatalog::require_known(environment)?;
        let before = self.daily_loop_status(environment)?;
        let path = self.manifest_path(environment);
        if before.state == DailyLoopState::Warm && !force {
            let manifest: DailyLoopManifest = state::read_json(&path)?;
            if manifest.network || !network {
                progress(&format!("[prepare] phase=warm environment={environment}"));
                return Ok(PrepareResult {
                    environment: environment.into(),
                    action: "already_warm".into(),
                    pulled: false,
                    manifest,
                    manifest_path: path.display().to_string(),
                    status: before,
                });
            }
        }
        self.choose_backend(false)?;
        let mut pulled = false;
        let t = Instant::now();
        if !self.env_inspect(environment)?.installed || self.boot_assets().is_none() {
            progress(&format!("[prepare] phase=pull environment={environment}"));
            self.env_pull(environment, progress)?;
            pulled = true;
        }
        let pull_ms = if pulled { ms(t) } else { 0 };
        progress(&format!("[prepare] phase=create environment={environment}"));
        let mut create = WorkspaceCreateParams::new(environment);
        create.name = Some("pyro-prepare".into());
        create.ttl_seconds = 600;
        if network {
            create.network_policy = NetworkPolicy::Egress;
        }
        let t = Instant::now();
        let ws = self.workspace_create(create)?;
        let create_ms = ms(t);
        let create_boot = ws.metadata.get("boot").cloned();
        let id = ws.workspace_id.clone();
        let proof = (|| -> Result<(DailyLoopTimings, String)> {
            progress(&format!("[prepare] phase=exec workspace_id={id}"));
            let t = Instant::now();
            let out = self.workspace_exec(WorkspaceExecParams::new(
                &id,
                "uname -r && echo warm > /workspace/.pyro-prepare",
            ))?;
            let exec_ms = ms(t);
            if out.exit_code != 0 {
                return Err(PyroError::WrongState(format!(
                    "the proof command failed in {environment} (exit {}): {}",
                    out.exit_code,
                    out.stderr.trim()
                )));
            }
            let guest_kernel = out.stdout.lines().next().unwrap_or_default().trim().to_string();
            progress(&format!("[prepare] phase=reset workspace_id={id}"));
            let t = Instant::now();
            let reset = self.workspace_reset(WorkspaceResetParams {
                workspace_id: id.clone(),
                snapshot: "baseline".into(),
            })?;
            let reset_ms = ms(t);
            let reset_boot = reset.workspace.metadata.get("boot").cloned();
            let reset_cold_reason = reset.workspace.metadata.get("boot_cold_reason").cloned();
            let after = self.workspace_exec(WorkspaceExecParams::new(
                &id,
                "test ! -e /workspace/.pyro-prepare",
            ))?;
            if after.exit_code != 0 {
                return Err(PyroError::WrongState(
                    "workspace_reset did not restore the baseline during prepare".into(),
                ));
            }
            let timings = DailyLoopTimings {
                pull_ms,
                create_ms,
                exec_ms,
                reset_ms,
                delete_ms: 0,
                create_boot: create_boot.clone(),
                reset_boot,
                reset_cold_reason,
            };
            Ok((timings, guest_kernel))
        })();
        progress(&format!("[prepare] phase=delete workspace_id={id}"));
        let t = Instant::now();
        let deleted = self.workspace_delete(&id);
        let (mut timings, guest_kernel) = proof?;
        deleted?;
        timings.delete_ms = ms(t);
        let manifest = DailyLoopManifest {
            manifest_version: MANIFEST_VERSION,
            prepared_at: state::now(),
            fingerprint: self.daily_loop_fingerprint(environment)?,
            network,
            timings,
            guest_kernel,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| PyroError::io("could not create", dir, e))?;
        }
        state::write_json(&path, &manifest)?;
        progress(&format!("[prepare] phase=ready environment={environment}"));
        Ok(PrepareResult {
            environment: environment.into(),
            action: "proved".into(),
            pulled,
            manifest,
            manifest_path: path.display().to_string(),
            status: self.daily_loop_status(environment)?,
        })
    }
}
