//! The Rollgate server: the axum router (web app, REST, health), its state, and the CLI verbs.

pub mod cli;
pub mod config;
pub mod health;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use startup::router;
pub use state::AppState;
