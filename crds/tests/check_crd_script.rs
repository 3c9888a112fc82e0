//! Runs `scripts/check-crd.py` (kubernetes-validate on the CRD, jsonschema on the examples) when the
//! project's venv exists; `make test` runs the script directly as well.

use std::path::Path;
use std::process::Command;

#[test]
fn crd_and_examples_pass_the_offline_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let python = root.join(".services/venv/bin/python");
    if !python.exists() {
        eprintln!(
            "SKIPPED: {} is missing; `scripts/services.sh up` creates it",
            python.display()
        );
        return;
    }
    let output = Command::new(&python)
        .arg(root.join("scripts/check-crd.py"))
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "scripts/check-crd.py failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
