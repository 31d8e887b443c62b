//! The fleet's cache identity: one unambiguous byte string for everything that makes a token
//! different, so that two managers share a stored token exactly when the token endpoint would have
//! given each of them the same kind of token.
//!
//! The edge never stores these bytes. It HMACs them with a key derived by HKDF (WebCrypto) and
//! uses the hex of the MAC as the entry name, so a name reveals neither the client id, nor the
//! scope, nor the token URL.
//!
//! # Encoding, version 1
//!
//! ```text
//! "qbc-fleet-id" 0x01                               magic and version
//! 0x01 len url                                      token URL, as configured
//! 0x02 len client_id
//! 0x03 kind                                         client authentication (ClientAuth)
//! 0x04 kind [len username]                          grant: 0 client credentials, 1 password
//! 0x05 count (len scope)*                           scope: sorted, duplicates removed
//! 0x06 count (len name len value)*                  extra parameters: sorted by name, then value
//! ```
//!
//! Every `len` and `count` is 8 bytes big-endian, and the fields come in this fixed order, so no
//! two different identities encode the same (a host property test decodes every encoding back).
//! Scope order and duplicates do not make a different token, so they are normalised; extra
//! parameters are sorted (a form's parameters are unordered for the token endpoint) but a
//! parameter given twice stays twice. Names [`is_reserved_param`] refuses are left out, because
//! the token request never sends them.
//!
//! Not part of the identity: the client secret and a password (a rotated secret still gets the
//! same client's tokens, and no secret belongs in a byte string that is hashed with a key that may
//! be shared), timeouts, proxies and telemetry (none changes what the server grants).
//!
//! # Room for what comes later
//!
//! New ways of authenticating get new [`ClientAuth`] kinds and new sender constraints get a new
//! field tag, each encoded after the fields above; the encoding of existing identities never
//! changes, so entries written before an upgrade keep their names. The version byte changes only
//! if an existing field's encoding has to.
//! - `private_key_jwt` (RFC 7523 §2.2): kind 3 followed by `len key_id` (the signing key's `kid`:
//!   tokens bought with another key belong to another credential set);
//! - mTLS (RFC 8705): kind 4 followed by `len thumbprint` (the client certificate's SHA-256
//!   thumbprint, as in the token's `cnf.x5t#S256`: the token is usable only with that certificate);
//! - DPoP (RFC 9449), which can go with any kind: field 0x07 `len jkt`, the DPoP key's thumbprint
//!   (`cnf.jkt`): a token bound to one key is useless with another.

use crate::oauth::token::{is_reserved_param, AuthMethod, Grant, TokenRequest};
use crate::prelude::*;
use crate::util::text::sort_short;

/// The leading bytes of every encoding: what it is, then the version.
pub const MAGIC: &[u8] = b"qbc-fleet-id\x01";

/// How the client proves who it is at the token endpoint, as far as it changes the token.
/// See the [module docs](self) for the kinds planned for `private_key_jwt` and mTLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client: no secret, `client_id` in the body (kind 0).
    Public,
    /// `client_secret_post` (kind 1).
    SecretPost,
    /// `client_secret_basic` (kind 2).
    SecretBasic,
}

impl ClientAuth {
    fn kind(self) -> u8 {
        match self {
            ClientAuth::Public => 0,
            ClientAuth::SecretPost => 1,
            ClientAuth::SecretBasic => 2,
        }
    }
}

/// Everything that makes a token different, borrowed from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheIdentity<'a> {
    /// The token endpoint URL, as configured.
    pub token_url: &'a str,
    /// The client identifier.
    pub client_id: &'a str,
    /// How the client authenticates.
    pub auth: ClientAuth,
    /// The resource owner's user name for the password grant; `None` for client credentials.
    pub username: Option<&'a str>,
    /// The requested scope, in any order, duplicates allowed.
    pub scope: &'a [String],
    /// The extra token request parameters (`audience`, `resource`, …), in any order.
    pub extra_params: &'a [(String, String)],
}

impl<'a> CacheIdentity<'a> {
    /// The identity of the tokens `req` asks for.
    ///
    /// ```
    /// use qbank_connect::oauth::fleet::identity::CacheIdentity;
    /// use qbank_connect::oauth::token::{AuthMethod, Grant, TokenRequest};
    /// use qbank_connect::oauth::Secret;
    ///
    /// let secret = Secret::new("s3cret");
    /// let scope = ["b".to_string(), "a".to_string()];
    /// let request = TokenRequest {
    ///     token_url: "https://auth.example/token",
    ///     client_id: "app",
    ///     client_secret: Some(&secret),
    ///     grant: &Grant::ClientCredentials,
    ///     scope: &scope,
    ///     auth_method: AuthMethod::ClientSecretPost,
    ///     extra_params: &[],
    /// };
    /// let bytes = CacheIdentity::of(&request).encode();
    /// assert!(bytes.starts_with(b"qbc-fleet-id\x01"));
    /// assert!(!bytes.windows(6).any(|w| w == b"s3cret"));
    /// ```
    pub fn of(req: &TokenRequest<'a>) -> Self {
        let auth = match (req.client_secret, req.auth_method) {
            (None, _) => ClientAuth::Public,
            (Some(_), AuthMethod::ClientSecretPost) => ClientAuth::SecretPost,
            (Some(_), AuthMethod::ClientSecretBasic) => ClientAuth::SecretBasic,
        };
        let username = match req.grant {
            Grant::ClientCredentials => None,
            Grant::Password { username, .. } => Some(username.as_str()),
        };
        CacheIdentity {
            token_url: req.token_url,
            client_id: req.client_id,
            auth,
            username,
            scope: req.scope,
            extra_params: req.extra_params,
        }
    }

    /// The canonical bytes (see the [module docs](self)): the input of the entry name's HMAC.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(MAGIC);
        field(&mut out, 1, self.token_url);
        field(&mut out, 2, self.client_id);
        out.extend_from_slice(&[3, self.auth.kind(), 4]);
        match self.username {
            None => out.push(0),
            Some(name) => {
                out.push(1);
                bytes(&mut out, name);
            }
        }
        // Scopes sort as (scope, "") pairs: one sort for both lists (each instance costs code).
        // A repeated scope is left out as it comes (a few scopes: no `dedup`, more code).
        let mut scope: Vec<(&str, &str)> = Vec::new();
        for s in self.scope {
            if !scope.iter().any(|(seen, _)| seen == s) {
                scope.push((s, ""));
            }
        }
        sort_short(&mut scope);
        out.push(5);
        count(&mut out, scope.len());
        for (s, _) in scope {
            bytes(&mut out, s);
        }
        let mut params: Vec<(&str, &str)> = Vec::new();
        for (name, value) in self.extra_params {
            if !is_reserved_param(name) {
                params.push((name, value));
            }
        }
        sort_short(&mut params);
        out.push(6);
        count(&mut out, params.len());
        for (name, value) in params {
            bytes(&mut out, name);
            bytes(&mut out, value);
        }
        out
    }
}

fn field(out: &mut Vec<u8>, tag: u8, value: &str) {
    out.push(tag);
    bytes(out, value);
}

fn bytes(out: &mut Vec<u8>, value: &str) {
    count(out, value.len());
    out.extend_from_slice(value.as_bytes());
}

fn count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_be_bytes());
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
