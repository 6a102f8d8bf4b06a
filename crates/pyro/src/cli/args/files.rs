//! `pyro workspace file|patch|disk`: files of a running workspace, unified-diff patches,
//! and the disk of a stopped workspace read offline.

use clap::{ArgGroup, Args, Subcommand};
use pyro::params::{DEFAULT_MAX_BYTES, WORKSPACE_PATH};
use std::path::PathBuf;

use super::*;

/// `pyro workspace file ...`.
#[derive(Debug, Subcommand)]
pub enum FileCommand {
    /// List a directory of /workspace.
    List(FileListArgs),
    /// Print a file of /workspace.
    Read(FileReadArgs),
    /// Create or replace a file of /workspace.
    Write(FileWriteArgs),
}

/// `pyro workspace file list` and `disk list`.
#[derive(Debug, Args)]
pub struct FileListArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Directory to list.
    #[arg(value_name = "PATH", default_value = WORKSPACE_PATH)]
    pub path: String,
    /// Include subdirectories.
    #[arg(long)]
    pub recursive: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace file read` and `disk read`.
#[derive(Debug, Args)]
pub struct FileReadArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// File to read (relative paths are under /workspace).
    #[arg(value_name = "PATH")]
    pub path: String,
    /// Return at most this many bytes (1-1048576).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BYTES)]
    pub max_bytes: u64,
    /// Print exactly the content, nothing else.
    #[arg(long, conflicts_with = "json")]
    pub content_only: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace file write`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["text", "text_file"])))]
pub struct FileWriteArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// File to write (relative paths are under /workspace; parents are created).
    #[arg(value_name = "PATH")]
    pub path: String,
    /// The new content (UTF-8, at most 1 MiB).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub text: Option<String>,
    /// Read the new content from this host file (UTF-8, at most 1 MiB).
    #[arg(long, value_name = "PATH")]
    pub text_file: Option<PathBuf>,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace patch ...`.
#[derive(Debug, Subcommand)]
pub enum PatchCommand {
    /// Apply a unified diff to /workspace.
    #[command(
        long_about = "Apply a unified diff to /workspace. Paths are relative to /workspace; \
            a/ and b/ prefixes and /dev/null (add or delete) are understood. Context must \
            match exactly."
    )]
    Apply(PatchApplyArgs),
}

/// `pyro workspace patch apply`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["patch", "patch_file"])))]
pub struct PatchApplyArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// The patch text (at most 1 MiB).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub patch: Option<String>,
    /// Read the patch from this host file (UTF-8, at most 1 MiB).
    #[arg(long, value_name = "PATH")]
    pub patch_file: Option<PathBuf>,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace disk ...`.
#[derive(Debug, Subcommand)]
pub enum DiskCommand {
    /// Copy the stopped workspace's disk image to a host file.
    Export(DiskExportArgs),
    /// List a directory on the stopped workspace's disk.
    List(FileListArgs),
    /// Read a file on the stopped workspace's disk.
    Read(FileReadArgs),
}

/// `pyro workspace disk export`.
#[derive(Debug, Args)]
pub struct DiskExportArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Host path to create; it must not exist yet.
    #[arg(long, value_name = "HOST_PATH", required = true)]
    pub output: PathBuf,
    #[command(flatten)]
    pub out: JsonFlag,
}
