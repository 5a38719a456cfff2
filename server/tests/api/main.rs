//! The server's HTTP surface over a real Postgres, through the real router (`oneshot`): one module
//! per area, the shared test app and fixtures in `helpers`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod helpers;
mod prometheus;

mod activity;
mod admin;
mod approvals;
mod audit;
mod evaluation;
mod gates;
mod guards;
mod health;
mod live;
mod ofrep;
mod pages;
mod plans;
mod roles;
mod sdk_stream;
mod security;
mod server_functions;
mod tokens;
