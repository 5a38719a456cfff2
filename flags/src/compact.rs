//! The compact snapshot (`tenantry.snapshot/v2`): what a flag's rollout target implies is not
//! listed tenant by tenant; only the `feature_flags` rows that differ from it are.
//!
//! A version-1 [`Snapshot`] lists, for every flag, every tenant whose row is enabled, so a
//! materialised 50% rollout over 100,000 tenants lists 50,000 ids. The compact form carries the
//! tenants once, with the attributes constraints read (plan, region, tags), and for each flag its
//! global row, its target, and three short lists of tenants:
//!
//! * `on`: the row is enabled but the target does not imply the tenant (set by hand);
//! * `off`: the target implies the tenant but its row is not enabled;
//! * `excluded`: the tenant is excluded (quarantined).
//!
//! A tenant `t` has an enabled row iff `t ∈ on ∨ (implied(t) ∧ t ∉ off)`, where `implied(t)` is
//! [`Target::includes`] (a pilot, or every constraint holds and the sticky bucket is within the
//! percentage). The flag is ON for `t` iff `t ∉ excluded ∧ (enabled ∨ t has an enabled row)`, and
//! the [`Reason`] is chosen exactly as [`Snapshot::evaluate`] chooses it, so both forms give the
//! same [`Decision`] for every flag and tenant (`flags/tests/compact.rs` and the equivalence
//! vectors, natively and in wasm, check it).
//!
//! JSON shape (version 2):
//!
//! ```json
//! {
//!   "format": "tenantry.snapshot/v2",
//!   "version": 42,
//!   "tenants": {
//!     "ids":      ["acme", "globex", "initech"],
//!     "plans":    ["enterprise", "pro"],  "plan":   [1, 0, 1],
//!     "regions":  ["eu-west"],            "region": [0, 0, 0],
//!     "tag_sets": [[], ["beta"]],         "tags":   [1, 0, 0]
//!   },
//!   "flags": {
//!     "multi_workspace_enabled": {
//!       "enabled": false,
//!       "target": {"pilots": ["acme"], "percentage": 50, "constraints": []},
//!       "on": [2],
//!       "excluded": [1]
//!     }
//!   }
//! }
//! ```
//!
//! * `tenants.ids`: every known (not archived) tenant, sorted; a tenant is named everywhere else by
//!   its position in this list.
//! * Each attribute is a dictionary and one index into it per tenant (`plans` + `plan`, `regions` +
//!   `region`, `tag_sets` + `tags`, where a tag set is a tenant's whole tag list). A dictionary
//!   and its column are left out together when every tenant has the empty value (`""`, no tags).
//! * `flags.*.on`, `off`, `excluded`: sorted tenant positions, left out when empty. `target` is
//!   the v1 [`Target`] (pilots by id) and is left out when the flag has none.
//!
//! The writer is canonical (ids, dictionaries, keys and lists sorted), so equal snapshots write
//! equal bytes. A reader checks that every position is in range, ids are non-empty and distinct,
//! and keys non-empty: any input gives a typed [`Error`], never a panic.
//!
//! Held in memory, the snapshot takes incremental updates (one `feature_flags` row, a target, a
//! tenant) at the cost of what they change, so a server can keep it current from a change stream.
//!
//! ```
//! use flags::compact::CompactSnapshot;
//! use flags::{FlagState, Percentage, Snapshot, Target, Tenant};
//!
//! let tenants: Vec<Tenant> = (0..1000).map(|i| Tenant::new(format!("tenant-{i}"))).collect();
//! let mut v1 = Snapshot::new(7);
//! v1.tenants = tenants.iter().map(|t| t.id.clone()).collect();
//! let fifty = Target::percentage(Percentage::FIFTY);
//! v1.flags.insert("f".into(), FlagState::default().materialise("f", fifty, &tenants));
//!
//! let v2 = CompactSnapshot::compact(&v1, &tenants)?;
//! // The materialised rows are exactly what the target implies: nothing is listed.
//! assert_eq!(v2.flag("f").map(|f| f.on_len() + f.off_len()), Some(0));
//! assert_eq!(v2.evaluate("f", "tenant-1"), v1.evaluate("f", "tenant-1"));
//! assert_eq!(v2.expand(), v1);
//! assert_eq!(CompactSnapshot::from_json(v2.to_json()?.as_bytes())?, v2);
//! # Ok::<(), flags::Error>(())
//! ```
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::evaluate::row_reason;
use crate::model::TenantRef;
use crate::{Decision, Error, FlagState, IdSet, Reason, Snapshot, Target, Tenant};

/// The format tag of the compact snapshot. [`CompactSnapshot::from_json`] refuses any other
/// (a version-1 document is read by [`Snapshot::from_json`]).
pub const COMPACT_FORMAT: &str = "tenantry.snapshot/v2";

/// Distinct values, each numbered once. Values are never removed: a writer emits only the ones
/// still in use.
#[derive(Debug, Clone)]
struct Dictionary<T> {
    values: Vec<T>,
    index: FxHashMap<T, u32>,
}

impl<T> Default for Dictionary<T> {
    fn default() -> Self {
        Dictionary {
            values: Vec::new(),
            index: FxHashMap::default(),
        }
    }
}

impl<T: Clone + Eq + Hash> Dictionary<T> {
    fn intern<Q>(&mut self, value: &Q) -> Result<u32, Error>
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = T> + ?Sized,
    {
        if let Some(&i) = self.index.get(value) {
            return Ok(i);
        }
        let i = u32::try_from(self.values.len())
            .map_err(|_| Error::Inconsistent("too many distinct attribute values".into()))?;
        let owned = value.to_owned();
        self.values.push(owned.clone());
        self.index.insert(owned, i);
        Ok(i)
    }

    fn get(&self, i: u32) -> Option<&T> {
        self.values.get(i as usize)
    }
}

/// The tenants, one slot each. Slots are dense (`0..len`); removing a tenant moves the last one
/// into its slot. The order of slots is not the order of the JSON, which is sorted by id.
///
/// Ids are shared (`Arc<str>`) between the list and the index, so copying the table (a snapshot
/// shared with readers is copied before a tenant changes) allocates no string.
#[derive(Debug, Clone, Default)]
struct TenantTable {
    ids: Vec<Arc<str>>,
    slots: FxHashMap<Arc<str>, u32>,
    plan: Vec<u32>,
    region: Vec<u32>,
    tags: Vec<u32>,
    plans: Dictionary<String>,
    regions: Dictionary<String>,
    tag_sets: Dictionary<Vec<String>>,
}

impl TenantTable {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn slot(&self, id: &str) -> Option<u32> {
        self.slots.get(id).copied()
    }

    fn get(&self, slot: u32) -> Option<TenantRef<'_>> {
        let i = slot as usize;
        Some(TenantRef {
            id: self.ids.get(i)?.as_ref(),
            plan: self.plans.get(*self.plan.get(i)?)?,
            region: self.regions.get(*self.region.get(i)?)?,
            tags: self.tag_sets.get(*self.tags.get(i)?)?,
        })
    }

    fn iter(&self) -> impl Iterator<Item = (u32, TenantRef<'_>)> + '_ {
        (0..self.ids.len()).filter_map(|i| {
            let slot = u32::try_from(i).ok()?;
            Some((slot, self.get(slot)?))
        })
    }

    /// Adds a tenant whose id is not in the table yet.
    fn push(&mut self, tenant: TenantRef<'_>) -> Result<u32, Error> {
        let slot = u32::try_from(self.ids.len())
            .map_err(|_| Error::Inconsistent("too many tenants".into()))?;
        let (plan, region, tags) = self.intern(tenant)?;
        let id: Arc<str> = Arc::from(tenant.id);
        self.ids.push(id.clone());
        self.slots.insert(id, slot);
        self.plan.push(plan);
        self.region.push(region);
        self.tags.push(tags);
        Ok(slot)
    }

    fn intern(&mut self, tenant: TenantRef<'_>) -> Result<(u32, u32, u32), Error> {
        Ok((
            self.plans.intern(tenant.plan)?,
            self.regions.intern(tenant.region)?,
            self.tag_sets.intern(tenant.tags)?,
        ))
    }

    fn set_attributes(&mut self, slot: u32, tenant: TenantRef<'_>) -> Result<(), Error> {
        let (plan, region, tags) = self.intern(tenant)?;
        let i = slot as usize;
        for (column, value) in [
            (&mut self.plan, plan),
            (&mut self.region, region),
            (&mut self.tags, tags),
        ] {
            if let Some(v) = column.get_mut(i) {
                *v = value;
            }
        }
        Ok(())
    }

    /// Removes the tenant in `slot`; the last tenant takes its slot.
    fn swap_remove(&mut self, slot: u32) {
        let i = slot as usize;
        if i >= self.ids.len() {
            return;
        }
        let removed = self.ids.swap_remove(i);
        self.slots.remove(&*removed);
        self.plan.swap_remove(i);
        self.region.swap_remove(i);
        self.tags.swap_remove(i);
        if let Some(moved) = self.ids.get(i) {
            if let Some(s) = self.slots.get_mut(&**moved) {
                *s = slot;
            }
        }
    }

    fn record(&self, slot: u32) -> Option<Tenant> {
        let t = self.get(slot)?;
        Some(Tenant {
            id: t.id.to_string(),
            plan: t.plan.to_string(),
            region: t.region.to_string(),
            tags: t.tags.to_vec(),
        })
    }
}

/// One flag of a [`CompactSnapshot`]: the global row, the target, and the tenants whose rows
/// differ from what the target implies. Tenants are held by slot; read them by id through
/// [`CompactSnapshot::exceptions`].
#[derive(Debug, Clone, Default)]
pub struct CompactFlag {
    pub(crate) enabled: bool,
    pub(crate) target: Option<Target>,
    pub(crate) on: FxHashSet<u32>,
    pub(crate) off: FxHashSet<u32>,
    pub(crate) excluded: FxHashSet<u32>,
}

impl CompactFlag {
    /// The global row (`tenant_id IS NULL`): ON for everyone not excluded.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The current rollout target, if any.
    pub fn target(&self) -> Option<&Target> {
        self.target.as_ref()
    }

    /// How many tenants have an enabled row the target does not imply.
    pub fn on_len(&self) -> usize {
        self.on.len()
    }

    /// How many tenants the target implies have no enabled row.
    pub fn off_len(&self) -> usize {
        self.off.len()
    }

    /// How many tenants are excluded.
    pub fn excluded_len(&self) -> usize {
        self.excluded.len()
    }

    /// Whether the tenant in `slot` has an enabled row, given whether the target implies it.
    fn row(&self, slot: u32, implied: impl FnOnce() -> bool) -> bool {
        self.on.contains(&slot) || (!self.off.contains(&slot) && implied())
    }

    /// Records the tenant in `slot`'s row as `enabled`, the target implying it or not.
    fn set_row(&mut self, slot: u32, implied: bool, enabled: bool) {
        if implied {
            self.on.remove(&slot);
            if enabled {
                self.off.remove(&slot);
            } else {
                self.off.insert(slot);
            }
        } else {
            self.off.remove(&slot);
            if enabled {
                self.on.insert(slot);
            } else {
                self.on.remove(&slot);
            }
        }
    }
}

/// Whether `target` implies `tenant` for `flag_key` ([`Target::includes`]).
fn implies(
    target: Option<&Target>,
    tenant: TenantRef<'_>,
    bucket: &mut impl FnMut() -> u32,
) -> bool {
    target.is_some_and(|t| t.includes_ref(tenant, bucket))
}

/// The tenant ids of some slots, sorted.
fn ids_of<'a>(table: &'a TenantTable, slots: &FxHashSet<u32>) -> Vec<&'a str> {
    let mut ids: Vec<&str> = slots
        .iter()
        .filter_map(|s| table.ids.get(*s as usize).map(|id| &**id))
        .collect();
    ids.sort_unstable();
    ids
}

/// The tenants of one flag whose rows differ from its target, and its exclusions, by id (sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exceptions<'a> {
    /// Enabled rows the target does not imply.
    pub on: Vec<&'a str>,
    /// Tenants the target implies whose row is not enabled.
    pub off: Vec<&'a str>,
    /// Excluded tenants.
    pub excluded: Vec<&'a str>,
}

/// One flag's tenants counted ([`CompactSnapshot::counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagCounts {
    /// Tenants the flag is ON for (the global row or their own row, and not excluded).
    pub on: usize,
    /// Tenants with an enabled row of their own (what the rollout turned on, exclusions aside).
    pub rows_on: usize,
    /// Excluded tenants.
    pub excluded: usize,
}

/// Every flag's [`FlagCounts`] at one version ([`CompactSnapshot::count_all`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// The snapshot's version.
    pub version: u64,
    /// Known (live) tenants.
    pub tenants: usize,
    /// Per flag key.
    pub flags: BTreeMap<String, FlagCounts>,
}

/// Everything needed to evaluate every flag for every tenant, with rollouts kept as rules: the
/// `tenantry.snapshot/v2` document of the [module documentation](self).
///
/// Equality is semantic: two snapshots are equal when they hold the same version, tenants (with
/// their attributes) and flags, whatever the order their tenants were added in (it compares the
/// canonical JSON forms).
#[derive(Debug, Clone, Default)]
pub struct CompactSnapshot {
    version: u64,
    // Shared with the copies a server publishes: a change copies the tenant table only when a
    // tenant changes, and only the flags it touches.
    tenants: Arc<TenantTable>,
    flags: FxHashMap<String, Arc<CompactFlag>>,
}

impl PartialEq for CompactSnapshot {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
            && self.tenants.len() == other.tenants.len()
            && self.flags.len() == other.flags.len()
            && self.to_wire() == other.to_wire()
    }
}

impl Eq for CompactSnapshot {}

impl CompactSnapshot {
    /// An empty snapshot at `version`.
    pub fn new(version: u64) -> Self {
        CompactSnapshot {
            version,
            ..CompactSnapshot::default()
        }
    }

    /// The compact form of a version-1 snapshot. A v1 snapshot knows its tenants by id only, so
    /// the records with the attributes constraints read come beside it: `records` must hold
    /// exactly one record for each of `snapshot.tenants`; records of other tenants (archived
    /// ones) are ignored. Rows and exclusions of tenants the snapshot does not know are dropped:
    /// such tenants evaluate as [`Reason::UnknownTenant`] either way.
    ///
    /// Costs one pass over the tenants per flag (one bucket hash per tenant that a percentage
    /// target's constraints admit).
    pub fn compact(snapshot: &Snapshot, records: &[Tenant]) -> Result<Self, Error> {
        snapshot.check()?;
        let mut out = CompactSnapshot::new(snapshot.version);
        let mut table = TenantTable::default();
        for record in records {
            if !snapshot.tenants.contains(&record.id) {
                continue;
            }
            if table.slot(&record.id).is_some() {
                return Err(Error::Inconsistent(format!(
                    "two records for tenant {:?}",
                    record.id
                )));
            }
            table.push(record.as_ref())?;
        }
        out.tenants = Arc::new(table);
        if out.tenants.len() != snapshot.tenants.len() {
            let missing = snapshot
                .tenants
                .iter()
                .find(|id| out.tenants.slot(id).is_none());
            return Err(Error::Inconsistent(format!(
                "tenant {:?} has no record",
                missing.map(String::as_str).unwrap_or_default()
            )));
        }
        for (key, state) in &snapshot.flags {
            let mut flag = CompactFlag {
                enabled: state.enabled,
                target: state.target.clone(),
                ..CompactFlag::default()
            };
            let target = state.target.as_ref();
            for (slot, t) in out.tenants.iter() {
                let has_row = state.on.contains(t.id);
                let implied = implies(target, t, &mut || crate::bucket(key, t.id));
                match (has_row, implied) {
                    (true, false) => {
                        flag.on.insert(slot);
                    }
                    (false, true) => {
                        flag.off.insert(slot);
                    }
                    _ => {}
                }
            }
            flag.excluded = state
                .excluded
                .iter()
                .filter_map(|id| out.tenants.slot(id))
                .collect();
            out.flags.insert(key.clone(), Arc::new(flag));
        }
        Ok(out)
    }

    /// The version-1 snapshot this one stands for (every enabled row listed), for SDKs that still
    /// ask for `rollgate.snapshot/v1`. `expand(compact(s, records))` is `s` without the rows and
    /// exclusions of tenants `s` does not know.
    pub fn expand(&self) -> Snapshot {
        let mut out = Snapshot::new(self.version);
        out.tenants = self.tenants.ids.iter().map(|id| id.to_string()).collect();
        out.flags = self
            .flags
            .iter()
            .map(|(key, flag)| {
                let mut on = IdSet::default();
                self.for_each_row(key, flag, |_, id| {
                    on.insert(id.to_string());
                });
                let excluded: IdSet = ids_of(&self.tenants, &flag.excluded)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                let state = FlagState {
                    enabled: flag.enabled,
                    on,
                    excluded,
                    target: flag.target.clone(),
                };
                (key.clone(), state)
            })
            .collect();
        out
    }

    /// The version-1 JSON of [`CompactSnapshot::expand`], written straight from this snapshot
    /// without building the version-1 sets: `Snapshot::from_json(to_v1_json())` is `expand()`.
    /// Ids are written sorted. Costs one pass over the tenants per flag with a target.
    pub fn to_v1_json(&self) -> Result<String, Error> {
        serde_json::to_string(&V1 { snapshot: self })
            .map_err(|e| Error::SnapshotJson(e.to_string()))
    }

    /// Calls `f(slot, id)` for every tenant whose row of `flag` is enabled.
    pub(crate) fn for_each_row(
        &self,
        flag_key: &str,
        flag: &CompactFlag,
        mut f: impl FnMut(u32, &str),
    ) {
        let Some(target) = flag.target.as_ref() else {
            for &slot in &flag.on {
                if let Some(id) = self.tenants.ids.get(slot as usize) {
                    f(slot, id);
                }
            }
            return;
        };
        for (slot, t) in self.tenants.iter() {
            if flag.row(slot, || {
                target.includes_ref(t, &mut || crate::bucket(flag_key, t.id))
            }) {
                f(slot, t.id);
            }
        }
    }

    /// The tenant slots by id (the evaluator interns with them).
    pub(crate) fn slots(&self) -> &FxHashMap<Arc<str>, u32> {
        &self.tenants.slots
    }

    /// The flags by key.
    pub(crate) fn flags(&self) -> &FxHashMap<String, Arc<CompactFlag>> {
        &self.flags
    }

    /// Monotonic version of the data (the ETag).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Sets the version (after applying the changes of a new one).
    pub fn set_version(&mut self, version: u64) {
        self.version = version;
    }

    /// How many tenants the snapshot knows.
    pub fn tenant_count(&self) -> usize {
        self.tenants.len()
    }

    /// The record of a tenant, if known.
    pub fn tenant(&self, tenant_id: &str) -> Option<Tenant> {
        self.tenants.record(self.tenants.slot(tenant_id)?)
    }

    /// Every tenant's record, sorted by id.
    pub fn tenants(&self) -> Vec<Tenant> {
        let mut all: Vec<Tenant> = (0..self.tenants.len())
            .filter_map(|i| self.tenants.record(u32::try_from(i).ok()?))
            .collect();
        all.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// A flag, if it exists.
    pub fn flag(&self, flag_key: &str) -> Option<&CompactFlag> {
        self.flags.get(flag_key).map(|f| &**f)
    }

    /// Flag keys, in no particular order.
    pub fn flag_keys(&self) -> impl Iterator<Item = &str> {
        self.flags.keys().map(String::as_str)
    }

    /// A flag's `on`, `off` and `excluded` lists, by tenant id.
    pub fn exceptions(&self, flag_key: &str) -> Option<Exceptions<'_>> {
        let flag = self.flags.get(flag_key)?;
        Some(Exceptions {
            on: ids_of(&self.tenants, &flag.on),
            off: ids_of(&self.tenants, &flag.off),
            excluded: ids_of(&self.tenants, &flag.excluded),
        })
    }

    /// Is `flag_key` ON for `tenant_id`, and why: the same [`Decision`] as
    /// [`Snapshot::evaluate`] on the expanded snapshot, computed from the rule (one bucket hash at
    /// most). Unknown flags and tenants are OFF (fail closed).
    ///
    /// ```
    /// use flags::compact::CompactSnapshot;
    /// use flags::Reason;
    /// let snap = CompactSnapshot::from_json(br#"{
    ///   "format": "tenantry.snapshot/v2", "version": 3,
    ///   "tenants": {"ids": ["acme", "globex"], "plans": ["free", "pro"], "plan": [1, 0]},
    ///   "flags": {"f": {"target": {"percentage": 100,
    ///     "constraints": [{"attribute": "plan", "operator": "IN", "values": ["pro"]}]}}}
    /// }"#)?;
    /// assert!(matches!(snap.evaluate("f", "acme").reason, Reason::Cohort { .. }));
    /// assert_eq!(snap.evaluate("f", "globex").reason, Reason::Off);
    /// assert_eq!(snap.evaluate("f", "initech").reason, Reason::UnknownTenant);
    /// assert_eq!(snap.evaluate("g", "acme").reason, Reason::UnknownFlag);
    /// # Ok::<(), flags::Error>(())
    /// ```
    pub fn evaluate(&self, flag_key: &str, tenant_id: &str) -> Decision {
        let Some(flag) = self.flags.get(flag_key) else {
            return Decision::off(Reason::UnknownFlag);
        };
        let Some(slot) = self.tenants.slot(tenant_id) else {
            return Decision::off(Reason::UnknownTenant);
        };
        if flag.excluded.contains(&slot) {
            return Decision::off(Reason::Excluded);
        }
        if flag.enabled {
            return Decision {
                on: true,
                reason: Reason::Global,
            };
        }
        let Some(tenant) = self.tenants.get(slot) else {
            return Decision::off(Reason::UnknownTenant);
        };
        let target = flag.target.as_ref();
        let mut cached = None;
        let mut bucket = || *cached.get_or_insert_with(|| crate::bucket(flag_key, tenant_id));
        if !flag.row(slot, || implies(target, tenant, &mut bucket)) {
            return Decision::off(Reason::Off);
        }
        Decision {
            on: true,
            reason: row_reason(target, tenant_id, &mut bucket),
        }
    }

    /// Applies one `feature_flags` row as it now stands: the global row when `tenant_id` is
    /// `None` (then `excluded` is ignored, as [`FlagState::add_row`] does), else the tenant's row
    /// (a deleted row is `enabled = false, excluded = false`). A flag not in the snapshot is
    /// created. Returns whether the row was recorded: a row of a tenant the snapshot does not know
    /// (archived) is not, since such a tenant evaluates as unknown — when it comes back,
    /// [`CompactSnapshot::upsert_tenant`] it, then apply its rows. Costs O(1) (one bucket hash).
    pub fn set_row(
        &mut self,
        flag_key: &str,
        tenant_id: Option<&str>,
        enabled: bool,
        excluded: bool,
    ) -> Result<bool, Error> {
        let Some(tenant_id) = tenant_id else {
            if self
                .flags
                .get(flag_key)
                .is_none_or(|f| f.enabled != enabled)
            {
                flag_entry(&mut self.flags, flag_key)?.enabled = enabled;
            }
            return Ok(true);
        };
        let Some(slot) = self.tenants.slot(tenant_id) else {
            // A row of an unknown tenant still defines its flag (as the global row would).
            flag_entry(&mut self.flags, flag_key)?;
            return Ok(false);
        };
        let Some(tenant) = self.tenants.get(slot) else {
            return Ok(false);
        };
        let target = self.flags.get(flag_key).and_then(|f| f.target.as_ref());
        let implied = implies(target, tenant, &mut || crate::bucket(flag_key, tenant_id));
        // A shared flag is copied only when the row really changes.
        if let Some(flag) = self.flags.get(flag_key) {
            if flag.row(slot, || implied) == enabled && flag.excluded.contains(&slot) == excluded {
                return Ok(true);
            }
        }
        let flag = flag_entry(&mut self.flags, flag_key)?;
        flag.set_row(slot, implied, enabled);
        if excluded {
            flag.excluded.insert(slot);
        } else {
            flag.excluded.remove(&slot);
        }
        Ok(true)
    }

    /// Sets a flag's rollout target (creating the flag if needed). The rows stay as they are —
    /// the `feature_flags` table is the truth — so `on` and `off` are recomputed against the new
    /// target: O(tenants), one bucket hash per tenant the constraints admit. Apply the rows a
    /// phase change writes with [`CompactSnapshot::set_row`], before or after.
    pub fn set_target(&mut self, flag_key: &str, target: Option<Target>) -> Result<(), Error> {
        if self.flags.get(flag_key).is_some_and(|f| f.target == target) {
            return Ok(());
        }
        let tenants = &self.tenants;
        let flag = flag_entry(&mut self.flags, flag_key)?;
        if flag.target == target {
            return Ok(());
        }
        let old = flag.target.take();
        let mut on = FxHashSet::default();
        let mut off = FxHashSet::default();
        for (slot, t) in tenants.iter() {
            let mut cached = None;
            let mut bucket = || *cached.get_or_insert_with(|| crate::bucket(flag_key, t.id));
            let has_row = flag.row(slot, || implies(old.as_ref(), t, &mut bucket));
            let implied = implies(target.as_ref(), t, &mut bucket);
            match (has_row, implied) {
                (true, false) => {
                    on.insert(slot);
                }
                (false, true) => {
                    off.insert(slot);
                }
                _ => {}
            }
        }
        flag.on = on;
        flag.off = off;
        flag.target = target;
        Ok(())
    }

    /// Removes a flag. Returns whether it existed.
    pub fn remove_flag(&mut self, flag_key: &str) -> bool {
        self.flags.remove(flag_key).is_some()
    }

    /// Adds a tenant or updates a known tenant's attributes. A known tenant keeps its rows and
    /// exclusions (what its new attributes change is what its target implies, so `on`/`off` are
    /// adjusted); a new tenant starts with no rows and no exclusions — apply its rows next. Costs
    /// O(flags), plus a copy of the tenant table when it is shared.
    pub fn upsert_tenant(&mut self, tenant: Tenant) -> Result<(), Error> {
        if tenant.id.is_empty() {
            return Err(Error::Inconsistent("empty tenant id".into()));
        }
        let Some(slot) = self.tenants.slot(&tenant.id) else {
            let slot = Arc::make_mut(&mut self.tenants).push(tenant.as_ref())?;
            for (key, flag) in &mut self.flags {
                if implies(flag.target.as_ref(), tenant.as_ref(), &mut || {
                    crate::bucket(key, &tenant.id)
                }) {
                    Arc::make_mut(flag).off.insert(slot);
                }
            }
            return Ok(());
        };
        let Some(before) = self.tenants.record(slot) else {
            return Ok(());
        };
        if before == tenant {
            return Ok(());
        }
        Arc::make_mut(&mut self.tenants).set_attributes(slot, tenant.as_ref())?;
        for (key, flag) in &mut self.flags {
            let Some(target) = flag.target.as_ref() else {
                continue;
            };
            let mut cached = None;
            let mut bucket = || *cached.get_or_insert_with(|| crate::bucket(key, &tenant.id));
            let was = target.includes_ref(before.as_ref(), &mut bucket);
            let is = target.includes_ref(tenant.as_ref(), &mut bucket);
            if was != is {
                let has_row = flag.row(slot, || was);
                Arc::make_mut(flag).set_row(slot, is, has_row);
            }
        }
        Ok(())
    }

    /// Removes a tenant (archived or deleted) and its rows and exclusions. Returns whether it was
    /// known. Costs O(flags), plus a copy of the tenant table when it is shared.
    pub fn remove_tenant(&mut self, tenant_id: &str) -> bool {
        let Some(slot) = self.tenants.slot(tenant_id) else {
            return false;
        };
        let last = u32::try_from(self.tenants.len().saturating_sub(1)).unwrap_or(slot);
        for flag in self.flags.values_mut() {
            let touched = [&flag.on, &flag.off, &flag.excluded]
                .iter()
                .any(|set| set.contains(&slot) || set.contains(&last));
            if !touched {
                continue;
            }
            let flag = Arc::make_mut(flag);
            for set in [&mut flag.on, &mut flag.off, &mut flag.excluded] {
                set.remove(&slot);
                if last != slot && set.remove(&last) {
                    set.insert(slot);
                }
            }
        }
        Arc::make_mut(&mut self.tenants).swap_remove(slot);
        true
    }

    /// The `feature_flags` row of `tenant_id` (the global row when `None`) as this snapshot
    /// holds it: `Some((enabled, excluded))`, `(false, false)` when the tenant has no row; `None`
    /// when the flag or the tenant is unknown. O(1) (one bucket hash at most).
    pub fn row_state(&self, flag_key: &str, tenant_id: Option<&str>) -> Option<(bool, bool)> {
        let flag = self.flags.get(flag_key)?;
        let Some(tenant_id) = tenant_id else {
            return Some((flag.enabled, false));
        };
        let slot = self.tenants.slot(tenant_id)?;
        let tenant = self.tenants.get(slot)?;
        let enabled = flag.row(slot, || {
            implies(flag.target.as_ref(), tenant, &mut || {
                crate::bucket(flag_key, tenant_id)
            })
        });
        Some((enabled, flag.excluded.contains(&slot)))
    }

    /// How many known tenants flag `flag_key` is ON for, how many have an enabled row, and how
    /// many are excluded — what a `count(*)` over `feature_flags` joined with the live tenants
    /// gives, without reading a row: one pass over the tenants (one bucket hash for each tenant a
    /// percentage target's constraints admit). `None` when the flag is unknown.
    pub fn counts(&self, flag_key: &str) -> Option<FlagCounts> {
        let flag = self.flags.get(flag_key)?;
        let mut rows_on = 0;
        let mut on_and_excluded = 0;
        for (slot, t) in self.tenants.iter() {
            let row = flag.row(slot, || {
                implies(flag.target.as_ref(), t, &mut || {
                    crate::bucket(flag_key, t.id)
                })
            });
            if row {
                rows_on += 1;
                if flag.excluded.contains(&slot) {
                    on_and_excluded += 1;
                }
            }
        }
        let excluded = flag.excluded.len();
        let on = if flag.enabled {
            self.tenants.len().saturating_sub(excluded)
        } else {
            rows_on - on_and_excluded
        };
        Some(FlagCounts {
            on,
            rows_on,
            excluded,
        })
    }

    /// [`CompactSnapshot::counts`] of every flag. `reuse` holds counts taken at an earlier
    /// version with the same tenants: its flags not in `changed` are taken from it as they are.
    pub fn count_all(&self, reuse: Option<(&Counts, &[String])>) -> Counts {
        let kept = |key: &String| {
            let (c, changed) = reuse?;
            if changed.contains(key) {
                return None;
            }
            c.flags.get(key).copied()
        };
        let flags = self
            .flags
            .keys()
            .filter_map(|key| Some((key.clone(), kept(key).or_else(|| self.counts(key))?)))
            .collect();
        Counts {
            version: self.version,
            tenants: self.tenants.len(),
            flags,
        }
    }

    /// Whether the flag exists and nothing turns it on for anyone: its global row is off and no
    /// known tenant has an enabled row (OpenFeature's `DISABLED`). Stops at the first enabled row
    /// it finds, so it is O(1) for a flag that is on somewhere or has no target, and O(tenants) at
    /// worst (a target whose every tenant has its row turned off).
    pub fn is_disabled(&self, flag_key: &str) -> bool {
        let Some(flag) = self.flags.get(flag_key) else {
            return false;
        };
        if flag.enabled || !flag.on.is_empty() {
            return false;
        }
        let Some(target) = flag.target.as_ref() else {
            return true;
        };
        let pilot_on = target.pilots.iter().any(|p| {
            self.tenants
                .slot(p)
                .is_some_and(|slot| !flag.off.contains(&slot))
        });
        if pilot_on {
            return false;
        }
        if target.percentage.get() == 0 {
            return true;
        }
        !self.tenants.iter().any(|(slot, t)| {
            !flag.off.contains(&slot)
                && target.includes_ref(t, &mut || crate::bucket(flag_key, t.id))
        })
    }

    /// Parses and checks a compact snapshot. Any input — truncated, hostile, of another format —
    /// gives a typed [`Error`], never a panic.
    ///
    /// ```
    /// use flags::compact::CompactSnapshot;
    /// assert!(CompactSnapshot::from_json(b"{not json").is_err());
    /// // A version-1 document is refused: read it with `Snapshot::from_json`.
    /// assert!(CompactSnapshot::from_json(br#"{"format":"rollgate.snapshot/v1","version":1,"tenants":[],"flags":{}}"#).is_err());
    /// // Positions must name a tenant.
    /// assert!(CompactSnapshot::from_json(br#"{"format":"tenantry.snapshot/v2","version":1,
    ///   "tenants":{"ids":["a"]},"flags":{"f":{"on":[1]}}}"#).is_err());
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_wire(crate::snapshot::parse_format(bytes, COMPACT_FORMAT)?)
    }

    /// Serialises the snapshot (canonical: equal snapshots give equal bytes).
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string(&self.to_wire()).map_err(|e| Error::SnapshotJson(e.to_string()))
    }

    fn from_wire(wire: Wire) -> Result<Self, Error> {
        let Wire {
            format: _,
            version,
            tenants: columns,
            flags,
        } = wire;
        let n = columns.ids.len();
        if u32::try_from(n).is_err() {
            return Err(Error::Inconsistent("too many tenants".into()));
        }
        let mut table = TenantTable::default();
        let plans = dictionary(&mut table.plans, &columns.plans, &columns.plan, n, "plan")?;
        let regions = dictionary(
            &mut table.regions,
            &columns.regions,
            &columns.region,
            n,
            "region",
        )?;
        let tag_sets = dictionary(
            &mut table.tag_sets,
            &columns.tag_sets,
            &columns.tags,
            n,
            "tags",
        )?;
        let lookup = |map: &[u32], column: &[u32], i: usize| -> Option<u32> {
            match column.get(i) {
                Some(&w) => map.get(w as usize).copied(),
                None => map.first().copied(),
            }
        };
        table.ids.reserve(n);
        table.slots.reserve(n);
        for (i, id) in columns.ids.into_iter().enumerate() {
            if id.is_empty() {
                return Err(Error::Inconsistent("empty tenant id".into()));
            }
            let slot =
                u32::try_from(i).map_err(|_| Error::Inconsistent("too many tenants".into()))?;
            let id: Arc<str> = Arc::from(id);
            if table.slots.insert(id.clone(), slot).is_some() {
                return Err(Error::Inconsistent(format!(
                    "tenant {id:?} is listed twice"
                )));
            }
            table.ids.push(id);
            let attribute = |map: &[u32], column: &[u32]| {
                lookup(map, column, i)
                    .ok_or_else(|| Error::Inconsistent("attribute index out of range".into()))
            };
            table.plan.push(attribute(&plans, &columns.plan)?);
            table.region.push(attribute(&regions, &columns.region)?);
            table.tags.push(attribute(&tag_sets, &columns.tags)?);
        }
        let mut out = CompactSnapshot {
            version,
            tenants: Arc::new(table),
            flags: FxHashMap::default(),
        };
        for (key, flag) in flags {
            if key.is_empty() {
                return Err(Error::Inconsistent("empty flag key".into()));
            }
            let set = |list: Vec<u32>, what: &str| -> Result<FxHashSet<u32>, Error> {
                match list.iter().find(|&&i| i as usize >= n) {
                    Some(i) => Err(Error::Inconsistent(format!(
                        "flag {key:?}: {what} lists tenant #{i} of {n}"
                    ))),
                    None => Ok(list.into_iter().collect()),
                }
            };
            let compact = CompactFlag {
                enabled: flag.enabled,
                on: set(flag.on, "on")?,
                off: set(flag.off, "off")?,
                excluded: set(flag.excluded, "excluded")?,
                target: flag.target,
            };
            out.flags.insert(key, Arc::new(compact));
        }
        Ok(out)
    }

    fn to_wire(&self) -> Wire {
        let table = &self.tenants;
        let n = table.len();
        let mut order: Vec<u32> = (0..n).filter_map(|i| u32::try_from(i).ok()).collect();
        order.sort_unstable_by(|a, b| table.ids.get(*a as usize).cmp(&table.ids.get(*b as usize)));
        // rank[slot] = position of the tenant in the written `ids`.
        let mut rank = vec![0u32; n];
        for (position, &slot) in (0u32..).zip(&order) {
            if let Some(r) = rank.get_mut(slot as usize) {
                *r = position;
            }
        }
        let ids = order
            .iter()
            .filter_map(|s| table.ids.get(*s as usize).map(|id| id.to_string()))
            .collect();
        let (plans, plan) = column(&table.plans, &table.plan, &order, &String::new());
        let (regions, region) = column(&table.regions, &table.region, &order, &String::new());
        let (tag_sets, tags) = column(&table.tag_sets, &table.tags, &order, &Vec::new());
        let positions = |slots: &FxHashSet<u32>| {
            let mut list: Vec<u32> = slots
                .iter()
                .filter_map(|s| rank.get(*s as usize).copied())
                .collect();
            list.sort_unstable();
            list
        };
        let flags = self
            .flags
            .iter()
            .map(|(key, flag)| {
                let wire = WireFlag {
                    enabled: flag.enabled,
                    target: flag.target.clone(),
                    on: positions(&flag.on),
                    off: positions(&flag.off),
                    excluded: positions(&flag.excluded),
                };
                (key.clone(), wire)
            })
            .collect();
        Wire {
            format: COMPACT_FORMAT.to_string(),
            version: self.version,
            tenants: WireTenants {
                ids,
                plans,
                plan,
                regions,
                region,
                tag_sets,
                tags,
            },
            flags,
        }
    }
}

/// The flag `flag_key`, created (with no rows) if missing.
/// (A flag shared with another copy of the snapshot is copied first.)
fn flag_entry<'a>(
    flags: &'a mut FxHashMap<String, Arc<CompactFlag>>,
    flag_key: &str,
) -> Result<&'a mut CompactFlag, Error> {
    if flag_key.is_empty() {
        return Err(Error::Inconsistent("empty flag key".into()));
    }
    if !flags.contains_key(flag_key) {
        flags.insert(flag_key.to_string(), Arc::default());
    }
    flags
        .get_mut(flag_key)
        .map(Arc::make_mut)
        .ok_or_else(|| Error::Inconsistent("empty flag key".into()))
}

/// Reads one attribute's dictionary and column: checks them and interns the dictionary. Returns,
/// for each dictionary position, the interned value (with an empty dictionary: the one empty
/// value every tenant then has).
fn dictionary<T: Clone + Eq + Hash + Default>(
    interned: &mut Dictionary<T>,
    values: &[T],
    column: &[u32],
    n: usize,
    what: &str,
) -> Result<Vec<u32>, Error> {
    if values.is_empty() {
        if !column.is_empty() {
            return Err(Error::Inconsistent(format!(
                "{what}: {} positions but no dictionary",
                column.len()
            )));
        }
        return Ok(vec![interned.intern::<T>(&T::default())?]);
    }
    if column.len() != n {
        return Err(Error::Inconsistent(format!(
            "{what}: {} positions for {n} tenants",
            column.len()
        )));
    }
    if let Some(i) = column.iter().find(|&&i| i as usize >= values.len()) {
        return Err(Error::Inconsistent(format!(
            "{what}: position {i} of a dictionary of {}",
            values.len()
        )));
    }
    values.iter().map(|v| interned.intern::<T>(v)).collect()
}

/// Writes one attribute: the sorted dictionary of the values in use and each tenant's position in
/// it, in `order`; both empty when every tenant has `empty`.
fn column<T: Clone + Eq + Hash + Ord>(
    interned: &Dictionary<T>,
    of_slot: &[u32],
    order: &[u32],
    empty: &T,
) -> (Vec<T>, Vec<u32>) {
    let used: FxHashSet<u32> = of_slot.iter().copied().collect();
    let mut dict: Vec<(&T, u32)> = used
        .into_iter()
        .filter_map(|i| Some((interned.get(i)?, i)))
        .collect();
    if dict.iter().all(|(v, _)| *v == empty) {
        return (Vec::new(), Vec::new());
    }
    dict.sort_unstable();
    let position: FxHashMap<u32, u32> = dict
        .iter()
        .zip(0u32..)
        .map(|((_, interned), p)| (*interned, p))
        .collect();
    let values = dict.into_iter().map(|(v, _)| v.clone()).collect();
    let positions = order
        .iter()
        .filter_map(|s| of_slot.get(*s as usize))
        .filter_map(|i| position.get(i).copied())
        .collect();
    (values, positions)
}

/// Serialises as the `tenantry.snapshot/v2` document, so a compact snapshot can travel inside
/// another document (the flag editor's data).
impl Serialize for CompactSnapshot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_wire().serialize(serializer)
    }
}

/// Reads the `tenantry.snapshot/v2` document and checks it as [`CompactSnapshot::from_json`]
/// does.
impl<'de> Deserialize<'de> for CompactSnapshot {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        if wire.format != COMPACT_FORMAT {
            return Err(serde::de::Error::custom(format!(
                "format {:?}, expected {COMPACT_FORMAT:?}",
                wire.format
            )));
        }
        CompactSnapshot::from_wire(wire).map_err(serde::de::Error::custom)
    }
}

/// The JSON document.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Wire {
    format: String,
    version: u64,
    tenants: WireTenants,
    #[serde(default)]
    flags: BTreeMap<String, WireFlag>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct WireTenants {
    ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    plans: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    plan: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    regions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    region: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tag_sets: Vec<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<u32>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct WireFlag {
    #[serde(default)]
    enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<Target>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    on: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    off: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    excluded: Vec<u32>,
}

/// Writes a [`CompactSnapshot`] as the version-1 document ([`CompactSnapshot::to_v1_json`]).
struct V1<'a> {
    snapshot: &'a CompactSnapshot,
}

impl Serialize for V1<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let snap = self.snapshot;
        let mut ids: Vec<&str> = snap.tenants.ids.iter().map(|id| &**id).collect();
        ids.sort_unstable();
        let mut keys: Vec<&String> = snap.flags.keys().collect();
        keys.sort_unstable();
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("format", crate::SNAPSHOT_FORMAT)?;
        map.serialize_entry("version", &snap.version)?;
        map.serialize_entry("tenants", &ids)?;
        let flags: Vec<(&String, V1Flag<'_>)> = keys
            .into_iter()
            .filter_map(|key| {
                let flag = snap.flags.get(key)?;
                Some((
                    key,
                    V1Flag {
                        snapshot: snap,
                        key,
                        flag,
                    },
                ))
            })
            .collect();
        map.serialize_entry("flags", &V1Flags(flags))?;
        map.end()
    }
}

struct V1Flags<'a>(Vec<(&'a String, V1Flag<'a>)>);

impl Serialize for V1Flags<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// One flag as [`FlagState`] writes it.
struct V1Flag<'a> {
    snapshot: &'a CompactSnapshot,
    key: &'a str,
    flag: &'a CompactFlag,
}

impl Serialize for V1Flag<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut on: Vec<&str> = Vec::new();
        self.snapshot.for_each_row(self.key, self.flag, |slot, _| {
            if let Some(id) = self.snapshot.tenants.ids.get(slot as usize) {
                on.push(id);
            }
        });
        on.sort_unstable();
        let excluded = ids_of(&self.snapshot.tenants, &self.flag.excluded);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("enabled", &self.flag.enabled)?;
        map.serialize_entry("on", &on)?;
        map.serialize_entry("excluded", &excluded)?;
        if let Some(target) = &self.flag.target {
            map.serialize_entry("target", target)?;
        }
        map.end()
    }
}
