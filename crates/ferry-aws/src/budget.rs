//! One token bucket per AWS service, shared by everything one ferry process
//! does: every request of that service's client waits for a token before it
//! goes out, so however many waits, log tails and retries run at once, the
//! process stays inside the service's published request budget. (A process
//! cannot bound a whole account: N ferries share it, which scripts/bench
//! measures.)
//!
//! The bucket sits in the SDK's HTTP client, under the SDK's own retries, so a
//! retried request waits for a token too.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use tokio::time::Instant;

use ferry_core::config::{ApiBudget, DEFAULT_API_BUDGET};

/// The services ferry calls, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Rds,
    Ecs,
    Logs,
    AppRunner,
    CloudFormation,
    /// The S3 state store: a few requests a run, well under S3's own rates
    /// (3,500 writes and 5,500 reads a second per prefix), so its bucket is
    /// fixed rather than a share of `api_budget`.
    S3,
}

/// The S3 state store's requests a second (and burst).
const S3_RATE: f64 = 50.0;

impl Service {
    const ALL: [Service; 6] =
        [Service::Rds, Service::Ecs, Service::Logs, Service::AppRunner, Service::CloudFormation, Service::S3];

    /// The service's requests a second (and burst) in `budget`.
    fn rate(self, budget: &ApiBudget) -> f64 {
        match self {
            Service::Rds => budget.rds,
            Service::Ecs => budget.ecs,
            Service::Logs => budget.logs,
            Service::AppRunner => budget.apprunner,
            Service::CloudFormation => budget.cloudformation,
            Service::S3 => S3_RATE,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A token bucket on tokio's clock (so tests run it under virtual time).
#[derive(Debug)]
pub struct Bucket {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    rate: f64,
    burst: f64,
    /// Tokens left and when they were counted (none before the first request).
    tokens: Option<(f64, Instant)>,
}

impl Bucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        Bucket { state: Mutex::new(State { rate, burst, tokens: None }) }
    }

    /// Resize the bucket (the tokens already in it are kept, up to the new burst).
    pub fn resize(&self, rate: f64, burst: f64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.rate = rate;
        state.burst = burst;
        if let Some((tokens, _)) = state.tokens.as_mut() {
            *tokens = tokens.min(burst);
        }
    }

    /// Wait for a token and take it.
    pub async fn take(&self) {
        loop {
            let wait = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                // A new bucket holds a second's worth: its burst, or for a budget
                // below one a second the fraction of a token that second brings
                // (N ferries given 1/N of an account's budget each then stay
                // inside it from their first second, not N requests at once).
                let (tokens, at) = state.tokens.unwrap_or((state.rate.min(state.burst), now));
                let tokens = (tokens + (now - at).as_secs_f64() * state.rate).min(state.burst);
                if tokens >= 1.0 {
                    state.tokens = Some((tokens - 1.0, now));
                    return;
                }
                state.tokens = Some((tokens, now));
                Duration::from_secs_f64((1.0 - tokens) / state.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// The burst of a bucket of `rate` a second: a second's worth, and at least
/// one request (a budget below one a second still lets one through).
fn burst(rate: f64) -> f64 {
    rate.max(1.0)
}

/// The process-wide bucket of a service.
pub fn bucket(service: Service) -> Arc<Bucket> {
    static BUCKETS: OnceLock<Vec<Arc<Bucket>>> = OnceLock::new();
    let all = BUCKETS.get_or_init(|| {
        Service::ALL
            .iter()
            .map(|s| {
                let rate = s.rate(&DEFAULT_API_BUDGET);
                Arc::new(Bucket::new(rate, burst(rate)))
            })
            .collect()
    });
    all[service.index()].clone()
}

/// Size every service's process-wide bucket from an environment's `api_budget`.
pub fn configure(budget: &ApiBudget) {
    for s in Service::ALL {
        let rate = s.rate(budget);
        bucket(s).resize(rate, burst(rate));
    }
}

#[derive(Debug, Clone)]
struct Limited {
    inner: SharedHttpClient,
    bucket: Arc<Bucket>,
}

impl HttpClient for Limited {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(LimitedConnector {
            inner: self.inner.http_connector(settings, components),
            bucket: self.bucket.clone(),
        })
    }
}

#[derive(Debug)]
struct LimitedConnector {
    inner: SharedHttpConnector,
    bucket: Arc<Bucket>,
}

impl HttpConnector for LimitedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, bucket) = (self.inner.clone(), self.bucket.clone());
        HttpConnectorFuture::new(async move {
            bucket.take().await;
            inner.call(request).await
        })
    }
}

/// The SDK configuration with `service`'s bucket in front of its HTTP client:
/// the configuration's own (tests, a custom one), or else the HTTPS client the
/// SDK would pick by default (rustls with aws-lc), built here so that there is
/// one to wrap: a configuration loaded from the environment has none of its
/// own, and without this the bucket would never see a request.
pub fn limited(sdk: &SdkConfig, service: Service) -> SdkConfig {
    let inner = sdk.http_client().unwrap_or_else(|| match service {
        // The state store runs its requests on a runtime of its own (its
        // calls block): its connections are its own too, never a pooled
        // connection whose task lives on the main runtime.
        Service::S3 => https_client_with_env_proxy(),
        _ => default_https_client(),
    });
    sdk.to_builder().http_client(SharedHttpClient::new(Limited { inner, bucket: bucket(service) })).build()
}

/// One HTTPS client for the whole process (one connection pool, the trust
/// roots loaded once), shared by every service's bucket. It is built as the
/// SDK builds its own default client, proxies included: `HTTPS_PROXY`,
/// `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (upper or lower case) route every
/// service's requests, so RDS, ECS, Logs, App Runner and CloudFormation take
/// the same path through a corporate proxy as S3 and the credential providers.
fn default_https_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT.get_or_init(https_client_with_env_proxy).clone()
}

fn https_client_with_env_proxy() -> SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            aws_smithy_http_client::ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_allows_its_burst_then_its_rate_and_never_more() {
        let b = Bucket::new(5.0, 5.0);
        let start = Instant::now();
        for _ in 0..5 {
            b.take().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst goes at once");
        for _ in 0..10 {
            b.take().await;
        }
        let took = start.elapsed().as_secs_f64();
        assert!((1.9..=2.1).contains(&took), "10 more at 5 a second take 2 s, took {took}");
    }

    #[tokio::test(start_paused = true)]
    async fn tasks_sharing_a_bucket_share_its_rate() {
        let b = Arc::new(Bucket::new(10.0, 1.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move {
                    for _ in 0..10 {
                        b.take().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let took = start.elapsed().as_secs_f64();
        assert!(took >= 3.8, "40 requests at 10 a second from 4 tasks: about 4 s, took {took}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_below_one_a_second_does_not_start_with_a_whole_token() {
        let b = Bucket::new(0.25, burst(0.25));
        let start = Instant::now();
        b.take().await;
        let took = start.elapsed().as_secs_f64();
        assert!((2.9..=3.1).contains(&took), "0.25 a second, a quarter token at the start: 3 s, took {took}");
        b.take().await;
        let took = start.elapsed().as_secs_f64();
        assert!((6.9..=7.1).contains(&took), "then one every 4 s, took {took}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_resized_bucket_goes_at_its_new_rate_at_once() {
        let b = Bucket::new(10.0, 10.0);
        b.take().await;
        b.resize(0.5, burst(0.5));
        let start = Instant::now();
        for _ in 0..3 {
            b.take().await;
        }
        let took = start.elapsed().as_secs_f64();
        // The one token left after the resize goes at once, then one every 2 s.
        assert!((3.9..=4.1).contains(&took), "3 requests at 0.5 a second after one in hand: 4 s, took {took}");
    }
}
