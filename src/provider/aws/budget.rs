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

/// The services ferry calls, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Rds,
    Ecs,
    Logs,
    AppRunner,
    CloudFormation,
}

impl Service {
    /// Requests per second (sustained) and burst, per process. RDS: about 12
    /// a second sustained for its describe calls; CloudWatch Logs:
    /// FilterLogEvents 5 a second per account (GetLogEvents 10), the stricter
    /// one for the whole service; ECS: its cluster-read bucket holds 50
    /// tokens, so 20 a second leaves room for the rest of the account; App
    /// Runner and CloudFormation have no published figure ferry relies on,
    /// so they get a modest 5.
    fn budget(self) -> (f64, f64) {
        match self {
            Service::Rds => (12.0, 12.0),
            Service::Ecs => (20.0, 20.0),
            Service::Logs => (5.0, 5.0),
            Service::AppRunner => (5.0, 5.0),
            Service::CloudFormation => (5.0, 5.0),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A token bucket on tokio's clock (so tests run it under virtual time).
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<Option<(f64, Instant)>>,
}

impl Bucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        Bucket { rate, burst, state: Mutex::new(None) }
    }

    /// Wait for a token and take it.
    pub async fn take(&self) {
        loop {
            let wait = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let (tokens, at) = state.unwrap_or((self.burst, now));
                let tokens = (tokens + (now - at).as_secs_f64() * self.rate).min(self.burst);
                if tokens >= 1.0 {
                    *state = Some((tokens - 1.0, now));
                    return;
                }
                *state = Some((tokens, now));
                Duration::from_secs_f64((1.0 - tokens) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// The process-wide bucket of a service.
pub fn bucket(service: Service) -> Arc<Bucket> {
    static BUCKETS: OnceLock<Vec<Arc<Bucket>>> = OnceLock::new();
    let all = BUCKETS.get_or_init(|| {
        [Service::Rds, Service::Ecs, Service::Logs, Service::AppRunner, Service::CloudFormation]
            .iter()
            .map(|s| {
                let (rate, burst) = s.budget();
                Arc::new(Bucket::new(rate, burst))
            })
            .collect()
    });
    all[service.index()].clone()
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

/// The SDK configuration with `service`'s bucket in front of its HTTP client
/// (unchanged when the configuration has no HTTP client of its own).
pub fn limited(sdk: &SdkConfig, service: Service) -> SdkConfig {
    match sdk.http_client() {
        Some(inner) => {
            sdk.to_builder().http_client(SharedHttpClient::new(Limited { inner, bucket: bucket(service) })).build()
        }
        None => sdk.clone(),
    }
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
}
