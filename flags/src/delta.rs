//! Changes between two versions of a [`CompactSnapshot`]: what a server applies when it catches up
//! with the database, and what an SDK applies from the change stream, so both stay equal to the
//! server's `tenantry.snapshot/v2` without fetching it again.
//!
//! A [`Changes`] leads to `version` and lists, for every key touched after `from`, its state at
//! `version`:
//!
//! * `tenants`: each touched tenant's record (plan, region, tags), or `"removed": true` when it is
//!   archived or deleted;
//! * `rows`: each touched `feature_flags` row as it now stands (`tenant` left out for the global
//!   row; a deleted row is `enabled: false, excluded: false`), and every enabled or excluded row of
//!   each listed tenant (a tenant that comes back from the archive comes back with its rows);
//! * `flags`: each touched flag's rollout target (left out when it has none), or
//!   `"removed": true`.
//!
//! ```json
//! {"version": 43, "from": 42,
//!  "rows": [{"flag": "multi_workspace_enabled", "tenant": "acme", "enabled": true, "excluded": false}]}
//! ```
//!
//! Because each key carries its state at `version` (not a difference), the same changes apply to
//! a snapshot at any version from `from` to `version`, and consecutive changes merge into one
//! ([`Changes::merge`]) by keeping the later state of each key. [`CompactSnapshot::apply`] applies
//! tenants first, then rows, then targets; the property tests in `flags/tests/delta.rs` check that
//! applying the changes of every step to an old snapshot gives exactly the current one.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{compact::CompactSnapshot, Error, Target, Tenant};

/// The changes that lead a [`CompactSnapshot`] from any version in `from..=version` to
/// `version` (see the [module documentation](self)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// The version these changes lead to.
    pub version: u64,
    /// The oldest version they apply to.
    pub from: u64,
    /// Tenants created, changed, archived or deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<TenantChange>,
    /// `feature_flags` rows as they now stand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<RowChange>,
    /// Flags created, retargeted or deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<FlagChange>,
}

/// One `feature_flags` row as it now stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowChange {
    /// The flag.
    pub flag: String,
    /// The tenant; `None` for the global row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The row is enabled.
    #[serde(default)]
    pub enabled: bool,
    /// The tenant is excluded.
    #[serde(default)]
    pub excluded: bool,
}

/// A flag's rollout target as it now stands, or its removal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagChange {
    /// The flag.
    pub key: String,
    /// The flag no longer exists.
    #[serde(default, skip_serializing_if = "is_false")]
    pub removed: bool,
    /// Its rollout target (none: left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// A tenant's record as it now stands, or its removal (archived or deleted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantChange {
    /// The tenant.
    pub id: String,
    /// The tenant is archived or deleted: unknown to evaluation.
    #[serde(default, skip_serializing_if = "is_false")]
    pub removed: bool,
    /// Plan.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub plan: String,
    /// Region.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl TenantChange {
    /// The tenant's record.
    pub fn present(t: Tenant) -> Self {
        TenantChange {
            id: t.id,
            removed: false,
            plan: t.plan,
            region: t.region,
            tags: t.tags,
        }
    }

    /// The tenant is gone.
    pub fn removed(id: impl Into<String>) -> Self {
        TenantChange {
            id: id.into(),
            removed: true,
            ..TenantChange::default()
        }
    }

    fn record(&self) -> Tenant {
        Tenant {
            id: self.id.clone(),
            plan: self.plan.clone(),
            region: self.region.clone(),
            tags: self.tags.clone(),
        }
    }
}

impl Changes {
    /// No changes, from `from` to `version`.
    pub fn new(from: u64, version: u64) -> Self {
        Changes {
            version,
            from,
            ..Changes::default()
        }
    }

    /// Whether nothing but the version moves.
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty() && self.rows.is_empty() && self.flags.is_empty()
    }

    /// How many keys the changes list.
    pub fn len(&self) -> usize {
        self.tenants.len() + self.rows.len() + self.flags.len()
    }

    /// Parses changes (the `data` of a stream's `changes` event). Any input gives a typed
    /// [`Error`], never a panic.
    ///
    /// ```
    /// let c = flags::delta::Changes::from_json(br#"{"version":3,"from":2,
    ///   "rows":[{"flag":"f","tenant":"acme","enabled":true,"excluded":false}]}"#)?;
    /// assert_eq!((c.from, c.version, c.rows.len()), (2, 3, 1));
    /// assert!(flags::delta::Changes::from_json(b"{").is_err());
    /// # Ok::<(), flags::Error>(())
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let c: Changes =
            serde_json::from_slice(bytes).map_err(|e| Error::SnapshotJson(e.to_string()))?;
        if c.from > c.version {
            return Err(Error::Inconsistent(format!(
                "changes from version {} to the older version {}",
                c.from, c.version
            )));
        }
        Ok(c)
    }

    /// Serialises the changes.
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string(self).map_err(|e| Error::SnapshotJson(e.to_string()))
    }

    /// Folds the changes that follow these into them: `later` must apply to this `version`
    /// (`later.from <= self.version`). Each key keeps its later state; the result leads from
    /// `self.from` to `later.version`. Keys come out sorted.
    pub fn merge(&mut self, later: &Changes) -> Result<(), Error> {
        if later.from > self.version {
            return Err(Error::Inconsistent(format!(
                "changes from version {} do not follow changes up to {}",
                later.from, self.version
            )));
        }
        let mut tenants: BTreeMap<String, TenantChange> = BTreeMap::new();
        let mut rows: BTreeMap<(String, Option<String>), RowChange> = BTreeMap::new();
        let mut flags: BTreeMap<String, FlagChange> = BTreeMap::new();
        for c in [&*self, later] {
            for t in &c.tenants {
                tenants.insert(t.id.clone(), t.clone());
            }
            for r in &c.rows {
                rows.insert((r.flag.clone(), r.tenant.clone()), r.clone());
            }
            for f in &c.flags {
                flags.insert(f.key.clone(), f.clone());
            }
        }
        self.tenants = tenants.into_values().collect();
        self.rows = rows.into_values().collect();
        self.flags = flags.into_values().collect();
        self.version = self.version.max(later.version);
        Ok(())
    }

    /// The changes that lead to `snapshot` from any version from `from` on, given the keys that
    /// changed since `from`: each key's state in `snapshot`. A row of a flag or tenant
    /// `snapshot` does not know is listed as no row (`enabled: false, excluded: false`), and
    /// that flag or tenant as removed.
    pub fn resolve<'a>(
        snapshot: &CompactSnapshot,
        from: u64,
        rows: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
        flags: impl IntoIterator<Item = &'a str>,
        tenants: impl IntoIterator<Item = &'a str>,
    ) -> Changes {
        let mut out = Changes::new(from, snapshot.version());
        let mut tenant_set: BTreeMap<&str, TenantChange> = BTreeMap::new();
        let mut row_set: BTreeMap<(&str, Option<&str>), RowChange> = BTreeMap::new();
        let mut flag_set: BTreeMap<&str, FlagChange> = BTreeMap::new();
        let flag_change = |key: &'a str, flag_set: &mut BTreeMap<&'a str, FlagChange>| {
            let change = match snapshot.flag(key) {
                Some(f) => FlagChange {
                    key: key.to_string(),
                    removed: false,
                    target: f.target().cloned(),
                },
                None => FlagChange {
                    key: key.to_string(),
                    removed: true,
                    target: None,
                },
            };
            flag_set.insert(key, change);
        };
        for key in flags {
            flag_change(key, &mut flag_set);
        }
        let keys: Vec<&str> = snapshot.flag_keys().collect();
        for id in tenants {
            match snapshot.tenant(id) {
                Some(t) => {
                    for &key in &keys {
                        if let Some((enabled, excluded)) = snapshot.row_state(key, Some(id)) {
                            if enabled || excluded {
                                row_set.insert(
                                    (key, Some(id)),
                                    RowChange {
                                        flag: key.to_string(),
                                        tenant: Some(id.to_string()),
                                        enabled,
                                        excluded,
                                    },
                                );
                            }
                        }
                    }
                    tenant_set.insert(id, TenantChange::present(t));
                }
                None => {
                    tenant_set.insert(id, TenantChange::removed(id));
                }
            }
        }
        for (key, tenant) in rows {
            // A row of a flag or tenant that is gone reads as no row (so that, merged with later
            // changes that bring the flag or tenant back, it does not come back with it).
            if snapshot.flag(key).is_none() {
                flag_change(key, &mut flag_set);
            }
            if let Some(id) = tenant {
                if snapshot.tenant(id).is_none() && !tenant_set.contains_key(id) {
                    tenant_set.insert(id, TenantChange::removed(id));
                }
            }
            let (enabled, excluded) = snapshot.row_state(key, tenant).unwrap_or_default();
            row_set.insert(
                (key, tenant),
                RowChange {
                    flag: key.to_string(),
                    tenant: tenant.map(str::to_string),
                    enabled,
                    excluded,
                },
            );
        }
        out.tenants = tenant_set.into_values().collect();
        out.rows = row_set.into_values().collect();
        out.flags = flag_set.into_values().collect();
        out
    }
}

impl CompactSnapshot {
    /// Applies `changes` (tenants, then rows, then targets) and moves to their version. Returns
    /// `Ok(false)` and changes nothing when the snapshot is already at their version or past it;
    /// an error when it is older than `changes.from` (changes in between are missing: fetch the
    /// snapshot again). On any other error the snapshot may be partly changed: apply to a copy,
    /// or fetch the snapshot again.
    ///
    /// Costs O(listed rows + listed tenants × flags), plus O(tenants) per listed target that
    /// differs from the current one.
    ///
    /// ```
    /// use flags::compact::CompactSnapshot;
    /// use flags::delta::Changes;
    /// let mut snap = CompactSnapshot::from_json(br#"{"format":"tenantry.snapshot/v2","version":7,
    ///   "tenants":{"ids":["acme","globex"]},"flags":{"f":{}}}"#)?;
    /// let changes = Changes::from_json(br#"{"version":8,"from":7,
    ///   "rows":[{"flag":"f","tenant":"globex","enabled":true}]}"#)?;
    /// assert!(snap.apply(&changes)?);
    /// assert!(snap.evaluate("f", "globex").on);
    /// assert_eq!(snap.version(), 8);
    /// # Ok::<(), flags::Error>(())
    /// ```
    pub fn apply(&mut self, changes: &Changes) -> Result<bool, Error> {
        if changes.version <= self.version() {
            return Ok(false);
        }
        if self.version() < changes.from {
            return Err(Error::Inconsistent(format!(
                "changes from version {} cannot apply to version {}: reload the snapshot",
                changes.from,
                self.version()
            )));
        }
        for t in &changes.tenants {
            if t.removed {
                self.remove_tenant(&t.id);
            } else {
                self.upsert_tenant(t.record())?;
            }
        }
        for r in &changes.rows {
            self.set_row(&r.flag, r.tenant.as_deref(), r.enabled, r.excluded)?;
        }
        for f in &changes.flags {
            if f.removed {
                self.remove_flag(&f.key);
            } else {
                self.set_target(&f.key, f.target.clone())?;
            }
        }
        self.set_version(changes.version);
        Ok(true)
    }
}
