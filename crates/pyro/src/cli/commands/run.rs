//! `pyro run ENV -- CMD`: a one-shot VM.

use crate::cli::args::RunArgs;
use crate::cli::error::{CliError, ExitCode};
use crate::cli::{output, parse};
use pyro::params::{VmCreateParams, VmExecParams, VmRunParams};
use pyro::results::VmExecResult;
use pyro::Pyro;

/// Run `pyro run`.
///
/// `--json` makes one `vm_run` call and prints its result. Human mode walks through
/// create, start and execute with a progress line for each on stderr, deleting the VM
/// if a step fails, then writes the guest's stdout and stderr to ours and a summary
/// line to stderr. Either way the exit code is the guest command's.
pub async fn run(pyro: &Pyro, args: RunArgs) -> Result<ExitCode, CliError> {
    let command = parse::command(&args.command)?;
    if args.out.json {
        let result = pyro
            .vm_run(VmRunParams {
                environment: args.environment,
                command,
                vcpu_count: args.sizing.vcpu_count,
                mem_mib: args.sizing.mem_mib,
                timeout_seconds: args.timeout_seconds,
                ttl_seconds: args.sizing.ttl_seconds,
                network: args.network,
                allow_host_compat: args.host.allow_host_compat,
            })
            .await?;
        output::json(&result)?;
        return Ok(ExitCode::Guest(result.exit_code));
    }

    output::note(&format!("[run] phase=create environment={}", args.environment));
    let vm = pyro
        .vm_create(VmCreateParams {
            environment: args.environment.clone(),
            vcpu_count: args.sizing.vcpu_count,
            mem_mib: args.sizing.mem_mib,
            ttl_seconds: args.sizing.ttl_seconds,
            network: args.network,
            allow_host_compat: args.host.allow_host_compat,
        })
        .await?;
    let vm_id = vm.vm_id;
    output::note(&format!("[run] phase=start vm_id={vm_id}"));
    if let Err(err) = pyro.vm_start(vm_id.clone()).await {
        cleanup(pyro, &vm_id).await;
        return Err(err.into());
    }
    output::note(&format!("[run] phase=execute vm_id={vm_id}"));
    let params =
        VmExecParams { vm_id: vm_id.clone(), command, timeout_seconds: args.timeout_seconds };
    let terminal = std::sync::Arc::new(crate::cli::stream::TerminalWatch::default());
    let result = match pyro::runtime::watch::scope(terminal.clone(), pyro.vm_exec(params)).await {
        Ok(result) => result,
        Err(err) => {
            cleanup(pyro, &vm_id).await;
            return Err(err.into());
        }
    };
    print_human(&result, &terminal)?;
    Ok(ExitCode::Guest(result.exit_code))
}

/// Delete the VM after a failed step (`vm_exec` deletes it itself on success).
async fn cleanup(pyro: &Pyro, vm_id: &str) {
    if pyro.vm_delete(vm_id).await.is_ok() {
        output::note(&format!("[run] vm_id={vm_id} deleted reason=run_vm_error_cleanup"));
    }
}

fn print_human(
    r: &VmExecResult,
    terminal: &crate::cli::stream::TerminalWatch,
) -> Result<(), CliError> {
    terminal.print_result_output(&r.stdout, &r.stderr)?;
    let truncated = if r.truncated { " truncated=yes" } else { "" };
    let boot = match (r.metadata.get("boot"), r.metadata.get("boot_ms")) {
        (Some(kind), Some(ms)) => format!(" boot={kind} boot_ms={ms}"),
        (Some(kind), None) => format!(" boot={kind}"),
        _ => String::new(),
    };
    output::note(&format!(
        "[run] environment={} execution_mode={} accel={}{boot} exit_code={} duration_ms={}{truncated}",
        r.environment,
        output::name_of(&r.execution_mode),
        output::name_of(&r.accel),
        r.exit_code,
        r.duration_ms
    ));
    Ok(())
}
