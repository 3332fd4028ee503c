//! Tokens of every wrong shape are refused; the right ones verify, whichever key signed them.
//! The keys in `testdata/` were generated for these tests only (`openssl genpkey`).

use super::*;
use serde_json::{json, Value};

const SECRET: &str = "a-test-secret-that-is-long-enough";
const RSA_PRIVATE: &[u8] = include_bytes!("testdata/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("testdata/rsa_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("testdata/ed25519_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("testdata/ed25519_public.pem");

fn policy() -> JwtPolicy {
    JwtPolicy {
        issuer: "ringiflow".into(),
        audience: "ringiflow".into(),
        max_lifetime: chrono::Duration::hours(12),
    }
}

fn hs256(secret: &str) -> Jwt {
    Jwt::new(policy(), Some(&Secret::new(secret.to_owned())), Vec::new())
}

fn alice() -> Identity {
    Identity {
        tenant_id: "acme".into(),
        user_id: "alice".into(),
        display_name: "アリス".into(),
        roles: vec!["admin".into()],
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Valid claims for alice, issued now for an hour; tests change one thing at a time.
fn claims() -> Value {
    json!({
        "sub": "alice", "tenant_id": "acme", "name": "アリス", "roles": ["admin"],
        "iss": "ringiflow", "aud": "ringiflow", "iat": now(), "exp": now() + 3600,
    })
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (claim, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(claim);
        } else {
            claims[claim] = value.clone();
        }
    }
    claims
}

#[test]
fn issued_tokens_verify_to_the_same_identity() {
    let jwt = hs256(SECRET);
    let token = jwt.issue(&alice(), chrono::Duration::hours(1)).unwrap();
    assert_eq!(
        jwt.verify_header(Some(&format!("Bearer {token}"))).unwrap(),
        alice()
    );
}

#[test]
fn tokens_of_every_wrong_shape_are_refused() {
    let jwt = hs256(SECRET);
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let cases: Vec<(&str, Value)> = vec![
        ("expired", json!({"exp": now() - 120, "iat": now() - 3600})),
        ("without exp", json!({"exp": null})),
        ("without iat", json!({"iat": null})),
        ("without aud", json!({"aud": null})),
        ("for another audience", json!({"aud": "billing"})),
        ("from another issuer", json!({"iss": "evil"})),
        (
            "not valid before an hour from now",
            json!({"nbf": now() + 3600}),
        ),
        (
            "issued a day ahead",
            json!({"iat": now() + 86_400, "exp": now() + 90_000}),
        ),
        (
            "valid for ten years",
            json!({"exp": now() + 10 * 365 * 86_400}),
        ),
        (
            "beyond the leeway",
            json!({"exp": now() - 31, "iat": now() - 600}),
        ),
        ("with an empty tenant", json!({"tenant_id": " "})),
        ("without sub", json!({"sub": null})),
    ];
    for (case, changes) in cases {
        let token = sign(Algorithm::HS256, &key, &with(claims(), changes), None);
        assert!(
            matches!(jwt.verify(&token), Err(AuthError::Invalid(_))),
            "a token {case} must be refused"
        );
    }
    // Within the leeway, a slightly skewed clock is fine.
    let skewed = with(claims(), json!({"iat": now() + 20, "nbf": now() + 20}));
    assert_eq!(
        jwt.verify(&sign(Algorithm::HS256, &key, &skewed, None))
            .unwrap(),
        alice()
    );
    let audiences = with(claims(), json!({"aud": ["billing", "ringiflow"]}));
    assert!(jwt
        .verify(&sign(Algorithm::HS256, &key, &audiences, None))
        .is_ok());

    let other = hs256("another-secret-that-is-long-enough");
    let token = other.issue(&alice(), chrono::Duration::hours(1)).unwrap();
    assert!(matches!(jwt.verify(&token), Err(AuthError::Invalid(_))));
    assert!(matches!(
        jwt.verify("not.a.jwt"),
        Err(AuthError::Invalid(_))
    ));
    assert!(matches!(jwt.verify_header(None), Err(AuthError::Missing)));
    assert!(matches!(
        jwt.verify_header(Some("Basic abc")),
        Err(AuthError::Invalid(_))
    ));
    let status = Status::from(AuthError::Missing);
    assert_eq!(errors::code_of(&status), ErrorCode::Unauthenticated);
}

#[test]
fn issuing_respects_the_policy() {
    let jwt = hs256(SECRET);
    assert!(matches!(
        jwt.issue(&alice(), chrono::Duration::hours(13)),
        Err(IssueError::TooLong { .. })
    ));
    let verify_only = Jwt::new(policy(), None, public_keys(RSA_PUBLIC).unwrap());
    assert!(!verify_only.can_issue());
    assert!(matches!(
        verify_only.issue(&alice(), chrono::Duration::hours(1)),
        Err(IssueError::NoSecret)
    ));
}

#[test]
fn public_keys_verify_tokens_they_cannot_mint() {
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let ed = EncodingKey::from_ed_pem(ED_PRIVATE).unwrap();
    for (public, alg, key) in [
        (RSA_PUBLIC, Algorithm::RS256, &rsa),
        (RSA_PUBLIC, Algorithm::PS256, &rsa),
        (ED_PUBLIC, Algorithm::EdDSA, &ed),
    ] {
        let jwt = Jwt::new(policy(), None, public_keys(public).unwrap());
        let token = sign(alg, key, &claims(), None);
        assert_eq!(jwt.verify(&token).unwrap(), alice(), "{alg:?}");
        // The same policy applies as for HS256.
        let forever = with(claims(), json!({"exp": now() + 10 * 365 * 86_400}));
        assert!(jwt.verify(&sign(alg, key, &forever, None)).is_err());
    }
    // Only HS256 needs the secret; a verify-only service refuses it, and a service with both
    // accepts both.
    let verify_only = Jwt::new(policy(), None, public_keys(RSA_PUBLIC).unwrap());
    let hs = hs256(SECRET)
        .issue(&alice(), chrono::Duration::hours(1))
        .unwrap();
    assert!(verify_only.verify(&hs).is_err());
    let both = Jwt::new(
        policy(),
        Some(&Secret::new(SECRET.to_owned())),
        public_keys(RSA_PUBLIC).unwrap(),
    );
    assert!(both.verify(&hs).is_ok());
    assert!(both
        .verify(&sign(Algorithm::RS256, &rsa, &claims(), None))
        .is_ok());
}

#[test]
fn the_rsa_public_key_never_serves_as_an_hmac_secret() {
    // Algorithm confusion: HS256 "signed" with the public key's bytes, which anyone has.
    let jwt = Jwt::new(policy(), None, public_keys(RSA_PUBLIC).unwrap());
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_PUBLIC),
        &claims(),
        None,
    );
    assert!(jwt.verify(&forged).is_err());
}

#[test]
fn a_jwks_file_selects_the_key_by_kid() {
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let ed = EncodingKey::from_ed_pem(ED_PRIVATE).unwrap();
    let rsa_jwk = jsonwebtoken::jwk::Jwk::from_decoding_key(
        &DecodingKey::from_rsa_pem(RSA_PUBLIC).unwrap(),
        Some(Algorithm::RS256),
    )
    .unwrap();
    let ed_jwk = jsonwebtoken::jwk::Jwk::from_decoding_key(
        &DecodingKey::from_ed_pem(ED_PUBLIC).unwrap(),
        Some(Algorithm::EdDSA),
    )
    .unwrap();
    let mut set = json!({"keys": [rsa_jwk, ed_jwk]});
    set["keys"][0]["kid"] = "rsa-2026".into();
    set["keys"][1]["kid"] = "ed-2026".into();
    let jwt = Jwt::new(
        policy(),
        None,
        public_keys(set.to_string().as_bytes()).unwrap(),
    );
    let rsa_token = sign(Algorithm::RS256, &rsa, &claims(), Some("rsa-2026"));
    assert!(jwt.verify(&rsa_token).is_ok());
    let ed_token = sign(Algorithm::EdDSA, &ed, &claims(), Some("ed-2026"));
    assert!(jwt.verify(&ed_token).is_ok());
    let unknown_kid = sign(Algorithm::RS256, &rsa, &claims(), Some("retired"));
    assert!(jwt.verify(&unknown_kid).is_err());

    let symmetric = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]});
    assert!(public_keys(symmetric.to_string().as_bytes()).is_err());
    assert!(public_keys(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
}
