//! Reads what the app says of itself (`/ServiceProviderConfig`, `/Schemas`,
//! `/ResourceTypes`) once per client, on first need: lookups ask whether the app filters,
//! group writes whether members carry `$ref`. An app that serves none of them is taken to
//! be RFC 7644's usual server (`Discovery::default()`).

use reqwest::Method;
use serde_json::Value;

use super::ScimClient;
use crate::app::discovery::Discovery;
use crate::app::TargetError;

impl ScimClient {
    /// What the app announced, read on the first call and kept.
    pub async fn discovery(&self) -> Result<&Discovery, TargetError> {
        self.discovered
            .get_or_try_init(|| async {
                let config = self.document("ServiceProviderConfig").await?;
                let schemas = self.document("Schemas").await?;
                let types = self.document("ResourceTypes").await?;
                Ok(Discovery::from_documents(
                    config.as_ref(),
                    schemas.as_ref(),
                    types.as_ref(),
                ))
            })
            .await
    }

    /// One discovery document, or `None` when the app does not serve it (any answer but a
    /// success, or a body that is not JSON). Only an app that cannot be reached at all, or
    /// refuses the token, fails.
    async fn document(&self, name: &str) -> Result<Option<Value>, TargetError> {
        let url = self.url(name);
        match self.send(Method::GET, url.clone(), None).await {
            Ok(reply) if reply.status.is_success() && reply.body.is_object() => {
                Ok(Some(reply.body))
            }
            Ok(reply) => {
                tracing::debug!(%url, status = reply.status.as_u16(), "the app does not serve this discovery document");
                Ok(None)
            }
            Err(
                e @ (TargetError::Connect { .. }
                | TargetError::Tls { .. }
                | TargetError::Auth { .. }),
            ) => Err(e),
            Err(e) => {
                tracing::debug!(%url, error = %e, "discovery document not read");
                Ok(None)
            }
        }
    }
}
