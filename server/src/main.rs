//! `tenantry`: the server and its operator verbs.
use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: the request path allocates small, short-lived buffers on
/// every core at once, where glibc's arenas contend (`__lll_lock_wait_private` in profiles under
/// wrk) — see docs/BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = server::cli::Cli::parse();
    server::telemetry::init();
    match server::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tenantry: {e:#}");
            ExitCode::FAILURE
        }
    }
}
