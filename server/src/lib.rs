//! The Tenantry server: the axum router (web app, REST, OFREP, metrics, health), its live state,
//! and the CLI verbs.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod csrf;
pub mod demo_metrics;
pub mod error;
pub mod export;
pub mod health;
pub mod jobs;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod session;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tokens;

pub use startup::router;
pub use state::AppState;
