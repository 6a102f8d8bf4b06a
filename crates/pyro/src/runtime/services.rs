//! Services: `service_start`, `service_list`, `service_status`, `service_logs`,
//! `service_stop`, and the published ports of services.
//!
//! # Where things live
//!
//! - The process, its readiness probe, its record and its logs live in the guest agent
//!   ([`pyro_agent::services`]; records and logs in `/run/pyro-services`, outside
//!   `/workspace`), so a service outlives the host process that started it and any later
//!   CLI call or MCP request sees it. The host keeps no service state of its own.
//! - Published ports are QEMU user-network forwards from the host's `127.0.0.1`
//!   ([`crate::backend::Backend::publish_port`]); QEMU is their only record. The host
//!   ports are chosen before the start and stored in the service's record; the forwards
//!   are added once the service is ready. Forwards of services that are no longer
//!   running are removed whenever the services are looked at ([`Runtime::reconcile`]),
//!   unless a running service claims the same host port.
//! - Workspace stop first stops every service (SIGTERM, then SIGKILL after 5 s); the
//!   guest's `/run` is a tmpfs, so stop, reset and delete drop every record, and the
//!   forwards end with QEMU.
//!
//! # Rules
//!
//! - Names match `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`; a name can be started again only when
//!   its service is not running (its old logs are replaced).
//! - Readiness: at most one probe; from MCP's flattened `ready_*` fields the first of
//!   file, tcp, http, command wins. Failing to become ready is not an error: the result
//!   is a `failed` service with its stop reason.
//! - Published ports need network policy `egress+published-ports`; host ports are
//!   1025-65535 (a free one when omitted), guest ports 1-65535.
//! - Services need guest execution: `host_compat` workspaces refuse them.
//! - `secret_env` maps workspace secrets into the service's environment; secret values
//!   are redacted from the logs and the echoed command.

use super::agent::{self, QUICK};
use super::error::{PyroError, Result};
use super::secrets::Redactor;
use super::state::{now, WorkspaceDir, WorkspaceRecord};
use super::workspace::Locked;
use super::{review, validate, Runtime};
use pyro_agent::services::{parse_address, parse_http_url};
use pyro_contract::params::{
    NetworkPolicy, PublishedPortInput, ServiceIdParams, ServiceLogsParams, ServiceStartParams,
};
use pyro_contract::results::ReviewEventKind;
use pyro_contract::results::{
    PublishedPort, Service, ServiceList, ServiceLogsResult, ServiceReadiness, ServiceState,
};
use pyro_protocol::{
    ErrorKind, PortForward, Readiness, Request, Response, ServiceRecord, ServiceStartRequest,
};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

/// Longest `ready_timeout_seconds`.
pub const MAX_READY_TIMEOUT_SECONDS: u64 = 3600;
/// Longest `ready_interval_ms`.
pub const MAX_READY_INTERVAL_MS: u64 = 60_000;
/// Lowest host port of a published port.
pub const MIN_HOST_PORT: u16 = 1025;

/// Deadline of a start beyond its readiness timeout: one command probe (10 s), the stop
/// grace (5 s) and transport slack.
const START_SLACK: Duration = Duration::from_secs(60);
/// Deadline of the service counts shown by workspace status and list.
const COUNT_DEADLINE: Duration = Duration::from_secs(5);
/// Deadline of stopping every service before the workspace stops.
const STOP_ALL_DEADLINE: Duration = Duration::from_secs(20);

/// The readiness probe of `p`, validated and normalized (file paths under
/// `/workspace`, trimmed addresses and URLs).
pub fn readiness(p: &ServiceStartParams) -> Result<Option<ServiceReadiness>> {
    Ok(match p.readiness() {
        None => None,
        Some(ServiceReadiness::File { path }) => {
            Some(ServiceReadiness::File { path: validate::workspace_path(&path, false)? })
        }
        Some(ServiceReadiness::Tcp { address }) => {
            let address = address.trim();
            if parse_address(address).is_none() {
                return Err(PyroError::invalid("readiness.address must be in HOST:PORT format"));
            }
            Some(ServiceReadiness::Tcp { address: address.to_string() })
        }
        Some(ServiceReadiness::Http { url }) => {
            let url = url.trim();
            if parse_http_url(url).is_none() {
                return Err(PyroError::invalid(format!(
                    "readiness.url must be an http://HOST[:PORT][/PATH] URL (the probe does not \
                     speak https): {url}"
                )));
            }
            Some(ServiceReadiness::Http { url: url.to_string() })
        }
        Some(ServiceReadiness::Command { command }) => {
            if command.trim().is_empty() {
                return Err(PyroError::invalid("readiness.command must not be empty"));
            }
            Some(ServiceReadiness::Command { command })
        }
    })
}

/// Check `published_ports`: guest ports 1-65535, host ports 1025-65535 or omitted, no
/// pair and no host port twice.
pub fn check_published_ports(ports: &[PublishedPortInput]) -> Result<()> {
    let mut pairs = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for port in ports {
        if port.guest_port == 0 {
            return Err(PyroError::invalid("published guest_port must be between 1 and 65535"));
        }
        if let Some(host) = port.host_port {
            if host < MIN_HOST_PORT {
                return Err(PyroError::invalid(format!(
                    "published host_port must be between {MIN_HOST_PORT} and 65535 (got {host})"
                )));
            }
            if !hosts.insert(host) {
                return Err(PyroError::invalid(format!(
                    "published host_port {host} is given more than once"
                )));
            }
        }
        if !pairs.insert((port.host_port, port.guest_port)) {
            return Err(PyroError::invalid(format!(
                "duplicate published port {}:{}",
                port.host_port.map(|h| h.to_string()).unwrap_or_default(),
                port.guest_port
            )));
        }
    }
    Ok(())
}

fn to_wire(r: ServiceReadiness) -> Readiness {
    match r {
        ServiceReadiness::File { path } => Readiness::File { path },
        ServiceReadiness::Tcp { address } => Readiness::Tcp { address },
        ServiceReadiness::Http { url } => Readiness::Http { url },
        ServiceReadiness::Command { command } => Readiness::Command { command },
    }
}

fn from_wire(r: Readiness) -> ServiceReadiness {
    match r {
        Readiness::File { path } => ServiceReadiness::File { path },
        Readiness::Tcp { address } => ServiceReadiness::Tcp { address },
        Readiness::Http { url } => ServiceReadiness::Http { url },
        Readiness::Command { command } => ServiceReadiness::Command { command },
    }
}

fn state_of(s: pyro_protocol::ServiceState) -> ServiceState {
    match s {
        pyro_protocol::ServiceState::Running => ServiceState::Running,
        pyro_protocol::ServiceState::Exited => ServiceState::Exited,
        pyro_protocol::ServiceState::Stopped => ServiceState::Stopped,
        pyro_protocol::ServiceState::Failed => ServiceState::Failed,
    }
}

fn to_public(
    rec: &WorkspaceRecord,
    s: ServiceRecord,
    redactor: &Redactor,
    mode: pyro_contract::results::ExecutionMode,
) -> Service {
    Service {
        workspace_id: rec.workspace_id.clone(),
        service_name: s.name,
        state: state_of(s.state),
        command: redactor.redact(&s.command),
        cwd: s.cwd,
        started_at: s.started_at,
        ended_at: s.ended_at,
        exit_code: s.exit_code,
        pid: s.pid,
        execution_mode: mode,
        readiness: s.readiness.map(from_wire),
        ready_at: s.ready_at,
        stop_reason: s.stop_reason,
        published_ports: s
            .published_ports
            .into_iter()
            .map(|p| PublishedPort {
                host: Ipv4Addr::LOCALHOST.to_string(),
                host_port: p.host_port,
                guest_port: p.guest_port,
                protocol: "tcp".into(),
            })
            .collect(),
    }
}

/// A free port on the host's 127.0.0.1 (at least 1025) that is not in `taken`.
fn pick_host_port(taken: &BTreeSet<u16>) -> Result<u16> {
    for _ in 0..64 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| PyroError::io("cannot find a free port", "127.0.0.1", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| PyroError::io("cannot find a free port", "127.0.0.1", e))?
            .port();
        if port >= MIN_HOST_PORT && !taken.contains(&port) {
            return Ok(port);
        }
    }
    Err(PyroError::invalid("cannot find a free port on 127.0.0.1 to publish"))
}

/// Claimed host ports of running services, with the service claiming each.
fn claimed_ports(services: &[ServiceRecord]) -> Vec<(u16, &str)> {
    services
        .iter()
        .filter(|s| s.is_running())
        .flat_map(|s| s.published_ports.iter().map(move |p| (p.host_port, s.name.as_str())))
        .collect()
}

impl Runtime {
    /// Load a workspace whose services are about to be used: it must run in a guest
    /// and be started.
    fn service_workspace(&self, workspace_id: &str) -> Result<(WorkspaceDir, WorkspaceRecord)> {
        let (dir, rec) = self.load(workspace_id)?;
        if !self.capabilities(rec.backend).services {
            return Err(PyroError::Unsupported {
                backend: rec.backend.name().into(),
                operation: "services".into(),
                hint: "; services require guest execution and are unavailable for host_compat \
                       workspaces"
                    .into(),
            });
        }
        self.require_started(&dir, &rec, "service operations")?;
        Ok((dir, rec))
    }

    /// Send a service request and map the agent's errors to the contract's messages.
    fn service_call(
        channel: &mut dyn crate::backend::AgentChannel,
        rec: &WorkspaceRecord,
        name: Option<&str>,
        request: Request,
        timeout: Duration,
    ) -> Result<Response> {
        match channel.call(request, timeout)? {
            Response::Error { kind: ErrorKind::NotFound, message }
                if name.is_some_and(|n| message == format!("service '{n}' does not exist")) =>
            {
                Err(PyroError::UnknownService {
                    workspace_id: rec.workspace_id.clone(),
                    name: name.unwrap_or_default().to_string(),
                })
            }
            Response::Error { kind: ErrorKind::Unsupported, message } => {
                Err(PyroError::Unsupported {
                    backend: rec.backend.name().into(),
                    operation: "services".into(),
                    hint: format!(
                        "; this workspace's guest agent does not know them ({message}): rebuild \
                         the boot assets with scripts/setup, then stop and start the workspace"
                    ),
                })
            }
            Response::Error { message, .. } if message.ends_with(" is already running") => {
                Err(PyroError::WrongState(format!(
                    "service '{}' is already running in workspace '{}'",
                    name.unwrap_or_default(),
                    rec.workspace_id
                )))
            }
            Response::Error { kind, message } => Err(PyroError::guest(kind, message)),
            other => Ok(other),
        }
    }

    fn list_records(
        channel: &mut dyn crate::backend::AgentChannel,
        rec: &WorkspaceRecord,
        timeout: Duration,
    ) -> Result<Vec<ServiceRecord>> {
        match Self::service_call(channel, rec, None, Request::ServiceList, timeout)? {
            Response::Services { services } => Ok(services),
            other => Err(agent::unexpected("service_list", &other)),
        }
    }

    fn one_record(response: Response, what: &str) -> Result<ServiceRecord> {
        match response {
            Response::Service { service } => Ok(service),
            other => Err(agent::unexpected(what, &other)),
        }
    }

    /// Remove the forwards of services that are not running (unless a running service
    /// claims the same host port). Best effort: failures are logged.
    pub(super) fn reconcile(
        &self,
        dir: &WorkspaceDir,
        rec: &WorkspaceRecord,
        services: &[ServiceRecord],
    ) {
        let claimed: BTreeSet<u16> = claimed_ports(services).into_iter().map(|(h, _)| h).collect();
        let stale: BTreeSet<u16> = services
            .iter()
            .filter(|s| !s.is_running())
            .flat_map(|s| s.published_ports.iter().map(|p| p.host_port))
            .filter(|h| !claimed.contains(h))
            .collect();
        if stale.is_empty() {
            return;
        }
        let backend = self.backend(rec.backend);
        let active = match backend.published_ports(&dir.sandbox()) {
            Ok(active) => active,
            Err(e) => {
                tracing::warn!(workspace = %rec.workspace_id, error = %e, "cannot read published ports");
                return;
            }
        };
        for (host_port, _) in active.into_iter().filter(|(h, _)| stale.contains(h)) {
            if let Err(e) = backend.unpublish_port(&dir.sandbox(), host_port) {
                tracing::warn!(workspace = %rec.workspace_id, host_port, error = %e, "cannot remove a published port");
            }
        }
    }

    fn touch(&self, dir: &WorkspaceDir, workspace_id: &str) -> Result<()> {
        let Locked { mut rec, guard: _lock, .. } = self.lock_workspace(workspace_id)?;
        rec.last_activity_at = now();
        Self::save(dir, &rec)
    }

    /// Start a service and wait until it is ready, exited or timed out.
    pub fn service_start(&self, p: ServiceStartParams) -> Result<Service> {
        validate::object_name("service_name", &p.service_name)?;
        validate::command(&p.command)?;
        let cwd = validate::workspace_path(&p.cwd, true)?;
        let readiness = readiness(&p)?;
        if !(1..=MAX_READY_TIMEOUT_SECONDS).contains(&p.ready_timeout_seconds) {
            return Err(PyroError::invalid(format!(
                "ready_timeout_seconds must be between 1 and {MAX_READY_TIMEOUT_SECONDS}"
            )));
        }
        if !(1..=MAX_READY_INTERVAL_MS).contains(&p.ready_interval_ms) {
            return Err(PyroError::invalid(format!(
                "ready_interval_ms must be between 1 and {MAX_READY_INTERVAL_MS}"
            )));
        }
        let ports = p.published_ports.clone().unwrap_or_default();
        check_published_ports(&ports)?;
        let (dir, rec) = self.load(&p.workspace_id)?;
        if !ports.is_empty() && rec.network_policy != NetworkPolicy::EgressPublishedPorts {
            return Err(PyroError::invalid(
                "published ports require workspace network_policy 'egress+published-ports'",
            ));
        }
        let secret_map = p.secret_env.clone().unwrap_or_default();
        let env = self.secret_env(&dir, &rec, &secret_map)?;
        let (dir, rec) = self.service_workspace(&p.workspace_id)?;
        let redactor = self.redactor(&dir);
        let mut ch = self.channel(&dir, &rec)?;
        if !secret_map.is_empty() {
            self.install_secrets(&dir, &rec, ch.as_mut())?;
        }

        let existing = Self::list_records(ch.as_mut(), &rec, QUICK)?;
        if existing.iter().any(|s| s.name == p.service_name && s.is_running()) {
            return Err(PyroError::WrongState(format!(
                "service '{}' is already running in workspace '{}'",
                p.service_name, p.workspace_id
            )));
        }
        self.reconcile(&dir, &rec, &existing);
        let claimed = claimed_ports(&existing);
        let mut taken: BTreeSet<u16> = claimed.iter().map(|(h, _)| *h).collect();
        let mut forwards = Vec::with_capacity(ports.len());
        for port in &ports {
            let host_port = match port.host_port {
                Some(h) => {
                    if let Some((_, owner)) = claimed.iter().find(|(c, _)| *c == h) {
                        return Err(PyroError::invalid(format!(
                            "host port {h} is already published by service '{owner}' in workspace '{}'",
                            p.workspace_id
                        )));
                    }
                    h
                }
                None => pick_host_port(&taken)?,
            };
            taken.insert(host_port);
            forwards.push(PortForward { host_port, guest_port: port.guest_port });
        }

        let request = Request::ServiceStart(ServiceStartRequest {
            name: p.service_name.clone(),
            command: p.command.clone(),
            cwd,
            env,
            readiness: readiness.map(to_wire),
            ready_timeout_ms: p.ready_timeout_seconds.saturating_mul(1000),
            ready_interval_ms: p.ready_interval_ms,
            published_ports: forwards.clone(),
        });
        let timeout = Duration::from_secs(p.ready_timeout_seconds) + START_SLACK;
        let started =
            Self::service_call(ch.as_mut(), &rec, Some(&p.service_name), request, timeout)
                .map_err(|e| redactor.redact_error(e))?;
        let mut service = Self::one_record(started, "service_start")?;

        if service.is_running() && !forwards.is_empty() {
            if let Err(err) = self.publish_all(&dir, &rec, &forwards) {
                tracing::warn!(workspace = %rec.workspace_id, service = %p.service_name, error = %err, "publishing a port failed; stopping the service");
                let request = Request::ServiceStop {
                    name: p.service_name.clone(),
                    fail_reason: Some(pyro_protocol::stop_reason::PUBLISHED_PORT_FAILED.into()),
                };
                let stopped =
                    Self::service_call(ch.as_mut(), &rec, Some(&p.service_name), request, QUICK)?;
                service = Self::one_record(stopped, "service_stop")?;
            }
        }
        drop(ch);
        self.touch(&dir, &p.workspace_id)?;
        let service = to_public(&rec, service, &redactor, self.execution_mode(rec.backend));
        self.note(
            &p.workspace_id,
            ReviewEventKind::ServiceStart {
                service_name: review::cut(&service.service_name),
                state: format!("{:?}", service.state).to_lowercase(),
            },
        );
        Ok(service)
    }

    /// Add every forward, or none: on a failure the ones added are removed again.
    fn publish_all(
        &self,
        dir: &WorkspaceDir,
        rec: &WorkspaceRecord,
        forwards: &[PortForward],
    ) -> Result<()> {
        let backend = self.backend(rec.backend);
        for (i, f) in forwards.iter().enumerate() {
            if let Err(e) = backend.publish_port(&dir.sandbox(), Some(f.host_port), f.guest_port) {
                for done in &forwards[..i] {
                    let _ = backend.unpublish_port(&dir.sandbox(), done.host_port);
                }
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// List a workspace's services, sorted by name.
    pub fn service_list(&self, workspace_id: &str) -> Result<ServiceList> {
        let (dir, rec) = self.service_workspace(workspace_id)?;
        let mut ch = self.channel(&dir, &rec)?;
        let records = Self::list_records(ch.as_mut(), &rec, QUICK)?;
        drop(ch);
        self.reconcile(&dir, &rec, &records);
        let redactor = self.redactor(&dir);
        let services: Vec<Service> = records
            .into_iter()
            .map(|s| to_public(&rec, s, &redactor, self.execution_mode(rec.backend)))
            .collect();
        Ok(ServiceList {
            workspace_id: workspace_id.to_string(),
            count: services.len() as u64,
            running_count: services.iter().filter(|s| s.state == ServiceState::Running).count()
                as u64,
            services,
        })
    }

    fn one_service(
        &self,
        p: &ServiceIdParams,
        request: Request,
        what: &str,
        timeout: Duration,
    ) -> Result<Service> {
        validate::object_name("service_name", &p.service_name)?;
        let (dir, rec) = self.service_workspace(&p.workspace_id)?;
        let mut ch = self.channel(&dir, &rec)?;
        let response =
            Self::service_call(ch.as_mut(), &rec, Some(&p.service_name), request, timeout)?;
        let service = Self::one_record(response, what)?;
        // A stop (or an exit) leaves forwards behind: look at every service.
        if !service.is_running() && !service.published_ports.is_empty() {
            let all = Self::list_records(ch.as_mut(), &rec, QUICK)?;
            drop(ch);
            self.reconcile(&dir, &rec, &all);
        }
        Ok(to_public(&rec, service, &self.redactor(&dir), self.execution_mode(rec.backend)))
    }

    /// Show one service.
    pub fn service_status(&self, p: ServiceIdParams) -> Result<Service> {
        let request = Request::ServiceStatus { name: p.service_name.clone() };
        self.one_service(&p, request, "service_status", QUICK)
    }

    /// Stop a service (SIGTERM to its process group, SIGKILL after 5 s) and remove its
    /// published ports. A service that is not running is returned unchanged.
    pub fn service_stop(&self, p: ServiceIdParams) -> Result<Service> {
        let request = Request::ServiceStop { name: p.service_name.clone(), fail_reason: None };
        let service = self.one_service(&p, request, "service_stop", QUICK)?;
        let service_name = review::cut(&p.service_name);
        self.note(&p.workspace_id, ReviewEventKind::ServiceStop { service_name });
        Ok(service)
    }

    /// A service's stdout and stderr: the last `tail_lines` lines, or all with `all`.
    pub fn service_logs(&self, p: ServiceLogsParams) -> Result<ServiceLogsResult> {
        validate::object_name("service_name", &p.service_name)?;
        let tail_lines = if p.all {
            None
        } else if p.tail_lines > 0 {
            Some(p.tail_lines.unsigned_abs())
        } else {
            return Err(PyroError::invalid("tail_lines must be positive (or use all)"));
        };
        let (dir, rec) = self.service_workspace(&p.workspace_id)?;
        let mut ch = self.channel(&dir, &rec)?;
        let request = Request::ServiceLogs { name: p.service_name.clone(), tail_lines };
        let logs =
            match Self::service_call(ch.as_mut(), &rec, Some(&p.service_name), request, QUICK)? {
                Response::ServiceLogs(logs) => logs,
                other => return Err(agent::unexpected("service_logs", &other)),
            };
        if !logs.service.is_running() && !logs.service.published_ports.is_empty() {
            let all = Self::list_records(ch.as_mut(), &rec, QUICK)?;
            self.reconcile(&dir, &rec, &all);
        }
        drop(ch);
        self.touch(&dir, &p.workspace_id)?;
        let redactor = self.redactor(&dir);
        let redact = |text: &str| {
            if logs.truncated {
                redactor.redact_truncated(text)
            } else {
                redactor.redact(text)
            }
        };
        Ok(ServiceLogsResult {
            stdout: redact(&logs.stdout),
            stderr: redact(&logs.stderr),
            service: to_public(&rec, logs.service, &redactor, self.execution_mode(rec.backend)),
            tail_lines,
            truncated: logs.truncated,
        })
    }

    /// `(service_count, running_service_count)` of a workspace, asked from its guest;
    /// `(0, 0)` when it does not run, has no guest or does not answer.
    pub(super) fn service_counts(&self, dir: &WorkspaceDir, rec: &WorkspaceRecord) -> (u64, u64) {
        if !self.capabilities(rec.backend).services || !self.is_running(dir, rec) {
            return (0, 0);
        }
        let records = self
            .channel(dir, rec)
            .and_then(|mut ch| Self::list_records(ch.as_mut(), rec, COUNT_DEADLINE));
        match records {
            Ok(records) => {
                (records.len() as u64, records.iter().filter(|s| s.is_running()).count() as u64)
            }
            Err(_) => (0, 0),
        }
    }

    /// Stop every service of a running guest before the workspace stops (best effort).
    pub(super) fn stop_all_services(&self, dir: &WorkspaceDir, rec: &WorkspaceRecord) {
        if !self.capabilities(rec.backend).services || !self.is_running(dir, rec) {
            return;
        }
        let result = self.channel(dir, rec).and_then(|mut ch| {
            agent::call(ch.as_mut(), Request::ServiceStopAll, STOP_ALL_DEADLINE)
        });
        if let Err(e) = result {
            tracing::debug!(workspace = %rec.workspace_id, error = %e, "could not stop services before stopping the workspace");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ServiceStartParams {
        ServiceStartParams::new("0123456789ab", "web", "python3 -m http.server 8080")
    }

    #[test]
    fn readiness_precedence_is_file_tcp_http_command() {
        let mut p = params();
        assert_eq!(readiness(&p).expect("none"), None);
        p.ready_command = Some("true".into());
        p.ready_http = Some(" http://127.0.0.1:8080/ ".into());
        assert_eq!(
            readiness(&p).expect("http"),
            Some(ServiceReadiness::Http { url: "http://127.0.0.1:8080/".into() })
        );
        p.ready_tcp = Some("127.0.0.1:8080".into());
        assert!(matches!(readiness(&p).expect("tcp"), Some(ServiceReadiness::Tcp { .. })));
        p.ready_file = Some("run/ready".into());
        assert_eq!(
            readiness(&p).expect("file"),
            Some(ServiceReadiness::File { path: "/workspace/run/ready".into() })
        );
        let p = params().with_readiness(ServiceReadiness::Command { command: "true".into() });
        assert_eq!(p.ready_command.as_deref(), Some("true"));
        assert!(p.ready_file.is_none() && p.ready_tcp.is_none() && p.ready_http.is_none());
    }

    #[test]
    fn readiness_values_are_checked() {
        let with = |r: ServiceReadiness| readiness(&params().with_readiness(r));
        for bad in ["8080", "localhost", ":80", "host:0", "host:99999", "a b:1"] {
            let err = with(ServiceReadiness::Tcp { address: bad.into() }).expect_err(bad);
            assert_eq!(err.to_string(), "readiness.address must be in HOST:PORT format");
        }
        assert!(with(ServiceReadiness::Tcp { address: "localhost:8080".into() }).is_ok());
        let err = with(ServiceReadiness::Http { url: "https://x/".into() }).expect_err("https");
        assert!(err.to_string().starts_with("readiness.url must be an http://"), "{err}");
        let err = with(ServiceReadiness::File { path: "../etc/passwd".into() }).expect_err("..");
        assert!(err.to_string().contains("inside /workspace"), "{err}");
        let err = with(ServiceReadiness::File { path: "/etc/passwd".into() }).expect_err("abs");
        assert!(err.to_string().contains("inside /workspace"), "{err}");
        let err = with(ServiceReadiness::Command { command: " ".into() }).expect_err("empty");
        assert_eq!(err.to_string(), "readiness.command must not be empty");
    }

    #[test]
    fn published_ports_are_checked() {
        let port = |host_port, guest_port| PublishedPortInput { host_port, guest_port };
        assert!(check_published_ports(&[port(None, 80), port(Some(18080), 80)]).is_ok());
        let msg = |ports: &[PublishedPortInput]| {
            check_published_ports(ports).expect_err("bad").to_string()
        };
        assert!(msg(&[port(None, 0)]).contains("guest_port must be between 1 and 65535"));
        assert!(msg(&[port(Some(80), 80)]).contains("between 1025 and 65535"));
        assert!(msg(&[port(Some(2000), 80), port(Some(2000), 81)]).contains("more than once"));
        assert!(msg(&[port(None, 80), port(None, 80)]).contains("duplicate published port"));
    }

    #[test]
    fn picked_ports_avoid_taken_ones() {
        let first = pick_host_port(&BTreeSet::new()).expect("port");
        assert!(first >= MIN_HOST_PORT);
        let taken: BTreeSet<u16> = [first].into();
        assert_ne!(pick_host_port(&taken).expect("port"), first);
    }

    #[test]
    fn stale_forwards_never_include_ports_of_running_services() {
        let record = |name: &str, state, host_port| ServiceRecord {
            name: name.into(),
            command: "x".into(),
            cwd: "/workspace".into(),
            state,
            pid: Some(1),
            exit_code: None,
            started_at: 0.0,
            ended_at: None,
            ready_at: None,
            stop_reason: None,
            readiness: None,
            published_ports: vec![PortForward { host_port, guest_port: 80 }],
        };
        let services = vec![
            record("old", pyro_protocol::ServiceState::Exited, 2000),
            record("new", pyro_protocol::ServiceState::Running, 2000),
            record("gone", pyro_protocol::ServiceState::Stopped, 3000),
        ];
        assert_eq!(claimed_ports(&services), vec![(2000, "new")]);
    }
}
