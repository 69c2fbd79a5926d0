//! Logging in at an OpenID Connect provider (`console.oidc`): the authorization code flow
//! with PKCE, a nonce and a state kept in the session, the ID token's signature, issuer,
//! audience, expiry and nonce checked by the `openidconnect` crate, and the roles claim
//! read from the ID token (or the provider's userinfo when the token lacks it). The
//! provider's discovery document and keys are read on the first login, and again after
//! a failure or an hour.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::config::OidcConfig;

/// Claims beyond the standard ones (the roles claim is one), by name.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Extra(serde_json::Map<String, serde_json::Value>);

impl AdditionalClaims for Extra {}

type Fields = IdTokenFields<
    Extra,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

type Client = openidconnect::Client<
    Extra,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    StandardTokenResponse<Fields, CoreTokenType>,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What a login started and its callback must match, kept in the session between them.
#[derive(Serialize, Deserialize)]
pub struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    redirect: String,
}

/// A provider's user, as the ID token (and userinfo) tell.
#[derive(Debug)]
pub struct Identity {
    pub name: String,
    /// The roles claim's values.
    pub roles: Vec<String>,
}

/// The provider: its client (metadata and keys), fetched when first needed.
pub struct Provider {
    cfg: OidcConfig,
    http: Http,
    client: Mutex<Option<(Instant, Client)>>,
}

/// How long the provider's metadata and keys are used before they are read again (a
/// provider rotates its signing keys).
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Cap on one reply from the provider.
const MAX_REPLY: usize = 1 << 20;

impl Provider {
    pub fn new(cfg: OidcConfig) -> Result<Provider, String> {
        let http = crate::http::client(crate::http::ClientSettings {
            timeout: Duration::from_secs(15),
            ca_file: cfg.ca_file.as_deref(),
            ca_key: "console.oidc.ca_file",
            proxy: None,
        })?;
        Ok(Provider {
            cfg,
            http: Http(http),
            client: Mutex::new(None),
        })
    }

    /// The client, read from the provider's discovery document when not read within the
    /// hour (or `fresh`: after a token failed to verify, the keys may have rotated).
    async fn client(&self, fresh: bool) -> Result<Client, String> {
        let mut held = self.client.lock().await;
        if let Some((at, c)) = held.as_ref() {
            if !fresh && at.elapsed() < METADATA_TTL {
                return Ok(c.clone());
            }
        }
        let issuer = IssuerUrl::new(self.cfg.issuer.as_str().trim_end_matches('/').to_string())
            .map_err(|e| format!("console.oidc.issuer: {e}"))?;
        let meta = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| {
                format!(
                    "the provider's discovery document ({}/.well-known/openid-configuration): {}",
                    self.cfg.issuer.as_str().trim_end_matches('/'),
                    crate::http::error_text(&e)
                )
            })?;
        let client = Client::from_provider_metadata(
            meta,
            ClientId::new(self.cfg.client_id.clone()),
            Some(ClientSecret::new(
                self.cfg.client_secret.expose().to_string(),
            )),
        );
        *held = Some((Instant::now(), client.clone()));
        Ok(client)
    }

    /// Where to send the browser to log in, and what the callback must match.
    pub async fn start(&self, redirect: &str) -> Result<(String, Pending), String> {
        let client = self.client(false).await?;
        let redirect_url = RedirectUrl::new(redirect.to_string())
            .map_err(|e| format!("the console's callback URL `{redirect}`: {e}"))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(self.cfg.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .set_redirect_uri(Cow::Owned(redirect_url))
            .url();
        let pending = Pending {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            redirect: redirect.to_string(),
        };
        Ok((url.to_string(), pending))
    }

    /// The user a callback's code stands for: the code exchanged (with the PKCE verifier),
    /// the ID token verified (with the nonce), the names and roles read.
    pub async fn finish(
        &self,
        pending: Pending,
        state: &str,
        code: &str,
    ) -> Result<Identity, String> {
        if !same(state.as_bytes(), pending.state.as_bytes()) {
            return Err("the login's state does not match this session's (an old or forged link): log in again".into());
        }
        let client = self.client(false).await?;
        let redirect_url = RedirectUrl::new(pending.redirect.clone()).map_err(|e| e.to_string())?;
        let http = &self.http;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| format!("the provider names no token endpoint: {e}"))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .set_redirect_uri(Cow::Owned(redirect_url))
            .request_async(http)
            .await
            .map_err(|e| {
                format!(
                    "the provider refused the code: {}",
                    crate::http::error_text(&e)
                )
            })?;
        let id_token = token.id_token().ok_or(
            "the provider's token reply has no ID token (is `openid` allowed for this client?)",
        )?;
        let nonce = Nonce::new(pending.nonce);
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(c) => c.clone(),
            Err(first) => {
                // The provider may have rotated its keys since they were read.
                let client = self.client(true).await?;
                let verified = id_token
                    .claims(&client.id_token_verifier(), &nonce)
                    .map_err(|_| format!("the ID token did not verify: {first}"))?
                    .clone();
                verified
            }
        };
        // Every claim by name: the standard ones the typed fields hold, and the rest.
        let mut found = claims.additional_claims().0.clone();
        add_standard(
            &mut found,
            claims.subject(),
            claims.preferred_username().map(|u| u.to_string()),
            claims.email().map(|e| e.to_string()),
        );
        let wanted = [&self.cfg.username_claim, &self.cfg.roles_claim];
        if wanted.iter().any(|c| !found.contains_key(c.as_str())) {
            // Claims the ID token lacks may be in userinfo (for the same subject).
            let more = self
                .user_info(&client, token.access_token(), claims.subject())
                .await;
            for (k, v) in more {
                found.entry(k).or_insert(v);
            }
        }
        let name = found
            .get(&self.cfg.username_claim)
            .and_then(|v| v.as_str())
            .map(String::from)
            .ok_or_else(|| {
                format!(
                    "the provider tells no `{}` claim (not in the ID token nor userinfo): set console.oidc.username_claim (sub, email, ...)",
                    self.cfg.username_claim
                )
            })?;
        let roles = match found.get(&self.cfg.roles_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        Ok(Identity { name, roles })
    }

    /// Every claim userinfo tells of `subject` (empty, and logged, when it cannot be read).
    async fn user_info(
        &self,
        client: &Client,
        access: &openidconnect::AccessToken,
        subject: &openidconnect::SubjectIdentifier,
    ) -> serde_json::Map<String, serde_json::Value> {
        let Ok(req) = client.user_info(access.clone(), Some(subject.clone())) else {
            return Default::default();
        };
        let info: Result<UserInfoClaims<Extra, CoreGenderClaim>, _> =
            req.request_async(&self.http).await;
        match info {
            Ok(info) => {
                let mut more = info.additional_claims().0.clone();
                add_standard(
                    &mut more,
                    info.subject(),
                    info.preferred_username().map(|u| u.to_string()),
                    info.email().map(|e| e.to_string()),
                );
                more
            }
            Err(e) => {
                tracing::warn!(error = %crate::http::error_text(&e), "the provider's userinfo could not be read");
                Default::default()
            }
        }
    }
}

/// The standard claims a name may come from, by name, unless already there.
fn add_standard(
    to: &mut serde_json::Map<String, serde_json::Value>,
    sub: &str,
    preferred_username: Option<String>,
    email: Option<String>,
) {
    let values = [
        ("sub", Some(sub.to_string())),
        ("preferred_username", preferred_username),
        ("email", email),
    ];
    for (k, v) in values {
        if let Some(v) = v {
            to.entry(k.to_string())
                .or_insert(serde_json::Value::String(v));
        }
    }
}

/// Two short secrets compared in constant time.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// idsync's HTTP client for the OIDC flow: no redirect followed, no proxy from the
/// environment, each reply capped.
struct Http(reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = SendError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, SendError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, req: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(send(self.0.clone(), req))
    }
}

async fn send(
    http: reqwest::Client,
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, SendError> {
    let (parts, body) = req.into_parts();
    let url = parts.uri.to_string();
    let mut builder = http.request(parts.method, &url).body(body);
    for (k, v) in parts.headers.iter() {
        builder = builder.header(k, v);
    }
    let resp = builder
        .send()
        .await
        .map_err(|e| SendError(crate::http::transport_text(&e)))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = match crate::http::read_body(resp, MAX_REPLY).await {
        Ok(crate::http::Body::Whole(b)) => b,
        Ok(crate::http::Body::Over { .. }) => {
            return Err(SendError(format!(
                "{url}: the reply is larger than {MAX_REPLY} bytes"
            )))
        }
        Err(e) => return Err(SendError(crate::http::transport_text(&e))),
    };
    let mut out = openidconnect::http::Response::builder().status(status);
    for (k, v) in headers.iter() {
        out = out.header(k, v);
    }
    out.body(body).map_err(|e| SendError(e.to_string()))
}

#[derive(Debug)]
pub struct SendError(String);

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SendError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_claims_keep_what_the_standard_ones_do_not_name() {
        let claims: openidconnect::IdTokenClaims<Extra, CoreGenderClaim> =
            serde_json::from_value(serde_json::json!({
                "iss": "https://login.example.org", "aud": "idsync", "sub": "u1",
                "exp": 4_000_000_000u64, "iat": 1_700_000_000u64,
                "preferred_username": "abe", "groups": ["research-leads", "staff"]
            }))
            .unwrap();
        assert_eq!(claims.preferred_username().unwrap().as_str(), "abe");
        assert_eq!(
            claims.additional_claims().0["groups"],
            serde_json::json!(["research-leads", "staff"])
        );
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
