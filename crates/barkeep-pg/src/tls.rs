//! TLS with rustls, following libpq's `sslmode` semantics, and the `tls-server-end-point`
//! channel-binding data SCRAM-SHA-256-PLUS needs.
//!
//! * `require`: encrypt; the server certificate is checked only when a root certificate
//!   file exists (libpq's backwards-compatible rule: it then behaves as `verify-ca`).
//! * `verify-ca`: the chain must lead to a certificate of `sslrootcert`.
//! * `verify-full`: as verify-ca, and the host name must match the certificate's
//!   subjectAltName (DNS name or IP address).
//!
//! `sslrootcert=system` uses the operating system's trust store and implies host name
//! checks, as in libpq 16+.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::conninfo::{ConnParams, SslMode};

/// How the server certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Encryption only.
    None,
    /// Chain to a trusted root.
    Chain,
    /// Chain and host name.
    ChainAndName,
}

/// Builds the rustls client configuration for `params` (root certificates, client
/// certificate, verification level). Errors are phrased for the operator.
pub(crate) fn client_config(params: &ConnParams) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let system = params
        .sslrootcert
        .as_deref()
        .is_some_and(|p| p == Path::new("system"));
    let root_file = params
        .sslrootcert
        .as_deref()
        .filter(|p| !system && p.exists());
    let check = match params.sslmode {
        SslMode::VerifyFull => Check::ChainAndName,
        SslMode::VerifyCa if system => {
            return Err(
                "sslrootcert=system needs sslmode=verify-full (as in libpq): a public CA signs certificates for anybody's host names".into(),
            );
        }
        SslMode::VerifyCa => Check::Chain,
        _ if system => Check::ChainAndName,
        _ if root_file.is_some() => Check::Chain,
        _ => Check::None,
    };
    let mut roots = RootCertStore::empty();
    if check != Check::None {
        if system {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // Unparseable system certificates are skipped, as OpenSSL does.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("sslrootcert=system: no trusted certificates found in the operating system's store".into());
            }
        } else {
            let Some(file) = root_file else {
                let shown = params
                    .sslrootcert
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "~/.postgresql/root.crt".into());
                return Err(format!(
                    "root certificate file \"{shown}\" does not exist; provide it (sslrootcert), use sslrootcert=system, or use sslmode=require to encrypt without checking the server's certificate"
                ));
            };
            let certs = read_certs(file)?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "root certificate file \"{}\" holds no usable certificate",
                    file.display()
                ));
            }
        }
    }

    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::None => Arc::new(AnyCertificate(provider.clone())),
        Check::Chain | Check::ChainAndName => {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("cannot use the root certificates: {e}"))?;
            if check == Check::Chain {
                Arc::new(IgnoreHostName(webpki))
            } else {
                webpki
            }
        }
    };

    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match client_identity(params)? {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("client certificate/key: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name the server certificate is checked against (and sent as SNI).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|_| format!("`{host}` is not a valid host name for TLS"))
}

fn read_certs(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("cannot read certificate file \"{}\": {e}", file.display()))?
        .collect();
    let certs =
        certs.map_err(|e| format!("cannot read certificate file \"{}\": {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certificate file \"{}\" holds no PEM certificate",
            file.display()
        ));
    }
    Ok(certs)
}

/// The client certificate chain and key, when `sslcert` exists (libpq silently skips a
/// missing certificate file). The key file must not be readable by group or others unless
/// it is owned by root and at most 0640, as libpq requires.
#[allow(clippy::type_complexity)]
fn client_identity(
    params: &ConnParams,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
    let Some(cert) = params.sslcert.as_deref().filter(|p| p.exists()) else {
        return Ok(None);
    };
    let certs = read_certs(cert)?;
    let Some(key) = params.sslkey.as_deref() else {
        return Err(format!(
            "certificate \"{}\" present but no sslkey given",
            cert.display()
        ));
    };
    check_key_permissions(key)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read private key file \"{}\": {e}", key.display()))?;
    Ok(Some((certs, key)))
}

fn check_key_permissions(key: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(key).map_err(|e| {
        format!(
            "certificate present, but not private key file \"{}\": {e}",
            key.display()
        )
    })?;
    if !meta.is_file() {
        return Err(format!(
            "private key file \"{}\" is not a regular file",
            key.display()
        ));
    }
    let mode = meta.mode() & 0o777;
    let ok = if meta.uid() == 0 {
        mode & 0o037 == 0
    } else {
        mode & 0o077 == 0
    };
    if !ok {
        return Err(format!(
            "private key file \"{}\" has group or world access (mode {mode:04o}); it must be u=rw (0600) or less if owned by the current user, or u=rw,g=r (0640) or less if owned by root",
            key.display()
        ));
    }
    Ok(())
}

/// `sslmode=require` without a root certificate: encryption without authentication of the
/// server, exactly what libpq does. Handshake signatures are still verified.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the full chain check, minus the host name.
#[derive(Debug)]
struct IgnoreHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for IgnoreHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// RFC 5929 `tls-server-end-point` data: the hash of the server's certificate (DER) with
/// the hash function of its signature algorithm, MD5 and SHA-1 replaced by SHA-256 — what
/// PostgreSQL computes on its side.
pub(crate) fn server_end_point(cert_der: &[u8]) -> Result<Vec<u8>, String> {
    use sha2::Digest;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("cannot parse the server certificate: {e}"))?;
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    let hash = match oid.as_str() {
        // md5/sha1/sha256 WithRSAEncryption, ecdsa-with-SHA1/SHA256, dsa-with-sha1/sha256
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.10045.4.1"
        | "1.2.840.10045.4.3.2"
        | "1.2.840.10040.4.3"
        | "2.16.840.1.101.3.4.3.2" => sha2::Sha256::digest(cert_der).to_vec(),
        "1.2.840.113549.1.1.14" | "1.2.840.10045.4.3.1" | "2.16.840.1.101.3.4.3.1" => {
            sha2::Sha224::digest(cert_der).to_vec()
        }
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => sha2::Sha384::digest(cert_der).to_vec(),
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => sha2::Sha512::digest(cert_der).to_vec(),
        other => {
            return Err(format!(
                "the server certificate's signature algorithm ({other}) has no hash usable for tls-server-end-point channel binding"
            ));
        }
    };
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_permissions_follow_libpq() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("k.key");
        std::fs::File::create(&key)
            .expect("create key")
            .write_all(b"x")
            .expect("write key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(check_key_permissions(&key).is_ok());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = check_key_permissions(&key).expect_err("must fail");
        assert!(err.contains("group or world access"), "{err}");
        assert!(err.contains("k.key"), "{err}");
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        let env_params = |mode: &str, root: &str| {
            let s = format!("host=db sslmode={mode} sslrootcert={root}");
            crate::conninfo::resolve(&s, &crate::conninfo::ProcessEnv).expect("conninfo")
        };
        let err = client_config(&env_params("verify-full", "/nonexistent/root.crt"))
            .expect_err("must fail");
        assert!(err.contains("/nonexistent/root.crt"), "{err}");
        assert!(err.contains("does not exist"), "{err}");
        // require without a root file: encryption only.
        assert!(client_config(&env_params("require", "/nonexistent/root.crt")).is_ok());
        let err = client_config(&env_params("verify-ca", "system")).expect_err("must fail");
        assert!(err.contains("verify-full"), "{err}");
    }

    #[test]
    fn end_point_hash_rejects_garbage() {
        assert!(server_end_point(b"not a certificate").is_err());
    }
}
