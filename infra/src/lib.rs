//! Tenantry's server-side infrastructure that is not the web app: the Prometheus HTTP client
//! ([`prom`]), password hashing ([`password`]), sign-in throttling ([`throttle`]) and the client's
//! address behind proxies ([`proxy`]).
//!
//! Both the web app (`app`, ssr) and the server binary (`server`: the guard monitor, the
//! configuration, the CLI) use these. They live here, not in the UI crate, so that a change to a
//! page neither rebuilds nor can break the guard monitor and the CLI. Native only: no Leptos, no
//! SQL (that is `store`'s), and never compiled to wasm.

pub mod password;
pub mod prom;
pub mod proxy;
pub mod throttle;
