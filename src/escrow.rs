//! Escrow (Entra's word): an action that failed for a reason that will not pass by itself
//! (the app refused it with a 4xx other than 408/429, or answered a 500-like error to every
//! try) is not sent again every cycle. It waits with a growing back-off (1 h, 4 h, 16 h),
//! and after `QUARANTINE_AFTER` failures it is quarantined: held for an operator
//! (`idsync approve` tries it again, `reject` drops it for that run). Waiting and
//! quarantined actions never fail a run; the rest of the run proceeds. A different write
//! for the same person (the directory changed) is a new action and is tried at once; one
//! that applies clears its escrow. Pure: the journal keeps the records (`journal::escrow`).

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::app::TargetError;
use crate::plan::{Action, Notice, Plan};

mod parts;
pub use parts::{
    leave_refused_parts, only, only_waiting_parts, part_key, refuses_for_good, PART_PREFIX,
};

/// Failures after which an action is held for an operator instead of tried again.
pub const QUARANTINE_AFTER: u32 = 4;

/// One escrowed action as the journal keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escrowed {
    pub key: String,
    pub user_name: String,
    pub kind: String,
    pub failures: u32,
    pub first_failed: DateTime<Utc>,
    pub last_failed: DateTime<Utc>,
    pub next_try: DateTime<Utc>,
    /// The app's last answer.
    pub reason: String,
}

impl Escrowed {
    pub fn quarantined(&self) -> bool {
        self.failures >= QUARANTINE_AFTER
    }
}

/// The same action re-planned has the same key: its kind, person, account and what it
/// writes. Another write for the same person has another key.
pub fn key(action: &Action) -> String {
    let mut h = Sha256::new();
    h.update(action.kind.to_string());
    h.update([0]);
    h.update(action.anchor.as_ref().map(|a| a.as_str()).unwrap_or(""));
    h.update([0]);
    h.update(action.account_id.as_ref().map(|a| a.as_str()).unwrap_or(""));
    for c in &action.changes {
        h.update([0]);
        h.update(c.field.to_string());
        h.update([1]);
        h.update(c.after.as_deref().unwrap_or("\u{0}none"));
    }
    for m in &action.members {
        h.update([2]);
        h.update(if m.add { "+" } else { "-" });
        h.update(
            m.anchor
                .as_ref()
                .map(|a| a.as_str())
                .unwrap_or(&m.user_name),
        );
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True for a failure that sending the same request again will not cure: a refusal (4xx
/// but 408 and 429), or an error the app gave this request every time. 502, 503 and 504
/// say the app (or its gateway) is unavailable, not that the request is wrong: those pass
/// by themselves, and an app that keeps giving them rests as a whole (`app_rest`).
pub fn lasting(e: &TargetError) -> bool {
    let server_error = |s: u16| s >= 500 && ![502, 503, 504].contains(&s);
    match e {
        TargetError::Http { status, .. } => {
            (400..500).contains(status) && ![408, 429].contains(status) || server_error(*status)
        }
        // Every try answered the same 5xx (a 429 or a transport error passes by itself).
        TargetError::Exhausted {
            status: Some(s), ..
        } => server_error(*s),
        TargetError::Taken { .. } => true,
        _ => false,
    }
}

/// When an action that has now failed `failures` times may be tried again.
pub fn next_try(failures: u32, now: DateTime<Utc>) -> DateTime<Utc> {
    let hours = 4i64.saturating_pow(failures.saturating_sub(1).min(6));
    now + Duration::hours(hours)
}

/// Lays the escrow over a plan: a quarantined action is held for an operator, one still
/// waiting is left out (a notice says until when). Returns how many of each.
pub fn apply_to_plan(
    plan: &mut Plan,
    escrowed: &std::collections::BTreeMap<String, Escrowed>,
    now: DateTime<Utc>,
) -> (usize, usize) {
    if escrowed.is_empty() {
        return (0, 0);
    }
    let (mut held, mut waiting) = (0, 0);
    let mut notices = Vec::new();
    plan.actions.retain_mut(|a| {
        let Some(e) = escrowed.get(&key(a)) else {
            return true;
        };
        if e.quarantined() {
            held += 1;
            a.held.get_or_insert_with(|| {
                format!(
                    "quarantined: failed {} times since {} ({}); `idsync approve` tries it again",
                    e.failures,
                    e.first_failed.format("%Y-%m-%d %H:%M UTC"),
                    e.reason
                )
            });
            return true;
        }
        if e.next_try <= now {
            return true;
        }
        waiting += 1;
        notices.push(Notice {
            user_name: Some(a.user_name.clone()),
            anchor: a.anchor.clone(),
            account_id: a.account_id.clone(),
            message: format!(
                "escrowed {}: failed {} time(s) ({}); next try after {}",
                a.kind,
                e.failures,
                e.reason,
                e.next_try.format("%Y-%m-%d %H:%M UTC")
            ),
        });
        false
    });
    plan.notices.extend(notices);
    plan.stats.escrowed += waiting;
    (held, waiting)
}

/// Failed runs in a row after which an app rests.
pub const APP_REST_AFTER: usize = 3;

/// One of an app's recent apply runs, newest first: whether it failed, when it ended, why.
pub struct RecentRun<'r> {
    pub failed: bool,
    pub finished: DateTime<Utc>,
    pub reason: &'r str,
}

/// An app whose last `APP_REST_AFTER` or more scheduled runs all failed (down, token
/// revoked) rests: its scheduled cycles are skipped until two schedule periods after the
/// last failure, then four, eight... at most a day. `Some((until, why))` while it rests. A
/// manual `idsync sync` always runs; one good run ends the rest.
pub fn app_rest(
    recent: &[RecentRun<'_>],
    period: Duration,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, String)> {
    let failed = recent.iter().take_while(|r| r.failed).count();
    if failed < APP_REST_AFTER {
        return None;
    }
    let last = &recent[0];
    let doublings = (failed - APP_REST_AFTER + 1).min(16) as u32;
    let wait = (period * 2i32.saturating_pow(doublings)).min(Duration::hours(24));
    let until = last.finished + wait;
    (now < until).then(|| {
        (
            until,
            format!(
                "its last {failed} runs failed (last: {}); scheduled runs rest until {}",
                last.reason,
                until.format("%Y-%m-%d %H:%M UTC")
            ),
        )
    })
}

#[cfg(test)]
mod tests;
