//! The house rules of `store`, checked on its source: the row modules (one kind of row each) never
//! call each other, and no module imports another in a circle. The write path (`rollout`) is the
//! only place that composes flags, plans, guard readings and approvals.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

/// Modules that read and write one kind of row; none of them may name another of them.
const ROW_MODULES: [&str; 4] = ["flags", "plans", "guards", "approvals"];

/// `store`'s modules (from `lib.rs`) and, per module, the other modules its source names as
/// `crate::module` or inside `use crate::{…}`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let lib = std::fs::read_to_string(format!("{src}/lib.rs")).unwrap();
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').to_string())
        })
        .collect();
    assert!(
        modules.len() > 10,
        "could not read the module list: {modules:?}"
    );
    let mut out = BTreeMap::new();
    for m in &modules {
        let text = std::fs::read_to_string(format!("{src}/{m}.rs")).unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut uses = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end].split(',').collect()
            } else {
                vec![rest]
            };
            for n in names {
                let ident: String = n
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains(&ident) && &ident != m {
                    uses.insert(ident);
                }
            }
        }
        out.insert(m.clone(), uses);
    }
    out
}

#[test]
fn row_modules_do_not_call_each_other() {
    let g = graph();
    for m in ROW_MODULES {
        let uses = g.get(m).unwrap_or_else(|| panic!("no module {m}"));
        let bad: Vec<&String> = uses
            .iter()
            .filter(|u| ROW_MODULES.contains(&u.as_str()))
            .collect();
        assert!(bad.is_empty(), "store::{m} names {bad:?}: row modules stay independent; compose them in store::rollout");
    }
    assert!(g["rollout"].contains("flags") && g["rollout"].contains("plans"));
}

#[test]
fn no_import_circle_inside_store() {
    let g = graph();
    // Depth-first search for a back edge.
    fn visit<'a>(
        g: &'a BTreeMap<String, BTreeSet<String>>,
        m: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| *p == m) {
            panic!("import circle in store: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m);
        for next in &g[m] {
            visit(g, next, path, done);
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        visit(&g, m, &mut Vec::new(), &mut done);
    }
}

/// Who writes who is ON: statements that write `feature_flags` or a flag's `rollout` appear only in
/// `store::flags`, whose writers are `pub(crate)` and called by the write path (`store::rollout`)
/// — plus one documented exception: a tenant created during a rollout gets its bucket's answer
/// (`store::tenants::create`, the rollout's own decision, holding the rollouts `FOR SHARE`).
#[test]
fn only_the_write_path_writes_who_is_on() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let writes = [
        "INSERT INTO feature_flags",
        "UPDATE feature_flags",
        "DELETE FROM feature_flags",
        "UPDATE flags SET rollout",
    ];
    let allowed = |path: &str, line: &str| {
        path.ends_with("store/src/flags.rs")
            || (path.ends_with("store/src/tenants.rs")
                && line.contains("INSERT INTO feature_flags"))
            || line.trim_start().starts_with("//")
    };
    let mut bad = Vec::new();
    for dir in [
        "store/src",
        "server/src",
        "server/src/api",
        "app/src",
        "infra/src",
    ] {
        for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let p = path.display().to_string();
            for (n, line) in text.lines().enumerate() {
                if writes.iter().any(|w| line.contains(w)) && !allowed(&p, line) {
                    bad.push(format!("{p}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "writes outside the write path:\n{}",
        bad.join("\n")
    );
    // store::flags' writers are not reachable from outside the crate.
    let flags = std::fs::read_to_string(format!("{root}/store/src/flags.rs")).unwrap();
    for w in ["fn write_rows", "fn set_rollout"] {
        assert!(
            flags.contains(&format!("pub(crate) async {w}")),
            "{w} must stay pub(crate)"
        );
    }
}

/// Who acts is recorded in one place: only `Actor::apply` sets `rollgate.actor` and
/// `rollgate.source` (the settings the audit triggers read); every other write calls it.
#[test]
fn only_the_actor_records_who_acts() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("actor.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .any(|l| l.contains("rollgate.actor") || l.contains("rollgate.source"));
        if code {
            offenders.push(path.display().to_string());
        }
    }
    assert!(
        offenders.is_empty(),
        "set the actor with store::Actor::apply, not by hand: {offenders:?}"
    );
}
