//! One-shot VMs (`vm_*` tools and `pyro run`). They live in the memory of the process
//! that created them; their sandbox directories sit under `<state>/vms/<id>` and carry
//! the owner's pid so a later process can clean up after one that crashed.

use super::agent::{self, lossy, unexpected};
use super::error::{PyroError, Result};
use super::state::{self, now};
use super::{validate, Runtime};
use crate::backend::{BackendKind, NetworkSpec, SandboxSpec};
use pyro_contract::params::*;
use pyro_contract::results::*;
use pyro_protocol::{ExecRequest, Response};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::PathBuf;

#[derive(Debug, Clone)]
struct VmEntry {
    record: VmRecord,
    backend: BackendKind,
    dir: PathBuf,
}

/// The one-shot VMs of this process.
#[derive(Debug, Default)]
pub(crate) struct VmTable {
    vms: HashMap<String, VmEntry>,
}

fn pid_alive(pid: i32) -> bool {
    PathBuf::from(format!("/proc/{pid}")).exists()
}

impl Runtime {
    fn vm_dir(&self, id: &str) -> PathBuf {
        self.config.state_dir.join("vms").join(id)
    }

    fn vm_spec(&self, entry: &VmEntry) -> SandboxSpec {
        SandboxSpec {
            dir: entry.dir.join("sandbox"),
            environment: entry.record.environment.clone(),
            vcpu_count: entry.record.vcpu_count,
            mem_mib: entry.record.mem_mib,
            network: NetworkSpec { enabled: entry.record.network_enabled, published_ports: vec![] },
            volume: None,
            volume_ready: None,
        }
    }

    fn vm_get(&self, id: &str) -> Result<VmEntry> {
        let entry = {
            let table = self.vms.lock().map_err(|_| PyroError::UnknownVm(id.into()))?;
            table.vms.get(id).cloned()
        };
        let entry = entry.ok_or_else(|| PyroError::UnknownVm(id.into()))?;
        if entry.record.expires_at <= now() {
            self.vm_remove(&entry);
            return Err(PyroError::VmExpired(id.into()));
        }
        Ok(entry)
    }

    fn vm_put(&self, entry: VmEntry) {
        if let Ok(mut table) = self.vms.lock() {
            table.vms.insert(entry.record.vm_id.clone(), entry);
        }
    }

    fn vm_remove(&self, entry: &VmEntry) {
        let _ = self.backend(entry.backend).destroy(&entry.dir.join("sandbox"));
        let _ = fs::remove_dir_all(&entry.dir);
        if let Ok(mut table) = self.vms.lock() {
            table.vms.remove(&entry.record.vm_id);
        }
    }

    /// Remove sandbox dirs of one-shot VMs whose owning process is gone.
    fn reap_orphan_vm_dirs(&self) {
        let root = self.config.state_dir.join("vms");
        for entry in fs::read_dir(&root).into_iter().flatten().flatten() {
            let dir = entry.path();
            let owner = fs::read_to_string(dir.join("owner.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            if owner.is_some_and(pid_alive) {
                continue;
            }
            for backend in self.all_backends() {
                let _ = backend.destroy(&dir.join("sandbox"));
            }
            let _ = fs::remove_dir_all(&dir);
        }
    }

    /// Create a one-shot VM record (not started).
    pub fn vm_create(&self, p: VmCreateParams) -> Result<VmRecord> {
        validate::sizing(p.vcpu_count, p.mem_mib, p.ttl_seconds)?;
        super::environments::EnvironmentCatalog::require_known(&p.environment)?;
        let backend = self.choose_backend(p.allow_host_compat)?;
        if !self.capabilities(backend).network && p.network {
            return Err(PyroError::invalid("network requires a guest VM; host_compat has none"));
        }
        self.vm_reap_expired()?;
        self.reap_orphan_vm_dirs();
        let id = state::new_id();
        let dir = self.vm_dir(&id);
        fs::create_dir_all(dir.join("sandbox"))
            .map_err(|e| PyroError::io("could not create VM directory", &dir, e))?;
        state::write_atomic(&dir.join("owner.pid"), std::process::id().to_string().as_bytes())?;
        let created = now();
        let record = VmRecord {
            vm_id: id,
            environment: p.environment,
            environment_version: None,
            vcpu_count: p.vcpu_count,
            mem_mib: p.mem_mib,
            ttl_seconds: p.ttl_seconds,
            created_at: created,
            expires_at: created + p.ttl_seconds as f64,
            state: VmState::Created,
            network_enabled: p.network,
            allow_host_compat: p.allow_host_compat,
            guest_ip: None,
            execution_mode: ExecutionMode::Pending,
            accel: Accel::None,
            metadata: BTreeMap::from([("backend".to_string(), backend.name().to_string())]),
        };
        self.vm_put(VmEntry { record: record.clone(), backend, dir });
        Ok(record)
    }

    /// Boot a created or stopped VM.
    pub fn vm_start(&self, vm_id: &str) -> Result<VmRecord> {
        let mut entry = self.vm_get(vm_id)?;
        if entry.record.state == VmState::Started {
            return Err(PyroError::WrongState(format!(
                "vm {vm_id} cannot be started from state 'started'"
            )));
        }
        let backend = self.backend(entry.backend);
        let spec = self.vm_spec(&entry);
        super::watch::phase("booting");
        let info = if entry.record.state == VmState::Created {
            backend.create(&spec)?
        } else {
            backend.start(&spec)?
        };
        super::watch::booted(&info);
        entry.record.state = VmState::Started;
        entry.record.accel = info.accel;
        entry.record.execution_mode = info.execution_mode;
        entry.record.environment_version = info.environment_version;
        entry.record.guest_ip = info.guest_ip;
        entry.record.metadata.extend(info.metadata);
        // How the VM's QEMU is confined, read from the live process.
        entry.record.metadata.extend(backend.confinement(&spec.dir));
        entry.record.metadata.insert("accel_reason".into(), info.accel_reason);
        if let Some(k) = info.guest_kernel {
            entry.record.metadata.insert("guest_kernel".into(), k);
        }
        self.vm_put(entry.clone());
        Ok(entry.record)
    }

    /// Run one command in a started VM, then delete it.
    pub fn vm_exec(&self, p: VmExecParams) -> Result<VmExecResult> {
        validate::command(&p.command)?;
        validate::timeout(p.timeout_seconds)?;
        let entry = self.vm_get(&p.vm_id)?;
        if entry.record.state != VmState::Started {
            return Err(PyroError::WrongState(format!(
                "vm {} must be in 'started' state before execution; run vm_start first",
                p.vm_id
            )));
        }
        let result = self.vm_exec_inner(&entry, &p);
        self.vm_remove(&entry);
        let (out, stderr) = result?;
        Ok(VmExecResult {
            vm_id: p.vm_id.clone(),
            environment: entry.record.environment.clone(),
            environment_version: entry.record.environment_version.clone(),
            command: p.command,
            stdout: lossy(&agent::exec_output(&out.stdout_b64, validate::MAX_OUTPUT_BYTES)?),
            stderr,
            exit_code: out.exit_code,
            duration_ms: out.duration_ms,
            truncated: out.truncated,
            execution_mode: self.execution_mode(entry.backend),
            accel: entry.record.accel,
            guest_kernel: entry.record.metadata.get("guest_kernel").cloned(),
            cleanup: Cleanup { vm_id: p.vm_id, deleted: true, reason: "post_exec_cleanup".into() },
            metadata: entry
                .record
                .metadata
                .iter()
                .filter(|(k, _)| k.starts_with("boot") || k.starts_with("confinement"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    fn vm_exec_inner(
        &self,
        entry: &VmEntry,
        p: &VmExecParams,
    ) -> Result<(pyro_protocol::ExecOutput, String)> {
        let mut ch = self.backend(entry.backend).connect(&entry.dir.join("sandbox"))?;
        let cwd = self.capabilities(entry.backend).vm_exec_cwd;
        let request = ExecRequest {
            command: p.command.clone(),
            cwd: cwd.into(),
            env: BTreeMap::new(),
            timeout_ms: p.timeout_seconds.saturating_mul(1000),
            max_output_bytes: validate::MAX_OUTPUT_BYTES,
        };
        let watch = super::watch::current();
        let redactor = super::secrets::Redactor::default();
        let out = match super::exec_stream::run(
            ch.as_mut(),
            request,
            p.timeout_seconds,
            &redactor,
            watch.as_deref(),
        )? {
            Response::Exec(out) => out,
            Response::Error { kind, message } => return Err(PyroError::guest(kind, message)),
            other => return Err(unexpected("exec", &other)),
        };
        let mut stderr = lossy(&agent::exec_output(&out.stderr_b64, validate::MAX_OUTPUT_BYTES)?);
        agent::note_timeout(&mut stderr, out.timed_out, p.timeout_seconds);
        Ok((out, stderr))
    }

    /// Create, start, run and delete in one call. On any failure the VM is deleted.
    pub fn vm_run(&self, p: VmRunParams) -> Result<VmExecResult> {
        validate::command(&p.command)?;
        validate::timeout(p.timeout_seconds)?;
        let record = self.vm_create(VmCreateParams {
            environment: p.environment,
            vcpu_count: p.vcpu_count,
            mem_mib: p.mem_mib,
            ttl_seconds: p.ttl_seconds,
            network: p.network,
            allow_host_compat: p.allow_host_compat,
        })?;
        let id = record.vm_id.clone();
        if let Err(err) = self.vm_start(&id) {
            if let Ok(entry) = self.vm_get(&id) {
                self.vm_remove(&entry);
            }
            return Err(err);
        }
        self.vm_exec(VmExecParams {
            vm_id: id,
            command: p.command,
            timeout_seconds: p.timeout_seconds,
        })
    }

    /// Stop a VM.
    pub fn vm_stop(&self, vm_id: &str) -> Result<VmRecord> {
        let mut entry = self.vm_get(vm_id)?;
        self.backend(entry.backend).stop(&entry.dir.join("sandbox"))?;
        if entry.record.state == VmState::Started {
            entry.record.state = VmState::Stopped;
        }
        self.vm_put(entry.clone());
        Ok(entry.record)
    }

    /// Delete a VM.
    pub fn vm_delete(&self, vm_id: &str) -> Result<VmDeleteResult> {
        let entry = self.vm_get(vm_id)?;
        self.vm_remove(&entry);
        Ok(VmDeleteResult { vm_id: vm_id.into(), deleted: true, reason: "explicit_delete".into() })
    }

    /// Show a VM.
    pub fn vm_status(&self, vm_id: &str) -> Result<VmRecord> {
        let mut entry = self.vm_get(vm_id)?;
        if entry.record.state == VmState::Started
            && !self.backend(entry.backend).is_running(&entry.dir.join("sandbox"))
        {
            entry.record.state = VmState::Stopped;
            self.vm_put(entry.clone());
        }
        Ok(entry.record)
    }

    /// Show a VM's network: what the guest was (or will be) given, and whether it is up.
    pub fn vm_network_info(&self, vm_id: &str) -> Result<NetworkInfo> {
        use crate::backend::qemu::usernet;
        let record = self.vm_status(vm_id)?;
        let entry = self.vm_get(vm_id)?;
        let on = record.network_enabled && self.capabilities(entry.backend).network;
        if !on {
            return Ok(NetworkInfo {
                vm_id: vm_id.into(),
                network_enabled: false,
                guest_ip: None,
                gateway_ip: None,
                dns_servers: vec![],
                outbound_connectivity_expected: false,
                reason: Some("network configuration is unavailable for this VM".to_string()),
                network_mode: None,
                tap_name: None,
                subnet_cidr: None,
                mac_address: None,
            });
        }
        let up = record.state == VmState::Started;
        let state = match record.state {
            VmState::Created => "created",
            VmState::Started => "started",
            VmState::Stopped => "stopped",
        };
        Ok(NetworkInfo {
            vm_id: vm_id.into(),
            network_enabled: true,
            guest_ip: Some(record.guest_ip.unwrap_or_else(|| usernet::GUEST_IP.to_string())),
            gateway_ip: Some(usernet::GATEWAY_IP.to_string()),
            dns_servers: vec![usernet::DNS_SERVER.to_string()],
            outbound_connectivity_expected: up,
            reason: (!up).then(|| {
                format!(
                    "the VM is not running (state '{state}'); its network is up only while it runs"
                )
            }),
            network_mode: Some(usernet::MODE.to_string()),
            tap_name: None,
            subnet_cidr: Some(usernet::SUBNET_CIDR.to_string()),
            mac_address: Some(usernet::GUEST_MAC.to_string()),
        })
    }

    /// Delete every one-shot VM of this runtime (they never outlive their process).
    pub(crate) fn delete_all_vms(&self) {
        let all: Vec<VmEntry> = match self.vms.lock() {
            Ok(table) => table.vms.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        for entry in &all {
            self.vm_remove(entry);
        }
    }

    /// Delete one-shot VMs past their TTL.
    pub fn vm_reap_expired(&self) -> Result<ReapResult> {
        let expired: Vec<VmEntry> = match self.vms.lock() {
            Ok(table) => {
                table.vms.values().filter(|e| e.record.expires_at <= now()).cloned().collect()
            }
            Err(_) => Vec::new(),
        };
        let mut ids: Vec<String> = expired.iter().map(|e| e.record.vm_id.clone()).collect();
        for e in &expired {
            self.vm_remove(e);
        }
        ids.sort();
        Ok(ReapResult { count: ids.len() as u64, deleted_vm_ids: ids })
    }
}
