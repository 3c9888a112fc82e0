//! Integration tests of the API against a real PostgreSQL: each `#[sqlx::test]` gets its own
//! database with the migrations applied, and drives the router with `tower::ServiceExt::oneshot`.
//!
//! Needs `DATABASE_URL` (a superuser URL: sqlx creates one database per test):
//! `scripts/services.sh up && eval "$(scripts/services.sh env)"`.

mod cli;
mod client_flow;
mod common;
mod connections;
mod customers;
mod operations;
mod order_items;
mod orders;
mod products;
mod schema;
mod star;
