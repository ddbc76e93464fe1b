//! A throwaway certificate authority for TLS tests: a CA, a server certificate for
//! `localhost`/`127.0.0.1` and client certificates, as PEM.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::HarnessError;

/// A test CA with a server certificate for the names it was made for.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM), for `sslrootcert` and `ssl_ca_file`.
    pub ca_pem: String,
    /// The server certificate (PEM).
    pub server_cert_pem: String,
    /// The server key (PEM).
    pub server_key_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

fn err(what: &str, e: rcgen::Error) -> HarnessError {
    HarnessError(format!("test CA: {what}: {e}"))
}

impl TestCa {
    /// A CA and a server certificate whose subjectAltNames are `server_names` (DNS names
    /// or IP addresses).
    pub fn new(server_names: &[&str]) -> Result<TestCa, HarnessError> {
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| err("CA", e))?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "barkeep test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(|e| err("CA key", e))?;
        let issuer = CertifiedIssuer::self_signed(ca, ca_key).map_err(|e| err("CA cert", e))?;
        let names: Vec<String> = server_names.iter().map(|s| s.to_string()).collect();
        let mut server = CertificateParams::new(names).map_err(|e| err("server", e))?;
        server.distinguished_name.push(
            DnType::CommonName,
            server_names.first().copied().unwrap_or("server"),
        );
        let server_key = KeyPair::generate().map_err(|e| err("server key", e))?;
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .map_err(|e| err("server cert", e))?;
        Ok(TestCa {
            ca_pem: issuer.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            issuer,
        })
    }

    /// A client certificate with common name `user` (for `clientcert=verify-full`):
    /// `(certificate PEM, key PEM)`.
    pub fn client_cert(&self, user: &str) -> Result<(String, String), HarnessError> {
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| err("client", e))?;
        p.distinguished_name.push(DnType::CommonName, user);
        let key = KeyPair::generate().map_err(|e| err("client key", e))?;
        let cert = p
            .signed_by(&key, &self.issuer)
            .map_err(|e| err("client cert", e))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}
