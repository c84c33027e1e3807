//! Tokens: generation from the OS CSPRNG, SHA-256 digests (the only form ever stored), and
//! personal access token authentication for the user-facing endpoints.

use crate::error::ApiError;
use crate::params::Params;
use crate::time::Timestamp;
use axum::http::HeaderMap;
use base64::Engine;
use sha2::{Digest, Sha256};

/// 24 random bytes: 192 bits, 32 URL-safe characters.
const TOKEN_BYTES: usize = 24;

/// The prefix of the tokens of runners created by users (`POST /user/runners`). Only those get
/// it: the official runner treats a `glrt-` token as a created runner and switches to GitLab 16's
/// manager-based workflow (verify instead of register, unregister one manager).
pub const CREATED_RUNNER_TOKEN_PREFIX: &str = "glrt-";

/// The SHA-256 of `text` as 64 lowercase hex characters.
pub fn sha256_hex(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in hash {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
    }
    hex
}

/// A token's SHA-256 as lowercase hex: how tokens are stored and looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenDigest(String);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        Self(sha256_hex(token))
    }

    /// A digest as stored (64 lowercase hex characters).
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new secret token. Fails only if the OS refuses randomness, which is an internal error.
pub fn generate_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::internal(format!("OS random source: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What a request wants to do, for scope checks (GitLab's `allow_access_with_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any read: `api` or `read_api`.
    Read,
    /// Any write: `api`.
    Write,
    /// `POST /user/runners`, the one endpoint `create_runner` tokens may call: `api` or
    /// `create_runner`.
    CreateRunner,
    /// A read under `/runners/:id` (the runner, its jobs, its managers): `api`, `read_api` or
    /// `manage_runner`.
    ReadRunner,
    /// A change under `/runners/:id` (update, delete, token reset): `api` or `manage_runner`.
    ManageRunner,
}

impl Access {
    /// Whether a token with these scopes may make this access.
    pub fn allowed_by(self, scopes: &[String]) -> bool {
        let accepted: &[&str] = match self {
            Self::Read => &["api", "read_api"],
            Self::Write => &["api"],
            Self::CreateRunner => &["api", "create_runner"],
            Self::ReadRunner => &["api", "read_api", "manage_runner"],
            Self::ManageRunner => &["api", "manage_runner"],
        };
        scopes
            .iter()
            .any(|scope| accepted.contains(&scope.as_str()))
    }
}

/// A personal access token as stored on its token item, with the owner's flags copied onto it so
/// that authentication is a single read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalAccessToken {
    pub user_id: i64,
    pub admin: bool,
    pub blocked: bool,
    pub scopes: Vec<String>,
    pub expires_at: Option<Timestamp>,
    pub revoked: bool,
}

/// The authenticated user of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user_id: i64,
    pub admin: bool,
}

/// The personal access token a request presents, in GitLab's order (`UserAuthFinders`): the
/// `private_token` parameter, then the `PRIVATE-TOKEN` header (any case), then
/// `Authorization: Bearer`. A blank value counts as absent, so it never hides a later source;
/// a present one is the only token looked at, so an unknown parameter is 401 even beside a
/// valid header.
pub fn presented_token(headers: &HeaderMap, params: &Params) -> Option<String> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = header(axum::http::header::AUTHORIZATION.as_str()).and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(token)
    });
    let parameter = params.reader().string("private_token");
    [parameter.as_deref(), header("private-token"), bearer]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|token| !token.is_empty())
        .map(str::to_owned)
}

/// GitLab's rules for a found token: expired or revoked is 401, a blocked owner 403, and a
/// token without a scope that covers the access 403.
pub fn check_personal_access_token(
    token: &PersonalAccessToken,
    now: Timestamp,
    access: Access,
) -> Result<Caller, ApiError> {
    if token.revoked || token.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::Unauthorized);
    }
    if token.blocked {
        return Err(ApiError::Forbidden);
    }
    if !access.allowed_by(&token.scopes) {
        return Err(ApiError::Forbidden);
    }
    Ok(Caller {
        user_id: token.user_id,
        admin: token.admin,
    })
}

/// Authenticates a user request: the presented personal access token, found by its digest in
/// one read, checked by [`check_personal_access_token`]. No token, an unknown one, or a token
/// that is not a personal access token (a runner's, say) is 401.
pub async fn authenticate(
    store: &crate::store::Store,
    headers: &HeaderMap,
    params: &Params,
    access: Access,
) -> Result<Caller, ApiError> {
    let Some(token) = presented_token(headers, params) else {
        return Err(ApiError::Unauthorized);
    };
    match store.find_token(&TokenDigest::of(&token)).await? {
        Some(crate::store::TokenRecord::PersonalAccess(pat)) => {
            check_personal_access_token(&pat, crate::time::Timestamp::now(), access)
        }
        _ => Err(ApiError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            TokenDigest::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(TokenDigest::of("abc"), TokenDigest::of("abd"));
    }

    #[test]
    fn generated_tokens_are_url_safe_long_and_distinct() {
        let tokens: Vec<String> = (0..100).map(|_| generate_token().unwrap()).collect();
        for token in &tokens {
            assert_eq!(token.len(), 32);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{token}"
            );
            assert!(!token.starts_with("glrt-"));
        }
        let mut unique = tokens.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), tokens.len());
    }

    #[test]
    fn token_sources_in_gitlabs_order() {
        let params = |query: &str| Params::from_query(query).unwrap();
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().unwrap());
            }
            map
        };
        type Headers<'a> = &'a [(&'a str, &'a str)];
        let cases: [(Headers<'_>, &str, Option<&str>); 9] = [
            (&[], "private_token=q", Some("q")),
            (&[("authorization", "Bearer b")], "", Some("b")),
            (&[("authorization", "bearer  b ")], "", Some("b")),
            (&[("Private-Token", "h")], "", Some("h")),
            // The parameter wins over both headers, the header over Bearer.
            (
                &[("private-token", "h"), ("authorization", "Bearer b")],
                "private_token=q",
                Some("q"),
            ),
            (
                &[("private-token", "h"), ("authorization", "Bearer b")],
                "",
                Some("h"),
            ),
            // Blank values are absent: they never hide a later source.
            (
                &[("private-token", " "), ("authorization", "Bearer b")],
                "private_token=",
                Some("b"),
            ),
            (&[("authorization", "Basic dXNlcg==")], "", None),
            (&[], "", None),
        ];
        for (pairs, query, expected) in cases {
            assert_eq!(
                presented_token(&headers(pairs), &params(query)).as_deref(),
                expected,
                "{pairs:?} {query}"
            );
        }
    }

    fn token() -> PersonalAccessToken {
        PersonalAccessToken {
            user_id: 7,
            admin: false,
            blocked: false,
            scopes: vec!["api".into()],
            expires_at: None,
            revoked: false,
        }
    }

    #[test]
    fn personal_access_token_rules() {
        let now = Timestamp::from_millis(1_000_000);
        let ok = check_personal_access_token(&token(), now, Access::Write).unwrap();
        assert_eq!(
            ok,
            Caller {
                user_id: 7,
                admin: false
            }
        );

        let expired = PersonalAccessToken {
            expires_at: Some(now),
            ..token()
        };
        assert!(matches!(
            check_personal_access_token(&expired, now, Access::Read),
            Err(ApiError::Unauthorized)
        ));
        let future = PersonalAccessToken {
            expires_at: Some(Timestamp::from_millis(2_000_000)),
            ..token()
        };
        assert!(check_personal_access_token(&future, now, Access::Read).is_ok());

        let revoked = PersonalAccessToken {
            revoked: true,
            ..token()
        };
        assert!(matches!(
            check_personal_access_token(&revoked, now, Access::Read),
            Err(ApiError::Unauthorized)
        ));

        let blocked = PersonalAccessToken {
            blocked: true,
            ..token()
        };
        assert!(matches!(
            check_personal_access_token(&blocked, now, Access::Read),
            Err(ApiError::Forbidden)
        ));

        let read_only = PersonalAccessToken {
            scopes: vec!["read_api".into()],
            ..token()
        };
        assert!(check_personal_access_token(&read_only, now, Access::Read).is_ok());
        assert!(matches!(
            check_personal_access_token(&read_only, now, Access::Write),
            Err(ApiError::Forbidden)
        ));

        let scoped = |scope: &str| PersonalAccessToken {
            scopes: vec![scope.into()],
            ..token()
        };
        // `create_runner` opens only runner creation; `manage_runner` only `/runners/:id*`.
        let create_runner = scoped("create_runner");
        assert!(check_personal_access_token(&create_runner, now, Access::CreateRunner).is_ok());
        for access in [
            Access::Read,
            Access::Write,
            Access::ReadRunner,
            Access::ManageRunner,
        ] {
            assert!(
                check_personal_access_token(&create_runner, now, access).is_err(),
                "{access:?}"
            );
        }
        let manage_runner = scoped("manage_runner");
        assert!(check_personal_access_token(&manage_runner, now, Access::ReadRunner).is_ok());
        assert!(check_personal_access_token(&manage_runner, now, Access::ManageRunner).is_ok());
        for access in [Access::Read, Access::Write, Access::CreateRunner] {
            assert!(
                check_personal_access_token(&manage_runner, now, access).is_err(),
                "{access:?}"
            );
        }
        assert!(check_personal_access_token(&read_only, now, Access::ReadRunner).is_ok());
        assert!(check_personal_access_token(&read_only, now, Access::ManageRunner).is_err());
        assert!(check_personal_access_token(&read_only, now, Access::CreateRunner).is_err());

        let other_scope = PersonalAccessToken {
            scopes: vec!["read_user".into()],
            ..token()
        };
        assert!(matches!(
            check_personal_access_token(&other_scope, now, Access::Read),
            Err(ApiError::Forbidden)
        ));
    }
}
