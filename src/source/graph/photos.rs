//! Graph photos: each enabled person's `/users/{id}/photo/$value`, conditionally (ETag)
//! where the app already has the photo last read, cut at `target.photo_max_bytes`.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;

use super::transport::GetError;
use super::GraphReader;
use crate::http::{path_segment, snippet};
use crate::model::{Anchor, DirectoryUser};
use crate::photo::Photo;
use crate::source::SourceError;

impl GraphReader {
    /// Photos in flight at once.
    const PHOTO_CONCURRENCY: usize = 8;

    /// One person's photo: 200 = these bytes, 304 = unchanged since `known` (the app has
    /// it), 404 = none.
    async fn photo(
        &self,
        anchor: &Anchor,
        known: Option<&Photo>,
    ) -> Result<Option<Photo>, SourceError> {
        let url = self.api(&format!(
            "users/{}/photo/$value",
            path_segment(anchor.as_str())
        ));
        let tag = known.and_then(|p| p.etag.as_deref());
        let raw = match self.send_get(&url, tag, self.cfg.photo_max_bytes).await {
            Ok(r) => r,
            Err(GetError::Failed(e)) => return Err(e),
            Err(GetError::Stale(why)) => {
                return Err(SourceError::Api {
                    url: url.to_string(),
                    detail: why,
                })
            }
        };
        match raw.status {
            StatusCode::NOT_MODIFIED if known.is_some() => Ok(known.cloned()),
            StatusCode::NOT_FOUND => Ok(None),
            // Cut at target.photo_max_bytes: a notice for this person, never a failed read.
            s if s.is_success() && raw.over.is_some() => Ok(Some(Photo::oversized(
                raw.bytes,
                raw.over.unwrap_or_default(),
                raw.etag,
            ))),
            s if s.is_success() && !raw.bytes.is_empty() => {
                let mut p = Photo::new(raw.bytes);
                p.etag = raw.etag;
                Ok(Some(p))
            }
            s if s.is_success() => Ok(None),
            s => Err(SourceError::Api {
                url: url.to_string(),
                detail: format!(
                    "{s} reading a photo: {}",
                    snippet(&String::from_utf8_lossy(&raw.bytes))
                ),
            }),
        }
    }

    /// Reads the photo of every enabled person, conditionally where the app already has the
    /// photo last read (its ETag), and returns the anchors whose photo changed.
    pub(super) async fn read_photos(
        &self,
        users: &mut [DirectoryUser],
        app_has: &BTreeMap<Anchor, String>,
    ) -> Result<BTreeSet<Anchor>, SourceError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let jobs: Vec<(usize, Anchor, Option<Photo>)> = users
            .iter()
            .enumerate()
            .filter(|(_, u)| !u.disabled)
            .map(|(i, u)| {
                // Ask "changed since?" only when the app has exactly the photo remembered;
                // otherwise the bytes are needed.
                let known = u
                    .photo
                    .clone()
                    .filter(|p| app_has.get(&u.anchor) == Some(&p.sha256));
                (i, u.anchor.clone(), known)
            })
            .collect();
        let results: Vec<(usize, Option<Photo>)> = stream::iter(jobs)
            .map(|(i, anchor, known)| async move {
                let photo = self.photo(&anchor, known.as_ref()).await?;
                Ok::<_, SourceError>((i, photo))
            })
            .buffer_unordered(Self::PHOTO_CONCURRENCY)
            .try_collect()
            .await?;
        let mut changed = BTreeSet::new();
        for (i, photo) in results {
            let u = &mut users[i];
            let same = match (&u.photo, &photo) {
                (Some(a), Some(b)) => a.sha256 == b.sha256 && a.etag == b.etag,
                (None, None) => true,
                _ => false,
            };
            if !same {
                changed.insert(u.anchor.clone());
            }
            u.photo = photo;
        }
        Ok(changed)
    }
}
