//! The HTTP health probe used by every provider's verify step.

use std::time::Duration;

use async_trait::async_trait;

use super::HealthCheck;

pub struct HttpHealth {
    client: reqwest::Client,
}

impl HttpHealth {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        HttpHealth { client }
    }
}

impl Default for HttpHealth {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl HealthCheck for HttpHealth {
    async fn probe(&self, url: &str) -> Result<u16, String> {
        match self.client.get(url).send().await {
            Ok(r) => Ok(r.status().as_u16()),
            Err(e) if e.is_timeout() => Err("no answer within 10s".into()),
            Err(e) if e.is_connect() => Err("connection refused or unreachable".into()),
            Err(e) => Err(e.without_url().to_string()),
        }
    }
}
