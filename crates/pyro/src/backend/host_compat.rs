//! The explicit `host_compat` backend: no VM. `/workspace` is a host directory
//! (`<sandbox>/workspace`) and requests run in-process through the same
//! [`pyro_agent::Sandbox`] code the guest agent uses, so paths, archives and exec
//! behave alike. Exec runs `/bin/sh -lc` on the host in that directory with a clean
//! environment. It exists for hosts without a guest backend and is only chosen when
//! the caller opted in with `allow_host_compat`; every result says `host_compat`.

use super::{
    AgentChannel, Backend, BackendError, BackendKind, Capabilities, SandboxInfo, SandboxSpec,
};
use pyro_agent::Sandbox;
use pyro_contract::results::{Accel, ExecutionMode};
use pyro_protocol::{Request, Response};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// Runs sandboxes as host directories.
#[derive(Debug, Default)]
pub struct HostCompatBackend;

impl HostCompatBackend {
    /// The backend.
    pub fn new() -> Self {
        HostCompatBackend
    }
}

const RUNNING_MARKER: &str = "running";
const WORKSPACE_DIR: &str = "workspace";

fn info() -> SandboxInfo {
    SandboxInfo {
        accel: Accel::None,
        accel_reason: "host_compat runs on the host without a VM".into(),
        execution_mode: ExecutionMode::HostCompat,
        guest_kernel: None,
        environment_version: None,
        guest_ip: None,
        metadata: BTreeMap::new(),
    }
}

fn mark_running(dir: &Path) -> Result<(), BackendError> {
    fs::write(dir.join(RUNNING_MARKER), b"")
        .map_err(|e| BackendError::io(format!("could not write {}", dir.display()), e))
}

struct InProcessChannel {
    sandbox: Sandbox,
}

impl AgentChannel for InProcessChannel {
    fn call(&mut self, request: Request, _timeout: Duration) -> Result<Response, BackendError> {
        Ok(self.sandbox.handle(request))
    }

    fn supports(&mut self, capability: &str) -> bool {
        pyro_agent::CAPABILITIES.contains(&capability)
    }
}

impl Backend for HostCompatBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::HostCompat
    }

    /// Exec, files and archives only: no guest, so no secrets (they would sit on the
    /// host), shells, services, network or disk image.
    fn capabilities(&self) -> Capabilities {
        Capabilities::minimal(ExecutionMode::HostCompat)
    }

    fn available(&self) -> Result<(), String> {
        Ok(())
    }

    fn create(&self, spec: &SandboxSpec) -> Result<SandboxInfo, BackendError> {
        if spec.network.enabled {
            return Err(BackendError::Unsupported {
                backend: "host_compat",
                operation: "guest networking".into(),
            });
        }
        let ws = spec.dir.join(WORKSPACE_DIR);
        if ws.exists() {
            fs::remove_dir_all(&ws)
                .map_err(|e| BackendError::io(format!("could not clear {}", ws.display()), e))?;
        }
        fs::create_dir_all(&ws)
            .map_err(|e| BackendError::io(format!("could not create {}", ws.display()), e))?;
        mark_running(&spec.dir)?;
        Ok(info())
    }

    fn start(&self, spec: &SandboxSpec) -> Result<SandboxInfo, BackendError> {
        if !spec.dir.join(WORKSPACE_DIR).is_dir() {
            return Err(BackendError::NotRunning);
        }
        mark_running(&spec.dir)?;
        Ok(info())
    }

    fn stop(&self, dir: &Path) -> Result<(), BackendError> {
        match fs::remove_file(dir.join(RUNNING_MARKER)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BackendError::io(format!("could not stop {}", dir.display()), e)),
        }
    }

    fn is_running(&self, dir: &Path) -> bool {
        dir.join(RUNNING_MARKER).exists() && dir.join(WORKSPACE_DIR).is_dir()
    }

    fn destroy(&self, dir: &Path) -> Result<(), BackendError> {
        for name in [WORKSPACE_DIR, RUNNING_MARKER] {
            let path = dir.join(name);
            let result =
                if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            match result {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(BackendError::io(format!("could not remove {}", path.display()), e))
                }
            }
        }
        Ok(())
    }

    fn connect(&self, dir: &Path) -> Result<Box<dyn AgentChannel>, BackendError> {
        if !self.is_running(dir) {
            return Err(BackendError::NotRunning);
        }
        Ok(Box::new(InProcessChannel { sandbox: Sandbox::host_compat(dir.join(WORKSPACE_DIR)) }))
    }
}
