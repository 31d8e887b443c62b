use super::*;
use crate::oauth::token::{AuthMethod, Grant, TokenRequest};
use crate::oauth::Secret;
use proptest::prelude::*;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// What an identity means once normalised: the decoder's output and the property test's oracle.
fn normalised(id: &CacheIdentity<'_>) -> Owned {
    let mut scope = id.scope.to_vec();
    scope.sort();
    scope.dedup();
    let mut params: Vec<_> = id
        .extra_params
        .iter()
        .filter(|(n, _)| !is_reserved_param(n))
        .cloned()
        .collect();
    params.sort();
    Owned {
        token_url: id.token_url.into(),
        client_id: id.client_id.into(),
        auth: id.auth,
        username: id.username.map(String::from),
        scope,
        params,
    }
}

/// Reads an encoding back; `None` if it is not exactly one version-1 identity.
fn decode(bytes: &[u8]) -> Option<Owned> {
    struct R<'b>(&'b [u8]);
    impl R<'_> {
        fn byte(&mut self) -> Option<u8> {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            Some(b)
        }
        fn n(&mut self) -> Option<usize> {
            let (head, rest) = self.0.split_at_checked(8)?;
            self.0 = rest;
            usize::try_from(u64::from_be_bytes(head.try_into().ok()?)).ok()
        }
        fn text(&mut self) -> Option<String> {
            let len = self.n()?;
            let (head, rest) = self.0.split_at_checked(len)?;
            self.0 = rest;
            String::from_utf8(head.to_vec()).ok()
        }
        fn tag(&mut self, want: u8) -> Option<()> {
            (self.byte()? == want).then_some(())
        }
    }
    let mut r = R(bytes.strip_prefix(MAGIC)?);
    r.tag(1)?;
    let token_url = r.text()?;
    r.tag(2)?;
    let client_id = r.text()?;
    r.tag(3)?;
    let auth = match r.byte()? {
        0 => ClientAuth::Public,
        1 => ClientAuth::SecretPost,
        2 => ClientAuth::SecretBasic,
        _ => return None,
    };
    r.tag(4)?;
    let username = match r.byte()? {
        0 => None,
        1 => Some(r.text()?),
        _ => return None,
    };
    r.tag(5)?;
    let scope = (0..r.n()?).map(|_| r.text()).collect::<Option<_>>()?;
    r.tag(6)?;
    let params = (0..r.n()?)
        .map(|_| Some((r.text()?, r.text()?)))
        .collect::<Option<_>>()?;
    r.0.is_empty()
        .then(|| Owned::from((token_url, client_id, auth, username, scope, params)))
}

/// An identity with its own strings: built by hand, by the decoder, or by proptest.
#[derive(Debug, PartialEq, Eq)]
struct Owned {
    token_url: String,
    client_id: String,
    auth: ClientAuth,
    username: Option<String>,
    scope: Vec<String>,
    params: Vec<(String, String)>,
}

type Fields = (
    String,
    String,
    ClientAuth,
    Option<String>,
    Vec<String>,
    Vec<(String, String)>,
);

impl From<Fields> for Owned {
    fn from((token_url, client_id, auth, username, scope, params): Fields) -> Self {
        Owned {
            token_url,
            client_id,
            auth,
            username,
            scope,
            params,
        }
    }
}

impl Owned {
    fn base() -> Self {
        Owned {
            token_url: "https://auth.example/realms/r/token".into(),
            client_id: "app".into(),
            auth: ClientAuth::SecretPost,
            username: None,
            scope: strings(&["balances.read", "accounts.read"]),
            params: pairs(&[("audience", "api"), ("resource", "https://api.example")]),
        }
    }
    fn id(&self) -> CacheIdentity<'_> {
        CacheIdentity {
            token_url: &self.token_url,
            client_id: &self.client_id,
            auth: self.auth,
            username: self.username.as_deref(),
            scope: &self.scope,
            extra_params: &self.params,
        }
    }
}

#[test]
fn every_field_changes_the_bytes() {
    let base = Owned::base().id().encode();
    let changes: [fn(&mut Owned); 9] = [
        |o| o.token_url.push('x'),
        |o| o.client_id.push('x'),
        |o| o.auth = ClientAuth::SecretBasic,
        |o| o.auth = ClientAuth::Public,
        |o| o.username = Some("alice".into()),
        |o| o.scope.push("payments.write".into()),
        |o| o.scope.truncate(1),
        |o| o.params[0].1.push('x'),
        |o| o.params.push(("audience".into(), "other".into())),
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut o = Owned::base();
        change(&mut o);
        assert_ne!(
            o.id().encode(),
            base,
            "change {i} left the identity as it was"
        );
    }
}

#[test]
fn scope_and_parameter_order_and_duplicate_scopes_do_not_change_the_bytes() {
    let base = Owned::base().id().encode();
    let mut o = Owned::base();
    o.scope = strings(&["accounts.read", "balances.read", "accounts.read"]);
    o.params.reverse();
    assert_eq!(o.id().encode(), base);
}

#[test]
fn reserved_parameters_are_left_out_as_the_request_never_sends_them() {
    let base = Owned::base().id().encode();
    let mut o = Owned::base();
    o.params.push(("client_secret".into(), "s".into()));
    assert_eq!(o.id().encode(), base);
}

#[test]
fn the_identity_of_a_request_holds_no_secret_and_names_its_auth_and_grant() {
    let secret = Secret::new("very-secret-value");
    let scope = strings(&["b", "a"]);
    let password = Grant::Password {
        username: "alice".into(),
        password: Secret::new("hunter2-password"),
    };
    let request = |grant, client_secret, auth_method| TokenRequest {
        token_url: "https://auth.example/token",
        client_id: "app",
        client_secret,
        grant,
        scope: &scope,
        auth_method,
        extra_params: &[],
    };
    let post = CacheIdentity::of(&request(
        &Grant::ClientCredentials,
        Some(&secret),
        AuthMethod::ClientSecretPost,
    ));
    let basic = CacheIdentity::of(&request(
        &Grant::ClientCredentials,
        Some(&secret),
        AuthMethod::ClientSecretBasic,
    ));
    let public = CacheIdentity::of(&request(
        &Grant::ClientCredentials,
        None,
        AuthMethod::ClientSecretBasic,
    ));
    let user = CacheIdentity::of(&request(&password, None, AuthMethod::ClientSecretPost));
    assert_eq!(post.auth, ClientAuth::SecretPost);
    assert_eq!(basic.auth, ClientAuth::SecretBasic);
    assert_eq!(public.auth, ClientAuth::Public);
    assert_eq!(user.username, Some("alice"));
    for id in [post, basic, public, user] {
        let bytes = id.encode();
        for secret in [&b"very-secret-value"[..], b"hunter2-password"] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret));
        }
        assert_eq!(decode(&bytes), Some(normalised(&id)));
    }
}

fn auth() -> impl Strategy<Value = ClientAuth> {
    prop_oneof![
        Just(ClientAuth::Public),
        Just(ClientAuth::SecretPost),
        Just(ClientAuth::SecretBasic)
    ]
}

fn owned() -> impl Strategy<Value = Owned> {
    // Short strings over a small alphabet, with the bytes a length prefix could be confused with,
    // so that collisions would be likely if the encoding were ambiguous.
    let s = || "[a-c\\x00\\x01 =&]{0,4}";
    (
        s(),
        s(),
        auth(),
        proptest::option::of(s()),
        proptest::collection::vec(s(), 0..4),
        proptest::collection::vec((s(), s()), 0..3),
    )
        .prop_map(Owned::from)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Decoding gives back exactly the normalised identity, so the encoding is injective on
    /// normalised identities: two identities share bytes only if they mean the same token.
    #[test]
    fn the_encoding_decodes_back_to_the_normalised_identity(o in owned()) {
        let id = o.id();
        prop_assert_eq!(decode(&id.encode()), Some(normalised(&id)));
    }

    #[test]
    fn two_identities_encode_the_same_only_when_they_mean_the_same(a in owned(), b in owned()) {
        let (a, b) = (a.id(), b.id());
        prop_assert_eq!(a.encode() == b.encode(), normalised(&a) == normalised(&b));
    }
}
