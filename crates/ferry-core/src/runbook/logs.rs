//! Reading a task's logs: one or more stream references (a task may have one
//! stream, a deployment several log groups), each with its own cursor.

use crate::provider::{LogCursor, LogEvent, LogSource, ProviderError};

pub struct Streams {
    streams: Vec<(String, LogCursor)>,
}

impl Streams {
    /// `refs`: stream references separated by spaces (no provider's reference
    /// contains one).
    pub fn new(refs: &str) -> Self {
        Streams { streams: refs.split_whitespace().map(|r| (r.to_string(), LogCursor::default())).collect() }
    }

    /// New events from every stream, oldest first, and the streams that could
    /// not be read (their cursors stay put, so nothing is skipped).
    pub async fn read(&mut self, logs: &dyn LogSource) -> (Vec<LogEvent>, Vec<(String, ProviderError)>) {
        let page = self.read_page(logs).await;
        (page.events, page.errors)
    }

    /// As [`Streams::read`], and whether every stream answered with the cursor
    /// it was given: the source's own word that nothing follows yet
    /// ([`LogSource::read`]'s contract).
    pub async fn read_page(&mut self, logs: &dyn LogSource) -> StreamsPage {
        let mut events = Vec::new();
        let mut errors = Vec::new();
        let mut at_end = true;
        for (name, cursor) in &mut self.streams {
            match super::wait::call("read the task's logs", || logs.read(name, cursor)).await {
                Ok(page) => {
                    at_end &= page.events.is_empty() && page.next == *cursor;
                    events.extend(page.events);
                    *cursor = page.next;
                }
                Err(e) => {
                    at_end = false;
                    errors.push((name.clone(), e));
                }
            }
        }
        events.sort_by_key(|e| e.timestamp);
        StreamsPage { events, errors, at_end }
    }
}

/// One read of every stream.
pub struct StreamsPage {
    pub events: Vec<LogEvent>,
    pub errors: Vec<(String, ProviderError)>,
    /// Every stream answered with the cursor it was given and no events.
    pub at_end: bool,
}
