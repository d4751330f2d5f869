//! The `paraminit` command line: `serve` (the default), `generate`, `plan`, `analyze` and
//! `healthcheck`.
//! Offline generation uses the same core as the service, so a file made here is byte for byte
//! the service's response to the same request.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::encode::json::JsonBody;
use crate::encode::safetensors::SafetensorsBody;
use crate::error::SpecError;
use crate::generate::Generator;
use crate::plan::{self, Limits, Plan};
use crate::spec;

/// Bytes per chunk written by `generate`.
const CHUNK_BYTES: usize = 4 << 20;

#[derive(Parser, Debug)]
#[command(
    name = "paraminit",
    version,
    about = "Deterministic, framework-exact neural-network parameter initialization"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP service (the default). Configured by PARAMINIT_* environment variables.
    Serve,
    /// Generate the weights for a request file (`-` reads standard input).
    Generate {
        spec: PathBuf,
        /// Output file (`-` writes standard output).
        #[arg(short, long)]
        output: PathBuf,
        /// Output format; by default taken from the output's extension (`.json` → json).
        #[arg(long, value_enum)]
        format: Option<OutFormat>,
    },
    /// Print the resolved plan of a request file as JSON.
    Plan { spec: PathBuf },
    /// Print the signal-propagation report (per-layer forward/backward variance, verdict).
    Analyze {
        spec: PathBuf,
        /// Batch of the measured pass (clamped to the work bound).
        #[arg(long, default_value_t = crate::analyze::DEFAULT_BATCH)]
        batch: usize,
    },
    /// Exit 0 when the local service answers /healthz (for container health checks).
    Healthcheck {
        /// host:port to check; default from PARAMINIT_ADDR, with 0.0.0.0 taken as 127.0.0.1.
        #[arg(long)]
        addr: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum OutFormat {
    Safetensors,
    Json,
}

/// Exit codes: 0 ok, 1 I/O or service failure, 2 bad input.
pub enum Failure {
    Input(SpecError),
    /// A bad setting (environment variable): bad input too, exit status 2.
    Config(String),
    Other(String),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Other(e.to_string())
    }
}

pub fn report(f: Failure) -> i32 {
    match f {
        Failure::Input(e) => {
            eprintln!("{}", e.to_envelope());
            2
        }
        Failure::Config(msg) => {
            eprintln!("error: {msg}");
            2
        }
        Failure::Other(msg) => {
            eprintln!("error: {msg}");
            1
        }
    }
}

fn read_spec(path: &PathBuf) -> Result<Vec<u8>, Failure> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path)
            .map_err(|e| Failure::Other(format!("cannot read {}: {e}", path.display())))
    }
}

/// Parses, validates and plans a request file (no size limits offline).
pub fn plan_file(path: &PathBuf) -> Result<Plan, Failure> {
    let body = read_spec(path)?;
    let req = spec::parse_bytes(&body).map_err(Failure::Input)?;
    plan::build(req, &Limits::UNLIMITED).map_err(Failure::Input)
}

pub fn threads_from_env() -> usize {
    std::env::var("PARAMINIT_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

pub fn generate(
    spec_path: &PathBuf,
    output: &PathBuf,
    format: Option<OutFormat>,
) -> Result<(), Failure> {
    let plan = Arc::new(plan_file(spec_path)?);
    let format = format.unwrap_or_else(|| {
        if output.extension().is_some_and(|e| e == "json") {
            OutFormat::Json
        } else {
            OutFormat::Safetensors
        }
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads_from_env())
        .build()
        .map_err(|e| Failure::Other(format!("cannot start generation threads: {e}")))?;
    let to_stdout = output.as_os_str() == "-";
    let mut sink: Box<dyn Write + Send> = if to_stdout {
        Box::new(std::io::BufWriter::new(std::io::stdout()))
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(output)
                .map_err(|e| Failure::Other(format!("cannot create {}: {e}", output.display())))?,
        ))
    };
    let progress = if std::io::stderr().is_terminal() {
        let total = match format {
            OutFormat::Safetensors => plan.file_bytes,
            OutFormat::Json => plan.total_elements,
        };
        let bar = indicatif::ProgressBar::new(total);
        let unit = if format == OutFormat::Safetensors {
            "{bytes}/{total_bytes}"
        } else {
            "{pos}/{len} elements"
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {unit} {{elapsed_precise}} eta {{eta}}"
        )) {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let generator = Generator::new(plan.clone());
    pool.install(|| -> Result<(), Failure> {
        match format {
            OutFormat::Safetensors => {
                let mut body = SafetensorsBody::new(generator, 0, plan.file_bytes, CHUNK_BYTES);
                while let Some(chunk) = body.next_chunk() {
                    sink.write_all(&chunk)?;
                    if let Some(b) = &progress {
                        b.inc(chunk.len() as u64);
                    }
                }
            }
            OutFormat::Json => {
                let mut body = JsonBody::new(generator, CHUNK_BYTES);
                let mut done_elements = 0u64;
                while let Some(chunk) = body.next_chunk() {
                    sink.write_all(&chunk)?;
                    if let Some(b) = &progress {
                        // Elements are roughly one per comma; exact progress is not worth a counter.
                        let commas = chunk.iter().filter(|&&c| c == b',').count() as u64;
                        done_elements = (done_elements + commas).min(plan.total_elements);
                        b.set_position(done_elements);
                    }
                }
            }
        }
        Ok(())
    })?;
    sink.flush()?;
    if let Some(b) = progress {
        b.finish();
    }
    Ok(())
}
