//! A throw-away CA and a serving certificate for 127.0.0.1, ::1 and localhost, generated at start.
//! The CA is kept for the life of the handle so a restart serves the same chain.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

/// A client certificate issued by the test CA: the apiserver maps its CommonName to the user.
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub user: String,
    pub cert_pem: String,
    /// PKCS#8 PEM (ECDSA P-256).
    pub key_pem: String,
    pub der: Vec<u8>,
}

pub struct Certs {
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key_der: Vec<u8>,
}

impl Certs {
    pub fn generate() -> Result<Self, String> {
        let err = |what: &str, e: rcgen::Error| format!("generating {what}: {e}");
        let ca_key = KeyPair::generate().map_err(|e| err("CA key", e))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| err("CA params", e))?;
        ca_params.distinguished_name.push(DnType::CommonName, "kubemirror-testkit-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| err("CA certificate", e))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().map_err(|e| err("server key", e))?;
        let sans = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
        let mut params = CertificateParams::new(sans).map_err(|e| err("server params", e))?;
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        let server_cert = params.signed_by(&server_key, &issuer).map_err(|e| err("server certificate", e))?;

        Ok(Certs {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            issuer,
            server_chain: vec![server_cert.der().clone()],
            server_key_der: server_key.serialize_der(),
        })
    }

    pub fn issue_client(&self, user: &str) -> Result<ClientCert, String> {
        let err = |e: rcgen::Error| format!("issuing the client certificate of {user}: {e}");
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        Ok(ClientCert {
            user: user.to_string(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }

    /// Client certificates are optional (bearer tokens are the default), but when sent they must
    /// chain to the test CA.
    fn client_verifier(&self) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).map_err(|e| format!("CA into the client root store: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("client certificate verifier: {e}"))
    }

    /// rustls server config offering h2 then http/1.1 by ALPN, as kube-apiserver does.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_client_cert_verifier(self.client_verifier()?)
            .with_single_cert(self.server_chain.clone(), key)
            .map_err(|e| format!("TLS server certificate: {e}"))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}
