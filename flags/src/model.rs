use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::Error;

/// A tenant of the SaaS and the attributes rollout constraints can look at.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Stable identifier, the stickiness key of every bucket.
    pub id: String,
    /// Commercial plan, e.g. `free`, `starter`, `pro`, `enterprise`.
    #[serde(default)]
    pub plan: String,
    /// Hosting region, e.g. `eu-west`.
    #[serde(default)]
    pub region: String,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Tenant {
    /// A tenant with only an id (no plan, region or tags).
    pub fn new(id: impl Into<String>) -> Self {
        Tenant {
            id: id.into(),
            plan: String::new(),
            region: String::new(),
            tags: Vec::new(),
        }
    }
}

/// A tenant's attributes, borrowed: what [`Constraint`]s and [`Target`]s look at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TenantRef<'a> {
    pub(crate) id: &'a str,
    pub(crate) plan: &'a str,
    pub(crate) region: &'a str,
    pub(crate) tags: &'a [String],
}

impl Tenant {
    pub(crate) fn as_ref(&self) -> TenantRef<'_> {
        TenantRef {
            id: &self.id,
            plan: &self.plan,
            region: &self.region,
            tags: &self.tags,
        }
    }
}

/// The plans a tenant can have, cheapest first: the only list of them (the database's
/// `tenants_plan_known` check accepts exactly these; the tenant list's filter and the demo data
/// read them from here).
pub const PLANS: &[&str] = &["free", "starter", "pro", "enterprise"];

/// The hosting regions Tenantry knows: the only list of them (the tenant list's filter and the
/// demo data read them from here).
pub const REGIONS: &[&str] = &[
    "eu-west",
    "eu-central",
    "us-east",
    "us-west",
    "ap-southeast",
    "sa-east",
];

/// A whole percentage, `0..=100`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "u32", into = "u32")]
pub struct Percentage(u8);

impl Percentage {
    /// No tenant.
    pub const ZERO: Percentage = Percentage(0);
    /// Every tenant.
    pub const ALL: Percentage = Percentage(100);
    /// The seed's first percentage phase.
    pub const TEN: Percentage = Percentage(10);
    /// The seed's second percentage phase.
    pub const FIFTY: Percentage = Percentage(50);

    /// Checks the range.
    ///
    /// ```
    /// assert!(flags::Percentage::new(50).is_ok());
    /// assert!(flags::Percentage::new(101).is_err());
    /// ```
    pub fn new(value: u32) -> Result<Self, Error> {
        u8::try_from(value)
            .ok()
            .filter(|v| *v <= 100)
            .map(Percentage)
            .ok_or(Error::PercentageOutOfRange(value))
    }

    /// The value, `0..=100`.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

impl TryFrom<u32> for Percentage {
    type Error = Error;
    fn try_from(value: u32) -> Result<Self, Error> {
        Percentage::new(value)
    }
}

impl From<Percentage> for u32 {
    fn from(p: Percentage) -> u32 {
        p.get()
    }
}

/// A tenant attribute a constraint can test.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    /// [`Tenant::plan`].
    Plan,
    /// [`Tenant::region`].
    Region,
    /// Any of [`Tenant::tags`].
    Tag,
}

/// How a constraint compares the attribute with its values.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operator {
    /// The attribute is one of the values.
    In,
    /// The attribute is none of the values.
    NotIn,
}

/// `plan IN [pro, enterprise]`, `region NOT_IN [us-gov]`, `tag IN [beta]`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    /// What is tested.
    pub attribute: Attribute,
    /// How.
    pub operator: Operator,
    /// Against what.
    pub values: Vec<String>,
}

impl Constraint {
    /// Whether `tenant` satisfies the constraint.
    ///
    /// ```
    /// use flags::{Attribute, Constraint, Operator, Tenant};
    /// let c = Constraint { attribute: Attribute::Plan, operator: Operator::In, values: vec!["pro".into()] };
    /// let mut t = Tenant::new("acme");
    /// t.plan = "pro".into();
    /// assert!(c.matches(&t));
    /// ```
    pub fn matches(&self, tenant: &Tenant) -> bool {
        self.matches_ref(tenant.as_ref())
    }

    /// [`Constraint::matches`] on borrowed attributes (the compact snapshot interns them).
    pub(crate) fn matches_ref(&self, tenant: TenantRef<'_>) -> bool {
        let hit = match self.attribute {
            Attribute::Plan => self.values.iter().any(|v| v == tenant.plan),
            Attribute::Region => self.values.iter().any(|v| v == tenant.region),
            Attribute::Tag => tenant.tags.iter().any(|t| self.values.contains(t)),
        };
        match self.operator {
            Operator::In => hit,
            Operator::NotIn => !hit,
        }
    }
}

/// What a rollout phase aims at: named pilot tenants plus a sticky percentage of the tenants that
/// satisfy every constraint.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Tenants that are in whatever the percentage says (the pilot list).
    #[serde(default)]
    pub pilots: BTreeSet<String>,
    /// Share of eligible tenants, by bucket.
    #[serde(default)]
    pub percentage: Percentage,
    /// All must hold for a tenant to be in the percentage part (pilots bypass them).
    #[serde(default)]
    pub constraints: Vec<Constraint>,
}

impl Target {
    /// A plain percentage rollout with no pilots and no constraints.
    pub fn percentage(percentage: Percentage) -> Self {
        Target {
            percentage,
            ..Target::default()
        }
    }

    /// Whether `tenant` is in this target for `flag_key` (pilot, or in the percentage and every
    /// constraint).
    pub fn includes(&self, flag_key: &str, tenant: &Tenant) -> bool {
        self.includes_with(tenant, &mut || crate::bucket(flag_key, &tenant.id))
    }

    /// [`Target::includes`] with the tenant's bucket supplied by the caller (computed only when
    /// needed, and only once when several targets are checked).
    pub(crate) fn includes_with(&self, tenant: &Tenant, bucket: &mut impl FnMut() -> u32) -> bool {
        self.includes_ref(tenant.as_ref(), bucket)
    }

    /// [`Target::includes_with`] on borrowed attributes: the one rule of "the target implies this
    /// tenant", shared by materialised rows and the compact snapshot.
    pub(crate) fn includes_ref(
        &self,
        tenant: TenantRef<'_>,
        bucket: &mut impl FnMut() -> u32,
    ) -> bool {
        if self.pilots.contains(tenant.id) {
            return true;
        }
        let pct = self.percentage.get();
        pct > 0
            && self.constraints.iter().all(|c| c.matches_ref(tenant))
            && (pct >= 100 || bucket() <= pct)
    }
}

/// A set of tenant ids with a fast hasher (FxHash). The ids come from Tenantry's own database,
/// not from request input, and the browser preview hashes every tenant on each keystroke.
pub type IdSet = HashSet<String, rustc_hash::FxBuildHasher>;

/// The effective state of one flag, exactly as the `feature_flags` table holds it: a global row,
/// the tenants whose own row is enabled, and the excluded (quarantined) tenants. The rollout
/// target that produced the tenant rows is kept to explain decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagState {
    /// The global row (`tenant_id IS NULL`): ON for everyone not excluded.
    #[serde(default)]
    pub enabled: bool,
    /// Tenants whose own row is enabled.
    #[serde(default)]
    pub on: IdSet,
    /// Tenants that are OFF whatever the other rows say.
    #[serde(default)]
    pub excluded: IdSet,
    /// The current rollout target, if the flag is being rolled out by phases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

impl FlagState {
    /// Whether the flag is ON for a tenant known to exist.
    pub fn is_on(&self, tenant_id: &str) -> bool {
        (self.excluded.is_empty() || !self.excluded.contains(tenant_id))
            && (self.enabled || self.on.contains(tenant_id))
    }

    /// Folds one `feature_flags` row into the state: the global row when `tenant_id` is `None`.
    ///
    /// ```
    /// let mut s = flags::FlagState::default();
    /// s.add_row(None, true, false);
    /// s.add_row(Some("acme".into()), false, true);
    /// assert!(s.enabled && s.excluded.contains("acme") && !s.is_on("acme"));
    /// ```
    pub fn add_row(&mut self, tenant_id: Option<String>, enabled: bool, excluded: bool) {
        match tenant_id {
            None => self.enabled = enabled,
            Some(t) => {
                if excluded {
                    self.excluded.insert(t.clone());
                }
                if enabled {
                    self.on.insert(t);
                }
            }
        }
    }
}
