//! rustls client configuration from PEM material: roots, client certificate, insecure mode.
//! PEM is parsed with rustls' own `PemObject` (rustls-pemfile is unmaintained).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::config::TlsOptions;

/// The certificates of a PEM bundle; an empty bundle is an error (a typo'd file, a key by mistake).
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM CERTIFICATE block found".into());
    }
    Ok(certs)
}

/// A private key in any of the PEM forms kubeconfigs carry: PKCS#1 (`RSA PRIVATE KEY`), PKCS#8
/// (`PRIVATE KEY`) and SEC1 (`EC PRIVATE KEY`).
pub fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no usable PEM private key (PKCS#1, PKCS#8 or SEC1): {e}"))
}

/// Roots for kubeconfigs that name no CA: the system bundle, as distroless images ship it.
pub fn system_roots(ssl_cert_file: Option<&str>) -> Result<Vec<CertificateDer<'static>>, String> {
    let path = ssl_cert_file.filter(|p| !p.is_empty()).unwrap_or("/etc/ssl/certs/ca-certificates.crt");
    let pem =
        super::config::read_bounded(Path::new(path)).map_err(|e| format!("reading system CA bundle {path}: {e}"))?;
    parse_certs(&pem).map_err(|e| format!("system CA bundle {path}: {e}"))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn client_config(t: &TlsOptions) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = if t.insecure_skip_verify {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(t.ca_certs.iter().cloned());
        if added == 0 {
            return Err("no usable CA certificate to verify the API server".into());
        }
        builder.with_root_certificates(roots)
    };
    match &t.client_cert {
        Some(cc) => builder
            .with_client_auth_cert(cc.chain.clone(), cc.key.clone_key())
            .map_err(|e| format!("client certificate/key: {e}")),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// `insecure-skip-tls-verify: true`: any server certificate is accepted, but handshake signatures
/// are still checked so the session is at least bound to the presented key.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
