//! CloudWatch Logs. One stream (an ECS task's) is read with GetLogEvents and its
//! forward token, so no event is dropped or printed twice, even several sharing
//! a millisecond (no `startTime = last + 1`, no stream listing).
//!
//! A whole log group (App Runner's, whose streams are per instance and per
//! deployment) is read with FilterLogEvents from a start time. Events reach a
//! group's streams out of order, so each read looks back [`LOOKBACK_MS`] before
//! the newest event seen and drops the event ids already printed; a reference
//! may end at a time (an App Runner operation's end), which bounds the reads.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsError;
use aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsError;
use chrono::{DateTime, Utc};

use super::classify;
use ferry_core::provider::{LogCursor, LogEvent, LogPage, LogSource, PResult, ProviderError};

pub struct CloudWatchLogs {
    client: Client,
}

impl CloudWatchLogs {
    pub fn new(client: Client) -> Self {
        CloudWatchLogs { client }
    }
}

/// The answer, `None` for a stream or group that does not exist (yet), or the error.
fn unless_missing<T, E, R>(
    missing: impl Fn(&E) -> bool,
    what: &str,
    result: Result<T, aws_smithy_runtime_api::client::result::SdkError<E, R>>,
) -> PResult<Option<T>>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if e.as_service_error().is_some_and(missing) => Ok(None),
        Err(e) => Err(classify(what, e)),
    }
}

/// How far before the newest event seen a group read starts again.
const LOOKBACK_MS: i64 = 10_000;
/// At most this many FilterLogEvents pages per read (the rest come next read).
const MAX_PAGES: usize = 10;

/// The reference for every stream of `group`, from `since` on.
pub fn all_streams(group: &str, since: DateTime<Utc>) -> String {
    format!("{group}:*@{}", since.timestamp_millis())
}

/// The reference for every stream of `group`, from `since` up to `until`.
pub fn all_streams_between(group: &str, since: DateTime<Utc>, until: DateTime<Utc>) -> String {
    format!("{group}:*@{}-{}", since.timestamp_millis(), until.timestamp_millis())
}

/// Where a group read stands: the newest timestamp printed, and the ids of the
/// events printed within the look-back window before it.
#[derive(Debug, Default, PartialEq)]
struct GroupCursor {
    newest: Option<i64>,
    seen: BTreeMap<String, i64>,
}

impl GroupCursor {
    fn decode(cursor: &LogCursor) -> Self {
        let Some(text) = &cursor.0 else { return GroupCursor::default() };
        let mut parts = text.split('|');
        let newest = parts.next().and_then(|n| n.parse().ok());
        let seen = parts
            .filter_map(|p| p.split_once('@'))
            .filter_map(|(id, ts)| Some((id.to_string(), ts.parse().ok()?)))
            .collect();
        GroupCursor { newest, seen }
    }

    fn encode(&self) -> LogCursor {
        let Some(newest) = self.newest else { return LogCursor::default() };
        let mut text = newest.to_string();
        for (id, ts) in &self.seen {
            text.push_str(&format!("|{id}@{ts}"));
        }
        LogCursor(Some(text))
    }
}

#[async_trait]
impl LogSource for CloudWatchLogs {
    /// `stream` is `<log group>:<log stream>` (see `ecs::log_stream`) or
    /// `<log group>:*@<epoch ms>` for every stream of the group ([`all_streams`]).
    async fn read(&self, stream: &str, cursor: &LogCursor) -> PResult<LogPage> {
        let (group, name) = stream
            .split_once(':')
            .ok_or_else(|| ProviderError::Rejected(format!("not a log stream reference: {stream:?}")))?;
        if let Some(range) = name.strip_prefix("*@") {
            let bad = || ProviderError::Rejected(format!("not a log group reference: {stream:?}"));
            let (since, until) = match range.split_once('-') {
                Some((a, b)) => (a.parse().map_err(|_| bad())?, Some(b.parse().map_err(|_| bad())?)),
                None => (range.parse().map_err(|_| bad())?, None),
            };
            return self.read_group(group, since, until, cursor).await;
        }
        let result = self
            .client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(name)
            .start_from_head(true)
            .set_next_token(cursor.0.clone())
            .send()
            .await;
        // awslogs creates the stream when the container starts: until then, nothing to read.
        let Some(out) = unless_missing(GetLogEventsError::is_resource_not_found_exception, "GetLogEvents", result)?
        else {
            return Ok(LogPage { events: Vec::new(), next: cursor.clone() });
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

    /// The CloudWatch console's page of the stream (or of the group, for a
    /// reference to all its streams), in the client's region.
    fn console_url(&self, stream: &str) -> Option<String> {
        let region = self.client.config().region()?.to_string();
        console_url(&region, stream)
    }
}

/// The console's address of a log stream reference (`<group>:<stream>`, or
/// `<group>:*@...` for the whole group) in `region`. The console's fragment
/// takes each name percent-encoded, with `%` itself written `$25`.
pub fn console_url(region: &str, stream: &str) -> Option<String> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let (group, name) = stream.split_once(':')?;
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string().replace('%', "$25");
    let host = if region.starts_with("cn-") {
        format!("{region}.console.amazonaws.cn")
    } else if region.starts_with("us-gov-") {
        format!("{region}.console.amazonaws-us-gov.com")
    } else {
        format!("{region}.console.aws.amazon.com")
    };
    let mut url = format!("https://{host}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{}", enc(group));
    if !name.starts_with("*@") {
        url.push_str(&format!("/log-events/{}", enc(name)));
    }
    Some(url)
}

impl CloudWatchLogs {
    async fn read_group(&self, group: &str, since: i64, until: Option<i64>, cursor: &LogCursor) -> PResult<LogPage> {
        let mut state = GroupCursor::decode(cursor);
        let start = state.newest.map_or(since, |n| (n - LOOKBACK_MS).max(since));
        let mut token: Option<String> = None;
        let mut fresh = Vec::new();
        for _ in 0..MAX_PAGES {
            let result = self
                .client
                .filter_log_events()
                .log_group_name(group)
                .start_time(start)
                .set_end_time(until)
                .set_next_token(token.take())
                .send()
                .await;
            // App Runner creates its log groups with the service's first output.
            let Some(out) =
                unless_missing(FilterLogEventsError::is_resource_not_found_exception, "FilterLogEvents", result)?
            else {
                return Ok(LogPage { events: Vec::new(), next: cursor.clone() });
            };
            for e in out.events() {
                let (Some(id), Some(ts)) = (e.event_id(), e.timestamp()) else { continue };
                if state.seen.contains_key(id) || state.newest.is_some_and(|n| ts < n - LOOKBACK_MS) {
                    continue;
                }
                state.seen.insert(id.to_string(), ts);
                fresh.push((ts, e.message().unwrap_or_default().to_string()));
            }
            match out.next_token() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        fresh.sort_by_key(|(ts, _)| *ts);
        if let Some(newest) = fresh.iter().map(|(ts, _)| *ts).max() {
            state.newest = Some(state.newest.map_or(newest, |n| n.max(newest)));
        }
        if let Some(n) = state.newest {
            state.seen.retain(|_, ts| *ts >= n - LOOKBACK_MS);
        }
        let events = fresh
            .into_iter()
            .map(|(ts, message)| LogEvent {
                timestamp: DateTime::<Utc>::from_timestamp_millis(ts).unwrap_or_else(Utc::now),
                message,
            })
            .collect();
        Ok(LogPage { events, next: state.encode() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatchlogs::operation::get_log_events::{GetLogEventsError, GetLogEventsOutput};
    use aws_sdk_cloudwatchlogs::types::OutputLogEvent;
    use aws_sdk_cloudwatchlogs::types::error::ResourceNotFoundException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    #[test]
    fn the_console_url_names_the_region_the_group_and_the_stream() {
        assert_eq!(
            console_url("eu-west-1", "/ecs/app:ecs/migrate/abc123").as_deref(),
            Some(
                "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:log-groups/log-group/$252Fecs$252Fapp/log-events/ecs$252Fmigrate$252Fabc123"
            )
        );
        let group = console_url("us-east-1", &all_streams("/aws/apprunner/app/1/application", Utc::now())).unwrap();
        assert!(group.ends_with("log-group/$252Faws$252Fapprunner$252Fapp$252F1$252Fapplication"), "{group}");
        assert!(console_url("cn-north-1", "g:s").unwrap().starts_with("https://cn-north-1.console.amazonaws.cn/"));
        assert_eq!(console_url("us-east-1", "no-colon"), None);
    }

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
    async fn a_group_read_looks_back_and_prints_each_event_once() {
        use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsOutput;
        use aws_sdk_cloudwatchlogs::types::FilteredLogEvent;
        let ev = |id: &str, ts: i64| FilteredLogEvent::builder().event_id(id).timestamp(ts).message(id).build();
        let first = mock!(Client::filter_log_events)
            .match_requests(|r| {
                r.start_time() == Some(1_000) && r.log_group_name() == Some("/aws/apprunner/a/1/service")
            })
            .then_output(move || {
                FilterLogEventsOutput::builder().events(ev("e2", 20_000)).events(ev("e1", 20_000)).build()
            });
        // The second read starts 10 s before the newest event: e1 and e2 again, plus
        // one that arrived late with an older timestamp, and a newer one.
        let second = mock!(Client::filter_log_events).match_requests(|r| r.start_time() == Some(10_000)).then_output(
            move || {
                FilterLogEventsOutput::builder()
                    .events(ev("late", 15_000))
                    .events(ev("e1", 20_000))
                    .events(ev("e2", 20_000))
                    .events(ev("e3", 21_000))
                    .build()
            },
        );
        let client = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::Sequential, [&first, &second]);
        let logs = CloudWatchLogs::new(client);
        let group = all_streams("/aws/apprunner/a/1/service", DateTime::from_timestamp_millis(1_000).unwrap());
        let p1 = logs.read(&group, &LogCursor::default()).await.unwrap();
        let names = |p: &LogPage| p.events.iter().map(|e| e.message.clone()).collect::<Vec<_>>();
        assert_eq!(names(&p1), ["e2", "e1"]);
        let p2 = logs.read(&group, &p1.next).await.unwrap();
        assert_eq!(names(&p2), ["late", "e3"]);
        assert_eq!(second.num_calls(), 1);
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
