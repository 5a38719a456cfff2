use serde::{Deserialize, Serialize};

use crate::{FlagState, Snapshot};

/// Why a flag is ON or OFF for a tenant. The serialised names (`kind`) are stable: the API, the UI
/// and audit entries show them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The global row is enabled.
    Global,
    /// The tenant's own row is enabled (set by hand, not by the current target).
    TenantEnabled,
    /// The tenant is a pilot of the current target.
    Pilot,
    /// The tenant is in the percentage cohort of the current target.
    Cohort {
        /// The tenant's bucket, `1..=100`.
        bucket: u32,
        /// The target's percentage.
        percentage: u32,
    },
    /// The tenant is excluded (quarantined): OFF whatever else holds.
    Excluded,
    /// No such flag: OFF (fail closed).
    UnknownFlag,
    /// No such tenant: OFF (fail closed).
    UnknownTenant,
    /// Nothing turns it on.
    Off,
}

impl Reason {
    /// The stable snake_case name of the reason.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Global => "global",
            Reason::TenantEnabled => "tenant_enabled",
            Reason::Pilot => "pilot",
            Reason::Cohort { .. } => "cohort",
            Reason::Excluded => "excluded",
            Reason::UnknownFlag => "unknown_flag",
            Reason::UnknownTenant => "unknown_tenant",
            Reason::Off => "off",
        }
    }

    /// Whether the reason is a failure to find the flag or the tenant.
    pub fn is_error(&self) -> bool {
        matches!(self, Reason::UnknownFlag | Reason::UnknownTenant)
    }
}

/// A sentence for people (the UI's "why").
///
/// ```
/// use flags::Reason;
/// let r = Reason::Cohort { bucket: 7, percentage: 10 };
/// assert_eq!(r.to_string(), "in the 10% cohort (bucket 7 ≤ 10)");
/// ```
impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Global => f.write_str("the global row is ON"),
            Reason::TenantEnabled => f.write_str("its own row is ON"),
            Reason::Pilot => f.write_str("a pilot tenant"),
            Reason::Cohort { bucket, percentage } => {
                write!(
                    f,
                    "in the {percentage}% cohort (bucket {bucket} ≤ {percentage})"
                )
            }
            Reason::Excluded => f.write_str("excluded (quarantined)"),
            Reason::UnknownFlag => f.write_str("no such flag"),
            Reason::UnknownTenant => f.write_str("not a live tenant"),
            Reason::Off => f.write_str("nothing turns it on"),
        }
    }
}

/// The answer to "is flag K on for tenant T?" with its reason.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decision {
    /// ON or OFF.
    pub on: bool,
    /// Why.
    pub reason: Reason,
}

impl Decision {
    pub(crate) fn off(reason: Reason) -> Self {
        Decision { on: false, reason }
    }
}

impl FlagState {
    /// The decision for a tenant already known to exist.
    ///
    /// ```
    /// use flags::{FlagState, Reason};
    /// let mut state = FlagState::default();
    /// state.on.insert("acme".to_string());
    /// let d = state.evaluate("multi_workspace_enabled", "acme");
    /// assert!(d.on);
    /// assert_eq!(d.reason, Reason::TenantEnabled);
    /// assert!(!state.evaluate("multi_workspace_enabled", "globex").on);
    /// ```
    pub fn evaluate(&self, flag_key: &str, tenant_id: &str) -> Decision {
        if self.excluded.contains(tenant_id) {
            return Decision::off(Reason::Excluded);
        }
        if self.enabled {
            return Decision {
                on: true,
                reason: Reason::Global,
            };
        }
        if !self.on.contains(tenant_id) {
            return Decision::off(Reason::Off);
        }
        Decision {
            on: true,
            reason: row_reason(self.target.as_ref(), tenant_id, &mut || {
                crate::bucket(flag_key, tenant_id)
            }),
        }
    }
}

/// Why a tenant whose row is enabled (and which is neither excluded nor under an enabled global
/// row) is ON: a pilot of the current target, in its percentage by bucket, or else by hand. The
/// bucket is asked for only when the target has a percentage. Shared by every evaluation path
/// that holds the target ([`FlagState::evaluate`], the compact snapshot).
pub(crate) fn row_reason(
    target: Option<&crate::Target>,
    tenant_id: &str,
    bucket: &mut impl FnMut() -> u32,
) -> Reason {
    match target {
        Some(t) if t.pilots.contains(tenant_id) => Reason::Pilot,
        Some(t) if t.percentage.get() > 0 => {
            let bucket = bucket();
            let percentage = t.percentage.get();
            if bucket <= percentage {
                Reason::Cohort { bucket, percentage }
            } else {
                Reason::TenantEnabled
            }
        }
        _ => Reason::TenantEnabled,
    }
}

impl Snapshot {
    /// Is `flag_key` ON for `tenant_id`, and why. Unknown flags and unknown tenants are OFF
    /// (fail closed) with [`Reason::UnknownFlag`] / [`Reason::UnknownTenant`].
    ///
    /// ```
    /// use flags::{Reason, Snapshot};
    /// let snap = Snapshot::from_json(br#"{
    ///   "format": "rollgate.snapshot/v1", "version": 3,
    ///   "tenants": ["acme", "globex"],
    ///   "flags": {"multi_workspace_enabled": {"enabled": false, "on": ["acme"]}}
    /// }"#)?;
    /// assert!(snap.evaluate("multi_workspace_enabled", "acme").on);
    /// assert_eq!(snap.evaluate("multi_workspace_enabled", "globex").reason, Reason::Off);
    /// assert_eq!(snap.evaluate("multi_workspace_enabled", "initech").reason, Reason::UnknownTenant);
    /// assert_eq!(snap.evaluate("nope", "acme").reason, Reason::UnknownFlag);
    /// # Ok::<(), flags::Error>(())
    /// ```
    pub fn evaluate(&self, flag_key: &str, tenant_id: &str) -> Decision {
        let Some(state) = self.flags.get(flag_key) else {
            return Decision::off(Reason::UnknownFlag);
        };
        if !self.tenants.contains(tenant_id) {
            return Decision::off(Reason::UnknownTenant);
        }
        state.evaluate(flag_key, tenant_id)
    }
}
