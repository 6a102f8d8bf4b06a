//! `pyro workspace disk {export, list, read}`: a stopped workspace's root disk, read
//! offline without booting it.

use super::files;
use crate::cli::args::DiskCommand;
use crate::cli::error::{CliError, ExitCode};
use crate::cli::output::{self, emit, name_of};
use crate::cli::parse;
use pyro::params::{WorkspaceDiskExportParams, WorkspaceFileListParams};
use pyro::results::{DiskListResult, DiskReadResult};
use pyro::Pyro;
use std::io::{self, Write};

/// Run a `workspace disk` subcommand.
pub async fn run(pyro: &Pyro, cmd: DiskCommand) -> Result<ExitCode, CliError> {
    match cmd {
        DiskCommand::Export(a) => {
            let params = WorkspaceDiskExportParams {
                workspace_id: a.workspace_id,
                output_path: parse::absolute(&a.output)?.display().to_string(),
            };
            let r = pyro.workspace_disk_export(params).await?;
            emit(a.out.json, &r, |w, r| {
                writeln!(
                    w,
                    "[workspace-disk-export] workspace_id={} output_path={} disk_format={} \
                     bytes_written={}",
                    r.workspace_id, r.output_path, r.disk_format, r.bytes_written
                )
            })?;
        }
        DiskCommand::List(a) => {
            let params = WorkspaceFileListParams {
                workspace_id: a.workspace_id,
                path: a.path,
                recursive: a.recursive,
            };
            let r = pyro.workspace_disk_list(params).await?;
            emit(a.out.json, &r, print_list)?;
        }
        DiskCommand::Read(a) => {
            let r = pyro.workspace_disk_read(files::read_params(&a)).await?;
            if a.content_only {
                output::stdout_text(&r.content)?;
            } else if a.out.json {
                output::json(&r)?;
            } else {
                print_read(&r)?;
            }
        }
    }
    Ok(ExitCode::Success)
}

fn print_list(w: &mut dyn Write, r: &DiskListResult) -> io::Result<()> {
    writeln!(w, "Workspace disk path: {} (recursive={})", r.path, output::yes_no(r.recursive))?;
    if r.entries.is_empty() {
        return writeln!(w, "No workspace disk entries found.");
    }
    for e in &r.entries {
        let target = e.link_target.as_ref().map(|t| format!(" -> {t}")).unwrap_or_default();
        writeln!(w, "{} [{}] size={}{target}", e.path, name_of(&e.artifact_type), e.size_bytes)?;
    }
    Ok(())
}

fn print_read(r: &DiskReadResult) -> Result<(), CliError> {
    output::stdout_text(&r.content)?;
    if !r.content.is_empty() && !r.content.ends_with('\n') {
        output::stdout_text("\n")?;
    }
    output::note(&format!(
        "[workspace-disk-read] workspace_id={} path={} size_bytes={} truncated={}",
        r.workspace_id,
        r.path,
        r.size_bytes,
        output::yes_no(r.truncated)
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyro::results::{ArtifactType, FileEntry};

    #[test]
    fn disk_list_prints_entries_or_the_empty_line() {
        let mut r = DiskListResult {
            workspace_id: "w".into(),
            path: "/workspace".into(),
            recursive: false,
            entries: vec![FileEntry {
                path: "/workspace/l".into(),
                artifact_type: ArtifactType::Symlink,
                size_bytes: 3,
                link_target: Some("a/b".into()),
            }],
        };
        let mut buf = Vec::new();
        print_list(&mut buf, &r).expect("print");
        assert_eq!(
            String::from_utf8_lossy(&buf),
            "Workspace disk path: /workspace (recursive=no)\n/workspace/l [symlink] size=3 -> a/b\n"
        );
        r.entries.clear();
        let mut buf = Vec::new();
        print_list(&mut buf, &r).expect("print");
        assert!(String::from_utf8_lossy(&buf).ends_with("No workspace disk entries found.\n"));
    }
}
