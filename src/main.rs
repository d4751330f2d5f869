//! The `paraminit` binary: a thin shell over the library's command line.

use std::io::Write;
use std::sync::Arc;

use clap::Parser;
use paraminit::cli::{self, Cli, Command, Failure};

fn main() {
    let args = Cli::parse();
    let result = match args.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Generate {
            spec,
            output,
            format,
        } => cli::generate(&spec, &output, format),
        Command::Plan { spec } => cli::plan_file(&spec).and_then(|p| print_json(&p.to_json())),
        Command::Analyze { spec, batch } => cli::plan_file(&spec).and_then(|p| {
            let report = paraminit::analyze::analyze(Arc::new(p), batch).map_err(Failure::Input)?;
            print_json(&report)
        }),
        Command::Healthcheck { addr } => {
            let addr = match addr {
                Some(a) => a,
                None => std::env::var("PARAMINIT_ADDR")
                    .unwrap_or_else(|_| paraminit::config::Config::default().addr),
            };
            paraminit::http::healthcheck(&addr).map_err(Failure::Other)
        }
    };
    if let Err(f) = result {
        std::process::exit(cli::report(f));
    }
}

fn print_json(v: &serde_json::Value) -> Result<(), Failure> {
    let text = format!("{v:#}\n");
    // A closed pipe (`| head`) is not an error worth a message.
    match std::io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Runs the service until SIGTERM or Ctrl-C (then in-flight responses get the grace period).
fn serve() -> Result<(), Failure> {
    let config = paraminit::config::Config::from_env().map_err(Failure::Config)?;
    paraminit::config::init_tracing(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the runtime: {e}")))?;
    let result = runtime.block_on(paraminit::http::serve(config));
    // `serve` returns once the grace period is over; dropping the runtime would wait for every
    // blocking task still running (a plan, a generation), so give them a moment and leave.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    result.map_err(|e| Failure::Other(e.to_string()))
}
