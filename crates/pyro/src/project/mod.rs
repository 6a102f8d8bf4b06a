//! Project sources: what `workspace_create` seeds `/workspace` from when the caller
//! gives no `seed_path`.
//!
//! `pyro mcp serve` picks one source at startup ([`ProjectSourceChoice::resolve`]):
//!
//! | choice | source | `origin_kind` | `origin_ref` |
//! |---|---|---|---|
//! | `--no-project-source` | none | `none` | — |
//! | `--project-path DIR` | DIR's Git-tracked files (DIR's whole tree when it is not in Git) | `project_path` | DIR |
//! | `--repo-url URL [--repo-ref REF]` | a clean clone made once at startup in a temporary directory pyro owns | `repo_url` | `URL@COMMIT` |
//! | none of them, started inside a Git checkout | the checkout's top level, tracked files | `project_path` | the top level |
//! | none of them, elsewhere | none | `none` | — |
//!
//! The three explicit choices exclude each other (a usage error), `--repo-ref` needs
//! `--repo-url`, and an explicit `seed_path` in `workspace_create` always wins
//! (`origin_kind: seed_path`).
//!
//! Invariants:
//! - the user's checkout is only read: `git rev-parse` and `git ls-files` run in it,
//!   nothing else, and files are read with `O_NOFOLLOW`;
//! - only index entries are seeded (tracked files, including staged new files, with
//!   their working-tree content); ignored and untracked files are never read, so
//!   unreadable build output or caches cannot break startup. Submodules are skipped;
//! - a clone lives in a `tempfile` directory dropped (deleted) with the source;
//! - credentials in a repository URL never appear in `origin_ref` or any message.

mod git;

use crate::runtime::seed::{max_seed_bytes, Seed, SeedContent};
use pyro_agent::archive;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a project source could not be resolved or packed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectSourceError {
    /// A git command failed.
    #[error("{command} failed: {message}")]
    Git {
        /// The command, without arguments that could carry secrets.
        command: String,
        /// git's first error line.
        message: String,
    },
    /// The choice itself is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Reading the project failed.
    #[error("could not read the project source {path}: {message}; fix the file's permissions, `git rm --cached` it, or start the server with --no-project-source or --repo-url")]
    Read {
        /// Project root.
        path: PathBuf,
        /// Cause.
        message: String,
    },
}

/// Where a workspace's `/workspace` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OriginKind {
    /// The server's local project (auto-detected checkout or `--project-path`).
    ProjectPath,
    /// A clean clone of `--repo-url`.
    RepoUrl,
    /// An explicit `seed_path`.
    SeedPath,
    /// Nothing: an empty `/workspace`.
    None,
}

impl OriginKind {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            OriginKind::ProjectPath => "project_path",
            OriginKind::RepoUrl => "repo_url",
            OriginKind::SeedPath => "seed_path",
            OriginKind::None => "none",
        }
    }
}

/// How the caller asked for a project source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProjectSourceChoice {
    /// Use the Git checkout containing this directory, if any (the default of
    /// `pyro mcp serve`, with the server's working directory).
    Detect(PathBuf),
    /// `--project-path DIR`.
    ProjectPath(PathBuf),
    /// `--repo-url URL [--repo-ref REF]`.
    RepoUrl {
        /// Repository URL (any URL or path `git clone` accepts).
        url: String,
        /// Branch, tag or commit; the default branch when absent.
        reference: Option<String>,
    },
    /// `--no-project-source`, and the SDK default.
    #[default]
    Disabled,
}

/// What a choice resolves to, without cloning anything (for `pyro doctor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProjectSourceReport {
    /// `project_path`, `repo_url` or `none`.
    pub origin_kind: OriginKind,
    /// The project directory or the repository URL (credentials removed).
    pub origin_ref: Option<String>,
    /// Only Git-tracked files are seeded.
    pub git_tracked_only: bool,
    /// Why this source was chosen.
    pub reason: String,
}

/// A resolved project source.
#[derive(Debug)]
pub struct ProjectSource {
    kind: OriginKind,
    /// The directory seeded from.
    root: PathBuf,
    /// Seed only tracked files of `root`.
    git: bool,
    origin_ref: String,
    reason: String,
    /// Keeps the clone of a `--repo-url` source alive; deleted on drop.
    _clone: Option<tempfile::TempDir>,
}

/// Remove `user:password@` from a URL.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
            let slash = if rest.contains('/') { "/" } else { "" };
            format!("{scheme}://{host}{slash}{path}")
        }
        None => url.to_string(),
    }
}

fn canonical_dir(path: &Path, flag: &str) -> Result<PathBuf, ProjectSourceError> {
    let dir = std::fs::canonicalize(path)
        .map_err(|e| ProjectSourceError::Invalid(format!("{flag} {}: {e}", path.display())))?;
    if !dir.is_dir() {
        return Err(ProjectSourceError::Invalid(format!(
            "{flag} {} is not a directory",
            dir.display()
        )));
    }
    Ok(dir)
}

impl ProjectSourceChoice {
    /// Describe what this choice resolves to without cloning (a `--repo-url` is
    /// reported as given).
    pub fn report(&self) -> Result<ProjectSourceReport, ProjectSourceError> {
        Ok(match self {
            ProjectSourceChoice::Disabled => ProjectSourceReport {
                origin_kind: OriginKind::None,
                origin_ref: None,
                git_tracked_only: false,
                reason: "project source turned off (--no-project-source)".into(),
            },
            ProjectSourceChoice::ProjectPath(path) => {
                let dir = canonical_dir(path, "--project-path")?;
                let git = git::is_work_tree(&dir);
                ProjectSourceReport {
                    origin_kind: OriginKind::ProjectPath,
                    origin_ref: Some(dir.display().to_string()),
                    git_tracked_only: git,
                    reason: if git {
                        "--project-path inside a Git checkout: its tracked files".into()
                    } else {
                        "--project-path outside Git: the whole directory".into()
                    },
                }
            }
            ProjectSourceChoice::RepoUrl { url, reference } => ProjectSourceReport {
                origin_kind: OriginKind::RepoUrl,
                origin_ref: Some(match reference {
                    Some(r) => format!("{}@{r}", redact_url(url)),
                    None => redact_url(url),
                }),
                git_tracked_only: true,
                reason: "--repo-url: a clean clone made when the server starts".into(),
            },
            ProjectSourceChoice::Detect(cwd) => match git::toplevel(cwd) {
                Some(top) => ProjectSourceReport {
                    origin_kind: OriginKind::ProjectPath,
                    origin_ref: Some(top.display().to_string()),
                    git_tracked_only: true,
                    reason: format!(
                        "started inside the Git checkout {}: its tracked files",
                        top.display()
                    ),
                },
                None => ProjectSourceReport {
                    origin_kind: OriginKind::None,
                    origin_ref: None,
                    git_tracked_only: false,
                    reason: format!(
                        "{} is not inside a Git checkout; pass --project-path DIR or --repo-url URL",
                        cwd.display()
                    ),
                },
            },
        })
    }

    /// Resolve the choice: check directories, clone a `--repo-url`. `None` means no
    /// project source.
    pub fn resolve(&self) -> Result<Option<ProjectSource>, ProjectSourceError> {
        let report = self.report()?;
        match self {
            ProjectSourceChoice::Disabled => Ok(None),
            ProjectSourceChoice::Detect(_) if report.origin_kind == OriginKind::None => Ok(None),
            ProjectSourceChoice::Detect(_) | ProjectSourceChoice::ProjectPath(_) => {
                let root = PathBuf::from(report.origin_ref.clone().unwrap_or_default());
                Ok(Some(ProjectSource {
                    kind: OriginKind::ProjectPath,
                    origin_ref: root.display().to_string(),
                    root,
                    git: report.git_tracked_only,
                    reason: report.reason,
                    _clone: None,
                }))
            }
            ProjectSourceChoice::RepoUrl { url, reference } => {
                let temp =
                    tempfile::Builder::new().prefix("pyro-repo-").tempdir().map_err(|e| {
                        ProjectSourceError::Invalid(format!(
                            "could not create a clone directory: {e}"
                        ))
                    })?;
                let root = temp.path().join("repo");
                git::clone(url, reference.as_deref(), &root).map_err(|e| match e {
                    ProjectSourceError::Git { command, message } => ProjectSourceError::Git {
                        command: format!("{command} {}", redact_url(url)),
                        message: message.replace(url, &redact_url(url)),
                    },
                    other => other,
                })?;
                let commit = git::head_commit(&root)?;
                Ok(Some(ProjectSource {
                    kind: OriginKind::RepoUrl,
                    origin_ref: format!("{}@{commit}", redact_url(url)),
                    root,
                    git: true,
                    reason: report.reason,
                    _clone: Some(temp),
                }))
            }
        }
    }
}

impl ProjectSource {
    /// `project_path` or `repo_url`.
    pub fn origin_kind(&self) -> OriginKind {
        self.kind
    }

    /// The project directory, or `URL@COMMIT`.
    pub fn origin_ref(&self) -> &str {
        &self.origin_ref
    }

    /// Why this source was chosen.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// One phrase for the `workspace_create` description.
    pub fn describe(&self) -> String {
        match (self.kind, self.git) {
            (OriginKind::RepoUrl, _) => format!("a clean clone of {}", self.origin_ref),
            (_, true) => format!("the Git-tracked files of the project {}", self.origin_ref),
            _ => format!("the project directory {}", self.origin_ref),
        }
    }

    /// Whether the tracked symlink `rel` points inside the project (lexically). Links
    /// that point outside (absolute, or up past the root) are left out of the seed
    /// instead of failing it: the guest could not follow them anyway.
    fn link_stays_inside(&self, rel: &str) -> bool {
        let Ok(target) = std::fs::read_link(self.root.join(rel)) else { return true };
        if target.is_absolute() {
            tracing::info!(path = rel, "project source: skipping a symlink to an absolute path");
            return false;
        }
        let mut depth: i64 = Path::new(rel).components().count() as i64 - 1;
        for c in target.components() {
            match c {
                std::path::Component::ParentDir => depth -= 1,
                std::path::Component::Normal(_) => depth += 1,
                _ => {}
            }
            if depth < 0 {
                tracing::info!(path = rel, "project source: skipping a symlink out of the project");
                return false;
            }
        }
        true
    }

    /// Pack the source into a seed. Reads the project; never writes it.
    pub fn materialize(&self) -> Result<Seed, ProjectSourceError> {
        let read_error =
            |message: String| ProjectSourceError::Read { path: self.root.clone(), message };
        let tar = if self.git {
            let paths: Vec<String> = git::tracked_files(&self.root)?
                .into_iter()
                .filter(|e| e.mode != "160000")
                .filter(|e| e.mode != "120000" || self.link_stays_inside(&e.path))
                .map(|e| e.path)
                .collect();
            archive::pack_selected(&self.root, &paths).map_err(|e| read_error(e.to_string()))?.0
        } else {
            archive::pack_path(&self.root).map_err(|e| read_error(e.to_string()))?.0
        };
        let max = max_seed_bytes();
        if tar.len() as u64 > max {
            return Err(read_error(format!(
                "the project is larger than {} MiB as an archive (the transfer cap)",
                max / (1024 * 1024)
            )));
        }
        archive::validate_archive(&tar).map_err(|e| read_error(format!("unsafe content: {e}")))?;
        let tar = crate::runtime::seed::spool(&tar).map_err(|e| read_error(e.to_string()))?;
        Ok(Seed {
            content: SeedContent::Tar(tar),
            mode: "directory",
            source: self.root.clone(),
            origin_kind: self.kind.name(),
            origin_ref: Some(self.origin_ref.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_from_urls() {
        assert_eq!(redact_url("https://u:tok@example.com/a/b.git"), "https://example.com/a/b.git");
        assert_eq!(redact_url("https://example.com/a.git"), "https://example.com/a.git");
        assert_eq!(redact_url("file:///srv/repo.git"), "file:///srv/repo.git");
        assert_eq!(redact_url("/srv/repo"), "/srv/repo");
        assert_eq!(redact_url("ssh://git@host"), "ssh://host");
    }
}
