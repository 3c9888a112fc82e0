//! Shared test helpers: the example pipeline as fixtures, in-memory fakes of the two databases, and
//! an API-server verifier (kube-rs's `tower_test` pattern) that asserts every request the operator
//! makes and answers it as the API server would.

#![allow(dead_code)]

pub mod apiserver;
pub mod fakes;
pub mod fixtures;
pub mod scenarios;

/// Fails the test with the command that starts the local services.
pub fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the local services with `scripts/services.sh up` and export their \
             addresses with `eval \"$(scripts/services.sh env)\"`"
        )
    })
}
