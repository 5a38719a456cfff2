//! # flags — Tenantry's evaluation engine
//!
//! A pure crate that answers two questions for tenant-scoped feature flags:
//!
//! * "is flag `K` on for tenant `T`, and why?" — [`Snapshot::evaluate`] returns a [`Decision`];
//! * "which tenants does this change flip?" — [`cohort`] and [`diff`].
//!
//! Its state travels as a [`Snapshot`] (`rollgate.snapshot/v1`, every enabled row listed) or as a
//! [`CompactSnapshot`] ([`compact`], `tenantry.snapshot/v2`: rollout targets kept as rules, only
//! the rows that differ from them listed); both give the same decisions.
//!
//! The same code is compiled into the Tenantry server (to answer the SaaS application and to
//! materialise rollout phases) and into the browser's WebAssembly bundle (to preview a change
//! before it is saved), so the blast radius a product owner sees is the one they get.
//!
//! The crate does no IO, never reads a clock or a random number generator, and never panics on
//! any input: every fallible operation returns a typed [`Error`].
//!
//! ```
//! use flags::{bucket, cohort, Percentage, Target, Tenant};
//!
//! let tenants: Vec<Tenant> = (0..1000).map(|i| Tenant::new(format!("tenant-{i}"))).collect();
//! let ten = Target::percentage(Percentage::new(10)?);
//! let fifty = Target::percentage(Percentage::new(50)?);
//! let small = cohort("multi_workspace_enabled", &ten, &tenants);
//! let large = cohort("multi_workspace_enabled", &fifty, &tenants);
//! // Cohorts are nested: everyone in the 10% cohort is in the 50% cohort.
//! assert!(small.is_subset(&large));
//! // Buckets are sticky and in 1..=100.
//! let b = bucket("multi_workspace_enabled", "tenant-1");
//! assert!((1..=100).contains(&b));
//! # Ok::<(), flags::Error>(())
//! ```

mod bucket;
pub mod change;
mod cohort;
pub mod compact;
pub mod delta;
mod error;
mod evaluate;
mod evaluator;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod guard;
mod model;
pub mod plan;
mod rollout;
mod snapshot;

pub use bucket::bucket;
pub use cohort::{cohort, diff, Diff};
pub use compact::{CompactSnapshot, COMPACT_FORMAT};
pub use error::Error;
pub use evaluate::{Decision, Reason};
pub use evaluator::Evaluator;
pub use model::{
    Attribute, Constraint, FlagState, IdSet, Operator, Percentage, Target, Tenant, PLANS, REGIONS,
};
pub use rollout::{Phase, Rollout, DEFAULT_LADDER};
pub use snapshot::{Snapshot, SNAPSHOT_FORMAT};
