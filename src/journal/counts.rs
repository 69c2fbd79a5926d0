//! What a run counted: actions planned by kind, how applying them ended, how long its parts
//! took. Journaled as one flat JSON object in `runs.counts` (the shape `runs --json` shows
//! and `/metrics` reads); keys this release does not know are ignored when read back.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::plan::ActionKind;

/// How a run's applied actions ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub applied: usize,
    pub failed: usize,
    pub held: usize,
    pub skipped: usize,
    /// Actions the app refused for good: tried, not changes.
    pub app_refused: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Actions planned, by kind.
    pub planned: BTreeMap<ActionKind, usize>,
    /// How the actions ended (apply runs).
    pub tally: Option<Tally>,
    /// Reviewed actions refused as stale (`apply FILE`).
    pub refused: Option<usize>,
    /// What kind of directory read the run made (`full read (...)`, `incremental read: ...`).
    pub read: Option<String>,
    /// How the app's accounts were read (`app listed in full (...)`, `app remembered: ...`).
    pub app_read: Option<String>,
    /// Reading both sides, applying, the directory read alone, time in the journal.
    pub read_ms: Option<u64>,
    pub apply_ms: Option<u64>,
    pub source_ms: Option<u64>,
    pub journal_ms: Option<u64>,
    /// One-shot gate overrides the operator gave (`--allow-shrink`, ...).
    pub overrides: Option<String>,
    /// Actions left out of the run because they wait in escrow.
    pub escrowed: Option<usize>,
    /// A whole sync's fingerprint of what it was planned with (the configuration and
    /// idsync's version): a later cycle that finds nothing changed since may skip planning
    /// (`run::quiet`).
    pub inputs: Option<String>,
    /// How far into the directory's changes the plan went: a mark of the incremental
    /// source's cursor after the read (`run::focus`: the next plan may look only at what
    /// changed since, when the cycle starts from that cursor).
    pub read_to: Option<String>,
}

impl RunCounts {
    /// The counts of a plan's actions.
    pub fn planned(planned: BTreeMap<ActionKind, usize>) -> RunCounts {
        RunCounts {
            planned,
            ..RunCounts::default()
        }
    }

    /// Actions of these kinds planned.
    pub fn of(&self, kinds: &[ActionKind]) -> usize {
        kinds.iter().filter_map(|k| self.planned.get(k)).sum()
    }

    pub fn to_json(&self) -> Value {
        let mut m: Map<String, Value> = self
            .planned
            .iter()
            .map(|(k, n)| (k.as_str().to_string(), json!(n)))
            .collect();
        if let Some(t) = self.tally {
            m.insert("applied".into(), json!(t.applied));
            m.insert("failed".into(), json!(t.failed));
            m.insert("held".into(), json!(t.held));
            m.insert("skipped".into(), json!(t.skipped));
            if t.app_refused > 0 {
                m.insert("app_refused".into(), json!(t.app_refused));
            }
        }
        let mut put = |key: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(key.into(), v);
            }
        };
        put("refused", self.refused.map(|n| json!(n)));
        put("read", self.read.as_ref().map(|r| json!(r)));
        put("app_read", self.app_read.as_ref().map(|r| json!(r)));
        put("read_ms", self.read_ms.map(|n| json!(n)));
        put("apply_ms", self.apply_ms.map(|n| json!(n)));
        put("source_ms", self.source_ms.map(|n| json!(n)));
        put("journal_ms", self.journal_ms.map(|n| json!(n)));
        put("override", self.overrides.as_ref().map(|o| json!(o)));
        put("escrowed", self.escrowed.map(|n| json!(n)));
        put("inputs", self.inputs.as_ref().map(|o| json!(o)));
        put("read_to", self.read_to.as_ref().map(|o| json!(o)));
        Value::Object(m)
    }

    /// Counts as journaled (by this release or an older one).
    pub fn from_json(v: &Value) -> RunCounts {
        let num = |key: &str| v.get(key).and_then(Value::as_u64);
        let count = |key: &str| num(key).map(|n| n as usize);
        let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let planned = ActionKind::ALL
            .into_iter()
            .filter_map(|k| Some((k, count(k.as_str())?)))
            .collect();
        let tally = count("applied").map(|applied| Tally {
            applied,
            failed: count("failed").unwrap_or(0),
            held: count("held").unwrap_or(0),
            skipped: count("skipped").unwrap_or(0),
            app_refused: count("app_refused").unwrap_or(0),
        });
        RunCounts {
            planned,
            tally,
            refused: count("refused"),
            read: text("read"),
            app_read: text("app_read"),
            read_ms: num("read_ms"),
            apply_ms: num("apply_ms"),
            source_ms: num("source_ms"),
            journal_ms: num("journal_ms"),
            overrides: text("override"),
            escrowed: count("escrowed"),
            inputs: text("inputs"),
            read_to: text("read_to"),
        }
    }
}

impl Serialize for RunCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_back_as_they_were_journaled() {
        let c = RunCounts {
            planned: [(ActionKind::Create, 3), (ActionKind::GroupUpdate, 1)].into(),
            tally: Some(Tally {
                applied: 3,
                failed: 1,
                held: 0,
                skipped: 0,
                app_refused: 1,
            }),
            refused: Some(2),
            read: Some("full read (first run)".into()),
            app_read: Some("app listed in full (nothing remembered yet)".into()),
            read_ms: Some(10),
            apply_ms: Some(20),
            source_ms: Some(5),
            journal_ms: Some(1),
            overrides: Some("--allow-shrink".into()),
            escrowed: Some(4),
            inputs: Some("0123abcd".into()),
            read_to: Some("9f86d081".into()),
        };
        let v = c.to_json();
        assert_eq!(v["group-update"], 1);
        assert_eq!(v["override"], "--allow-shrink");
        assert_eq!(RunCounts::from_json(&v), c);
        assert_eq!(RunCounts::from_json(&json!({})), RunCounts::default());
    }
}
