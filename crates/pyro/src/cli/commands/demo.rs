//! `pyro demo`: one `vm_run` in debian:12, printed as JSON.

use crate::cli::args::{DemoArgs, DemoCommand};
use crate::cli::error::{CliError, ExitCode};
use crate::cli::output;
use pyro::params::{VmRunParams, DEFAULT_ENVIRONMENT};
use pyro::Pyro;

/// The command `pyro demo --network` runs: an HTTPS request that prints the status code.
const NETWORK_PROBE: &str = "python3 -c \"import urllib.request; \
print(urllib.request.urlopen('https://example.com', timeout=10).status)\"";

/// Run `pyro demo`.
pub async fn run(pyro: &Pyro, args: DemoArgs) -> Result<ExitCode, CliError> {
    if let Some(DemoCommand::Ollama(o)) = args.demo {
        return Err(CliError::NotImplemented(format!(
            "`pyro demo ollama` is not implemented in this build (it would drive vm_run from \
             the model {} at {}); use `pyro mcp serve` with your chat host instead",
            o.model, o.base_url
        )));
    }
    let command = if args.network { NETWORK_PROBE } else { "git --version" };
    let mut params = VmRunParams::new(DEFAULT_ENVIRONMENT, command);
    params.network = args.network;
    params.allow_host_compat = args.host.allow_host_compat;
    let result = pyro.vm_run(params).await?;
    output::json(&result)?;
    Ok(ExitCode::Guest(result.exit_code))
}
