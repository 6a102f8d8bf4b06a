//! The `pyro` binary: parse, run the command on a tokio runtime, exit with its code.
//! Everything else lives in [`cli`]; exit codes are documented on [`cli::ExitCode`].
#![forbid(unsafe_code)]

mod cli;

use std::time::Duration;

fn main() -> std::process::ExitCode {
    let parsed = match cli::parse_args(std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(err) => return cli::usage_error(&err).into(),
    };
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            let err = cli::CliError::Output(err);
            return cli::finish(Err(err), parsed.json).into();
        }
    };
    let result = runtime.block_on(cli::dispatch(parsed.cli));
    // Nothing is left running once dispatch returns; don't wait on idle stdin readers.
    runtime.shutdown_timeout(Duration::from_millis(500));
    cli::finish(result, parsed.json).into()
}

/// Logs go to stderr (stdout carries results and, under `mcp serve`, the protocol).
/// `PYRO_LOG` takes an `env_logger`-style filter; the default shows warnings only.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PYRO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ =
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).try_init();
}
