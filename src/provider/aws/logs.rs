//! CloudWatch Logs: read one stream with GetLogEvents and its forward token, so
//! no event is dropped or printed twice, even several sharing a millisecond (no
//! `startTime = last + 1`, no stream listing).

use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::Client;
use chrono::{DateTime, Utc};

use super::classify;
use crate::provider::{LogCursor, LogEvent, LogPage, LogSource, PResult, ProviderError};

pub struct CloudWatchLogs {
    client: Client,
}

impl CloudWatchLogs {
    pub fn new(client: Client) -> Self {
        CloudWatchLogs { client }
    }
}

#[async_trait]
impl LogSource for CloudWatchLogs {
    /// `stream` is `<log group>:<log stream>` (see `ecs::log_stream`).
    async fn read(&self, stream: &str, cursor: &LogCursor) -> PResult<LogPage> {
        let (group, name) = stream
            .split_once(':')
            .ok_or_else(|| ProviderError::Rejected(format!("not a log stream reference: {stream:?}")))?;
        let result = self
            .client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(name)
            .start_from_head(true)
            .set_next_token(cursor.0.clone())
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            // awslogs creates the stream when the container starts: until then, nothing to read.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                return Ok(LogPage { events: Vec::new(), next: cursor.clone() });
            }
            Err(e) => return Err(classify("GetLogEvents", e)),
        };
        let events = out
            .events()
            .iter()
            .map(|e| LogEvent {
                timestamp: e.timestamp().and_then(DateTime::<Utc>::from_timestamp_millis).unwrap_or_else(Utc::now),
                message: e.message().unwrap_or_default().to_string(),
            })
            .collect();
        let next = match out.next_forward_token() {
            Some(t) => LogCursor(Some(t.to_string())),
            None => cursor.clone(),
        };
        Ok(LogPage { events, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatchlogs::operation::get_log_events::{GetLogEventsError, GetLogEventsOutput};
    use aws_sdk_cloudwatchlogs::types::OutputLogEvent;
    use aws_sdk_cloudwatchlogs::types::error::ResourceNotFoundException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn event(ts: i64, m: &str) -> OutputLogEvent {
        OutputLogEvent::builder().timestamp(ts).message(m).build()
    }

    #[tokio::test]
    async fn the_forward_token_is_followed_and_same_millisecond_events_all_arrive() {
        let first = mock!(Client::get_log_events)
            .match_requests(|r| {
                r.next_token().is_none()
                    && r.start_from_head() == Some(true)
                    && r.log_group_name() == Some("/ferry/app")
                    && r.log_stream_name() == Some("ferry/migrate/abc")
            })
            .then_output(|| {
                GetLogEventsOutput::builder()
                    .events(event(1_700_000_000_000, "a"))
                    .events(event(1_700_000_000_000, "b"))
                    .next_forward_token("f/1")
                    .build()
            });
        let second =
            mock!(Client::get_log_events).match_requests(|r| r.next_token() == Some("f/1")).then_output(|| {
                GetLogEventsOutput::builder().events(event(1_700_000_000_000, "c")).next_forward_token("f/2").build()
            });
        let client = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::Sequential, [&first, &second]);
        let logs = CloudWatchLogs::new(client);
        let p1 = logs.read("/ferry/app:ferry/migrate/abc", &LogCursor::default()).await.unwrap();
        assert_eq!(p1.events.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let p2 = logs.read("/ferry/app:ferry/migrate/abc", &p1.next).await.unwrap();
        assert_eq!(p2.events.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(p2.next, LogCursor(Some("f/2".into())));
        assert_eq!(p2.events[0].timestamp.timestamp_millis(), 1_700_000_000_000);
    }

    #[tokio::test]
    async fn a_stream_not_created_yet_reads_as_empty() {
        let missing = mock!(Client::get_log_events)
            .then_error(|| GetLogEventsError::ResourceNotFoundException(ResourceNotFoundException::builder().build()));
        let client = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&missing]);
        let page = CloudWatchLogs::new(client).read("/g:s", &LogCursor(Some("t".into()))).await.unwrap();
        assert!(page.events.is_empty());
        assert_eq!(page.next, LogCursor(Some("t".into())));
    }

    #[tokio::test]
    async fn throttling_is_reported_as_retryable() {
        let throttled = mock!(Client::get_log_events).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
            )
        });
        let client = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&throttled], |c| c
            .retry_config(aws_sdk_cloudwatchlogs::config::retry::RetryConfig::disabled()));
        let err = CloudWatchLogs::new(client).read("/g:s", &LogCursor::default()).await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
    }
}
