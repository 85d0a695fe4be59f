use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::SmtpConfig;

/// The TLS acceptor for `STARTTLS`, if the config names a certificate and key.
pub fn tls_acceptor(config: &SmtpConfig) -> Result<Option<TlsAcceptor>, String> {
    // An unset `${VAR:-}` leaves an empty string: that means "not configured".
    let set = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let (Some(cert), Some(key)) = (set(&config.tls_cert), set(&config.tls_key)) else {
        if config.require_tls {
            return Err("smtp.require_tls needs smtp.tls_cert and smtp.tls_key".into());
        }
        return Ok(None);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("smtp.tls_cert: {cert}: {e}"))?;
    let key =
        PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("smtp.tls_key: {key}: {e}"))?;
    let server = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("smtp TLS: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("smtp.tls_cert: {e}"))?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}
