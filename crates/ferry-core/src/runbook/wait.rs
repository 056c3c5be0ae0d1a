//! Waiting and retrying, on tokio's clock so tests run hour-long waits under
//! virtual time in milliseconds.
//!
//! What reports its progress (a snapshot's PercentProgress) is looked at
//! when it should be done: half the estimated time left, between 1 s and the
//! cap, so the end is seen within about a second with few calls before it.
//! Everything else: polls come every ~1 s for the first 10 s of a wait, then grow by half each
//! time toward a 10 s cap, with ±10 % jitter: a change in the first seconds
//! (a small snapshot, a quick migration: where the wait is most of the run) is
//! seen within about a second, and a long wait costs at most ~6-7 calls a
//! minute per resource, well inside the request rates the providers allow
//! (docs/aws-decisions.md has them); a provider may also hold each request
//! until its own budget allows it. scripts/bench measures what this costs and
//! buys.
//! A busy resource (another operation in progress) is retried here with
//! exponential backoff; throttling is not, the provider's client having
//! retried it already ([`crate::provider::RETRY_MAX_ATTEMPTS`]). Every call
//! and every wait has a deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, sleep, timeout};

use crate::provider::{PResult, ProviderError};

#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    pub first: Duration,
    /// Polls stay at `first` until this much of the wait has passed.
    pub steady_for: Duration,
    pub cap: Duration,
    pub growth: f64,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first: Duration::from_secs(1),
            steady_for: Duration::from_secs(10),
            cap: Duration::from_secs(10),
            growth: 1.5,
        }
    }
}

/// Successive poll intervals.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    waited: Duration,
    policy: PollPolicy,
}

impl Backoff {
    pub fn new(policy: PollPolicy) -> Self {
        Backoff { next: policy.first, waited: Duration::ZERO, policy }
    }

    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        if self.waited >= self.policy.steady_for {
            self.next = base.mul_f64(self.policy.growth).min(self.policy.cap);
        }
        self.waited += base;
        jitter(base)
    }
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// Longest a single API call may take before it counts as failed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// A busy resource is retried this many times before it is reported.
const MAX_BUSY_RETRIES: u32 = 8;

/// Run one provider call with a deadline, retrying [`ProviderError::Busy`]
/// with exponential backoff (0.5 s doubling to 8 s, jittered).
pub async fn call<T, F, Fut>(what: &str, mut f: F) -> PResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = PResult<T>>,
{
    let mut delay = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        match call_once(what, &mut f).await {
            Err(ProviderError::Busy(_)) if attempt < MAX_BUSY_RETRIES => {
                attempt += 1;
                sleep(jitter(delay)).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            other => return other,
        }
    }
}

/// One provider call with a deadline and no retry, for a caller that handles
/// [`ProviderError::Busy`] itself.
pub async fn call_once<T, F, Fut>(what: &str, mut f: F) -> PResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = PResult<T>>,
{
    match timeout(CALL_TIMEOUT, f()).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::Other(format!("{what} did not answer within {}s", CALL_TIMEOUT.as_secs()))),
    }
}

/// The result of one look at the thing being waited for.
pub enum Poll<T> {
    Ready(T),
    /// Not yet; the text describes the current state for the progress line.
    Pending(String),
    /// Not yet, this fraction (0..=1) of the way there (a snapshot's progress):
    /// the wait estimates when it will be done and looks then, densely near
    /// the end, sparsely before.
    Progress(String, f64),
}

/// When to look next at something reporting its progress: half the estimated
/// time left, between `floor` and the policy's cap. `None` until two samples
/// show movement.
#[derive(Debug, Default)]
struct Estimate {
    first: Option<(Instant, f64)>,
}

impl Estimate {
    const FLOOR: Duration = Duration::from_secs(1);

    fn next(&mut self, now: Instant, done: f64, cap: Duration) -> Option<Duration> {
        let done = done.clamp(0.0, 1.0);
        let (t0, d0) = *self.first.get_or_insert((now, done));
        let elapsed = (now - t0).as_secs_f64();
        if done >= 1.0 {
            return Some(Self::FLOOR);
        }
        if done <= d0 || elapsed <= 0.0 {
            return None;
        }
        let left = (1.0 - done) / ((done - d0) / elapsed);
        Some(Duration::from_secs_f64(left / 2.0).clamp(Self::FLOOR, cap))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("timed out after {waited} waiting for {what} (last seen: {last})")]
    TimedOut { what: String, waited: String, last: String },
    #[error("{0}")]
    Failed(ProviderError),
}

/// Poll `check` until it is ready, it fails, or `limit` passes. `progress` gets
/// each state seen and the time waited so far.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    limit: Duration,
    policy: PollPolicy,
    mut check: F,
    mut progress: impl FnMut(&str, Duration),
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = PResult<Poll<T>>>,
{
    let start = Instant::now();
    let deadline = start + limit;
    let mut backoff = Backoff::new(policy);
    let mut estimate = Estimate::default();
    let mut last = "not checked yet".to_string();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let looked = timeout(remaining, call(what, &mut check)).await;
        let mut guided = None;
        match looked {
            Ok(Ok(Poll::Ready(v))) => return Ok(v),
            Ok(Ok(Poll::Pending(state))) => {
                progress(&state, start.elapsed());
                last = state;
            }
            Ok(Ok(Poll::Progress(state, done))) => {
                progress(&state, start.elapsed());
                last = state;
                guided = estimate.next(Instant::now(), done, policy.cap);
            }
            Ok(Err(e)) => return Err(WaitError::Failed(e)),
            Err(_) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitError::TimedOut {
                what: what.to_string(),
                waited: crate::config::values::format_duration(limit),
                last,
            });
        }
        let delay = backoff.next_delay();
        let delay = guided.map_or(delay, jitter);
        sleep(delay.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn intervals_stay_short_for_ten_seconds_then_grow_to_the_cap() {
        let mut b = Backoff::new(PollPolicy::default());
        let delays: Vec<Duration> = (0..22).map(|_| b.next_delay()).collect();
        let second = |d: &Duration| *d >= Duration::from_millis(900) && *d <= Duration::from_millis(1100);
        assert!(delays[..10].iter().all(second), "{delays:?}");
        assert!(delays[10..16].windows(2).all(|w| w[1] > w[0].mul_f64(1.2)), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(11)));
        assert!(delays[21] >= Duration::from_secs(9));
    }

    /// A snapshot that reports 0..100 % over 120 s: the polls thin out in the
    /// middle and come every second near the end, so the end is seen within
    /// about a second and the wait costs fewer calls than fixed 1 s polls.
    #[tokio::test(start_paused = true)]
    async fn progress_guides_the_polls_dense_at_the_end_sparse_before() {
        let start = Instant::now();
        let total = Duration::from_secs(120);
        let polls = AtomicU32::new(0);
        let done_at = wait_for(
            "snapshot",
            Duration::from_secs(600),
            PollPolicy::default(),
            || {
                polls.fetch_add(1, Ordering::SeqCst);
                let elapsed = start.elapsed();
                async move {
                    if elapsed >= total {
                        Ok(Poll::Ready(elapsed))
                    } else {
                        let done = elapsed.as_secs_f64() / total.as_secs_f64();
                        Ok(Poll::Progress(format!("{:.0}%", done * 100.0), done))
                    }
                }
            },
            |_, _| {},
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let lag = done_at - total;
        assert!(lag <= Duration::from_millis(1200), "the end is seen within about a second: {lag:?}");
        let n = polls.load(Ordering::SeqCst);
        assert!(n < 50, "far fewer polls than one a second: {n}");
    }

    #[test]
    fn the_estimate_halves_the_time_left_within_its_bounds() {
        let t0 = Instant::now();
        let mut e = Estimate::default();
        let cap = Duration::from_secs(10);
        assert_eq!(e.next(t0, 0.0, cap), None, "one sample says nothing about speed");
        // 10 % in 10 s: 90 s left, half of it capped at 10 s.
        assert_eq!(e.next(t0 + Duration::from_secs(10), 0.1, cap), Some(cap));
        // 95 % at 95 s: 5 s left, look in 2.5 s.
        let d = e.next(t0 + Duration::from_secs(95), 0.95, cap).unwrap_or_default();
        assert!((2.4..=2.6).contains(&d.as_secs_f64()), "{d:?}");
        assert_eq!(e.next(t0 + Duration::from_secs(99), 1.0, cap), Some(Estimate::FLOOR), "100 % but not done");
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_resource_is_retried_then_succeeds() {
        let calls = AtomicU32::new(0);
        let r = call("x", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(ProviderError::Busy("another operation is in progress".into()))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    /// The SDK has retried it already: a second layer would multiply its attempts.
    #[tokio::test(start_paused = true)]
    async fn throttling_is_reported_at_once() {
        let calls = AtomicU32::new(0);
        let r: PResult<()> = call("x", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ProviderError::Throttled("slow down".into()))
        })
        .await;
        assert!(matches!(r, Err(ProviderError::Throttled(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_resource_busy_for_good_is_reported() {
        let r: PResult<()> = call("x", || async { Err(ProviderError::Busy("busy".into())) }).await;
        assert!(matches!(r, Err(ProviderError::Busy(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn endless_throttling_is_reported() {
        let r: PResult<()> = call("x", || async { Err(ProviderError::Throttled("no".into())) }).await;
        assert!(matches!(r, Err(ProviderError::Throttled(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_sees_an_early_change_within_two_seconds_and_times_out_on_its_limit() {
        let start = Instant::now();
        let ready_at = start + Duration::from_millis(1500);
        let seen = wait_for(
            "thing",
            Duration::from_secs(60),
            PollPolicy::default(),
            || async {
                Ok(if Instant::now() >= ready_at {
                    Poll::Ready(Instant::now())
                } else {
                    Poll::Pending("creating".into())
                })
            },
            |_, _| {},
        )
        .await
        .unwrap();
        assert!(seen - ready_at <= Duration::from_secs(2), "seen {:?} late", seen - ready_at);

        let polls = AtomicU32::new(0);
        let start = Instant::now();
        let err = wait_for(
            "thing",
            Duration::from_secs(3600),
            PollPolicy::default(),
            || async {
                polls.fetch_add(1, Ordering::SeqCst);
                Ok(Poll::<()>::Pending("creating".into()))
            },
            |_, _| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(err, WaitError::TimedOut { .. }));
        assert_eq!(start.elapsed(), Duration::from_secs(3600));
        // An hour of waiting within the budget: at most ~6.7 polls a minute plus the ramp-up.
        assert!(polls.load(Ordering::SeqCst) < 420, "{} polls", polls.load(Ordering::SeqCst));
    }
}
