//! The S3 state backend. Locks rely on S3's conditional writes: PutObject with
//! `If-None-Match: *` creates only if absent (412 otherwise), PutObject and
//! DeleteObject with `If-Match: <etag>` act only on the version the holder
//! wrote. A 409 ConditionalRequestConflict (another conditional write to the same
//! key in flight) is retried.
//!
//! A listing is complete or an error: a ListObjectsV2 page whose `KeyCount`
//! disagrees with the keys it holds, that has no `KeyCount`, or that says
//! `IsTruncated` without a continuation token is an error, whatever the SDK's
//! XML parser made of a body cut short.
//!
//! The SDK is async; this backend runs it on a runtime of its own, on a scoped
//! thread per call, so callers anywhere (inside ferry's runtime or not) get a
//! plain blocking call.

use std::future::Future;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use ferry_core::state::{Listed, RemoteStore, StateError, Versioned};

/// Keeps the `Date` header of the answer it sees: S3's clock at the moment it
/// answered, to age an object's `Last-Modified` on the same clock.
#[derive(Debug, Clone, Default)]
struct ServerDate(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for ServerDate {
    fn name(&self) -> &'static str {
        "FerryServerDate"
    }

    fn read_before_deserialization(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let date = context.response().headers().get("date").map(str::to_string);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = date;
        Ok(())
    }
}

impl ServerDate {
    /// How long before the answer's `Date` the object was last written.
    fn age_of(&self, last_modified: Option<&aws_smithy_types::DateTime>) -> Option<Duration> {
        let date = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        let now = chrono::DateTime::parse_from_rfc2822(date.trim()).ok()?;
        let written = to_chrono(last_modified?)?;
        Some((now.with_timezone(&chrono::Utc) - written).to_std().unwrap_or_default())
    }
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    rt: &'static tokio::runtime::Runtime,
}

/// The S3 client's own runtime, one per process and never dropped (a runtime
/// may not be dropped inside ferry's main runtime, where stores are).
fn runtime() -> Result<&'static tokio::runtime::Runtime, StateError> {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if let Some(rt) = RT.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StateError(format!("cannot start the S3 client's runtime: {e}")))?;
    // Another thread may have won the race: its runtime is kept, ours dropped
    // here, outside any runtime.
    let _ = RT.set(rt);
    RT.get().ok_or_else(|| StateError("the S3 client's runtime is missing".into()))
}

/// How often a write that met a 409 ConditionalRequestConflict is tried again.
const CONFLICT_RETRIES: u32 = 6;

/// What a failed request said, in ferry's terms.
struct Failure {
    status: Option<u16>,
    code: String,
    text: String,
}

type HttpResponse = aws_smithy_runtime_api::client::orchestrator::HttpResponse;

fn failure<E>(err: SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().unwrap_or_default().to_string();
    let text = match &err {
        SdkError::ServiceError(e) => {
            format!("{}: {}", e.err().code().unwrap_or("error"), e.err().message().unwrap_or("no message"))
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            format!("cannot reach S3: {}", aws_smithy_types::error::display::DisplayErrorContext(&err))
        }
        _ => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
    };
    Failure { status, code, text }
}

impl S3Store {
    /// The store at `s3://bucket/prefix`, its client loaded and limited as
    /// every other AWS client of ferry's ([`crate::load_sdk`], the S3 token
    /// bucket).
    ///
    /// Before it is returned the store is asked once (profile, region,
    /// credentials, endpoint, then one ListObjectsV2 of its `locks/` not
    /// retried), so that a missing credential, a wrong region or a refused
    /// permission is one line (exit 2) rather than an SDK dump later.
    pub fn connect(
        bucket: &str,
        prefix: &str,
        region: Option<String>,
        profile: Option<String>,
    ) -> Result<Self, crate::access::Problem> {
        let rt = runtime().map_err(|e| crate::access::Problem { line: e.0, detail: None })?;
        let sdk = on(rt, crate::load_sdk(region, profile.clone()));
        let prefix = prefix.trim_matches('/').to_string();
        let at = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
        let doing = format!("read ferry's state in {at}");
        on(rt, crate::access::check(&sdk, profile.as_deref(), "s3", &doing))?;
        let mut conf = aws_sdk_s3::config::Builder::from(&crate::budget::limited(&sdk, crate::budget::Service::S3));
        // An endpoint override (an S3-compatible store or a local emulator)
        // rarely resolves bucket host names: address buckets by path there.
        if sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() {
            conf = conf.force_path_style(true);
        }
        let store = S3Store { client: Client::from_conf(conf.build()), bucket: bucket.to_string(), prefix, rt };
        // Once per process and store: a command may open it for several environments.
        static PROBED: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
            std::sync::OnceLock::new();
        let probed = PROBED.get_or_init(Default::default);
        if !probed.lock().unwrap_or_else(|e| e.into_inner()).contains(&doing) {
            on(rt, store.probe(&doing))?;
            probed.lock().unwrap_or_else(|e| e.into_inner()).insert(doing);
        }
        Ok(store)
    }

    /// One ListObjectsV2 of `locks/`, not retried: what S3 says of the
    /// bucket, the credentials and ferry's permission, in words.
    async fn probe(&self, doing: &str) -> Result<(), crate::access::Problem> {
        let once = aws_sdk_s3::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled());
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.key("locks/"))
            .max_keys(1)
            .customize()
            .config_override(once)
            .send()
            .await;
        let Err(err) = listed else { return Ok(()) };
        let detail = Some(format!("{err:?}"));
        let line = match &err {
            SdkError::ServiceError(e) => {
                let code = e.err().code().unwrap_or("error");
                let message = e.err().message().unwrap_or("no message");
                match code {
                    "AccessDenied" | "AllAccessDisabled" => format!(
                        "cannot {doing}: access denied to s3:ListBucket on {} (prefix {}); grant it to the role or \
                         user ferry runs as (docs/github-actions.md: the StateBucket of ferry's IAM policy)",
                        self.bucket,
                        self.key("")
                    ),
                    "NoSuchBucket" => format!(
                        "cannot {doing}: the bucket {} does not exist (in this account and region); create it, or \
                         fix `state` in ferry.toml",
                        self.bucket
                    ),
                    "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken" => format!(
                        "cannot {doing}: S3 refused the AWS credentials ({code}: {message}); refresh them \
                         (`aws sso login`, or run the OIDC step again) and retry"
                    ),
                    _ => format!("cannot {doing}: S3 answered {code}: {message}"),
                }
            }
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
                format!("cannot {doing}: S3 did not answer; check the region and this machine's network")
            }
            _ => format!("cannot {doing}: {}", aws_smithy_types::error::display::DisplayErrorContext(&err)),
        };
        Err(crate::access::Problem { line, detail })
    }

    fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.prefix) }
    }

    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(key))
    }

    fn err(&self, what: &str, key: &str, f: &Failure) -> StateError {
        StateError(format!("cannot {what} {}: {}", self.url(key), f.text))
    }

    fn block<F>(&self, f: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        on(self.rt, f)
    }

    pub fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        let full = self.key(key);
        self.block(async {
            let date = ServerDate::default();
            let sent =
                self.client.get_object().bucket(&self.bucket).key(&full).customize().interceptor(date.clone()).send();
            let out = match sent.await {
                Ok(o) => o,
                Err(e) => {
                    let f = failure(e);
                    if f.code == "NoSuchKey" || f.status == Some(404) {
                        return Ok(None);
                    }
                    // Without ListBucket on the whole bucket (ferry's policy grants
                    // it under the state prefix only), S3 answers a missing key
                    // with 403: a listing tells missing from forbidden.
                    if f.status == Some(403) && !self.exists(&full).await? {
                        return Ok(None);
                    }
                    return Err(self.err("read", key, &f));
                }
            };
            let etag = out.e_tag().unwrap_or_default().to_string();
            let written_ago = date.age_of(out.last_modified());
            let body = out
                .body
                .collect()
                .await
                .map_err(|e| StateError(format!("cannot read {}: {e}", self.url(key))))?
                .into_bytes()
                .to_vec();
            Ok(Some(Versioned { body, etag, written_ago }))
        })
    }

    /// PutObject, unconditionally or `If-Match: etag`; `Ok(None)` when the
    /// condition failed (the object changed or is gone).
    pub fn put(&self, key: &str, body: &[u8], if_match: Option<&str>) -> Result<Option<String>, StateError> {
        self.conditional_put(key, body, if_match.map(|e| (false, e)))
    }

    pub fn create(&self, key: &str, body: &[u8]) -> Result<Option<String>, StateError> {
        self.conditional_put(key, body, Some((true, "*")))
    }

    /// `cond`: `(true, "*")` for If-None-Match, `(false, etag)` for If-Match.
    fn conditional_put(
        &self,
        key: &str,
        body: &[u8],
        cond: Option<(bool, &str)>,
    ) -> Result<Option<String>, StateError> {
        let full = self.key(key);
        self.block(async {
            let sent = retrying_conflicts(|| {
                let req = self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&full)
                    .content_type("application/json")
                    .body(ByteStream::from(body.to_vec()));
                let req = match cond {
                    Some((true, v)) => req.if_none_match(v),
                    Some((false, v)) => req.if_match(v),
                    None => req,
                };
                async move { req.send().await.map_err(failure) }
            })
            .await;
            match sent {
                Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
                Err(f) => match (f.status, f.code.as_str()) {
                    (Some(412), _) | (_, "PreconditionFailed") if cond.is_some() => Ok(None),
                    (Some(404), _) | (_, "NoSuchKey") if matches!(cond, Some((false, _))) => Ok(None),
                    _ => Err(self.err("write", key, &f)),
                },
            }
        })
    }

    pub fn delete_if(&self, key: &str, etag: &str) -> Result<bool, StateError> {
        let full = self.key(key);
        self.block(async {
            let sent = retrying_conflicts(|| {
                let req = self.client.delete_object().bucket(&self.bucket).key(&full).if_match(etag);
                async move { req.send().await.map_err(failure) }
            })
            .await;
            match sent {
                Ok(_) => Ok(true),
                Err(f) => match (f.status, f.code.as_str()) {
                    (Some(412 | 404), _) | (_, "PreconditionFailed" | "NoSuchKey") => Ok(false),
                    (Some(403), _) if !self.exists(&full).await? => Ok(false),
                    _ => Err(self.err("delete", key, &f)),
                },
            }
        })
    }

    /// Whether the full key exists, from a listing (needs only ListBucket on the prefix).
    async fn exists(&self, full: &str) -> Result<bool, StateError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(full)
            .max_keys(5)
            .send()
            .await
            .map_err(|e| StateError(format!("cannot list s3://{}/{full}: {}", self.bucket, failure(e).text)))?;
        let page =
            complete_page(&out).map_err(|why| StateError(format!("cannot list s3://{}/{full}: {why}", self.bucket)))?;
        Ok(page.iter().any(|o| o.key == full))
    }

    pub fn list(&self, dir: &str, name_prefix: &str) -> Result<Vec<Listed>, StateError> {
        let dir_key = self.key(dir);
        let wanted = format!("{dir_key}/{name_prefix}");
        let strip = if self.prefix.is_empty() { 0 } else { self.prefix.len() + 1 };
        self.block(async {
            let mut keys = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let out = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(&wanted)
                    .delimiter("/")
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| self.err("list", dir, &failure(e)))?;
                let page =
                    complete_page(&out).map_err(|why| StateError(format!("cannot list {}: {why}", self.url(dir))))?;
                keys.extend(page.into_iter().map(|l| Listed { key: l.key[strip.min(l.key.len())..].to_string(), ..l }));
                if out.is_truncated() == Some(true) {
                    // complete_page made sure there is a token.
                    token = out.next_continuation_token().map(str::to_string);
                } else {
                    break;
                }
            }
            keys.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(keys)
        })
    }
}

/// The keys of one ListObjectsV2 page, or why the page cannot be the whole
/// answer. S3 API Reference, ListObjectsV2: "KeyCount is the number of keys
/// returned with this request", counting the CommonPrefixes a delimiter rolls
/// up too; "NextContinuationToken is sent when isTruncated is true". A page cut
/// short in transit that still parses is caught here, by ferry, whatever the
/// SDK's parser did with it.
impl RemoteStore for S3Store {
    fn describe(&self) -> String {
        S3Store::describe(self)
    }
    fn url(&self, key: &str) -> String {
        S3Store::url(self, key)
    }
    fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        S3Store::get(self, key)
    }
    fn put(&self, key: &str, body: &[u8], if_match: Option<&str>) -> Result<Option<String>, StateError> {
        S3Store::put(self, key, body, if_match)
    }
    fn create(&self, key: &str, body: &[u8]) -> Result<Option<String>, StateError> {
        S3Store::create(self, key, body)
    }
    fn delete_if(&self, key: &str, etag: &str) -> Result<bool, StateError> {
        S3Store::delete_if(self, key, etag)
    }
    fn list(&self, dir: &str, name_prefix: &str) -> Result<Vec<Listed>, StateError> {
        S3Store::list(self, dir, name_prefix)
    }
}

fn complete_page(out: &aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output) -> Result<Vec<Listed>, String> {
    let held = out.contents().len() + out.common_prefixes().len();
    match out.key_count() {
        None => return Err(format!("the answer has no KeyCount (it holds {held} keys): it may have been cut short")),
        Some(n) if usize::try_from(n).ok() != Some(held) => {
            return Err(format!("the answer says KeyCount {n} but holds {held} keys: it was cut short"));
        }
        Some(_) => {}
    }
    if out.is_truncated() == Some(true) && out.next_continuation_token().is_none_or(str::is_empty) {
        return Err("the answer says IsTruncated without a NextContinuationToken: the rest cannot be read".into());
    }
    let mut keys = Vec::with_capacity(out.contents().len());
    for o in out.contents() {
        let Some(key) = o.key() else { return Err("the answer has an object without a Key".into()) };
        keys.push(Listed { key: key.to_string(), modified: o.last_modified().and_then(to_chrono) });
    }
    Ok(keys)
}

/// Send a conditional request, and again after a short pause while S3 answers
/// 409 ConditionalRequestConflict (another conditional write to the same key
/// was in flight; the answer says nothing about this one's condition).
async fn retrying_conflicts<T, Fut>(mut send: impl FnMut() -> Fut) -> Result<T, Failure>
where
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut attempt = 0;
    loop {
        match send().await {
            Err(f)
                if (f.status == Some(409) || f.code == "ConditionalRequestConflict") && attempt < CONFLICT_RETRIES =>
            {
                attempt += 1;
                tokio::time::sleep(conflict_backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

fn conflict_backoff(attempt: u32) -> Duration {
    Duration::from_millis(50 * u64::from(attempt) + u64::from(fastrand::u32(..50)))
}

/// Drive `f` to completion on `rt`, from a thread of its own so that the caller
/// may itself be inside another runtime.
fn on<F>(rt: &tokio::runtime::Runtime, f: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
    use aws_sdk_s3::types::{CommonPrefix, Object};

    fn page(count: Option<i32>, keys: &[&str], truncated: bool, token: Option<&str>) -> ListObjectsV2Output {
        let mut b = ListObjectsV2Output::builder().set_key_count(count).is_truncated(truncated);
        for k in keys {
            b = b.contents(Object::builder().key(*k).build());
        }
        b.set_next_continuation_token(token.map(str::to_string)).build()
    }

    #[test]
    fn a_page_is_whole_or_an_error() {
        let ok = complete_page(&page(Some(2), &["runs/a.json", "runs/b.json"], false, None)).unwrap();
        assert_eq!(ok.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(), ["runs/a.json", "runs/b.json"]);
        assert!(complete_page(&page(Some(2), &["runs/a.json"], false, None)).unwrap_err().contains("KeyCount 2"));
        assert!(complete_page(&page(None, &["runs/a.json"], false, None)).unwrap_err().contains("no KeyCount"));
        assert!(complete_page(&page(Some(1), &["runs/a.json"], true, None)).unwrap_err().contains("IsTruncated"));
        complete_page(&page(Some(1), &["runs/a.json"], true, Some("t"))).unwrap();
        // KeyCount counts the prefixes a delimiter rolls up, too.
        let with_prefix = ListObjectsV2Output::builder()
            .key_count(2)
            .contents(Object::builder().key("runs/a.json").build())
            .common_prefixes(CommonPrefix::builder().prefix("runs/sub/").build())
            .build();
        assert_eq!(complete_page(&with_prefix).unwrap().len(), 1);
        assert!(complete_page(&page(Some(0), &[], false, None)).unwrap().is_empty());
    }

    #[test]
    fn an_age_is_the_answers_date_minus_last_modified() {
        let d = ServerDate::default();
        *d.0.lock().unwrap() = Some("Mon, 07 Dec 2026 18:31:47 GMT".into());
        let written = aws_smithy_types::DateTime::from_secs(
            chrono::DateTime::parse_from_rfc2822("Mon, 07 Dec 2026 18:11:47 GMT").unwrap().timestamp(),
        );
        assert_eq!(d.age_of(Some(&written)), Some(Duration::from_secs(1200)));
        assert_eq!(d.age_of(None), None, "no Last-Modified: no age");
        *d.0.lock().unwrap() = None;
        assert_eq!(d.age_of(Some(&written)), None, "no Date: no age, never this machine's clock");
    }
}
