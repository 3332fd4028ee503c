//! Per-caller rate limits: [`RateLimitLayer`] admits a request only while its user and its
//! tenant are within their rates, and answers anything more with HTTP 429, `Retry-After` and a
//! GraphQL error coded RESOURCE_EXHAUSTED.
//!
//! Each limit is a generic cell rate algorithm (GCRA): a caller may send `burst` requests at
//! once and then one every `1/rate` seconds; all it takes per caller is the theoretical arrival
//! time of its next request. A request is charged to its user and its tenant, keyed on the
//! verified token's `tenant_id` and `sub`. A request without a valid token is charged to its
//! client address under the user limit (IPv6 by /64, what one client usually holds): it only
//! ever fails authentication, but must not cost the gateway unboundedly either.
//!
//! Memory: a key whose arrival time has passed is indistinguishable from an absent one, so it is
//! dropped. Keys are swept whenever the map has doubled since the last sweep (amortised O(1)),
//! which bounds it by twice the callers admitted within one burst window (`burst / rate`
//! seconds, 2 s by default) — whatever keys a client makes up.

use crate::errors::http_error;
use crate::settings::RateLimitSettings;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use http::{HeaderValue, Request};
use platform::auth::Jwt;
use platform::errors::ErrorCode;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service};

/// Below this many keys the map is never swept: sweeping a small map saves nothing.
const MIN_SWEEP: usize = 1_024;

/// One rate: `burst` requests at once, then one per `interval`.
#[derive(Debug, Clone, Copy)]
struct Rate {
    interval: Duration,
    /// How far ahead of now a caller's next arrival time may be: `burst` intervals.
    tolerance: Duration,
}

impl Rate {
    fn new(per_second: u32, burst: u32) -> Self {
        // clap refuses 0 for both; the floor keeps a hand-built value meaningful too.
        let interval = Duration::from_secs(1) / per_second.max(1);
        Self {
            interval,
            tolerance: interval * burst.max(1),
        }
    }

    /// The arrival time after one more request at `now` by a caller whose arrival time is
    /// `due`, or how long it must wait to be admitted.
    fn admit(&self, due: Option<Instant>, now: Instant) -> Result<Instant, Duration> {
        let next = due.map_or(now, |due| due.max(now)) + self.interval;
        let latest = now + self.tolerance;
        if next <= latest {
            Ok(next)
        } else {
            Err(next - latest)
        }
    }
}

/// Who a request is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User {
        tenant: String,
        user: String,
    },
    Tenant(String),
    /// An unauthenticated client.
    Peer(IpAddr),
}

/// Which limit refused a request, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    User,
    Tenant,
    Client,
}

/// The limits and every caller's next arrival time.
pub(crate) struct RateLimiter {
    user: Rate,
    tenant: Rate,
    callers: Mutex<Callers>,
}

struct Callers {
    due: HashMap<Key, Instant>,
    sweep_at: usize,
}

impl RateLimiter {
    pub(crate) fn new(settings: &RateLimitSettings) -> Self {
        Self {
            user: Rate::new(settings.rate_limit_per_second, settings.rate_limit_burst),
            tenant: Rate::new(
                settings.tenant_rate_limit_per_second,
                settings.tenant_rate_limit_burst,
            ),
            callers: Mutex::new(Callers {
                due: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }

    /// Admits one request charged to `keys` at `now` and charges it to every one of them, or,
    /// if any refuses it, charges none and says which refused and for how long.
    fn admit(&self, keys: &[(Key, Refused)], now: Instant) -> Result<(), (Refused, Duration)> {
        // Nothing below can panic while the lock is held, so a poisoned lock holds consistent
        // data.
        let mut callers = self
            .callers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        callers.sweep(now);
        let mut admitted = Vec::with_capacity(keys.len());
        let mut refused: Option<(Refused, Duration)> = None;
        for (key, limit) in keys {
            let rate = match limit {
                Refused::User | Refused::Client => self.user,
                Refused::Tenant => self.tenant,
            };
            match rate.admit(callers.due.get(key).copied(), now) {
                Ok(due) => admitted.push((key, due)),
                Err(wait) if refused.is_none_or(|(_, longest)| wait > longest) => {
                    refused = Some((*limit, wait));
                }
                Err(_) => {}
            }
        }
        if let Some(refused) = refused {
            return Err(refused);
        }
        for (key, due) in admitted {
            callers.due.insert(key.clone(), due);
        }
        Ok(())
    }
}

impl Callers {
    fn sweep(&mut self, now: Instant) {
        if self.due.len() < self.sweep_at {
            return;
        }
        self.due.retain(|_, due| *due > now);
        self.sweep_at = (2 * self.due.len()).max(MIN_SWEEP);
    }
}

/// The keys a request is charged to.
fn keys_of(request: &Request<Body>, jwt: &Jwt) -> Vec<(Key, Refused)> {
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    match jwt.verify_header(authorization) {
        Ok(identity) => vec![
            (
                Key::User {
                    tenant: identity.tenant_id.clone(),
                    user: identity.user_id,
                },
                Refused::User,
            ),
            (Key::Tenant(identity.tenant_id), Refused::Tenant),
        ],
        Err(_) => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| {
                    client(info.0.ip())
                });
            vec![(Key::Peer(peer), Refused::Client)]
        }
    }
}

/// The address that stands for one client: an IPv4 address, or an IPv6 /64.
fn client(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    }
}

/// HTTP 429 with `Retry-After` in whole seconds, rounded up so a client that waits that long is
/// admitted.
fn too_many_requests(refused: Refused, wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let whose = match refused {
        Refused::User => "this user",
        Refused::Tenant => "this tenant",
        Refused::Client => "this client",
    };
    let mut response = http_error(
        ErrorCode::ResourceExhausted,
        &format!("too many requests from {whose}; retry after {seconds} s"),
    );
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Applies a [`RateLimiter`] to every request of the service it wraps.
#[derive(Clone)]
pub(crate) struct RateLimitLayer {
    limiter: Arc<RateLimiter>,
    jwt: Jwt,
}

impl RateLimitLayer {
    pub(crate) fn new(limiter: RateLimiter, jwt: Jwt) -> Self {
        Self {
            limiter: Arc::new(limiter),
            jwt,
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct RateLimit<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S> Service<Request<Body>> for RateLimit<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let keys = keys_of(&request, &self.layer.jwt);
        match self.layer.limiter.admit(&keys, Instant::now()) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err((refused, wait)) => {
                tracing::info!(?refused, ?wait, "request refused by the rate limit");
                Box::pin(std::future::ready(Ok(too_many_requests(refused, wait))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(
        per_second: u32,
        burst: u32,
        tenant_per_second: u32,
        tenant_burst: u32,
    ) -> RateLimiter {
        RateLimiter::new(&RateLimitSettings {
            rate_limit_per_second: per_second,
            rate_limit_burst: burst,
            tenant_rate_limit_per_second: tenant_per_second,
            tenant_rate_limit_burst: tenant_burst,
        })
    }

    fn user(tenant: &str, user: &str) -> Vec<(Key, Refused)> {
        vec![
            (
                Key::User {
                    tenant: tenant.into(),
                    user: user.into(),
                },
                Refused::User,
            ),
            (Key::Tenant(tenant.into()), Refused::Tenant),
        ]
    }

    /// How many of `count` requests at `at` are admitted.
    fn admitted(
        limiter: &RateLimiter,
        keys: &[(Key, Refused)],
        count: usize,
        at: Instant,
    ) -> usize {
        (0..count)
            .filter(|_| limiter.admit(keys, at).is_ok())
            .count()
    }

    #[test]
    fn a_user_gets_the_burst_at_once_then_the_rate() {
        let limiter = limiter(100, 200, 10_000, 10_000);
        let alice = user("acme", "alice");
        let start = Instant::now();
        assert_eq!(admitted(&limiter, &alice, 250, start), 200);
        let (refused, wait) = limiter.admit(&alice, start).unwrap_err();
        assert_eq!((refused, wait), (Refused::User, Duration::from_millis(10)));
        // Other users are not affected.
        assert_eq!(admitted(&limiter, &user("acme", "bob"), 10, start), 10);
        assert_eq!(admitted(&limiter, &user("globex", "alice"), 10, start), 10);
        // A second later, 100 more intervals have passed.
        let later = start + Duration::from_secs(1);
        assert_eq!(admitted(&limiter, &alice, 250, later), 100);
    }

    #[test]
    fn a_tenant_is_limited_across_its_users_and_a_refusal_charges_nobody() {
        let limiter = limiter(100, 200, 10, 30);
        let start = Instant::now();
        assert_eq!(admitted(&limiter, &user("acme", "alice"), 20, start), 20);
        assert_eq!(admitted(&limiter, &user("acme", "bob"), 20, start), 10);
        let (refused, _) = limiter.admit(&user("acme", "carol"), start).unwrap_err();
        assert_eq!(refused, Refused::Tenant);
        // Carol's refused requests were not charged to her: elsewhere she has her whole burst.
        let carol = &user("acme", "carol")[..1];
        assert_eq!(admitted(&limiter, carol, 250, start), 200);
        assert_eq!(admitted(&limiter, &user("globex", "dave"), 30, start), 30);
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let response = too_many_requests(Refused::User, Duration::from_millis(1_200));
        assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "2");
        let response = too_many_requests(Refused::Tenant, Duration::from_secs(3));
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "3");
    }

    #[test]
    fn idle_callers_are_forgotten_so_made_up_keys_cannot_grow_the_map() {
        let limiter = limiter(100, 200, 100, 200);
        let start = Instant::now();
        for second in 0..20u32 {
            let at = start + Duration::from_secs(u64::from(second));
            for n in 0..1_000u32 {
                let key = Key::Peer(IpAddr::V4(Ipv4Addr::from(second * 1_000 + n)));
                assert!(limiter.admit(&[(key, Refused::Client)], at).is_ok());
            }
        }
        // 20,000 distinct clients, each idle again 2 s after its request: only those of the
        // last seconds (and at most twice as many since the last sweep) are kept.
        let tracked = limiter.callers.lock().unwrap().due.len();
        assert!(tracked <= 2 * 1_000, "{tracked}");
    }

    #[test]
    fn clients_are_ipv4_addresses_or_ipv6_prefixes() {
        let v6: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        assert_eq!(client(v6), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
