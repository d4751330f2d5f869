//! The `paraminit` binary: a thin shell over the library's command line.

use std::io::Write;

use clap::Parser;
use paraminit::cli::{self, Cli, Command, Failure};

fn main() {
    let args = Cli::parse();
    let result = match args.command.unwrap_or(Command::Serve) {
        Command::Serve => Err(Failure::Other(
            "the HTTP service is not part of this build yet".into(),
        )),
        Command::Generate {
            spec,
            output,
            format,
        } => cli::generate(&spec, &output, format),
        Command::Plan { spec } => cli::plan_file(&spec).and_then(|p| {
            let text = format!("{:#}\n", p.to_json());
            // A closed pipe (`| head`) is not an error worth a message.
            match std::io::stdout().write_all(text.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }),
        Command::Healthcheck { .. } => Err(Failure::Other(
            "the HTTP service is not part of this build yet".into(),
        )),
    };
    if let Err(f) = result {
        std::process::exit(cli::report(f));
    }
}
