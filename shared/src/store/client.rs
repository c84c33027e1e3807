//! The DynamoDB client every binary builds once at start, and its HTTPS client.
//!
//! A Lambda function takes what it needs from the environment Lambda sets (`AWS_REGION`, the
//! execution role's `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`): no
//! credential chain, no profile files, no instance metadata. TLS trusts Amazon's root CAs,
//! compiled in, instead of the system's store (the default client read some 150 certificate
//! files at every cold start); a private CA (a DynamoDB endpoint behind a company proxy, a TLS
//! terminator in front of DynamoDB Local) is added with `AWS_CA_BUNDLE`, a PEM file.

use super::sdk_timeouts;
use crate::config::StorageTimeouts;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Amazon Root CA 1-4 and Starfield Services Root CA G2 (which cross-signs them): every
/// certificate DynamoDB's endpoints present chains to one of these.
const AMAZON_ROOT_CAS: &[u8] = include_bytes!("../../certs/amazon-root-cas.pem");

/// The environment variable that names extra CA certificates (PEM), as the AWS CLI and SDKs
/// call it.
pub const CA_BUNDLE_VARIABLE: &str = "AWS_CA_BUNDLE";

/// The HTTPS client: rustls with ring, trusting Amazon's roots and `extra_cas` (PEM), which
/// must have been checked with [`check_pem_certificates`].
pub fn https_client(extra_cas: Option<&[u8]>) -> SharedHttpClient {
    let mut trust = TrustStore::empty().with_pem_certificate(AMAZON_ROOT_CAS);
    if let Some(pem) = extra_cas {
        trust = trust.with_pem_certificate(pem);
    }
    let tls = TlsContext::builder().with_trust_store(trust).build();
    let builder =
        aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring));
    match tls {
        Ok(tls) => builder.tls_context(tls).build_https(),
        // Only reachable with an empty trust store, which this never builds.
        Err(_) => builder.build_https(),
    }
}

/// That `pem` holds at least one certificate and nothing unreadable: the HTTPS client would
/// otherwise fail (panic) when it first connects, far from the setting that caused it.
pub fn check_pem_certificates(pem: &[u8]) -> Result<usize, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
    if certificates.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certificates.len())
}

/// The extra CA certificates `AWS_CA_BUNDLE` names, read and checked once at start.
pub fn ca_bundle_from_env() -> Result<Option<Vec<u8>>, String> {
    let Some(path) = std::env::var_os(CA_BUNDLE_VARIABLE).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let shown = path.to_string_lossy().into_owned();
    let pem = std::fs::read(&path)
        .map_err(|e| format!("{CA_BUNDLE_VARIABLE}={shown}: cannot read it: {e}"))?;
    check_pem_certificates(&pem).map_err(|e| format!("{CA_BUNDLE_VARIABLE}={shown}: {e}"))?;
    Ok(Some(pem))
}

fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A Lambda function's client, from the environment Lambda sets. An endpoint override
/// (`AWS_ENDPOINT_URL_DYNAMODB`, then `AWS_ENDPOINT_URL`) serves local runs (the runtime
/// emulator against DynamoDB Local). Fails, at init, on a missing region or credentials or an
/// unreadable `AWS_CA_BUNDLE`.
pub fn lambda_client(timeouts: StorageTimeouts) -> Result<Client, String> {
    let region = variable("AWS_REGION")
        .or_else(|| variable("AWS_DEFAULT_REGION"))
        .ok_or("AWS_REGION is not set (Lambda sets it)")?;
    let key = variable("AWS_ACCESS_KEY_ID");
    let secret = variable("AWS_SECRET_ACCESS_KEY");
    let (Some(key), Some(secret)) = (key, secret) else {
        return Err(
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (Lambda sets them from the \
             function's role)"
                .into(),
        );
    };
    let credentials = Credentials::new(
        key,
        secret,
        variable("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    let extra_cas = ca_bundle_from_env()?;
    let mut config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(credentials)
        .http_client(https_client(extra_cas.as_deref()))
        .retry_config(RetryConfig::standard())
        .timeout_config(sdk_timeouts(timeouts));
    if let Some(endpoint) =
        variable("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| variable("AWS_ENDPOINT_URL"))
    {
        config = config.endpoint_url(endpoint);
    }
    Ok(Client::from_conf(config.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_roots_are_five_certificates() {
        assert_eq!(check_pem_certificates(AMAZON_ROOT_CAS), Ok(5));
    }

    #[test]
    fn a_bad_bundle_is_refused_before_any_connection() {
        assert!(check_pem_certificates(b"").is_err());
        assert!(check_pem_certificates(b"hello").is_err());
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(check_pem_certificates(broken).is_err());
    }
}
