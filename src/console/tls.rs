//! The console over HTTPS (`console.tls`): rustls with idsync's crypto provider, the
//! certificate and key read from PEM files at start and again on SIGHUP (a renewed
//! certificate is served without a restart; a broken one keeps the old in place).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ConsoleTls;

/// The server's TLS settings from the PEM files, naming the file at fault.
pub fn server_config(tls: &ConsoleTls) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = certs(&tls.cert_file)?;
    let key = key(&tls.key_file)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            anyhow::anyhow!(
                "console.tls: {} and {} do not make a certificate and its key: {e}",
                tls.cert_file.display(),
                tls.key_file.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("console.tls.cert_file {}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("console.tls.cert_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "console.tls.cert_file {}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(certs)
}

fn key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("console.tls.key_file {}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| anyhow::anyhow!("console.tls.key_file {}: {e}", path.display()))?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "console.tls.key_file {}: no PEM private key in it (PKCS#8, PKCS#1 or SEC1)",
                path.display()
            )
        })
}

/// Serves `service` over HTTPS on `listen` until the process ends, reloading the
/// certificate on SIGHUP.
pub async fn serve(
    listen: SocketAddr,
    tls: &ConsoleTls,
    service: IntoMakeServiceWithConnectInfo<axum::Router, SocketAddr>,
) -> anyhow::Result<()> {
    let config = RustlsConfig::from_config(server_config(tls)?);
    let reload = config.clone();
    let files = tls.clone();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match server_config(&files) {
                Ok(c) => {
                    reload.reload_from_config(c);
                    tracing::info!("console certificate reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "console certificate not reloaded; the old one stays")
                }
            }
        }
    });
    tracing::info!(%listen, "serving the console (HTTPS)");
    axum_server::bind_rustls(listen, config)
        .serve(service)
        .await?;
    Ok(())
}
