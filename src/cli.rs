//! The `paraminit` command line: `serve` (the default), `generate`, `plan`, `analyze` and
//! `healthcheck`.
//! Offline generation uses the same core as the service, so a file made here is byte for byte
//! the service's response to the same request.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::encode::json::JsonBody;
use crate::encode::safetensors::SafetensorsBody;
use crate::error::SpecError;
use crate::generate::Generator;
use crate::plan::{Limits, Plan};
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
    crate::pipeline::build(req, &Limits::UNLIMITED).map_err(Failure::Input)
}

/// `PARAMINIT_THREADS`, validated as the service validates it (an invalid value is an error
/// naming the variable, not silently all cores).
pub fn threads_from_env() -> Result<usize, Failure> {
    crate::config::threads_from(|k| std::env::var(k).ok()).map_err(Failure::Config)
}

/// The output format: `--format`, else the output's extension; an unknown extension is an
/// error (writing safetensors bytes into `out.npz` would only confuse whoever opens it).
pub fn output_format(output: &Path, format: Option<OutFormat>) -> Result<OutFormat, Failure> {
    if let Some(f) = format {
        return Ok(f);
    }
    if output.as_os_str() == "-" {
        return Ok(OutFormat::Safetensors);
    }
    match output.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("json") => Ok(OutFormat::Json),
        Some(e) if e.eq_ignore_ascii_case("safetensors") => Ok(OutFormat::Safetensors),
        other => Err(Failure::Config(format!(
            "{}: cannot tell the format from {}; name it .safetensors or .json, or pass --format",
            output.display(),
            match other {
                Some(e) => format!("the extension `.{e}`"),
                None => "a name without an extension".into(),
            }
        ))),
    }
}

/// The temporary file being written, removed by the Ctrl-C/SIGTERM handler.
static PARTIAL: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

fn set_partial(p: Option<PathBuf>) {
    match PARTIAL.lock() {
        Ok(mut g) => *g = p,
        Err(poisoned) => *poisoned.into_inner() = p,
    }
}

/// On Ctrl-C or SIGTERM: remove the temporary file and exit 130, so an interrupted
/// `generate` leaves neither a partial file under the final name nor a stray temporary.
fn install_interrupt_cleanup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("paraminit-signals".into())
            .spawn(|| {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    #[cfg(unix)]
                    {
                        use tokio::signal::unix::{SignalKind, signal};
                        let (Ok(mut int), Ok(mut term)) = (
                            signal(SignalKind::interrupt()),
                            signal(SignalKind::terminate()),
                        ) else {
                            return;
                        };
                        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
                    }
                    #[cfg(not(unix))]
                    {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                    let path = match PARTIAL.lock() {
                        Ok(mut g) => g.take(),
                        Err(p) => p.into_inner().take(),
                    };
                    if let Some(p) = path {
                        let _ = std::fs::remove_file(p);
                    }
                    eprintln!("interrupted; no output written");
                    std::process::exit(130);
                });
            });
    });
}

pub fn generate(
    spec_path: &PathBuf,
    output: &PathBuf,
    format: Option<OutFormat>,
) -> Result<(), Failure> {
    let format = output_format(output, format)?;
    let threads = threads_from_env()?;
    let plan = Arc::new(plan_file(spec_path)?);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Failure::Other(format!("cannot start generation threads: {e}")))?;
    let to_stdout = output.as_os_str() == "-";
    // A file is written under a temporary name beside the target and renamed into place only
    // once complete and synced: an error, a full disk or Ctrl-C never leaves a partial file
    // under the final name.
    let mut partial: Option<tempfile::NamedTempFile> = None;
    let mut sink: Box<dyn Write + Send> = if to_stdout {
        Box::new(std::io::BufWriter::new(std::io::stdout()))
    } else {
        install_interrupt_cleanup();
        let dir = match output.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let stem = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{stem}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".partial");
        #[cfg(unix)]
        {
            // The finished file gets the usual permissions, not the temporary file's 0600.
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let tmp = builder.tempfile_in(&dir).map_err(|e| {
            Failure::Other(format!(
                "cannot create a temporary file in {}: {e}",
                dir.display()
            ))
        })?;
        set_partial(Some(tmp.path().to_path_buf()));
        let file = tmp
            .reopen()
            .map_err(|e| Failure::Other(format!("cannot open {}: {e}", tmp.path().display())))?;
        partial = Some(tmp);
        Box::new(std::io::BufWriter::new(file))
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
    drop(sink);
    if let Some(tmp) = partial {
        tmp.as_file().sync_all()?;
        let path = tmp.path().to_path_buf();
        tmp.persist(output).map_err(|e| {
            Failure::Other(format!(
                "cannot rename {} to {}: {}",
                path.display(),
                output.display(),
                e.error
            ))
        })?;
        set_partial(None);
    }
    if let Some(b) = progress {
        b.finish();
    }
    Ok(())
}
