//! rustls setups for libpq's `require`, `verify-ca` and `verify-full`.

use std::{path::Path, str::FromStr, sync::Arc};

use dbsync_workflow::StepError;
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    client::WebPkiServerVerifier,
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    pki_types::{CertificateDer, ServerName, UnixTime},
    CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How the connection is protected, with libpq's names and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// Encrypted, server certificate not checked.
    Require,
    /// Encrypted, certificate chain checked against the CA bundle, host name not.
    VerifyCa,
    /// Encrypted, chain and host name checked.
    VerifyFull,
}

impl FromStr for TlsMode {
    type Err = StepError;
    fn from_str(s: &str) -> Result<Self, StepError> {
        match s {
            "disable" => Ok(Self::Disable),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(StepError::Configuration(format!(
                "sslmode {other:?} is not supported; use disable, require, verify-ca or verify-full"
            ))),
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    // ring only: one crypto backend keeps the Lambda binaries small and the
    // cross-build free of a C toolchain for aws-lc.
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Trust anchors: the given PEM bundle (e.g. RDS's global bundle), else the
/// public web roots.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, StepError> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::NotFound {
                    // On Lambda the bundle is packaged by the build, not
                    // installed: say how it gets there.
                    "; build with `make build` (it packages the RDS CA bundle; \
                     RDS_CA_BUNDLE=path for one you downloaded) or use sslmode require"
                } else {
                    ""
                };
                StepError::Configuration(format!(
                    "cannot read CA bundle {}: {e}{hint}",
                    path.display()
                ))
            })?;
            let mut added = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| {
                    StepError::Configuration(format!(
                        "CA bundle {} is not valid PEM: {e}",
                        path.display()
                    ))
                })?;
                store.add(cert).map_err(|e| {
                    StepError::Configuration(format!(
                        "CA bundle {} holds an unusable certificate: {e}",
                        path.display()
                    ))
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(StepError::Configuration(format!(
                    "CA bundle {} holds no certificates",
                    path.display()
                )));
            }
        }
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(store)
}

pub(crate) fn connector(
    mode: TlsMode,
    ca_file: Option<&Path>,
) -> Result<MakeRustlsConnect, StepError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StepError::Tls(e.to_string()))?;
    let config = match mode {
        TlsMode::Disable => unreachable!("no TLS connector for sslmode=disable"),
        TlsMode::VerifyFull => builder
            .with_root_certificates(roots(ca_file)?)
            .with_no_client_auth(),
        TlsMode::VerifyCa | TlsMode::Require => {
            let verifier: Arc<dyn ServerCertVerifier> = if mode == TlsMode::Require {
                Arc::new(AnyCert(provider))
            } else {
                let inner = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots(ca_file)?),
                    provider,
                )
                .build()
                .map_err(|e| StepError::Tls(e.to_string()))?;
                Arc::new(ChainOnly(inner))
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `verify-ca`: the chain must lead to a trusted root; the host name may differ
/// (connecting through an IP or a tunnel).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
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

/// `require`: encryption without authentication of the server, as libpq does
/// when no root certificate is configured. Handshake signatures are still checked.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
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
        verify_tls12_signature(
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
        verify_tls13_signature(
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
