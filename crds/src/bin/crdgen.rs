//! Writes the CdcPipeline CRD to `crds/cdcpipeline.yaml` (or the path given), or prints it with `-`.

use std::path::PathBuf;
use std::process::ExitCode;

use cdcstar_crds::crd::{CRD_PATH, crd_yaml};

fn main() -> ExitCode {
    let target = std::env::args().nth(1);
    let yaml = crd_yaml();
    if target.as_deref() == Some("-") {
        print!("{yaml}");
        return ExitCode::SUCCESS;
    }
    let path = target.map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the crds crate sits in the repository root")
            .join(CRD_PATH)
    });
    match std::fs::write(&path, yaml) {
        Ok(()) => {
            eprintln!("wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: failed to write {}: {err}", path.display());
            ExitCode::FAILURE
        }
    }
}
