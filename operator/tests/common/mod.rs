//! Shared test helpers: the example pipeline as fixtures, in-memory fakes of the two databases, and
//! an API-server verifier (kube-rs's `tower_test` pattern) that asserts every request the operator
//! makes and answers it as the API server would.

#![allow(dead_code)]

pub mod apiserver;
pub mod fakes;
pub mod fixtures;
pub mod scenarios;
