#!/usr/bin/env bash
# Builds the tansu broker (a test fixture, not a production broker) with `cargo install` into ROOT/bin:
#
#   scripts/install-tansu.sh VERSION ROOT WORK_DIR
#
# Optimisation level 1 and no debug info build it in about half the time of cargo's release profile.
# The build uses a CARGO_HOME of its own under WORK_DIR (removed when it succeeds), so that it never waits
# for, nor holds, the package cache lock of the workspace's own cargo builds: scripts/services.sh runs it
# in the background while the workspace builds. The user's cargo configuration is copied into it.
# NB: --locked builds tansu's own Cargo.lock, which names yanked crates: cargo warns and builds them while
# they are downloadable (see "First run" in README.md for what to do if one disappears).
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 VERSION ROOT WORK_DIR" >&2; exit 2; }
version=$1 root=$2 work=$3
user_cargo_home=${CARGO_HOME:-$HOME/.cargo}
cargo_home=$work/cargo-home
mkdir -p "$cargo_home" "$root"
for file in config.toml config credentials.toml credentials; do
    if [ -f "$user_cargo_home/$file" ]; then cp "$user_cargo_home/$file" "$cargo_home/"; fi
done
CARGO_HOME=$cargo_home CARGO_TERM_COLOR=never \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_LTO=false \
    cargo install tansu --version "$version" --locked --features dynostore,libsql --root "$root"
rm -rf "$work"
