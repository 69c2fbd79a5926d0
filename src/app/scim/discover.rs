//! Reads what the app says of itself (`/ServiceProviderConfig`, `/Schemas`,
//! `/ResourceTypes`) once per client, on first need (lookups ask whether the app filters,
//! group writes whether members carry `$ref`), unless the documents were handed in
//! (`preload`: the journal keeps them a day). An app that serves none of them is taken to
//! be RFC 7644's usual server (`Discovery::default()`).

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ScimClient;
use crate::app::discovery::Discovery;
use crate::app::TargetError;

/// The three documents as the app served them (`None`: not served).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Documents {
    pub config: Option<Value>,
    pub schemas: Option<Value>,
    pub resource_types: Option<Value>,
}

/// What discovery came to, and where from.
pub(super) struct Discovered {
    documents: Documents,
    discovery: Discovery,
    /// Read from the app by this client (not handed in).
    fetched: bool,
}

impl Discovered {
    fn new(documents: Documents, fetched: bool) -> Discovered {
        let discovery = Discovery::from_documents(
            documents.config.as_ref(),
            documents.schemas.as_ref(),
            documents.resource_types.as_ref(),
        );
        Discovered {
            documents,
            discovery,
            fetched,
        }
    }
}

impl ScimClient {
    /// What the app announced, read on the first call and kept.
    pub async fn discovery(&self) -> Result<&Discovery, TargetError> {
        Ok(&self.discovered().await?.discovery)
    }

    /// The documents, when this client read them from the app (to be kept).
    pub async fn fetched_documents(&self) -> Result<Option<&Documents>, TargetError> {
        let d = self.discovered().await?;
        Ok(d.fetched.then_some(&d.documents))
    }

    /// Hands in documents read earlier (the journal's): no request is made for them.
    pub fn preload(&self, documents: Documents) {
        let _ = self.discovered.set(Discovered::new(documents, false));
    }

    async fn discovered(&self) -> Result<&Discovered, TargetError> {
        self.discovered
            .get_or_try_init(|| async {
                let documents = Documents {
                    config: self.document("ServiceProviderConfig").await?,
                    schemas: self.document("Schemas").await?,
                    resource_types: self.document("ResourceTypes").await?,
                };
                Ok(Discovered::new(documents, true))
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
