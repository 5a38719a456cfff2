use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{FlagState, Target, Tenant};

/// The tenants `target` selects for `flag_key`: its pilots that exist among `tenants`, and every
/// tenant that satisfies all constraints and whose [`bucket`](crate::bucket) is within the
/// percentage.
///
/// Cohorts are nested: for the same pilots and constraints, `cohort(p) ⊆ cohort(q)` whenever
/// `p <= q`, because membership is `bucket <= p`.
///
/// ```
/// use flags::{cohort, Percentage, Target, Tenant};
/// let tenants = vec![Tenant::new("acme"), Tenant::new("globex"), Tenant::new("initech")];
/// let mut target = Target::percentage(Percentage::ZERO);
/// target.pilots.insert("globex".to_string());
/// let selected = cohort("multi_workspace_enabled", &target, &tenants);
/// assert_eq!(selected.into_iter().collect::<Vec<_>>(), vec!["globex"]);
/// ```
pub fn cohort<'a>(flag_key: &str, target: &Target, tenants: &'a [Tenant]) -> BTreeSet<&'a str> {
    tenants
        .iter()
        .filter(|t| target.includes(flag_key, t))
        .map(|t| t.id.as_str())
        .collect()
}

/// Which tenants a change from `before` to `after` turns ON and OFF, both sorted by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// OFF before, ON after.
    pub turned_on: Vec<String>,
    /// ON before, OFF after.
    pub turned_off: Vec<String>,
}

impl Diff {
    /// Sorts both lists by id. Callers usually go through tenants in order (the server sends
    /// them sorted): then there is nothing to do.
    pub(crate) fn sort(&mut self) {
        for ids in [&mut self.turned_on, &mut self.turned_off] {
            if !ids.is_sorted() {
                ids.sort_unstable();
            }
        }
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.turned_on.is_empty() && self.turned_off.is_empty()
    }
}

/// The tenants among `tenant_ids` whose decision differs between two states of one flag.
///
/// ```
/// use flags::{diff, FlagState};
/// let before = FlagState::default();
/// let mut after = FlagState::default();
/// after.on.insert("acme".to_string());
/// let d = diff(&before, &after, ["acme", "globex"]);
/// assert_eq!(d.turned_on, vec!["acme".to_string()]);
/// assert!(d.turned_off.is_empty());
/// ```
pub fn diff<'a>(
    before: &FlagState,
    after: &FlagState,
    tenant_ids: impl IntoIterator<Item = &'a str>,
) -> Diff {
    let mut out = Diff::default();
    for id in tenant_ids {
        match (before.is_on(id), after.is_on(id)) {
            (false, true) => out.turned_on.push(id.to_string()),
            (true, false) => out.turned_off.push(id.to_string()),
            _ => {}
        }
    }
    out.sort();
    out
}

impl FlagState {
    /// The state after moving from the current target to `target`: tenants the old target selected
    /// and the new one does not lose their row; tenants the new target selects get one. Rows set by
    /// hand outside both targets stay as they are. The global row and the exclusions are kept.
    ///
    /// The server writes exactly the rows that differ between `self` and the result, and the
    /// browser previews the same function: both sides compute the same set.
    ///
    /// ```
    /// use flags::{FlagState, Percentage, Target, Tenant};
    /// let tenants: Vec<Tenant> = (0..100).map(|i| Tenant::new(format!("t{i}"))).collect();
    /// let all = FlagState::default().materialise("f", Target::percentage(Percentage::ALL), &tenants);
    /// assert_eq!(all.on.len(), 100);
    /// let none = all.materialise("f", Target::percentage(Percentage::ZERO), &tenants);
    /// assert!(none.on.is_empty());
    /// ```
    pub fn materialise(&self, flag_key: &str, target: Target, tenants: &[Tenant]) -> FlagState {
        self.materialise_from(self.target.as_ref(), flag_key, target, tenants)
    }

    /// [`FlagState::materialise`] as if the current target were `old`. One pass over the tenants:
    /// those `target` selects get a row (allocated only when missing), those only `old` selected
    /// lose theirs.
    pub(crate) fn materialise_from(
        &self,
        old: Option<&Target>,
        flag_key: &str,
        target: Target,
        tenants: &[Tenant],
    ) -> FlagState {
        let mut on = self.on.clone();
        for t in tenants {
            let id = t.id.as_str();
            let has_row = self.on.contains(id);
            match (Self::row_after(old, flag_key, &target, t, has_row), has_row) {
                (true, false) => {
                    on.insert(t.id.clone());
                }
                (false, true) => {
                    on.remove(id);
                }
                _ => {}
            }
        }
        FlagState {
            enabled: self.enabled,
            on,
            excluded: self.excluded.clone(),
            target: Some(target),
        }
    }

    /// The rule of [`FlagState::materialise`] for one tenant: whether it has an enabled row after
    /// the move from `old` to `target`. Selected by `target`: yes; selected only by `old`: no;
    /// neither: its row stays as it is (`has_row`). The bucket is hashed at most once.
    pub(crate) fn row_after(
        old: Option<&Target>,
        flag_key: &str,
        target: &Target,
        tenant: &Tenant,
        has_row: bool,
    ) -> bool {
        let mut cached = None;
        let mut bucket = || *cached.get_or_insert_with(|| crate::bucket(flag_key, &tenant.id));
        if target.includes_with(tenant, &mut bucket) {
            true
        } else if old.is_some_and(|o| o.includes_with(tenant, &mut bucket)) {
            false
        } else {
            has_row
        }
    }

    /// Tenant rows to write to go from `self` to `after`: `(enable, disable)`, each sorted.
    pub fn row_changes(&self, after: &FlagState) -> (Vec<String>, Vec<String>) {
        let mut enable: Vec<String> = after.on.difference(&self.on).cloned().collect();
        let mut disable: Vec<String> = self.on.difference(&after.on).cloned().collect();
        enable.sort_unstable();
        disable.sort_unstable();
        (enable, disable)
    }
}
