//! The TLS half of the web configuration turned into a rustls server configuration: the certificate
//! and key, client certificates (exporter-toolkit's five `client_auth_type`s and `client_allowed_sans`),
//! protocol versions, cipher suites and curves by Go's names.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, SupportedKxGroup, WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
    SupportedCipherSuite,
};

use super::ConfigError;
use super::file::{ClientAuth, Pem, TlsSettings};

/// Go's TLS 1.2 cipher suite names (`tls.CipherSuites()`) and the rustls suite, where rustls has one
/// (it has no CBC and no RSA key exchange suites). TLS 1.3 suites are not configurable, as in Go.
fn tls12_suite(name: &str) -> Option<Option<SupportedCipherSuite>> {
    use ring::cipher_suite as cs;
    Some(Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_RSA_WITH_AES_128_GCM_SHA256"
        | "TLS_RSA_WITH_AES_256_GCM_SHA384"
        | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_AES_128_GCM_SHA256"
        | "TLS_AES_256_GCM_SHA384"
        | "TLS_CHACHA20_POLY1305_SHA256" => return Some(None),
        _ => return None,
    }))
}

/// Go's curve names and the rustls group, where ring has one (it has no P-521).
fn curve(name: &str) -> Option<Option<&'static dyn SupportedKxGroup>> {
    Some(Some(match name {
        "X25519" => ring::kx_group::X25519,
        "CurveP256" => ring::kx_group::SECP256R1,
        "CurveP384" => ring::kx_group::SECP384R1,
        "CurveP521" => return Some(None),
        _ => return None,
    }))
}

/// Rejects names exporter-toolkit rejects, and lists that leave nothing rustls can use.
pub(super) fn check_names(t: &TlsSettings) -> Result<(), ConfigError> {
    if let Some(names) = &t.cipher_suites {
        let field = "tls_server_config.cipher_suites";
        let mut usable = 0;
        for name in names {
            match tls12_suite(name) {
                None => return Err(ConfigError::new(field, format!("unknown cipher {name:?}"))),
                Some(s) => usable += usize::from(s.is_some()),
            }
        }
        if usable == 0 && t.min_version <= 12 && !names.is_empty() {
            return Err(ConfigError::new(
                field,
                "none of these TLS 1.2 suites is available in rustls (it has the ECDHE AES-GCM and \
                 ChaCha20 suites only); list one of those, or set min_version: TLS13",
            ));
        }
    }
    if let Some(names) = &t.curves {
        let field = "tls_server_config.curve_preferences";
        let mut usable = 0;
        for name in names {
            match curve(name) {
                None => return Err(ConfigError::new(field, format!("unknown curve {name:?}"))),
                Some(c) => usable += usize::from(c.is_some()),
            }
        }
        if usable == 0 && !names.is_empty() {
            return Err(ConfigError::new(
                field,
                "none of these curves is available (X25519, CurveP256 and CurveP384 are)",
            ));
        }
    }
    Ok(())
}

/// The ring provider narrowed to the configured suites and curves, in their order.
fn provider(t: &TlsSettings) -> CryptoProvider {
    let mut p = ring::default_provider();
    if let Some(names) = t.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
        let tls12: Vec<_> = names
            .iter()
            .filter_map(|n| tls12_suite(n).flatten())
            .collect();
        let tls13 = p
            .cipher_suites
            .iter()
            .copied()
            .filter(|s| s.tls13().is_some());
        p.cipher_suites = tls13.chain(tls12).collect();
    }
    if let Some(names) = t.curves.as_ref().filter(|n| !n.is_empty()) {
        p.kx_groups = names.iter().filter_map(|n| curve(n).flatten()).collect();
    }
    p
}

/// Warnings for settings that are accepted but cannot be honoured exactly.
pub(super) fn warnings(t: &TlsSettings) -> Vec<String> {
    let mut out = Vec::new();
    let skipped = |names: &Option<Vec<String>>, known: fn(&str) -> bool| -> Vec<String> {
        names
            .iter()
            .flatten()
            .filter(|n| !known(n))
            .cloned()
            .collect()
    };
    let suites = skipped(&t.cipher_suites, |n| {
        tls12_suite(n).flatten().is_some()
            || n.starts_with("TLS_AES")
            || n.starts_with("TLS_CHACHA")
    });
    if !suites.is_empty() {
        out.push(format!(
            "cipher_suites not available in rustls, left out: {}",
            suites.join(", ")
        ));
    }
    let curves = skipped(&t.curves, |n| curve(n).flatten().is_some());
    if !curves.is_empty() {
        out.push(format!(
            "curve_preferences not available, left out: {}",
            curves.join(", ")
        ));
    }
    out
}

fn field(p: &Pem, file: &str, inline: &str) -> String {
    match p {
        Pem::File(_) => format!("tls_server_config.{file}"),
        Pem::Inline(_) => format!("tls_server_config.{inline}"),
    }
}

fn read(p: &Pem, field: &str) -> Result<Vec<u8>, ConfigError> {
    match p {
        Pem::Inline(s) => Ok(s.as_bytes().to_vec()),
        Pem::File(path) => super::read_capped(path)
            .map_err(|e| ConfigError::new(field, format!("cannot read {}: {e}", path.display()))),
    }
}

fn certs(p: &Pem, field: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = read(p, field)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::new(field, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::new(field, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The rustls configuration for these settings; ALPN offers h2 when `http2`.
pub(super) fn server_config(
    t: &TlsSettings,
    http2: bool,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let provider = Arc::new(provider(t));
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (t.min_version..=t.max_version).contains(v))
            .map(|(_, p)| p)
            .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| ConfigError::new("tls_server_config", e.to_string()))?;
    let builder = match client_verifier(t, &provider)? {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let cert_field = field(&t.cert, "cert_file", "cert");
    let key_field = field(&t.key, "key_file", "key");
    let chain = certs(&t.cert, &cert_field)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&t.key, &key_field)?)
        .map_err(|e| ConfigError::new(&key_field, format!("not a PEM private key: {e}")))?;
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| ConfigError::new(&key_field, format!("unusable with the certificate: {e}")))?;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    config.ignore_client_order = t.prefer_server_cipher_suites;
    Ok(Arc::new(config))
}

fn client_verifier(
    t: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, ConfigError> {
    if t.client_auth == ClientAuth::None {
        return Ok(None);
    }
    let verify = match &t.client_ca {
        Some(ca)
            if matches!(
                t.client_auth,
                ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify
            ) =>
        {
            let ca_field = field(ca, "client_ca_file", "client_ca");
            let mut roots = RootCertStore::empty();
            for cert in certs(ca, &ca_field)? {
                roots.add(cert).map_err(|e| {
                    ConfigError::new(&ca_field, format!("not a CA certificate: {e}"))
                })?;
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if t.client_auth == ClientAuth::VerifyIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            Some(
                builder
                    .build()
                    .map_err(|e| ConfigError::new(&ca_field, e.to_string()))?,
            )
        }
        _ => None,
    };
    Ok(Some(Arc::new(ClientCerts {
        verify,
        mandatory: matches!(
            t.client_auth,
            ClientAuth::RequireAny | ClientAuth::RequireAndVerify
        ),
        allowed_sans: t.allowed_sans.clone(),
        algorithms: provider.signature_verification_algorithms,
    })))
}

/// Client certificates as exporter-toolkit treats them: asked for, required or not, verified against
/// the client CA or not, and then matched against `client_allowed_sans`.
#[derive(Debug)]
struct ClientCerts {
    verify: Option<Arc<dyn ClientCertVerifier>>,
    mandatory: bool,
    allowed_sans: Option<Vec<String>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ClientCerts {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.verify.as_ref().map_or(&[], |v| v.root_hint_subjects())
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Some(v) = &self.verify {
            v.verify_client_cert(end_entity, intermediates, now)?;
        }
        if let Some(allowed) = &self.allowed_sans {
            let sans = subject_alt_names(end_entity).ok_or(rustls::Error::InvalidCertificate(
                CertificateError::BadEncoding,
            ))?;
            if !sans.iter().any(|s| allowed.contains(s)) {
                tracing::debug!(found = ?sans, "client certificate has no SAN in client_allowed_sans");
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A certificate's DNS, e-mail, IP and URI subject alternative names, written as Go writes them.
pub(crate) fn subject_alt_names(der: &[u8]) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut out = Vec::new();
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Some(out);
    };
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                out.push((*s).to_string())
            }
            GeneralName::IPAddress(b) => {
                if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                    out.push(Ipv4Addr::from(v4).to_string());
                } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                    let ip = Ipv6Addr::from(v6);
                    out.push(match ip.to_ipv4_mapped() {
                        Some(v4) => v4.to_string(),
                        None => ip.to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    Some(out)
}
