use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{Error, FlagState};

/// The format tag every snapshot carries. A reader refuses any other.
pub const SNAPSHOT_FORMAT: &str = "rollgate.snapshot/v1";

/// Everything needed to evaluate every flag for every tenant, as shipped to SDKs, edges and the
/// browser (`GET /api/client/snapshot`).
///
/// JSON shape (version 1):
///
/// ```json
/// {
///   "format": "rollgate.snapshot/v1",
///   "version": 42,
///   "tenants": ["acme", "globex"],
///   "flags": {
///     "multi_workspace_enabled": {
///       "enabled": false,
///       "on": ["acme"],
///       "excluded": [],
///       "target": {"pilots": ["acme"], "percentage": 0, "constraints": []}
///     }
///   }
/// }
/// ```
///
/// `version` increases with every change; it is the snapshot's ETag.
///
/// A materialised percentage rollout lists every tenant it turned on; the compact form,
/// [`CompactSnapshot`](crate::CompactSnapshot) (`tenantry.snapshot/v2`), keeps the target as a
/// rule and lists only the rows that differ from it, with the same decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always [`SNAPSHOT_FORMAT`].
    pub format: String,
    /// Monotonic version of the data.
    pub version: u64,
    /// Every known (not archived) tenant id.
    pub tenants: HashSet<String>,
    /// Every flag by key.
    pub flags: HashMap<String, FlagState>,
}

impl Snapshot {
    /// An empty snapshot at `version`.
    pub fn new(version: u64) -> Self {
        Snapshot {
            format: SNAPSHOT_FORMAT.to_string(),
            version,
            tenants: HashSet::new(),
            flags: HashMap::new(),
        }
    }

    /// Parses and checks a snapshot. Any input — truncated, hostile, of another format — gives a
    /// typed [`Error`], never a panic.
    ///
    /// ```
    /// assert!(flags::Snapshot::from_json(b"{not json").is_err());
    /// assert!(flags::Snapshot::from_json(br#"{"format":"other/v9","version":1,"tenants":[],"flags":{}}"#).is_err());
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let snapshot: Snapshot = parse_format(bytes, SNAPSHOT_FORMAT)?;
        snapshot.check()?;
        Ok(snapshot)
    }

    /// Serialises the snapshot.
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string(self).map_err(|e| Error::SnapshotJson(e.to_string()))
    }

    /// Checks the rules the type system does not: non-empty keys and ids.
    pub fn check(&self) -> Result<(), Error> {
        if self.tenants.iter().any(|t| t.is_empty()) {
            return Err(Error::Inconsistent("empty tenant id".into()));
        }
        for (key, state) in &self.flags {
            if key.is_empty() {
                return Err(Error::Inconsistent("empty flag key".into()));
            }
            if state.on.iter().chain(&state.excluded).any(|t| t.is_empty()) {
                return Err(Error::Inconsistent(format!(
                    "flag {key:?} lists an empty tenant id"
                )));
            }
        }
        Ok(())
    }
}

/// Parses a document whose `format` must be `expected`: a document of another format is refused
/// with both names before its body is read as `T`.
pub(crate) fn parse_format<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    expected: &'static str,
) -> Result<T, Error> {
    #[derive(Deserialize)]
    struct Header {
        format: String,
    }
    let header: Header =
        serde_json::from_slice(bytes).map_err(|e| Error::SnapshotJson(e.to_string()))?;
    if header.format != expected {
        return Err(Error::UnsupportedFormat {
            found: header.format,
            expected,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| Error::SnapshotJson(e.to_string()))
}
