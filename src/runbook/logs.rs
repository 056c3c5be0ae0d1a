//! Reading a task's logs: one or more stream references (an ECS task has one
//! stream, an App Runner deployment two log groups), each with its own cursor.

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
        let mut events = Vec::new();
        let mut errors = Vec::new();
        for (name, cursor) in &mut self.streams {
            match super::wait::call("read the task's logs", || logs.read(name, cursor)).await {
                Ok(page) => {
                    events.extend(page.events);
                    *cursor = page.next;
                }
                Err(e) => errors.push((name.clone(), e)),
            }
        }
        events.sort_by_key(|e| e.timestamp);
        (events, errors)
    }
}
