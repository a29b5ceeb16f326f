//! Token authentication at the upgrade: an HS256 JWT in
//! `Authorization: Bearer …` or, for browsers (which cannot set headers on
//! a WebSocket), in `?token=…`.

use super::query::request_token;
use crate::protocol::{Closed, HandshakeError, Message, Request};
use crate::reactor::{Accept, ConnId, Context, Handler, HttpResponse, OpenInfo};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

/// Verifies HS256 JWTs: signature (HMAC, compared in constant time by the
/// `jsonwebtoken` crate), `exp` (required, no leeway), `nbf` (when present,
/// no leeway), `sub` (required: it becomes the connection's user), and,
/// when configured, `aud` and `iss` (then required).
///
/// A refusal is a 401 whose body says which check failed in words of our
/// own: the library's error text is never sent or logged, since it may
/// quote the token.
#[derive(Clone)]
pub struct JwtAuth {
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtAuth(HS256, secret hidden)")
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
}

impl JwtAuth {
    /// A verifier for tokens signed with `secret` (HS256).
    pub fn hs256(secret: &[u8]) -> JwtAuth {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        // RFC 7519 §4.1.3: without a configured audience, `aud` is not ours to judge
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtAuth {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Also requires `aud` to name `audience` (RFC 7519 §4.1.3).
    pub fn with_audience(mut self, audience: &str) -> JwtAuth {
        self.validation.set_audience(&[audience]);
        self.validation.validate_aud = true;
        self.require("aud");
        self
    }

    /// Also requires `iss` to be `issuer` (RFC 7519 §4.1.1).
    pub fn with_issuer(mut self, issuer: &str) -> JwtAuth {
        self.validation.set_issuer(&[issuer]);
        self.require("iss");
        self
    }

    fn require(&mut self, claim: &str) {
        let mut claims: Vec<String> = self
            .validation
            .required_spec_claims
            .iter()
            .cloned()
            .collect();
        claims.push(claim.to_string());
        self.validation.set_required_spec_claims(&claims);
    }

    /// Checks the request's token; returns its `sub`, or a 401 refusal
    /// with the reason.
    pub fn verify(&self, request: &Request<'_>) -> Result<String, HandshakeError> {
        let token = request_token(request)
            .ok_or_else(|| refuse("missing token: send Authorization: Bearer or ?token="))?;
        match jsonwebtoken::decode::<Claims>(&token, &self.key, &self.validation) {
            Ok(data) => Ok(data.claims.sub),
            Err(e) => Err(refuse(reason_for(e.kind()))),
        }
    }
}

/// Our own words for why a token was refused.
fn reason_for(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::ExpiredSignature => "invalid token: expired",
        ErrorKind::ImmatureSignature => "invalid token: not valid yet (nbf)",
        ErrorKind::InvalidAudience => "invalid token: wrong audience",
        ErrorKind::InvalidIssuer => "invalid token: wrong issuer",
        ErrorKind::InvalidSignature => "invalid token: bad signature",
        ErrorKind::InvalidAlgorithm => "invalid token: algorithm must be HS256",
        ErrorKind::MissingRequiredClaim(_) => "invalid token: a required claim is missing",
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => "invalid token: malformed claims",
        _ => "invalid token: malformed",
    }
}

fn refuse(reason: &str) -> HandshakeError {
    HandshakeError::Refused(401, reason.to_string())
}

/// Wraps a handler so that every upgrade must carry a valid token; the
/// token's `sub` becomes the connection's user ([`Context::user`]).
#[derive(Debug)]
pub struct Authenticated<H> {
    /// The wrapped handler.
    pub inner: H,
    auth: JwtAuth,
}

impl<H: Handler> Authenticated<H> {
    /// `inner`, behind token checks by `auth`.
    pub fn new(inner: H, auth: JwtAuth) -> Self {
        Authenticated { inner, auth }
    }
}

impl<H: Handler> Handler for Authenticated<H> {
    fn on_upgrade(
        &mut self,
        request: &Request<'_>,
        peer: SocketAddr,
    ) -> Result<Accept, HandshakeError> {
        let user = self.auth.verify(request)?;
        let mut accept = self.inner.on_upgrade(request, peer)?;
        accept.user.get_or_insert(user);
        Ok(accept)
    }

    fn on_http(
        &mut self,
        ctx: &mut Context<'_>,
        request: &Request<'_>,
        peer: SocketAddr,
    ) -> HttpResponse {
        self.inner.on_http(ctx, request, peer)
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, info: &OpenInfo<'_>) {
        self.inner.on_open(ctx, id, info)
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        self.inner.on_message(ctx, id, message)
    }

    fn on_ping(&mut self, ctx: &mut Context<'_>, id: ConnId, payload: &[u8]) {
        self.inner.on_ping(ctx, id, payload)
    }

    fn on_pong(&mut self, ctx: &mut Context<'_>, id: ConnId, payload: &[u8]) {
        self.inner.on_pong(ctx, id, payload)
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, id: ConnId, closed: &Closed) {
        self.inner.on_close(ctx, id, closed)
    }

    fn on_connect_error(&mut self, ctx: &mut Context<'_>, id: ConnId, error: &str) {
        self.inner.on_connect_error(ctx, id, error)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn on_timeout(&mut self, ctx: &mut Context<'_>, now: Instant) {
        self.inner.on_timeout(ctx, now)
    }

    fn on_relayed(&mut self, ctx: &mut Context<'_>, relayed: &crate::reactor::Relayed) {
        self.inner.on_relayed(ctx, relayed)
    }

    fn on_relay_lost(&mut self, ctx: &mut Context<'_>, channel: &crate::reactor::Channel) {
        self.inner.on_relay_lost(ctx, channel)
    }

    fn on_bridged(&mut self, ctx: &mut Context<'_>, message: &crate::redis::link::Bridged) {
        self.inner.on_bridged(ctx, message)
    }

    fn on_bridge_subscribed(&mut self, ctx: &mut Context<'_>, key: &str) {
        self.inner.on_bridge_subscribed(ctx, key)
    }

    fn on_proxy_end(
        &mut self,
        ctx: &mut Context<'_>,
        id: ConnId,
        upstream: usize,
        outcome: &crate::reactor::ProxyOutcome,
    ) {
        self.inner.on_proxy_end(ctx, id, upstream, outcome)
    }

    fn on_probe(&mut self, ctx: &mut Context<'_>, upstream: usize, result: Result<u16, String>) {
        self.inner.on_probe(ctx, upstream, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde::Serialize;

    #[derive(Serialize)]
    struct Token<'a> {
        sub: &'a str,
        exp: u64,
    }

    #[derive(Serialize)]
    struct FullToken<'a> {
        sub: &'a str,
        exp: u64,
        nbf: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        aud: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        iss: Option<&'a str>,
    }

    fn full_token(secret: &[u8], claims: &FullToken<'_>) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn token(secret: &[u8], sub: &str, exp: u64) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &Token { sub, exp },
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    use crate::server::query::request as request_with;

    #[test]
    fn valid_tokens_in_header_or_query_give_their_subject() {
        let auth = JwtAuth::hs256(b"s3cret");
        let t = token(b"s3cret", "alice", now() + 60);
        let bearer = format!("Bearer {t}");
        assert_eq!(
            auth.verify(&request_with("/", Some(&bearer))),
            Ok("alice".into())
        );
        let target = format!("/chat?room=a&token={t}");
        assert_eq!(
            auth.verify(&request_with(&target, None)),
            Ok("alice".into())
        );
    }

    #[test]
    fn missing_expired_and_forged_tokens_are_401() {
        let auth = JwtAuth::hs256(b"s3cret");
        let expired = token(b"s3cret", "alice", now() - 10);
        let forged = token(b"other", "mallory", now() + 60);
        for target in [
            "/".to_string(),
            format!("/?token={expired}"),
            format!("/?token={forged}"),
            "/?token=abc".into(),
        ] {
            let err = auth.verify(&request_with(&target, None)).unwrap_err();
            assert_eq!(err.status(), 401, "{target}: {err}");
        }
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let auth = JwtAuth::hs256(b"s3cret");
        let early = full_token(
            b"s3cret",
            &FullToken {
                sub: "alice",
                exp: now() + 600,
                nbf: now() + 300,
                aud: None,
                iss: None,
            },
        );
        let err = auth
            .verify(&request_with(&format!("/?token={early}"), None))
            .unwrap_err();
        assert_eq!(
            err,
            HandshakeError::Refused(401, "invalid token: not valid yet (nbf)".into())
        );
    }

    #[test]
    fn audience_and_issuer_are_required_once_configured() {
        let auth = JwtAuth::hs256(b"s3cret")
            .with_audience("chat")
            .with_issuer("https://auth.example");
        let claims = |aud, iss| FullToken {
            sub: "alice",
            exp: now() + 600,
            nbf: now() - 1,
            aud,
            iss,
        };
        let verify = |c: &FullToken<'_>| {
            let t = full_token(b"s3cret", c);
            auth.verify(&request_with(&format!("/?token={t}"), None))
        };
        assert_eq!(
            verify(&claims(Some("chat"), Some("https://auth.example"))),
            Ok("alice".into())
        );
        for (c, reason) in [
            (
                claims(Some("other"), Some("https://auth.example")),
                "wrong audience",
            ),
            (
                claims(Some("chat"), Some("https://evil.example")),
                "wrong issuer",
            ),
            (
                claims(None, Some("https://auth.example")),
                "a required claim is missing",
            ),
            (claims(Some("chat"), None), "a required claim is missing"),
        ] {
            let err = verify(&c).unwrap_err();
            assert_eq!(
                err,
                HandshakeError::Refused(401, format!("invalid token: {reason}"))
            );
        }
    }

    #[test]
    fn refusals_never_quote_the_token_or_the_library() {
        let auth = JwtAuth::hs256(b"s3cret");
        let forged = token(b"other", "mallory", now() + 60);
        for target in [
            format!("/?token={forged}"),
            "/?token=eyJhbGciOiJIUzI1NiJ9.QUTE_ME.x".to_string(),
            "/?token=%3Cscript%3E".to_string(),
        ] {
            let err = auth.verify(&request_with(&target, None)).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("invalid token: "), "{text}");
            assert!(
                !text.contains("QUTE_ME") && !text.contains("script"),
                "{text}"
            );
            assert!(!text.contains(&forged), "{text}");
        }
    }
}
