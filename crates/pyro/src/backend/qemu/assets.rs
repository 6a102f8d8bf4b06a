//! The boot assets and environment images in the cache directory.
//!
//! ```text
//! <cache>/boot/vmlinux                      raw ELF kernel (PVH direct boot)
//! <cache>/boot/initrd.img                   initramfs with the agent
//! <cache>/boot/boot.json                    {kernel_package, kernel_release, agent_sha256, built_at, ...}
//! <cache>/environments/<name, ':'->'_'>/rootfs.ext4
//! <cache>/environments/<name, ':'->'_'>/environment.json   {name, built_at, size_bytes, package_count, ...}
//! ```
//!
//! All of it is built by `crates/pyro/assets/guest-build.sh` (run by `scripts/setup`
//! and `pyro env pull`).

use super::super::BackendError;
use std::path::{Path, PathBuf};

/// Environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "PYRO_CACHE_DIR";

/// `$PYRO_CACHE_DIR`, else `$HOME/.cache/pyro`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/pyro")
}

/// Kernel and initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootAssets {
    /// `boot/vmlinux`.
    pub kernel: PathBuf,
    /// `boot/initrd.img`.
    pub initrd: PathBuf,
    /// `boot/boot.json`, when present and valid JSON.
    pub info: Option<serde_json::Value>,
}

impl BootAssets {
    /// Kernel release recorded by the builder (`kernel_release`).
    pub fn kernel_release(&self) -> Option<String> {
        self.info.as_ref().and_then(|i| json_scalar(i, "kernel_release"))
    }
}

/// One environment's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentAssets {
    /// Environment name, e.g. `debian:12`.
    pub name: String,
    /// `rootfs.ext4` (absolute).
    pub rootfs: PathBuf,
    /// `environment.json`, when present and valid JSON.
    pub info: Option<serde_json::Value>,
}

impl EnvironmentAssets {
    /// The build identifier: the builder's `built_at` (Unix seconds).
    pub fn version(&self) -> Option<String> {
        self.info.as_ref().and_then(|i| json_scalar(i, "built_at"))
    }
}

/// A string or number field of a JSON object, as a string.
fn json_scalar(value: &serde_json::Value, key: &str) -> Option<String> {
    match value.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Directory name of an environment (`debian:12` -> `debian_12`).
pub fn environment_dir_name(name: &str) -> String {
    name.replace(':', "_")
}

/// `<cache>/boot`.
pub fn boot_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("boot")
}

/// `<cache>/environments/<name>`.
pub fn environment_dir(cache_dir: &Path, name: &str) -> PathBuf {
    cache_dir.join("environments").join(environment_dir_name(name))
}

/// The boot assets, or `MissingAsset` naming the first missing file and the fix.
pub fn boot_assets(cache_dir: &Path) -> Result<BootAssets, BackendError> {
    let dir = boot_dir(cache_dir);
    let kernel = dir.join("vmlinux");
    let initrd = dir.join("initrd.img");
    for (what, path) in [("guest kernel", &kernel), ("guest initramfs", &initrd)] {
        if !path.is_file() {
            return Err(BackendError::MissingAsset {
                what: format!("{what} (build it with `scripts/setup`)"),
                path: path.clone(),
            });
        }
    }
    let info = read_json(&dir.join("boot.json"));
    Ok(BootAssets { kernel, initrd, info })
}

/// The image of environment `name`, or `MissingAsset` with the fix.
pub fn environment_assets(cache_dir: &Path, name: &str) -> Result<EnvironmentAssets, BackendError> {
    let dir = environment_dir(cache_dir, name);
    let rootfs = dir.join("rootfs.ext4");
    if !rootfs.is_file() {
        return Err(BackendError::MissingAsset {
            what: format!("root filesystem of environment {name} (run `pyro env pull {name}`)"),
            path: rootfs,
        });
    }
    // qemu-img stores the backing path in the overlay: it must be absolute.
    let rootfs = std::path::absolute(&rootfs)
        .map_err(|e| BackendError::io(format!("cannot resolve {}", rootfs.display()), e))?;
    let info = read_json(&dir.join("environment.json"));
    Ok(EnvironmentAssets { name: name.to_owned(), rootfs, info })
}

/// Names of the environments whose image is present, sorted.
pub fn installed_environments(cache_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(cache_dir.join("environments")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("rootfs.ext4").is_file())
        .map(|e| {
            read_json(&e.path().join("environment.json"))
                .and_then(|i| json_scalar(&i, "name"))
                .unwrap_or_else(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn missing_assets_name_the_fix() {
        let cache = tempfile::tempdir().expect("tempdir");
        let err = boot_assets(cache.path()).expect_err("missing");
        assert!(err.to_string().contains("scripts/setup"), "{err}");
        let err = environment_assets(cache.path(), "debian:12").expect_err("missing");
        let text = err.to_string();
        assert!(text.contains("pyro env pull debian:12"), "{text}");
        assert!(text.contains("environments/debian_12/rootfs.ext4"), "{text}");
    }

    #[test]
    fn present_assets_are_read_with_their_metadata() {
        let cache = tempfile::tempdir().expect("tempdir");
        let boot = cache.path().join("boot");
        fs::create_dir_all(&boot).expect("mkdir");
        fs::write(boot.join("vmlinux"), b"elf").expect("write");
        fs::write(boot.join("initrd.img"), b"cpio").expect("write");
        fs::write(boot.join("boot.json"), br#"{"kernel_release":"6.1.0-48-cloud-amd64"}"#)
            .expect("write");
        let assets = boot_assets(cache.path()).expect("assets");
        assert_eq!(assets.kernel_release().as_deref(), Some("6.1.0-48-cloud-amd64"));

        let env = cache.path().join("environments/debian_12-base");
        fs::create_dir_all(&env).expect("mkdir");
        fs::write(env.join("rootfs.ext4"), b"ext4").expect("write");
        fs::write(
            env.join("environment.json"),
            br#"{"name":"debian:12-base","built_at":1795614816}"#,
        )
        .expect("write");
        let env = environment_assets(cache.path(), "debian:12-base").expect("env");
        assert!(env.rootfs.is_absolute());
        assert_eq!(env.version().as_deref(), Some("1795614816"));
        assert_eq!(installed_environments(cache.path()), ["debian:12-base"]);
    }
}
