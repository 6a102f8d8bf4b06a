//! `vm.json`: what a sandbox was booted with and how the boot went, so a later process
//! can describe or restart it. Written atomically (temp file, fsync, rename).

use super::super::{BackendError, SandboxInfo};
use super::launch::GUEST_IP;
use pyro_contract::results::{Accel, ExecutionMode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Format version of `vm.json`.
pub const RECORD_VERSION: u32 = 1;

/// Boot timings of the last successful boot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BootTimings {
    /// Boot attempts (2 when the watchdog had to retry).
    pub attempts: u32,
    /// Milliseconds for the overlay disk (create only).
    pub disk_create_ms: Option<u64>,
    /// Milliseconds from starting QEMU until it answered QMP.
    pub qemu_launch_ms: u64,
    /// Milliseconds from starting QEMU to the agent's hello answer (successful attempt).
    pub launch_to_hello_ms: u64,
    /// Milliseconds of the whole operation (disk, failed attempts, boot).
    pub total_ms: u64,
    /// Initramfs stages: `(stage, guest uptime in ms)`.
    pub guest_stages: Vec<(String, u64)>,
    /// Guest uptime in ms when the agent reported ready.
    pub agent_ready_ms: Option<u64>,
}

impl BootTimings {
    /// The timings as `metadata` entries.
    pub fn to_metadata(&self, metadata: &mut BTreeMap<String, String>) {
        metadata.insert("boot_attempts".into(), self.attempts.to_string());
        if let Some(ms) = self.disk_create_ms {
            metadata.insert("boot_disk_create_ms".into(), ms.to_string());
        }
        metadata.insert("boot_qemu_launch_ms".into(), self.qemu_launch_ms.to_string());
        metadata.insert("boot_launch_to_hello_ms".into(), self.launch_to_hello_ms.to_string());
        metadata.insert("boot_total_ms".into(), self.total_ms.to_string());
        for (stage, ms) in &self.guest_stages {
            metadata.insert(format!("boot_guest_{}_ms", stage.replace('-', "_")), ms.to_string());
        }
        if let Some(ms) = self.agent_ready_ms {
            metadata.insert("boot_guest_agent_ready_ms".into(), ms.to_string());
        }
    }
}

/// The record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRecord {
    /// [`RECORD_VERSION`].
    pub version: u32,
    /// Accelerator used.
    pub accel: Accel,
    /// Why.
    pub accel_reason: String,
    /// Environment name.
    pub environment: String,
    /// Environment build id (`built_at` of environment.json) the disk was created from.
    pub environment_version: Option<String>,
    /// Base image of the overlay.
    pub rootfs: String,
    /// Kernel.
    pub kernel: String,
    /// Initramfs.
    pub initrd: String,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// Whether the guest has a NIC.
    pub network_enabled: bool,
    /// `(host_port, guest_port)` forwarded from 127.0.0.1.
    pub published_ports: Vec<(u16, u16)>,
    /// Agent ports.
    pub agent_ports: usize,
    /// QEMU pid of the last boot.
    pub pid: Option<i32>,
    /// Guest kernel release from the agent's hello.
    pub guest_kernel: Option<String>,
    /// Agent version from its hello.
    pub agent_version: Option<String>,
    /// Unix time (seconds) of the last boot.
    pub booted_at: u64,
    /// Timings of the last boot.
    pub boot: BootTimings,
    /// Set when the last start was a clone of a template.
    #[serde(default)]
    pub clone: Option<CloneInfo>,
    /// Why the last fresh start was a cold boot although templates are on, if so.
    #[serde(default)]
    pub cold_reason: Option<String>,
    /// Template build directory whose disk backs this sandbox's disk (kept across
    /// stop/start, until the disk is recreated).
    #[serde(default)]
    pub template_dir: Option<String>,
}

/// How a clone started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneInfo {
    /// Template key.
    pub template_key: String,
    /// Milliseconds from starting QEMU to the device state being loaded.
    pub restore_ms: u64,
    /// Milliseconds spent making the template first (0 when it existed).
    pub template_build_ms: u64,
}

impl VmRecord {
    /// The [`SandboxInfo`] this record describes.
    pub fn info(&self) -> SandboxInfo {
        let mut metadata = BTreeMap::new();
        if let Some(pid) = self.pid {
            metadata.insert("qemu_pid".into(), pid.to_string());
        }
        if let Some(v) = &self.agent_version {
            metadata.insert("agent_version".into(), v.clone());
        }
        metadata.insert("machine".into(), "q35".into());
        self.boot.to_metadata(&mut metadata);
        metadata.insert("boot_ms".into(), self.boot.total_ms.to_string());
        match &self.clone {
            Some(clone) => {
                metadata.insert("boot".into(), "clone".into());
                metadata.insert("boot_template".into(), clone.template_key.clone());
                metadata.insert("boot_restore_ms".into(), clone.restore_ms.to_string());
                if clone.template_build_ms > 0 {
                    metadata.insert(
                        "boot_template_build_ms".into(),
                        clone.template_build_ms.to_string(),
                    );
                }
            }
            None => {
                metadata.insert("boot".into(), "cold".into());
            }
        }
        if let Some(reason) = &self.cold_reason {
            metadata.insert("boot_cold_reason".into(), reason.clone());
        }
        SandboxInfo {
            accel: self.accel,
            accel_reason: self.accel_reason.clone(),
            execution_mode: ExecutionMode::Guest,
            guest_kernel: self.guest_kernel.clone(),
            environment_version: self.environment_version.clone(),
            guest_ip: self.network_enabled.then(|| GUEST_IP.to_owned()),
            metadata,
        }
    }

    /// Read `path`; `None` when missing or unreadable.
    pub fn read(path: &Path) -> Option<VmRecord> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Write `path` atomically.
    pub fn write(&self, path: &Path) -> Result<(), BackendError> {
        let tmp = path.with_extension("json.tmp");
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| BackendError::Protocol(format!("cannot encode vm.json: {e}")))?;
        bytes.push(b'\n');
        let write = || -> std::io::Result<()> {
            // The sandbox dir may belong to the QEMU user: never follow a name it left.
            match std::fs::remove_file(&tmp) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| BackendError::io(format!("cannot write {}", path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> VmRecord {
        VmRecord {
            version: RECORD_VERSION,
            accel: Accel::Tcg,
            accel_reason: "kvm_pvm".into(),
            environment: "debian:12".into(),
            environment_version: Some("1795614816".into()),
            rootfs: "/c/environments/debian_12/rootfs.ext4".into(),
            kernel: "/c/boot/vmlinux".into(),
            initrd: "/c/boot/initrd.img".into(),
            vcpu_count: 1,
            mem_mib: 512,
            network_enabled: true,
            published_ports: vec![(8080, 80)],
            agent_ports: 4,
            pid: Some(42),
            guest_kernel: Some("6.1.0-48-cloud-amd64".into()),
            agent_version: Some("0.1.0".into()),
            booted_at: 1,
            boot: BootTimings {
                attempts: 1,
                disk_create_ms: Some(12),
                qemu_launch_ms: 40,
                launch_to_hello_ms: 1300,
                total_ms: 1320,
                guest_stages: vec![("modules-start".into(), 410)],
                agent_ready_ms: Some(830),
            },
            clone: None,
            cold_reason: None,
            template_dir: None,
        }
    }

    #[test]
    fn round_trips_and_describes_the_sandbox() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("vm.json");
        record().write(&path).expect("write");
        assert!(!tmp.path().join("vm.json.tmp").exists());
        let back = VmRecord::read(&path).expect("read");
        assert_eq!(back, record());
        let info = back.info();
        assert_eq!(info.guest_ip.as_deref(), Some("10.0.2.15"));
        assert_eq!(info.execution_mode, ExecutionMode::Guest);
        assert_eq!(info.metadata["boot_guest_modules_start_ms"], "410");
        assert_eq!(info.metadata["boot_launch_to_hello_ms"], "1300");
        assert_eq!(info.metadata["qemu_pid"], "42");
        assert_eq!(info.metadata["boot"], "cold");
        assert_eq!(info.metadata["boot_ms"], "1320");
    }
}
