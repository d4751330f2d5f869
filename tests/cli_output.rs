//! `paraminit generate` output is atomic (issue 11): it is written beside the target under a
//! temporary name and renamed when complete, so an error or Ctrl-C never leaves a partial file
//! under the final name; an unknown extension is an error without `--format`; an invalid
//! `PARAMINIT_THREADS` is an error naming it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_paraminit");

fn spec(dir: &Path, body: &str) -> std::path::PathBuf {
    let p = dir.join("spec.json");
    std::fs::write(&p, body).unwrap();
    p
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect()
}

#[test]
fn a_complete_file_is_renamed_into_place_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        dir.path(),
        r#"{"seed": 1, "tensors": [{"name": "w", "shape": [3, 4], "init": "normal"}]}"#,
    );
    let out = dir.path().join("model.safetensors");
    let st = Command::new(BIN)
        .arg("generate")
        .arg(&s)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = std::fs::read(&out).unwrap();
    let f = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(f.tensor("w").unwrap().shape(), &[3, 4]);
    assert!(leftovers(dir.path()).is_empty());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode & 0o044,
            0o044,
            "the file is readable like any other: {mode:o}"
        );
    }
}

#[test]
fn an_unknown_extension_is_an_error_unless_format_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        dir.path(),
        r#"{"seed": 1, "tensors": [{"name": "w", "shape": [2], "init": "zeros"}]}"#,
    );
    let out = dir.path().join("out.npz");
    let o = Command::new(BIN)
        .arg("generate")
        .arg(&s)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(".npz") && err.contains("--format"), "{err}");
    assert!(!out.exists());
    let st = Command::new(BIN)
        .arg("generate")
        .arg(&s)
        .arg("-o")
        .arg(&out)
        .args(["--format", "safetensors"])
        .status()
        .unwrap();
    assert!(st.success() && out.exists());
}

#[test]
fn an_error_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        dir.path(),
        r#"{"seed": 1, "tensors": [{"name": "__metadata__", "shape": [2], "init": "zeros"}]}"#,
    );
    let out = dir.path().join("model.safetensors");
    let o = Command::new(BIN)
        .arg("generate")
        .arg(&s)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("reserved_name"));
    assert!(!out.exists() && leftovers(dir.path()).is_empty());
    // An invalid PARAMINIT_THREADS is an error naming it, not silently all cores.
    let s = spec(
        dir.path(),
        r#"{"seed": 1, "tensors": [{"name": "w", "shape": [2], "init": "zeros"}]}"#,
    );
    let o = Command::new(BIN)
        .arg("generate")
        .arg(&s)
        .arg("-o")
        .arg(&out)
        .env("PARAMINIT_THREADS", "abc")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("PARAMINIT_THREADS"));
    assert!(!out.exists());
}

#[cfg(unix)]
#[test]
fn ctrl_c_leaves_neither_a_partial_file_nor_a_temporary() {
    let dir = tempfile::tempdir().unwrap();
    // 4 GB of output: far from done when interrupted.
    let s = spec(
        dir.path(),
        r#"{"seed": 1, "tensors": [{"name": "w", "shape": [1000000000], "init": "normal"}]}"#,
    );
    let out = dir.path().join("model.safetensors");
    let mut child = Command::new(BIN)
        .arg("generate")
        .arg(&s)
        .arg("-o")
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until writing has started (the temporary file exists), then interrupt.
    let t = Instant::now();
    while leftovers(dir.path()).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "never started writing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(!out.exists(), "a partial file under the final name");
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}
