//! Configuration from the environment (and the command line, which wins).
use std::net::SocketAddr;

use anyhow::Context;
use leptos::config::LeptosOptions;

/// The Leptos site options: where the compiled assets are and where to listen. Read from the
/// `LEPTOS_*` variables cargo-leptos sets, with Rollgate's defaults.
pub fn leptos_options(addr: Option<SocketAddr>) -> anyhow::Result<LeptosOptions> {
    let mut options = leptos::config::get_configuration(None)
        .context("reading the LEPTOS_* environment")?
        .leptos_options;
    if options.output_name.is_empty() {
        options.output_name = "rollgate".into();
    }
    if let Some(addr) = addr {
        options.site_addr = addr;
    }
    Ok(options)
}
