//! Agent sessions kept open between calls of a long-lived runtime (MCP server, SDK).
//!
//! Connecting to a guest costs a port claim, a unix connect and a hello round trip per
//! call. A runtime that serves many calls keeps at most one idle session per sandbox
//! and hands it to the next call on that sandbox, as long as it is the same QEMU
//! instance ([`Backend::instance`]: its pid) and the session was idle less than
//! [`MAX_IDLE`]. A session that failed in any way is dropped, not pooled. Other
//! processes are unaffected: each session holds its own agent port (of four), so at
//! most one port per sandbox stays claimed by an idle runtime.

use crate::backend::{AgentChannel, Backend, BackendError};
use pyro_protocol::{Request, Response};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest an idle session is kept.
pub const MAX_IDLE: Duration = Duration::from_secs(60);

struct Idle {
    instance: u64,
    channel: Box<dyn AgentChannel>,
    since: Instant,
}

/// The idle sessions of one runtime, by sandbox directory.
#[derive(Default)]
pub(crate) struct ChannelPool {
    idle: Mutex<HashMap<PathBuf, Idle>>,
}

impl std::fmt::Debug for ChannelPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.idle.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("ChannelPool").field("idle", &count).finish()
    }
}

impl ChannelPool {
    /// A session to the sandbox in `dir`: the pooled one when it is still good, else a
    /// new one from `backend`.
    pub(crate) fn connect(
        self: &Arc<Self>,
        backend: &dyn Backend,
        dir: &Path,
    ) -> Result<Box<dyn AgentChannel>, BackendError> {
        let Some(instance) = backend.instance(dir) else {
            return backend.connect(dir);
        };
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            idle.retain(|_, s| s.since.elapsed() < MAX_IDLE);
            idle.remove(dir).filter(|s| s.instance == instance).map(|s| s.channel)
        };
        let channel = match reused {
            Some(channel) => channel,
            None => backend.connect(dir)?,
        };
        Ok(Box::new(Pooled {
            inner: Some(channel),
            pool: Arc::clone(self),
            dir: dir.to_path_buf(),
            instance,
            healthy: true,
        }))
    }

    /// Drop the idle session of `dir` (before its guest is stopped or replaced), so no
    /// port lock is held for a guest that is gone.
    pub(crate) fn forget(&self, dir: &Path) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.remove(dir);
    }

    fn put_back(&self, dir: PathBuf, instance: u64, channel: Box<dyn AgentChannel>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.entry(dir).or_insert(Idle { instance, channel, since: Instant::now() });
    }
}

/// A session lent out by the pool; goes back to it on drop unless a call failed.
struct Pooled {
    inner: Option<Box<dyn AgentChannel>>,
    pool: Arc<ChannelPool>,
    dir: PathBuf,
    instance: u64,
    healthy: bool,
}

impl AgentChannel for Pooled {
    fn call(&mut self, request: Request, timeout: Duration) -> Result<Response, BackendError> {
        let Some(inner) = self.inner.as_mut() else {
            return Err(BackendError::NotRunning);
        };
        let result = inner.call(request, timeout);
        if result.is_err() {
            self.healthy = false;
        }
        result
    }

    fn supports(&mut self, capability: &str) -> bool {
        self.inner.as_mut().is_some_and(|inner| inner.supports(capability))
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let (true, Some(channel)) = (self.healthy, self.inner.take()) {
            self.pool.put_back(std::mem::take(&mut self.dir), self.instance, channel);
        }
    }
}
