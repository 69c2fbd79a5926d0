//! An action's photo: the one planned, uploaded or removed; a refusal the app means for
//! good remembered as a part (`escrow::parts`) while the rest of the action stands.

use chrono::Utc;

use super::Context;
use crate::app::{AccountWriter, TargetError};
use crate::journal::{Journal, JournalError, Status};
use crate::model::AccountId;
use crate::photo::Photo;
use crate::plan::{Action, Field};

/// The photo an action uploads (`Some(None)` = removes), checked against what was planned.
pub(super) fn planned_photo<'c>(
    action: &Action,
    ctx: &'c Context<'_>,
) -> Result<Option<Option<&'c Photo>>, TargetError> {
    let Some(change) = action.changes.iter().find(|c| c.field == Field::Photo) else {
        return Ok(None);
    };
    let Some(after) = &change.after else {
        return Ok(Some(None));
    };
    let photo = action
        .anchor
        .as_ref()
        .and_then(|a| ctx.photos.get(a))
        .filter(|p| crate::photo::short(&p.sha256) == *after);
    match photo {
        Some(p) => Ok(Some(Some(p))),
        None => Err(TargetError::Stale {
            detail: format!(
                "photo {after} of {} is no longer the person's photo; the next run plans again",
                action.user_name
            ),
        }),
    }
}

/// Uploads or removes the planned photo; returns the link's new `photo_hash`. An app that
/// refuses the photo itself (a 4xx such as a read-only `photos`, RFC 7644 3.5.2) leaves the
/// rest of the action standing: a `notice`; a refusal for good (`escrow::refuses_for_good`)
/// is remembered (`refused`), anything else is tried again next run.
pub(super) async fn sync_photo<W: AccountWriter>(
    writer: &W,
    id: &AccountId,
    current: &serde_json::Value,
    planned: Option<Option<&Photo>>,
    previous: Option<String>,
    part: &mut Part,
) -> Result<Option<String>, TargetError> {
    let Some(photo) = planned else {
        return Ok(previous);
    };
    match writer.set_photo(id, current, photo).await {
        Ok(()) => Ok(photo.map(|p| p.sha256.clone())),
        Err(TargetError::Http {
            status,
            detail,
            scim_type,
            ..
        }) if crate::escrow::refuses_for_good(status, scim_type.as_deref()) => {
            let why = match scim_type {
                Some(t) => format!("{status} {t}: {detail}"),
                None => format!("{status}: {detail}"),
            };
            part.notice = Some(format!(
                "the app refused the photo for good ({why}); the rest of the action stands; the photo is not sent again until it changes, after a back-off (1 h, 4 h, 16 h), when the app's schema changes or on `sync --full`{}",
                photo_hint(&why)
            ));
            part.refused = Some(why);
            Ok(previous)
        }
        Err(TargetError::Http { status, detail, .. }) if refuses(status) => {
            part.notice = Some(format!(
                "the app refused the photo ({status}: {detail}); the rest of the action stands, the photo is tried again next run"
            ));
            Ok(previous)
        }
        Err(e) => Err(e),
    }
}

/// What to do about a refused photo, where the app's answer says what it wants.
fn photo_hint(why: &str) -> &'static str {
    let lower = why.to_ascii_lowercase();
    if lower.contains("mutability") || lower.contains("read-only") || lower.contains("readonly") {
        "; the app's photos are read-only: set its `target.photo: none`"
    } else if lower.contains("invalidvalue") || lower.contains("url") || lower.contains("reference")
    {
        "; the app may want a URL, not a data: URI: set its `target.photo: none`, or `{ put: ... }` / `{ post: ... }` where it has an upload endpoint (`idsync check --connect` reads its schema)"
    } else {
        ""
    }
}

/// What became of an action's optional parts (its photo): a notice for the run, and the
/// app's reason when it refused the part for good.
#[derive(Default)]
pub(crate) struct Part {
    pub(super) notice: Option<String>,
    refused: Option<String>,
}

/// A 4xx that refuses what was sent (not a token, rate or timeout problem).
fn refuses(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 401 | 404 | 408 | 429)
}

/// Remembers a photo the app refused for good (an escrow record of the part, counted up
/// at each refusal), or forgets it once the app took it. The action is `refused` when the
/// photo was all it wrote, `applied` otherwise.
pub(super) fn remember_part(
    journal: &Journal,
    action: &Action,
    ctx: &Context<'_>,
    part: &Part,
) -> Result<Status, JournalError> {
    let key = crate::escrow::part_key(action, &Field::Photo);
    let Some(why) = &part.refused else {
        if let Some(key) = key.filter(|k| ctx.escrowed.contains_key(k)) {
            journal.escrow_clear(&key)?;
        }
        return Ok(Status::Applied);
    };
    if let Some(key) = key {
        let e = journal.escrow_failure(&key, &action.user_name, "photo", why, Utc::now())?;
        tracing::info!(user = %action.user_name, refusals = e.failures, next_try = %e.next_try, "the app refused the photo for good: remembered");
    }
    Ok(match crate::escrow::only(action, &Field::Photo) {
        true => Status::Refused,
        false => Status::Applied,
    })
}
