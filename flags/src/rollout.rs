use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Constraint, Error, Percentage, Target};

/// A rung of the rollout ladder: OFF → pilot → p% → 100%.
///
/// Written as `off`, `pilot`, `10%`, `50%`, `100%` in JSON and URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Phase {
    /// Deployed OFF: no tenant has it.
    Off,
    /// Only the pilot tenants.
    Pilot,
    /// The pilots and this share of the eligible tenants (`1..=99`).
    Percent(Percentage),
    /// Everyone: the global row is enabled (the seed's "Enable Globally").
    Full,
}

/// The seed's ladder: Deploy flag OFF, Pilot, 10%, 50%, 100%.
pub const DEFAULT_LADDER: [Phase; 5] = [
    Phase::Off,
    Phase::Pilot,
    Phase::Percent(Percentage::TEN),
    Phase::Percent(Percentage::FIFTY),
    Phase::Full,
];

impl Phase {
    /// The next rung of `ladder` after this phase (the first rung above it), if any.
    ///
    /// ```
    /// use flags::{Phase, DEFAULT_LADDER};
    /// assert_eq!(Phase::Pilot.next(&DEFAULT_LADDER), Some("10%".parse()?));
    /// assert_eq!(Phase::Full.next(&DEFAULT_LADDER), None);
    /// # Ok::<(), flags::Error>(())
    /// ```
    pub fn next(self, ladder: &[Phase]) -> Option<Phase> {
        ladder.iter().copied().find(|p| *p > self)
    }

    /// The rung of `ladder` below this phase, if any.
    pub fn previous(self, ladder: &[Phase]) -> Option<Phase> {
        ladder.iter().rev().copied().find(|p| *p < self)
    }

    /// The share of eligible tenants this phase turns on.
    pub fn percentage(self) -> Percentage {
        match self {
            Phase::Off | Phase::Pilot => Percentage::ZERO,
            Phase::Percent(p) => p,
            Phase::Full => Percentage::ALL,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Off => f.write_str("off"),
            Phase::Pilot => f.write_str("pilot"),
            Phase::Percent(p) => write!(f, "{}%", p.get()),
            Phase::Full => f.write_str("100%"),
        }
    }
}

impl FromStr for Phase {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim() {
            "off" | "0%" => Ok(Phase::Off),
            "pilot" => Ok(Phase::Pilot),
            "100%" | "full" => Ok(Phase::Full),
            other => {
                let digits = other
                    .strip_suffix('%')
                    .ok_or_else(|| Error::InvalidPhase(other.to_string()))?;
                let n: u32 = digits
                    .parse()
                    .map_err(|_| Error::InvalidPhase(other.to_string()))?;
                match Percentage::new(n)? {
                    p if p == Percentage::ZERO => Ok(Phase::Off),
                    p if p == Percentage::ALL => Ok(Phase::Full),
                    p => Ok(Phase::Percent(p)),
                }
            }
        }
    }
}

impl TryFrom<String> for Phase {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<Phase> for String {
    fn from(p: Phase) -> String {
        p.to_string()
    }
}

/// A flag's rollout: the phase it is in, its pilot tenants and the constraints of its percentage
/// phases. [`Rollout::target`] turns it into the tenants to turn on.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// Current phase: `off`, `pilot`, `N%` or `100%`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "10%"))]
    pub phase: Phase,
    /// Pilot tenants (kept while the phase goes up and down).
    #[serde(default)]
    pub pilots: BTreeSet<String>,
    /// Constraints of the percentage phases (pilots bypass them).
    #[serde(default)]
    pub constraints: Vec<Constraint>,
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            phase: Phase::Off,
            pilots: BTreeSet::new(),
            constraints: Vec::new(),
        }
    }
}

impl Rollout {
    /// The target of the current phase: nothing when OFF, the pilots in the pilot phase, pilots plus
    /// the percentage after that.
    pub fn target(&self) -> Target {
        match self.phase {
            Phase::Off => Target::default(),
            phase => Target {
                pilots: self.pilots.clone(),
                percentage: phase.percentage(),
                constraints: self.constraints.clone(),
            },
        }
    }

    /// Whether the global row should be enabled in this phase.
    pub fn global(&self) -> bool {
        self.phase == Phase::Full
    }

    /// The state after moving a flag from rollout `self` to rollout `to`: the tenant rows of the
    /// old target that the new one drops are turned off, the new target's are turned on, and the
    /// global row follows the 100% phase. The server writes exactly the rows that differ between
    /// `state` and the result; the browser previews the same call.
    ///
    /// ```
    /// use flags::{FlagState, Phase, Rollout, Tenant};
    /// let tenants: Vec<Tenant> = (0..50).map(|i| Tenant::new(format!("t{i}"))).collect();
    /// let off = Rollout::default();
    /// let full = off.with_phase(Phase::Full);
    /// let after = off.apply(&FlagState::default(), "f", &full, &tenants);
    /// assert!(after.enabled && after.on.len() == 50);
    /// ```
    pub fn apply(
        &self,
        state: &crate::FlagState,
        flag_key: &str,
        to: &Rollout,
        tenants: &[crate::Tenant],
    ) -> crate::FlagState {
        let current = self.target();
        let mut after = state.materialise_from(Some(&current), flag_key, to.target(), tenants);
        if to.global() {
            after.enabled = true;
        } else if self.global() {
            after.enabled = false;
        }
        after
    }

    /// Which tenants moving from `self` to `to` turns ON and OFF: exactly
    /// `diff(state, &self.apply(state, flag_key, to, tenants), tenants)`, computed tenant by tenant
    /// with the same rule ([`FlagState::materialise`]'s) and without building the new state. The
    /// flag editor calls it on every keystroke; the server saves with [`Rollout::apply`].
    ///
    /// [`FlagState::materialise`]: crate::FlagState::materialise
    pub fn preview(
        &self,
        state: &crate::FlagState,
        flag_key: &str,
        to: &Rollout,
        tenants: &[crate::Tenant],
    ) -> crate::Diff {
        let current = self.target();
        let next = to.target();
        let enabled_after = if to.global() {
            true
        } else if self.global() {
            false
        } else {
            state.enabled
        };
        let mut out = crate::Diff::default();
        for t in tenants {
            let id = t.id.as_str();
            let excluded = !state.excluded.is_empty() && state.excluded.contains(id);
            let has_row = state.on.contains(id);
            let before = !excluded && (state.enabled || has_row);
            let after = !excluded
                && (enabled_after
                    || crate::FlagState::row_after(Some(&current), flag_key, &next, t, has_row));
            match (before, after) {
                (false, true) => out.turned_on.push(t.id.clone()),
                (true, false) => out.turned_off.push(t.id.clone()),
                _ => {}
            }
        }
        out.sort();
        out
    }

    /// The same rollout in another phase.
    pub fn with_phase(&self, phase: Phase) -> Rollout {
        Rollout {
            phase,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_parse_print_and_order() {
        for s in ["off", "pilot", "10%", "50%", "100%"] {
            let p: Phase = s.parse().unwrap_or(Phase::Off);
            assert_eq!(p.to_string(), s);
        }
        assert!(Phase::Off < Phase::Pilot);
        assert!(Phase::Pilot < Phase::Percent(Percentage::TEN));
        assert!(Phase::Percent(Percentage::FIFTY) < Phase::Full);
        assert!("abc".parse::<Phase>().is_err());
        assert!("150%".parse::<Phase>().is_err());
        assert_eq!(
            Phase::Full.previous(&DEFAULT_LADDER),
            Some(Phase::Percent(Percentage::FIFTY))
        );
        assert_eq!(Phase::Off.previous(&DEFAULT_LADDER), None);
    }

    #[test]
    fn off_targets_nobody_even_with_pilots() {
        let mut r = Rollout::default();
        r.pilots.insert("acme".into());
        assert!(r.target().pilots.is_empty());
        assert_eq!(r.with_phase(Phase::Pilot).target().pilots.len(), 1);
    }
}
