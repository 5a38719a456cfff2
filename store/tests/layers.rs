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
