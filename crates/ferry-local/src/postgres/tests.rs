use std::future::Future;
use std::str::FromStr;

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use tokio_postgres::NoTls;

use super::*;
use ferry_core::provider::{SnapshotStatus, TAG_ENV, TAG_RUN_ID};

const SECRET: &str = "s3cret-Pw-4711";

/// `url` (a test server's) naming database `db`, everything else kept.
fn with_db(url: &str, db: &str) -> String {
    db_url::rewrite(url, Some(db), Password::Keep)
}

/// `url`'s `host:port` part, without user info.
fn hosts_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_string()
}

fn random_hex() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

fn tags() -> Tags {
    Tags::from([(TAG_RUN_ID.to_string(), "r1".to_string()), (TAG_ENV.to_string(), "local".to_string())])
}

/// A PostgreSQL server for one test: every database it makes is named
/// `ferry_t_<hex>…` and dropped at the end.
struct Server {
    /// Maintenance URL (`FERRY_TEST_PG_URL`).
    url: String,
    /// The environment's database name, and the prefix of every database made.
    name: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// `None` (after saying so) when no server is configured.
    fn from_env() -> Option<Server> {
        let url = match std::env::var("FERRY_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var("FERRY_TEST_REQUIRE_PG").as_deref() == Ok("1") => panic!(
                "FERRY_TEST_REQUIRE_PG=1 but FERRY_TEST_PG_URL is not set: point it at a PostgreSQL server whose \
                 user may create databases, e.g. FERRY_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres \
                 (scripts/test finds or starts one)"
            ),
            _ => {
                eprintln!(
                    "skipped: FERRY_TEST_PG_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres); \
                     set it to run the PostgreSQL tests"
                );
                return None;
            }
        };
        let dir = tempfile::tempdir().expect("temp dir");
        Some(Server { url, name: format!("ferry_t_{}", random_hex()), dir })
    }

    fn url(&self, db: &str) -> String {
        with_db(&self.url, db)
    }

    /// A provider for database `db` of this server.
    fn database(&self, db: &str) -> PgDatabase {
        PgDatabase::new(self.url(db), SnapshotStore::new(self.dir.path())).expect("valid test URL")
    }

    async fn client(&self, db: &str) -> Client {
        let (client, connection) = Config::from_str(&self.url(db))
            .expect("valid test URL")
            .connect(NoTls)
            .await
            .expect("connecting to the test server");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    async fn admin(&self, sql: &str) {
        self.client("postgres").await.batch_execute(sql).await.expect(sql);
    }

    async fn create(&self, db: &str) {
        self.admin(&format!("CREATE DATABASE {}", quote_ident(db))).await;
    }

    /// Drop every database this test made.
    async fn cleanup(&self) {
        let admin = self.client("postgres").await;
        let rows = admin
            .query("SELECT datname::text FROM pg_database WHERE left(datname, length($1)) = $1", &[&self.name])
            .await
            .expect("listing the test's databases");
        for row in rows {
            let name: String = row.get(0);
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name));
            if let Err(e) = admin.batch_execute(&drop).await {
                eprintln!("could not drop test database {name}: {}", pg_message(&e));
            }
        }
        let rows = admin
            .query("SELECT rolname::text FROM pg_roles WHERE left(rolname, length($1)) = $1", &[&self.name])
            .await
            .expect("listing the test's roles");
        for row in rows {
            let name: String = row.get(0);
            if let Err(e) = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(&name))).await {
                eprintln!("could not drop test role {name}: {}", pg_message(&e));
            }
        }
    }
}

/// Run `body` against the test server, then drop what it made, also when it
/// panicked.
async fn with_server<F, Fut>(body: F)
where
    F: FnOnce(Arc<Server>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(server) = Server::from_env() else { return };
    let server = Arc::new(server);
    let result = tokio::spawn(body(server.clone())).await;
    server.cleanup().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn rows(db: &PgDatabase, sql: &str) -> Vec<String> {
    db.exec(sql).await.expect(sql)
}

#[tokio::test]
async fn snapshot_then_restore_keeps_the_failed_copy_and_brings_back_every_row() {
    with_server(|s| async move {
        let db = s.database(&s.name);
        // The database belongs to the application's role, not to the one ferry connects as.
        let owner = format!("{}-owner", s.name);
        s.admin(&format!("CREATE ROLE {}", quote_ident(&owner))).await;
        s.admin(&format!("CREATE DATABASE {} OWNER {}", quote_ident(&s.name), quote_ident(&owner))).await;
        rows(&db, "CREATE TABLE t(id serial PRIMARY KEY, v text); INSERT INTO t(v) VALUES ('a'), ('b');").await;

        let snap_id = format!("{}-snap", s.name);
        let snap = db.create_snapshot(&snap_id, &tags()).await.expect("snapshot");
        assert_eq!(snap.status, SnapshotStatus::Available);
        assert_eq!(snap.cluster_id, s.name);
        assert_eq!(db.create_snapshot(&snap_id, &tags()).await.expect("again"), snap, "idempotent");
        let entry = db.store.get(&snap_id).expect("store").expect("metadata");
        assert_eq!(entry.stored, Stored::PgTemplate { database: snap_id.clone() });
        assert_eq!(db.list_snapshots().await.expect("list"), std::slice::from_ref(&snap));
        assert_eq!(db.describe_snapshot(&snap_id).await.expect("describe"), Some(snap.clone()));

        rows(&db, "ALTER TABLE t ADD COLUMN w text; DELETE FROM t WHERE v = 'a'; INSERT INTO t(v) VALUES ('c');").await;

        let staging = db.sibling_id("restored-x");
        let failed = db.sibling_id("failed-x");
        assert_eq!(failed, format!("{}-failed-x", s.name));
        db.restore_snapshot(&snap_id, &staging, &Tags::new()).await.expect("restore");
        db.restore_snapshot(&snap_id, &staging, &Tags::new()).await.expect("restore again");
        let info = db.describe(&staging).await.expect("describe").expect("staging exists");
        assert!(info.is_available());
        assert_eq!(info.engine, "postgresql");
        assert_eq!(info.endpoint, Some(db.endpoint(&staging)));

        // The application still holds a session on the database being replaced.
        let app = s.client(&s.name).await;
        app.simple_query("SELECT 1").await.expect("app session");

        db.rename(db.cluster_id(), &failed, "run").await.expect("rename aside");
        db.rename(db.cluster_id(), &failed, "run").await.expect("rename aside again");
        db.rename(&staging, db.cluster_id(), "run").await.expect("rename into place");
        db.rename(&staging, db.cluster_id(), "run").await.expect("rename into place again");
        assert!(app.simple_query("SELECT 1").await.is_err(), "the app's old session was ended");

        assert_eq!(rows(&db, "SELECT v FROM t ORDER BY id").await, ["v", "a", "b"]);
        assert_eq!(
            rows(&db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'").await,
            ["count", "2"]
        );
        let owner_sql = "SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()";
        assert_eq!(rows(&db, owner_sql).await, ["owner".to_string(), owner.clone()], "the owner is kept");
        let failed_db = s.database(&failed);
        assert_eq!(rows(&failed_db, "SELECT v, w FROM t ORDER BY id").await, ["v\tw", "b\tNULL", "c\tNULL"]);
        assert_eq!(db.describe(&staging).await.expect("describe"), None);

        db.delete_snapshot(&snap_id).await.expect("delete");
        assert_eq!(db.describe(&snap_id).await.expect("describe"), None);
        assert_eq!(db.describe_snapshot(&snap_id).await.expect("describe"), None);
        let err = db.delete_snapshot(&snap_id).await.expect_err("gone");
        assert!(matches!(err, ProviderError::NotFound(_)), "{err}");
    })
    .await;
}

#[tokio::test]
async fn a_statement_a_killed_ferry_left_running_is_waited_for_before_anything_is_decided() {
    with_server(|s| async move {
        let db = s.database(&s.name);
        s.create(&s.name).await;
        let snap_id = format!("{}-snap", s.name);
        // What the server goes on with after ferry is killed: a statement of
        // a ferry session that names the snapshot, still running.
        let (other, connection) = Config::from_str(&s.url("postgres"))
            .expect("valid test URL")
            .application_name("ferry")
            .connect(NoTls)
            .await
            .expect("connect");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let text = format!("SELECT pg_sleep(1.5), '{}'", quote_ident(&snap_id));
        let running = tokio::spawn(async move { other.batch_execute(&text).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        db.create_snapshot(&snap_id, &tags()).await.expect("snapshot");
        assert!(started.elapsed() >= Duration::from_millis(1000), "waited for the earlier statement");
        running.await.expect("join").expect("the earlier statement ran to its end");
    })
    .await;
}

#[tokio::test]
async fn a_database_left_by_a_crash_before_the_metadata_is_adopted() {
    with_server(|s| async move {
        let db = s.database(&s.name);
        s.create(&s.name).await;
        rows(&db, "CREATE TABLE t(v text); INSERT INTO t VALUES ('a');").await;
        let snap_id = format!("{}-snap", s.name);
        s.admin(&format!("CREATE DATABASE {} TEMPLATE {}", quote_ident(&snap_id), quote_ident(&s.name))).await;

        let snap = db.create_snapshot(&snap_id, &tags()).await.expect("adopt");
        assert_eq!(snap.cluster_id, s.name);
        let entry = db.store.get(&snap_id).expect("store").expect("metadata");
        assert_eq!(entry.stored, Stored::PgTemplate { database: snap_id.clone() });
        let staging = db.sibling_id("restored-y");
        db.restore_snapshot(&snap_id, &staging, &Tags::new()).await.expect("restore");
        assert_eq!(rows(&s.database(&staging), "SELECT v FROM t").await, ["v", "a"]);
    })
    .await;
}

#[tokio::test]
async fn rename_never_overwrites_an_existing_database() {
    with_server(|s| async move {
        let db = s.database(&s.name);
        let (a, b) = (db.sibling_id("a"), db.sibling_id("b"));
        s.create(&a).await;
        s.create(&b).await;
        let err = db.rename(&a, &b, "run").await.expect_err("must refuse");
        assert!(matches!(err, ProviderError::Rejected(_)), "{err}");
        assert!(db.describe(&a).await.expect("describe").is_some());
        assert!(db.describe(&b).await.expect("describe").is_some());

        let err = db.rename(&db.sibling_id("nope"), &db.sibling_id("nope2"), "run").await.expect_err("neither exists");
        assert!(matches!(err, ProviderError::NotFound(_)), "{err}");
    })
    .await;
}

#[tokio::test]
async fn a_snapshot_while_sessions_are_connected_is_a_dump_and_restores() {
    with_server(|s| async move {
        let mut db = s.database(&s.name);
        s.create(&s.name).await;
        rows(&db, "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');").await;
        let app = s.client(&s.name).await;
        app.simple_query("SELECT 1").await.expect("app session");

        let snap_id = format!("{}-snap", s.name);
        if db.find_tool("pg_dump").is_none() {
            let err = db.create_snapshot(&snap_id, &tags()).await.expect_err("no pg_dump");
            assert!(matches!(err, ProviderError::Rejected(_)), "{err}");
            let text = err.to_string();
            assert!(text.contains("1 other session is connected") && text.contains("pg_dump"), "{text}");
            return;
        }

        // Without pg_dump the caller is told why and what to do.
        let empty = tempfile::tempdir().expect("temp dir");
        db.tool_path = Some(empty.path().as_os_str().to_owned());
        let err = db.create_snapshot(&snap_id, &tags()).await.expect_err("no pg_dump on this PATH");
        assert!(matches!(err, ProviderError::Rejected(_)), "{err}");
        let text = err.to_string();
        assert!(text.contains(&s.name) && text.contains("1 other session is connected"), "{text}");
        assert!(text.contains("install pg_dump"), "{text}");
        assert_eq!(db.store.get(&snap_id).expect("store"), None);
        db.tool_path = None;

        let snap = db.create_snapshot(&snap_id, &tags()).await.expect("snapshot by dump");
        assert_eq!(snap.status, SnapshotStatus::Available);
        let entry = db.store.get(&snap_id).expect("store").expect("metadata");
        let file = db.store.data_path(&snap_id, "pgdump");
        assert_eq!(entry.stored, Stored::PgDump { file: file.clone() });
        assert!(file.is_file());
        assert!(!db.store.data_path(&snap_id, "pgdump.tmp").exists());
        assert_eq!(db.describe(&snap_id).await.expect("describe"), None, "no template database");

        app.batch_execute("DELETE FROM t WHERE id = 1; ALTER TABLE t ADD COLUMN w int;").await.expect("change");
        let staging = db.sibling_id("restored-d");
        db.restore_snapshot(&snap_id, &staging, &Tags::new()).await.expect("restore from dump");
        db.restore_snapshot(&snap_id, &staging, &Tags::new()).await.expect("restore again");
        assert_eq!(rows(&s.database(&staging), "SELECT * FROM t ORDER BY id").await, ["id\tv", "1\ta", "2\tb"]);
        assert_eq!(db.describe(&fit_name(&staging, "partial")).await.expect("describe"), None);

        db.delete_snapshot(&snap_id).await.expect("delete");
        assert!(!file.exists());
    })
    .await;
}

#[tokio::test]
async fn a_failed_pg_restore_leaves_no_target() {
    with_server(|s| async move {
        let db = s.database(&s.name);
        if db.find_tool("pg_restore").is_none() {
            eprintln!("skipped: pg_restore is not on PATH");
            return;
        }
        let snap_id = format!("{}-snap", s.name);
        let file = db.store.data_path(&snap_id, "pgdump");
        std::fs::create_dir_all(db.store.dir()).expect("store dir");
        std::fs::write(&file, b"not a dump").expect("write");
        let snapshot = Snapshot {
            id: snap_id.clone(),
            cluster_id: s.name.clone(),
            status: SnapshotStatus::Available,
            percent: 100,
            created_at: None,
            tags: Tags::new(),
            kind: Default::default(),
        };
        db.store.put(&Entry { snapshot, stored: Stored::PgDump { file } }).expect("put");
        let staging = db.sibling_id("restored-z");
        let err = db.restore_snapshot(&snap_id, &staging, &Tags::new()).await.expect_err("garbage dump");
        assert!(matches!(err, ProviderError::Other(_)), "{err}");
        assert!(err.to_string().contains("pg_restore"), "{err}");
        assert_eq!(db.describe(&staging).await.expect("describe"), None);
        assert_eq!(db.describe(&fit_name(&staging, "partial")).await.expect("describe"), None);
    })
    .await;
}

#[tokio::test]
async fn exec_returns_a_header_and_the_rows_of_each_query() {
    with_server(|s| async move {
        let db = s.database(&s.name);
        let err = db.exec("SELECT 1").await.expect_err("no database yet");
        assert!(matches!(err, ProviderError::NotFound(_)), "{err}");
        s.create(&s.name).await;
        let out = rows(
            &db,
            "CREATE TABLE t(a int, b text); INSERT INTO t VALUES (1, 'x'), (2, NULL); \
             SELECT a, b FROM t ORDER BY a; SELECT 1 AS one WHERE false;",
        )
        .await;
        assert_eq!(out, ["a\tb", "1\tx", "2\tNULL", "one"]);
        let err = db.exec("SELECT * FROM missing").await.expect_err("no such table");
        assert!(matches!(err, ProviderError::Other(_)), "{err}");
        assert!(err.to_string().contains("missing"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn connection_errors_never_show_the_password() {
    with_server(|s| async move {
        let role = format!("ferry_no_role_{}", random_hex());
        let url = format!("postgres://{role}:{SECRET}@{}/{}", hosts_of(&s.url), s.name);
        let db = PgDatabase::new(url, SnapshotStore::new(s.dir.path())).expect("valid URL");
        let err = db.exec("SELECT 1").await.expect_err("no such role");
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(text.contains("cannot connect to PostgreSQL at") && text.contains(&s.name), "{text}");
        }
        assert!(matches!(err, ProviderError::AccessDenied(_)), "{err}");
        let err = db.describe(&s.name).await.expect_err("no such role");
        assert!(!format!("{err:?}").contains(SECRET), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_server_is_reported_without_the_password() {
    let url = format!("postgres://app:{SECRET}@127.0.0.1:1/app");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = PgDatabase::new(url, SnapshotStore::new(dir.path())).expect("valid URL");
    let err = db.describe("app").await.expect_err("nothing listens on port 1");
    assert!(matches!(err, ProviderError::Other(_)), "{err}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("cannot connect to PostgreSQL at 127.0.0.1:1/postgres"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}

#[test]
fn urls_are_checked_and_never_echo_the_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = || SnapshotStore::new(dir.path());
    for url in [format!("postgres://app:{SECRET}@db:5432"), format!("postgres://app:{SECRET}@db:5432/")] {
        let err = PgDatabase::new(url, store()).err().expect("no database");
        assert!(matches!(err, ProviderError::Rejected(_)), "{err}");
        assert!(err.to_string().contains("names no database") && !err.to_string().contains(SECRET), "{err}");
    }
    let err = PgDatabase::new(format!("mysql://app:{SECRET}@db/app"), store()).err().expect("not postgres");
    assert!(matches!(err, ProviderError::Rejected(_)) && !err.to_string().contains(SECRET), "{err}");
    let err = PgDatabase::new(format!("postgres://app:{SECRET}@db:notaport/app"), store()).err().expect("port");
    assert!(matches!(err, ProviderError::Rejected(_)) && !err.to_string().contains(SECRET), "{err}");

    let db = PgDatabase::new(format!("postgresql://app:{SECRET}@db:6543/app?sslmode=disable"), store()).expect("ok");
    assert_eq!(db.cluster_id(), "app");
    assert_eq!(db.endpoint("app-restored-1"), "postgresql://app:***@db:6543/app-restored-1?sslmode=disable");
    assert_eq!(db.location("x"), "db:6543/x");
    assert_eq!(db.scrub(&format!("a {SECRET} b")), "a *** b");
    assert_eq!(
        db_url::rewrite(
            "postgres://u:p%40ss@h/db?dbname=x&password=q&application_name=a",
            Some("n\"ew"),
            Password::Drop
        ),
        "postgres://u@h/n%22ew?application_name=a"
    );
    assert_eq!(
        db_url::rewrite("postgres://u@h?password=q", Some("d b"), Password::Mask),
        "postgres://u@h/d%20b?password=***"
    );
    assert_eq!(db_url::passwords("postgres://u:p%40ss@h/db?password=q"), ["p%40ss", "q"]);
    let db = PgDatabase::new("postgres://postgres@127.0.0.1/postgres".into(), store()).expect("ok");
    assert_eq!(db.maintenance_db, "template1");
}

#[test]
fn sibling_ids_fit_postgresql_identifiers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = |name: &str| {
        PgDatabase::new(format!("postgres://u@h/{}", db_url::encode(name)), SnapshotStore::new(dir.path()))
            .expect("valid URL")
    };
    assert_eq!(db("app").sibling_id("failed-20240101t000000z"), "app-failed-20240101t000000z");
    let long = "x".repeat(63);
    let id = db(&long).sibling_id("restored-20240101t000000z");
    assert_eq!(id.len(), 63);
    assert!(id.ends_with("x-restored-20240101t000000z"), "{id}");
    // Multi-byte characters are never cut in half.
    let wide = "é".repeat(31);
    let id = db(&wide).sibling_id("failed-1");
    assert!(id.len() <= 63 && id.ends_with("é-failed-1"), "{id}");
    assert_eq!(quote_ident("a-b\"c"), "\"a-b\"\"c\"");
    assert!(check_name(&"y".repeat(64)).is_err());
    assert!(check_name("").is_err());
    assert!(check_name("ok-name").is_ok());
}
