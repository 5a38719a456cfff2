//! The ceiling `bench/http.sh` measures Tenantry against in the same run: axum's hello-world with
//! a JSON answer the size of `/api/features`' and the same runtime (`#[tokio::main]`, every core).
//! Nothing of Tenantry is in it — what Tenantry serves slower than this is what it adds.
//!
//! `cargo run --release -p server --example ceiling -- 127.0.0.1:3401`
use axum::{routing::get, Json, Router};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3401".to_string());
    let app = Router::new().route(
        "/api/features",
        get(|| async { Json(serde_json::json!({"multi_workspace_enabled": true})) }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
