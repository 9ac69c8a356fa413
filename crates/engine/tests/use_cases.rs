//! The engine as a daemon would drive it: no command line, no clap, only
//! engine entry points (a request in, a report out). Inits a repository,
//! backs up a files source and a PostgreSQL logical source (a real scratch
//! cluster), restores both, verifies, and compares the restored content
//! with the original.

use lifeboat_engine::backup::{self, BackupRequest};
use lifeboat_engine::listing::{self, LsRequest};
use lifeboat_engine::progress::Progress;
use lifeboat_engine::restore::{self, RestoreReport, RestoreRequest};
use lifeboat_engine::types::SnapshotKind;
use lifeboat_engine::verify::{self, RestoreTestRequest, VerifyRequest};
use lifeboat_engine::{keys, Ctx, RepoOptions};
use lifeboat_sources::postgres::compare::table_checksums;
use lifeboat_sources::postgres::{ClientTools, ScratchCluster};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

/// Every file below `root` by relative path, with its bytes.
fn contents(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A config file naming the repository (and, when given, a PostgreSQL source).
fn context(dir: &Path, pg_url: Option<&str>) -> Ctx {
    fs::write(dir.join("password"), "correct horse\n").unwrap();
    let mut toml = format!(
        "[repository]\nurl = {:?}\npassword_file = {:?}\n",
        dir.join("repo"),
        dir.join("password")
    );
    if let Some(url) = pg_url {
        fs::write(dir.join("db-url"), url).unwrap();
        toml.push_str(&format!(
            "\n[[source]]\nname = \"main\"\nkind = \"postgres\"\nurl = \"file:{}\"\n",
            dir.join("db-url").display()
        ));
    }
    fs::write(dir.join("lifeboat.toml"), toml).unwrap();
    Ctx::new(RepoOptions {
        config: Some(dir.join("lifeboat.toml")),
        ..RepoOptions::default()
    })
    .unwrap()
}

fn progress() -> Arc<Progress> {
    Arc::new(Progress::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_backup_restore_and_verify_through_the_engine_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = context(tmp.path(), None);
    let init = keys::init(&ctx).await.unwrap();
    assert_eq!(init.version, 1);

    let src = tmp.path().join("etc-app");
    fs::create_dir_all(src.join("conf.d/deep")).unwrap();
    fs::write(src.join("app.toml"), "port = 8080\n").unwrap();
    fs::write(src.join("conf.d/a.conf"), vec![7u8; 300_000]).unwrap();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    fs::write(src.join("conf.d/deep/blob.bin"), &big).unwrap();

    let report = backup::run(
        &ctx,
        BackupRequest {
            targets: vec![src.display().to_string()],
            source_name: "app".into(),
            ..BackupRequest::default()
        },
        progress(),
    )
    .await
    .unwrap();
    assert!(report.complete(), "{:?}", report.warnings);
    assert_eq!(report.snapshot.kind, SnapshotKind::Files);
    assert_eq!(report.snapshot.stats.files, 3);

    let listed = listing::snapshots(&ctx, Some("app")).await.unwrap();
    assert_eq!(listed.snapshots.len(), 1);
    assert_eq!(listed.snapshots[0].id, report.id);
    let mut paths = Vec::new();
    let ls = LsRequest {
        snapshot: "latest".into(),
        path: Some("etc-app/conf.d".into()),
        source: Some("app".into()),
    };
    listing::ls(&ctx, ls, |e| paths.push(e.path.clone()))
        .await
        .unwrap();
    assert_eq!(
        paths,
        [
            "/etc-app/conf.d/a.conf",
            "/etc-app/conf.d/deep",
            "/etc-app/conf.d/deep/blob.bin"
        ]
    );

    let to = tmp.path().join("restored");
    let plan = restore::plan(
        &ctx,
        RestoreRequest {
            snapshot: report.id.to_string(),
            to: to.display().to_string(),
            ..RestoreRequest::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(plan.files().unwrap().summary().files, 3);
    assert!(plan.files().unwrap().conflicts().is_empty());
    let done = restore::execute(plan, progress()).await.unwrap();
    let RestoreReport::Files { summary, .. } = done else {
        panic!("a files restore reports files: {done:?}");
    };
    assert_eq!(summary.bytes, 2_300_012);
    assert_eq!(contents(&to.join("etc-app")), contents(&src));

    let checked = verify::verify(
        &ctx,
        VerifyRequest {
            read_data_percent: Some(100.0),
        },
    )
    .await
    .unwrap();
    assert!(checked.report.is_ok(), "{:?}", checked.report.problems);
    assert_eq!(checked.report.snapshots, 1);
    assert!(checked.report.packs_read > 0);
    assert!(checked.locks.is_empty(), "the backup released its lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_logical_backup_restore_and_restore_test_through_the_engine_alone() {
    let bin = ClientTools::any(None)
        .expect("PostgreSQL installed")
        .bin_dir;
    let cluster = ScratchCluster::start(&bin).expect("scratch cluster starts");
    cluster.create_database("shop").unwrap();
    cluster
        .run_sql_in(
            "shop",
            "CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL, qty int);
             INSERT INTO orders SELECT g, 'item ' || g, g % 7 FROM generate_series(1, 5000) g;
             CREATE TABLE notes (id serial PRIMARY KEY, body text);
             INSERT INTO notes (body) VALUES ('first'), ('second'), (NULL);",
        )
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ctx = context(tmp.path(), Some(&cluster.url_for("postgres", "shop")));
    keys::init(&ctx).await.unwrap();

    let report = backup::run(
        &ctx,
        BackupRequest {
            targets: vec!["main".into()],
            ..BackupRequest::default()
        },
        progress(),
    )
    .await
    .unwrap();
    assert_eq!(report.snapshot.kind, SnapshotKind::PostgresLogical);
    let meta = lifeboat_engine::meta::SnapshotMeta::of(&report.snapshot).unwrap();
    let lifeboat_engine::meta::SnapshotMeta::PostgresLogical(meta) = meta else {
        panic!("a logical snapshot has logical meta");
    };
    assert_eq!(meta.database, "shop");
    let orders = meta.tables.iter().find(|t| t.name == "public.orders");
    assert_eq!(orders.and_then(|t| t.rows), Some(5000));

    let plan = restore::plan(
        &ctx,
        RestoreRequest {
            snapshot: "latest".into(),
            to: cluster.url_for("postgres", "shop_restored"),
            ..RestoreRequest::default()
        },
    )
    .await
    .unwrap();
    assert!(plan.files().is_none());
    let done = restore::execute(plan, progress()).await.unwrap();
    let RestoreReport::Postgres { outcome, .. } = done else {
        panic!("a logical restore reports PostgreSQL: {done:?}");
    };
    assert!(outcome.created);
    let want = table_checksums(cluster.tools(), &cluster.target().with_database("shop")).unwrap();
    let got = table_checksums(
        cluster.tools(),
        &cluster.target().with_database("shop_restored"),
    )
    .unwrap();
    assert_eq!(got, want);
    assert_eq!(want["public.orders"].0, 5000);

    let tested = verify::restore_test(&ctx, RestoreTestRequest::default())
        .await
        .unwrap();
    assert!(tested.report.ok, "{:?}", tested.report.checks);
    assert_eq!(tested.id, report.id);
    let listed = listing::snapshots(&ctx, None).await.unwrap();
    let record = listed.snapshots[0].restore_test.as_ref().expect("recorded");
    assert_eq!(record.report, tested.report);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_backup_and_restore_as_files_through_the_engine_alone() {
    let tmp = tempfile::tempdir().unwrap();
    drop(context(tmp.path(), None));
    let mut toml = fs::read_to_string(tmp.path().join("lifeboat.toml")).unwrap();
    toml.push_str(
        "\n[[source]]\nname = \"cfg\"\nkind = \"command\"\nfile = \"cfg.env\"\n\
         command = [\"sh\", \"-c\", \"echo PORT=8080; echo API_TOKEN=s3cr3t\"]\n",
    );
    fs::write(tmp.path().join("lifeboat.toml"), toml).unwrap();
    let ctx = Ctx::new(RepoOptions {
        config: Some(tmp.path().join("lifeboat.toml")),
        ..RepoOptions::default()
    })
    .unwrap();
    keys::init(&ctx).await.unwrap();

    let report = backup::run(
        &ctx,
        BackupRequest {
            targets: vec!["cfg".into()],
            ..BackupRequest::default()
        },
        progress(),
    )
    .await
    .unwrap();
    assert!(report.complete() && report.notes.is_empty());
    assert_eq!(report.snapshot.kind, SnapshotKind::Command);
    let meta = lifeboat_engine::meta::SnapshotMeta::of(&report.snapshot).unwrap();
    let lifeboat_engine::meta::SnapshotMeta::Command(meta) = meta else {
        panic!("a command snapshot has command meta: {meta:?}");
    };
    assert_eq!((meta.file.as_str(), meta.redacted_values), ("cfg.env", 1));

    let to = tmp.path().join("restored");
    let plan = restore::plan(
        &ctx,
        RestoreRequest {
            snapshot: report.id.to_string(),
            to: to.display().to_string(),
            ..RestoreRequest::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(plan.files().unwrap().summary().files, 1);
    let done = restore::execute(plan, progress()).await.unwrap();
    assert!(matches!(done, RestoreReport::Files { .. }), "{done:?}");
    let restored = fs::read_to_string(to.join("cfg.env")).unwrap();
    assert!(restored.starts_with("PORT=8080\nAPI_TOKEN="), "{restored}");
    assert!(!restored.contains("s3cr3t"), "{restored}");
}
