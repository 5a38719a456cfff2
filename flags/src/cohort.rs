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
    out.turned_on.sort_unstable();
    out.turned_off.sort_unstable();
    out
}

impl FlagState {
    /// The state after materialising `target`: the tenant rows become exactly the target's cohort;
    /// the global row and the exclusions are kept.
    ///
    /// ```
    /// use flags::{FlagState, Percentage, Target, Tenant};
    /// let tenants: Vec<Tenant> = (0..100).map(|i| Tenant::new(format!("t{i}"))).collect();
    /// let after = FlagState::default().materialise("f", Target::percentage(Percentage::ALL), &tenants);
    /// assert_eq!(after.on.len(), 100);
    /// ```
    pub fn materialise(&self, flag_key: &str, target: Target, tenants: &[Tenant]) -> FlagState {
        let on = cohort(flag_key, &target, tenants)
            .into_iter()
            .map(str::to_string)
            .collect();
        FlagState {
            enabled: self.enabled,
            on,
            excluded: self.excluded.clone(),
            target: Some(target),
        }
    }
}
