//! `pyro workspace {sync push, export, diff, file, patch}`: moving content in and out
//! of `/workspace`.

use crate::cli::args::{
    FileCommand, FileReadArgs, FileWriteArgs, PatchApplyArgs, PatchCommand, SyncCommand,
    WorkspaceExportArgs, WorkspaceIdArgs,
};
use crate::cli::error::{CliError, ExitCode};
use crate::cli::output::{self, emit, name_of};
use crate::cli::parse;
use pyro::params::{
    WorkspaceExportParams, WorkspaceFileListParams, WorkspaceFileReadParams,
    WorkspaceFileWriteParams, WorkspacePatchApplyParams, WorkspaceSyncPushParams,
};
use pyro::results::{DiffResult, FileListResult, FileReadResult};
use pyro::Pyro;
use std::io::{self, Write};

/// `workspace sync push`.
pub async fn sync(pyro: &Pyro, cmd: SyncCommand) -> Result<ExitCode, CliError> {
    let SyncCommand::Push(a) = cmd;
    let params = WorkspaceSyncPushParams {
        workspace_id: a.workspace_id,
        source_path: parse::absolute(&a.source_path)?.display().to_string(),
        dest: a.dest,
    };
    let r = pyro.workspace_sync_push(params).await?;
    emit(a.out.json, &r, |w, r| {
        let s = &r.workspace_sync;
        writeln!(
            w,
            "[workspace-sync] workspace_id={} mode={} source={} destination={} entry_count={} \
             bytes_written={} execution_mode={}",
            r.workspace_id,
            s.mode,
            s.source_path,
            s.destination,
            s.entry_count,
            s.bytes_written,
            name_of(&r.execution_mode)
        )
    })?;
    Ok(ExitCode::Success)
}

/// `workspace export`.
pub async fn export(pyro: &Pyro, a: WorkspaceExportArgs) -> Result<ExitCode, CliError> {
    let params = WorkspaceExportParams {
        workspace_id: a.workspace_id,
        path: a.path,
        output_path: parse::absolute(&a.output)?.display().to_string(),
    };
    let r = pyro.workspace_export(params).await?;
    emit(a.out.json, &r, |w, r| {
        writeln!(
            w,
            "[workspace-export] workspace_id={} workspace_path={} output_path={} \
             artifact_type={} entry_count={} bytes_written={} execution_mode={}",
            r.workspace_id,
            r.workspace_path,
            r.output_path,
            name_of(&r.artifact_type),
            r.entry_count,
            r.bytes_written,
            name_of(&r.execution_mode)
        )
    })?;
    Ok(ExitCode::Success)
}

/// `workspace diff`.
pub async fn diff(pyro: &Pyro, a: WorkspaceIdArgs) -> Result<ExitCode, CliError> {
    let d = pyro.workspace_diff(a.workspace_id).await?;
    emit(a.out.json, &d, print_diff)?;
    Ok(ExitCode::Success)
}

fn print_diff(w: &mut dyn Write, d: &DiffResult) -> io::Result<()> {
    if !d.changed {
        return writeln!(w, "No workspace changes.");
    }
    let s = &d.summary;
    writeln!(
        w,
        "[workspace-diff] workspace_id={} total={} added={} modified={} deleted={} \
         type_changed={} text_patched={} non_text={}",
        d.workspace_id,
        s.total,
        s.added,
        s.modified,
        s.deleted,
        s.type_changed,
        s.text_patched,
        s.non_text
    )?;
    for e in d.entries.iter().filter(|e| e.text_patch.is_none()) {
        writeln!(w, "{} {} [{}] (no text patch)", e.status, e.path, name_of(&e.artifact_type))?;
    }
    w.write_all(d.patch.as_bytes())?;
    if !d.patch.is_empty() && !d.patch.ends_with('\n') {
        writeln!(w)?;
    }
    Ok(())
}

/// `workspace file ...`.
pub async fn file(pyro: &Pyro, cmd: FileCommand) -> Result<ExitCode, CliError> {
    match cmd {
        FileCommand::List(a) => {
            let params = WorkspaceFileListParams {
                workspace_id: a.workspace_id,
                path: a.path,
                recursive: a.recursive,
            };
            let r = pyro.workspace_file_list(params).await?;
            emit(a.out.json, &r, |w, r| print_list(w, "Workspace path", r))?;
        }
        FileCommand::Read(a) => read(pyro, a).await?,
        FileCommand::Write(a) => write(pyro, a).await?,
    }
    Ok(ExitCode::Success)
}

/// Entries of `file list` (and, later, `disk list`).
pub fn print_list(w: &mut dyn Write, heading: &str, r: &FileListResult) -> io::Result<()> {
    writeln!(w, "{heading}: {} (recursive={})", r.path, output::yes_no(r.recursive))?;
    if r.entries.is_empty() {
        return writeln!(w, "No workspace entries found.");
    }
    for e in &r.entries {
        let target = e.link_target.as_ref().map(|t| format!(" -> {t}")).unwrap_or_default();
        writeln!(w, "{} [{}] size={}{target}", e.path, name_of(&e.artifact_type), e.size_bytes)?;
    }
    Ok(())
}

/// Stage two of `file read` (also used by `disk read`).
pub fn read_params(a: &FileReadArgs) -> WorkspaceFileReadParams {
    WorkspaceFileReadParams {
        workspace_id: a.workspace_id.clone(),
        path: a.path.clone(),
        max_bytes: a.max_bytes,
    }
}

async fn read(pyro: &Pyro, a: FileReadArgs) -> Result<(), CliError> {
    let r = pyro.workspace_file_read(read_params(&a)).await?;
    if a.content_only {
        return output::stdout_text(&r.content);
    }
    if a.out.json {
        return output::json(&r);
    }
    print_read(&r, "workspace-file-read")
}

fn print_read(r: &FileReadResult, tag: &str) -> Result<(), CliError> {
    output::stdout_text(&r.content)?;
    if !r.content.is_empty() && !r.content.ends_with('\n') {
        output::stdout_text("\n")?;
    }
    output::note(&format!(
        "[{tag}] workspace_id={} path={} size_bytes={} truncated={}",
        r.workspace_id,
        r.path,
        r.size_bytes,
        output::yes_no(r.truncated)
    ));
    Ok(())
}

/// Stage two of `file write`: the text comes from `--text` or `--text-file`.
pub fn write_params(a: FileWriteArgs) -> Result<WorkspaceFileWriteParams, CliError> {
    let text = parse::text_source("--text", a.text, "--text-file", a.text_file.as_deref())?;
    Ok(WorkspaceFileWriteParams { workspace_id: a.workspace_id, path: a.path, text })
}

async fn write(pyro: &Pyro, a: FileWriteArgs) -> Result<(), CliError> {
    let json = a.out.json;
    let r = pyro.workspace_file_write(write_params(a)?).await?;
    emit(json, &r, |w, r| {
        writeln!(
            w,
            "[workspace-file-write] workspace_id={} path={} bytes_written={} execution_mode={}",
            r.workspace_id,
            r.path,
            r.bytes_written,
            name_of(&r.execution_mode)
        )
    })
}

/// Stage two of `patch apply`: the patch comes from `--patch` or `--patch-file`.
pub fn patch_params(a: PatchApplyArgs) -> Result<WorkspacePatchApplyParams, CliError> {
    let patch = parse::text_source("--patch", a.patch, "--patch-file", a.patch_file.as_deref())?;
    Ok(WorkspacePatchApplyParams { workspace_id: a.workspace_id, patch })
}

/// `workspace patch apply`.
pub async fn patch(pyro: &Pyro, cmd: PatchCommand) -> Result<ExitCode, CliError> {
    let PatchCommand::Apply(a) = cmd;
    let json = a.out.json;
    let r = pyro.workspace_patch_apply(patch_params(a)?).await?;
    emit(json, &r, |w, r| {
        let s = &r.summary;
        writeln!(
            w,
            "[workspace-patch] workspace_id={} total={} added={} modified={} deleted={} \
             execution_mode={}",
            r.workspace_id,
            s.total,
            s.added,
            s.modified,
            s.deleted,
            name_of(&r.execution_mode)
        )?;
        for e in &r.entries {
            writeln!(w, "{} {}", e.status, e.path)?;
        }
        Ok(())
    })?;
    Ok(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Command, WorkspaceCommand};
    use clap::Parser;

    fn ws(args: &[&str]) -> WorkspaceCommand {
        let cli = Cli::try_parse_from(["pyro", "workspace"].iter().chain(args)).expect("parse");
        match cli.command {
            Command::Workspace(cmd) => cmd,
            other => panic!("not a workspace command: {other:?}"),
        }
    }

    #[test]
    fn write_params_take_inline_text_or_a_file() {
        let WorkspaceCommand::File(FileCommand::Write(a)) =
            ws(&["file", "write", "w", "a.txt", "--text", "-leading dash"])
        else {
            panic!("wrong command")
        };
        assert_eq!(write_params(a).expect("params").text, "-leading dash");

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("p.diff");
        std::fs::write(&file, "--- a/x\n+++ b/x\n").expect("write");
        let path = file.display().to_string();
        let WorkspaceCommand::Patch(PatchCommand::Apply(a)) =
            ws(&["patch", "apply", "w", "--patch-file", &path])
        else {
            panic!("wrong command")
        };
        assert_eq!(patch_params(a).expect("params").patch, "--- a/x\n+++ b/x\n");

        let missing = dir.path().join("missing").display().to_string();
        let WorkspaceCommand::File(FileCommand::Write(a)) =
            ws(&["file", "write", "w", "a.txt", "--text-file", &missing])
        else {
            panic!("wrong command")
        };
        assert!(write_params(a).expect_err("missing").to_string().contains("does not exist"));
    }

    #[test]
    fn clean_diff_prints_no_changes() {
        let d = DiffResult {
            workspace_id: "w".into(),
            changed: false,
            summary: Default::default(),
            entries: vec![],
            patch: String::new(),
        };
        let mut buf = Vec::new();
        print_diff(&mut buf, &d).expect("print");
        assert_eq!(String::from_utf8_lossy(&buf), "No workspace changes.\n");
    }
}
