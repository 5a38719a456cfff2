use rustc_hash::FxHashMap;

use crate::{CompactSnapshot, Decision, Reason, Snapshot};

/// A [`Snapshot`] compiled for fast evaluation: tenant ids are interned once, and each flag's
/// tenant rows, exclusions and pilots become bit sets indexed by tenant. This is what the server
/// answers `/api/features` and OFREP from; its decisions equal [`Snapshot::evaluate`]'s (the
/// equivalence vectors check both).
///
/// ```
/// use flags::{Evaluator, Reason, Snapshot};
/// let snap = Snapshot::from_json(br#"{"format":"rollgate.snapshot/v1","version":1,
///   "tenants":["acme","globex"],"flags":{"f":{"on":["acme"]}}}"#)?;
/// let ev = Evaluator::new(&snap);
/// assert!(ev.evaluate("f", "acme").on);
/// assert_eq!(ev.evaluate("f", "globex").reason, Reason::Off);
/// assert_eq!(ev.evaluate("f", "nobody").reason, Reason::UnknownTenant);
/// # Ok::<(), flags::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Evaluator {
    version: u64,
    tenants: FxHashMap<String, u32>,
    flags: FxHashMap<String, CompiledFlag>,
}

#[derive(Debug, Clone, Default)]
struct CompiledFlag {
    enabled: bool,
    nothing_on: bool,
    on: BitSet,
    excluded: BitSet,
    pilots: BitSet,
    percentage: u32,
}

#[derive(Debug, Clone, Default)]
struct BitSet(Vec<u64>);

impl BitSet {
    fn with_len(n: usize) -> Self {
        BitSet(vec![0; n.div_ceil(64)])
    }

    fn insert(&mut self, i: u32) {
        let (word, bit) = ((i / 64) as usize, i % 64);
        if let Some(w) = self.0.get_mut(word) {
            *w |= 1 << bit;
        }
    }

    fn contains(&self, i: u32) -> bool {
        let (word, bit) = ((i / 64) as usize, i % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }
}

impl Evaluator {
    /// Compiles a snapshot. Tenants listed in a flag but unknown to the snapshot are ignored
    /// (they evaluate as unknown tenants anyway).
    pub fn new(snapshot: &Snapshot) -> Self {
        let mut ids: Vec<&String> = snapshot.tenants.iter().collect();
        ids.sort_unstable();
        let tenants: FxHashMap<String, u32> = ids
            .into_iter()
            .zip(0u32..)
            .map(|(id, i)| (id.clone(), i))
            .collect();
        let n = tenants.len();
        let set_of = |names: &mut dyn Iterator<Item = &String>| {
            let mut set = BitSet::with_len(n);
            for name in names {
                if let Some(i) = tenants.get(name) {
                    set.insert(*i);
                }
            }
            set
        };
        let flags = snapshot
            .flags
            .iter()
            .map(|(key, state)| {
                let (pilots, percentage) = match &state.target {
                    Some(t) => (set_of(&mut t.pilots.iter()), t.percentage.get()),
                    None => (BitSet::with_len(n), 0),
                };
                let compiled = CompiledFlag {
                    enabled: state.enabled,
                    nothing_on: !state.enabled && state.on.is_empty(),
                    on: set_of(&mut state.on.iter()),
                    excluded: set_of(&mut state.excluded.iter()),
                    pilots,
                    percentage,
                };
                (key.clone(), compiled)
            })
            .collect();
        Evaluator {
            version: snapshot.version,
            tenants,
            flags,
        }
    }

    /// Compiles a compact (`tenantry.snapshot/v2`) snapshot without expanding it: each flag's
    /// enabled rows are computed from its target and its `on`/`off` lists straight into a bit set
    /// (one bucket hash per tenant a percentage target's constraints admit). Decisions equal
    /// [`CompactSnapshot::evaluate`]'s and [`Evaluator::new`]'s on the expanded snapshot.
    ///
    /// [`Evaluator::is_disabled`] counts only the rows of known tenants (the compact form has no
    /// others), where [`Evaluator::new`] also counts rows a v1 snapshot lists for unknown ones.
    ///
    /// ```
    /// use flags::{CompactSnapshot, Evaluator, Reason};
    /// let snap = CompactSnapshot::from_json(br#"{"format":"tenantry.snapshot/v2","version":1,
    ///   "tenants":{"ids":["acme","globex"]},"flags":{"f":{"on":[0]}}}"#)?;
    /// let ev = Evaluator::from_compact(&snap);
    /// assert!(ev.evaluate("f", "acme").on);
    /// assert_eq!(ev.evaluate("f", "globex").reason, Reason::Off);
    /// # Ok::<(), flags::Error>(())
    /// ```
    pub fn from_compact(snapshot: &CompactSnapshot) -> Self {
        let tenants: FxHashMap<String, u32> = snapshot
            .slots()
            .iter()
            .map(|(id, slot)| (id.to_string(), *slot))
            .collect();
        let n = tenants.len();
        let flags = snapshot
            .flags()
            .iter()
            .map(|(key, flag)| {
                let mut on = BitSet::with_len(n);
                let mut any = false;
                snapshot.for_each_row(key, flag, |slot, _| {
                    on.insert(slot);
                    any = true;
                });
                let mut excluded = BitSet::with_len(n);
                for &slot in &flag.excluded {
                    excluded.insert(slot);
                }
                let mut pilots = BitSet::with_len(n);
                let mut percentage = 0;
                if let Some(t) = &flag.target {
                    for pilot in &t.pilots {
                        if let Some(&slot) = tenants.get(pilot) {
                            pilots.insert(slot);
                        }
                    }
                    percentage = t.percentage.get();
                }
                let compiled = CompiledFlag {
                    enabled: flag.enabled,
                    nothing_on: !flag.enabled && !any,
                    on,
                    excluded,
                    pilots,
                    percentage,
                };
                (key.clone(), compiled)
            })
            .collect();
        Evaluator {
            version: snapshot.version(),
            tenants,
            flags,
        }
    }

    /// The snapshot version this was compiled from.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether the flag exists.
    pub fn has_flag(&self, flag_key: &str) -> bool {
        self.flags.contains_key(flag_key)
    }

    /// Whether the flag exists and nothing turns it on for anyone (OFREP's DISABLED).
    pub fn is_disabled(&self, flag_key: &str) -> bool {
        self.flags.get(flag_key).is_some_and(|f| f.nothing_on)
    }

    /// Flag keys, in no particular order.
    pub fn flag_keys(&self) -> impl Iterator<Item = &str> {
        self.flags.keys().map(String::as_str)
    }

    /// Same answer as [`Snapshot::evaluate`], faster.
    pub fn evaluate(&self, flag_key: &str, tenant_id: &str) -> Decision {
        let Some(flag) = self.flags.get(flag_key) else {
            return Decision {
                on: false,
                reason: Reason::UnknownFlag,
            };
        };
        let Some(&i) = self.tenants.get(tenant_id) else {
            return Decision {
                on: false,
                reason: Reason::UnknownTenant,
            };
        };
        if flag.excluded.contains(i) {
            return Decision {
                on: false,
                reason: Reason::Excluded,
            };
        }
        if flag.enabled {
            return Decision {
                on: true,
                reason: Reason::Global,
            };
        }
        if !flag.on.contains(i) {
            return Decision {
                on: false,
                reason: Reason::Off,
            };
        }
        let reason = if flag.pilots.contains(i) {
            Reason::Pilot
        } else if flag.percentage > 0 {
            let bucket = crate::bucket(flag_key, tenant_id);
            if bucket <= flag.percentage {
                Reason::Cohort {
                    bucket,
                    percentage: flag.percentage,
                }
            } else {
                Reason::TenantEnabled
            }
        } else {
            Reason::TenantEnabled
        };
        Decision { on: true, reason }
    }
}
