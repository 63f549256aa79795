//! TLS to PostgreSQL as libpq's `sslmode` and `sslrootcert` say, so that a URL an operator
//! already uses with `psql` means the same here (rustls with the ring provider;
//! `tokio-postgres-rustls` plugs it into the client):
//!
//! | `sslmode` | encrypted | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default) | when the server offers TLS | not checked |
//! | `require` | always | not checked; with `sslrootcert`, checked as `verify-ca` (as libpq) |
//! | `verify-ca` | always | its chain, against the roots |
//! | `verify-full` | always | its chain, and that it names the host of the URL |
//!
//! The roots: `sslrootcert=PATH` (a PEM file of one or more CA certificates), or
//! `sslrootcert=system` (the default) for the system's store (`rustls-native-certs`). A root
//! file that cannot be read, or holds no certificate, is refused when the URL is read, in one
//! line naming `sslrootcert` and the path.
//!
//! tokio-postgres knows `disable`, `prefer` and `require` only, and no `sslrootcert`: the URL
//! it gets has the `verify-*` modes as `require` and no `sslrootcert`; the checking is this
//! module's verifier.

use std::path::PathBuf;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<SslMode, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's `allow` tries without TLS first: nothing a secured server wants.
            other => {
                return Err(format!(
                    "sslmode=`{other}` is not one of disable, prefer, require, verify-ca, \
                     verify-full"
                ))
            }
        })
    }

    /// What tokio-postgres is told (it checks nothing itself).
    fn for_client(self) -> &'static str {
        match self {
            SslMode::Disable => "sslmode=disable",
            SslMode::Prefer => "sslmode=prefer",
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "sslmode=require",
        }
    }
}

/// Where the roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    System,
    File(PathBuf),
}

/// A URL's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// `sslrootcert`, when given.
    pub roots: Option<Roots>,
}

impl TlsSettings {
    /// Takes `sslmode` and `sslrootcert` out of `url`'s query: the URL for tokio-postgres and
    /// the settings. The error is one line naming the parameter.
    pub fn split(url: &str) -> Result<(String, TlsSettings), String> {
        let mut settings = TlsSettings {
            mode: SslMode::Prefer,
            roots: None,
        };
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), settings));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_decode_str(value).decode_utf8_lossy();
            match key {
                "sslmode" => settings.mode = SslMode::parse(&decoded)?,
                "sslrootcert" => {
                    if decoded.is_empty() {
                        return Err(
                            "sslrootcert is empty: give a PEM file's path, or `system`".into()
                        );
                    }
                    settings.roots = Some(if decoded == "system" {
                        Roots::System
                    } else {
                        Roots::File(PathBuf::from(decoded.as_ref()))
                    });
                }
                _ => kept.push(pair),
            }
        }
        kept.push(settings.mode.for_client());
        Ok((format!("{base}?{}", kept.join("&")), settings))
    }

    /// The client's TLS connector (`None`: plain TCP), with its roots read now.
    pub fn connector(&self) -> Result<Option<MakeRustlsConnect>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        let checked = |roots: &Roots| -> Result<Arc<WebPkiServerVerifier>, String> {
            let store = root_store(roots)?;
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                .build()
                .map_err(|e| format!("cannot use the roots of {}: {e}", shown(roots)))
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (self.mode, &self.roots) {
            (SslMode::Disable, _) => return Ok(None),
            (SslMode::Prefer, _) | (SslMode::Require, None) => Arc::new(Lenient {
                chain: None,
                provider,
            }),
            (SslMode::Require | SslMode::VerifyCa, roots) => Arc::new(Lenient {
                chain: Some(checked(roots.as_ref().unwrap_or(&Roots::System))?),
                provider,
            }),
            (SslMode::VerifyFull, roots) => checked(roots.as_ref().unwrap_or(&Roots::System))?,
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Some(MakeRustlsConnect::new(config)))
    }
}

/// `sslrootcert` as an error shows it.
fn shown(roots: &Roots) -> String {
    match roots {
        Roots::System => "the system's certificate store (sslrootcert=system)".into(),
        Roots::File(path) => format!("sslrootcert `{}`", path.display()),
    }
}

/// The trust anchors `roots` names.
fn root_store(roots: &Roots) -> Result<RootCertStore, String> {
    let certs: Vec<CertificateDer<'static>> = match roots {
        Roots::System => rustls_native_certs::load_native_certs().certs,
        Roots::File(path) => {
            let text =
                std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", shown(roots)))?;
            CertificateDer::pem_slice_iter(&text)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: not PEM certificates: {e}", shown(roots)))?
        }
    };
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{} holds no CA certificate", shown(roots)));
    }
    Ok(store)
}

/// The checks short of `verify-full`: none (`prefer`, `require` without roots: any
/// certificate, as libpq), or the chain only (`verify-ca`: it must lead to a root; the host
/// name is not compared). The handshake's signatures are always checked, so the traffic is
/// encrypted to whoever holds the certificate's key.
#[derive(Debug)]
struct Lenient {
    /// The roots' verifier (`verify-ca`); `None`: no certificate check.
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // rustls checks the chain before the name: a name error means the chain was good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
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
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let (url, s) = TlsSettings::split(
            "postgres://u:p@db/audit?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://u:p@db/audit?application_name=x&sslmode=require"
        );
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.roots, Some(Roots::File("/etc/ca.pem".into())));
        let (url, s) = TlsSettings::split("postgres://u@db/audit").unwrap();
        assert_eq!(url, "postgres://u@db/audit");
        assert_eq!((s.mode, s.roots), (SslMode::Prefer, None));
        let (url, s) =
            TlsSettings::split("postgres://u@db/a?sslmode=disable&sslrootcert=system").unwrap();
        assert_eq!(url, "postgres://u@db/a?sslmode=disable");
        assert_eq!(s.roots, Some(Roots::System));
    }

    #[test]
    fn bad_settings_are_named() {
        let err = TlsSettings::split("postgres://u@db/a?sslmode=allow").unwrap_err();
        assert!(err.starts_with("sslmode=`allow` is not one of"), "{err}");
        let err = TlsSettings::split("postgres://u@db/a?sslrootcert=").unwrap_err();
        assert!(err.starts_with("sslrootcert is empty"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ca.pem");
        let settings = TlsSettings {
            mode: SslMode::VerifyFull,
            roots: Some(Roots::File(missing.clone())),
        };
        let err = settings.connector().err().unwrap();
        assert!(
            err.starts_with(&format!("sslrootcert `{}`: cannot read", missing.display())),
            "{err}"
        );
        std::fs::write(&missing, "not a certificate\n").unwrap();
        let err = settings.connector().err().unwrap();
        assert!(err.ends_with("holds no CA certificate"), "{err}");
    }

    #[test]
    fn disable_is_plain_tcp_and_the_others_have_a_connector() {
        let off = TlsSettings {
            mode: SslMode::Disable,
            roots: None,
        };
        assert!(off.connector().unwrap().is_none());
        for mode in [SslMode::Prefer, SslMode::Require] {
            let s = TlsSettings { mode, roots: None };
            assert!(s.connector().unwrap().is_some(), "{mode:?}");
        }
    }
}
