//! One user read by id (`GET /users/{id}`): what confirms a delta's removals and disables
//! before anyone is suspended (`source::confirm`).

use serde_json::Value;

use super::{user_from, GraphReader};
use crate::http::snippet;
use crate::model::DirectoryUser;
use crate::source::SourceError;

impl GraphReader {
    /// Each remembered person read again by id (`GET /users/{id}`), as they are now:
    /// `None` when Graph answers 404 (deleted). What confirms a delta's removals and
    /// disables (`source::confirm`); the photo is the remembered one (it changes outside
    /// the user's properties).
    pub async fn read_people_at(
        &self,
        people: &[&DirectoryUser],
    ) -> Result<Vec<Option<DirectoryUser>>, SourceError> {
        let mut out = Vec::with_capacity(people.len());
        for p in people {
            let mut url = self.api(&format!("users/{}", p.anchor.as_str()));
            url.query_pairs_mut().append_pair("$select", &self.select());
            let raw = self
                .send_get(&url, None, self.cfg.max_response_bytes)
                .await
                .map_err(super::transport::get_failed)?;
            if raw.status == reqwest::StatusCode::NOT_FOUND {
                out.push(None);
                continue;
            }
            if !raw.status.is_success() || raw.over.is_some() {
                return Err(SourceError::Api {
                    url: url.to_string(),
                    detail: format!(
                        "reading one user to confirm a removal failed with {}: {}",
                        raw.status,
                        snippet(&String::from_utf8_lossy(&raw.bytes))
                    ),
                });
            }
            let item: Value = serde_json::from_slice(&raw.bytes).map_err(|e| SourceError::Api {
                url: url.to_string(),
                detail: format!("the user is not JSON: {e}"),
            })?;
            let mut user = user_from(&item)?;
            user.photo = p.photo.clone();
            out.push(Some(user));
        }
        Ok(out)
    }
}
