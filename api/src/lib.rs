//! `cdcstar-api`: the reference shop's REST service (customers, products, orders, order items) in
//! Rust, compatible with the reference FastAPI backend and its React test client.
//!
//! The library holds everything; `main.rs` only parses the command line and dispatches:
//! - [`config`]: command line and environment settings;
//! - [`app`]: the router ([`app::app`]) and its shared state;
//! - [`customers`], [`products`], [`orders`], [`order_items`]: one module per resource;
//! - [`rows`], [`resource`]: the page, by-id and delete statements and the list, read and delete
//!   handlers the resources share;
//! - [`error`], [`envelope`], [`extract`], [`validation`], [`pagination`], [`money`],
//!   [`timestamps`]: the request
//!   and response plumbing every resource shares;
//! - [`connections`]: the connections statements run on (one round trip per statement);
//! - [`db`], [`docs`], [`health`], [`metrics`], [`server`], [`telemetry`]: operations;
//! - [`star`], [`client`]: the read-only star-schema view over ClickHouse and the test client page;
//! - [`loadgen`]: the load generator behind the `cdcstar-api-load` benchmark binary.

pub mod app;
pub mod client;
pub mod config;
pub mod connections;
pub mod customers;
pub mod db;
pub mod docs;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod health;
pub mod loadgen;
pub mod metrics;
pub mod money;
pub mod order_items;
pub mod orders;
pub mod pagination;
pub mod products;
pub mod resource;
pub mod rows;
pub mod server;
pub mod star;
pub mod telemetry;
pub mod timestamps;
pub mod validation;

pub use app::{AppState, HttpSettings, app};
