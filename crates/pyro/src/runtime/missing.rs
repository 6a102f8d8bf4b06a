//! The backend a runtime answers with for a record whose kind it was not given (a
//! runtime built with [`super::Runtime::with_backends`] over fewer backends): every
//! operation fails, saying so, and nothing is running.

use crate::backend::{
    AgentChannel, Backend, BackendError, BackendKind, Capabilities, SandboxInfo, SandboxSpec,
};
use pyro_contract::results::ExecutionMode;
use std::path::Path;

/// Stands in for a backend of kind `.0` that this runtime does not have.
#[derive(Debug)]
pub(super) struct MissingBackend(pub(super) BackendKind);

impl MissingBackend {
    fn error(&self) -> BackendError {
        BackendError::Unsupported {
            backend: self.0.name(),
            operation: "anything (this runtime was built without this backend)".into(),
        }
    }
}

impl Backend for MissingBackend {
    fn kind(&self) -> BackendKind {
        self.0
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::minimal(ExecutionMode::Pending);
        caps.exec = false;
        caps
    }

    fn available(&self) -> Result<(), String> {
        Err(self.error().to_string())
    }

    fn create(&self, _spec: &SandboxSpec) -> Result<SandboxInfo, BackendError> {
        Err(self.error())
    }

    fn start(&self, _spec: &SandboxSpec) -> Result<SandboxInfo, BackendError> {
        Err(self.error())
    }

    fn stop(&self, _dir: &Path) -> Result<(), BackendError> {
        Ok(())
    }

    fn is_running(&self, _dir: &Path) -> bool {
        false
    }

    fn destroy(&self, _dir: &Path) -> Result<(), BackendError> {
        Err(self.error())
    }

    fn connect(&self, _dir: &Path) -> Result<Box<dyn AgentChannel>, BackendError> {
        Err(self.error())
    }
}
