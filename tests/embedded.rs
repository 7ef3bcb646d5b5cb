//! The service on its embedded store, with nothing else running: the whole job over real gRPC
//! (submit, review, report, settings, statistics) in a real SQLite file, a second process on
//! the same file refused, and a `moderation serve` process killed with SIGKILL under load keeps
//! every comment it answered ACCEPTED.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestApp, holding_config, spawn_server, submission, test_config};
use moderation::config::{Backend, Config};
use moderation::proto::v1 as pb;
use pb::admin_service_client::AdminServiceClient;
use pb::comment_service_client::CommentServiceClient;
use pb::moderation_service_client::ModerationServiceClient;
use tonic::Code;

const SERVING: i32 = 1;

fn embedded(mut config: Config, dir: &tempfile::TempDir) -> Config {
    config.store.backend = Backend::Embedded;
    config.store.path = dir.path().join("data/moderation.db");
    config
}

#[tokio::test]
async fn the_whole_job_runs_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(embedded(holding_config(), &dir)).await;
    app.wait_for_health(SERVING).await;
    assert!(
        dir.path().join("data/moderation.db").exists(),
        "created on first start"
    );
    let mut comments = app.client.clone();
    let held = comments
        .submit_comment(submission("e-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.outcome(), pb::Outcome::PendingReview);
    let retry = comments
        .submit_comment(submission("e-1"))
        .await
        .unwrap()
        .into_inner();
    assert!(retry.replayed);
    assert_eq!(retry.comment_id, held.comment_id);

    let mut moderation = ModerationServiceClient::new(app.channel().await);
    let page = moderation
        .list_flagged(pb::ListFlaggedRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.items.len(), 1);
    let claimed = moderation
        .claim_flagged(pb::ClaimFlaggedRequest {
            moderator: "lan".into(),
            count: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(claimed.items.len(), 1);
    let decided = moderation
        .decide_comment(pb::DecideCommentRequest {
            comment_id: held.comment_id.clone(),
            version: 1,
            decision: pb::ModeratorDecision::Approve.into(),
            moderator: "lan".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decided.state(), pb::CommentState::Accepted);
    let got = comments
        .get_comment(pb::GetCommentRequest {
            comment_id: held.comment_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .comment
        .unwrap();
    assert_eq!(got.state(), pb::CommentState::Accepted);
    let reported = moderation
        .report_comment(pb::ReportCommentRequest {
            comment_id: held.comment_id.clone(),
            reason: "Xúc phạm".into(),
            reporter: "reader-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reported.version, 3);
    let history = moderation
        .get_comment_history(pb::GetCommentHistoryRequest {
            comment_id: held.comment_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<&str> = history.events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["submitted", "claimed", "approved", "reported"]);

    let mut admin = AdminServiceClient::new(app.channel().await);
    let version = admin
        .get_settings(pb::GetSettingsRequest {})
        .await
        .unwrap()
        .into_inner()
        .version;
    let updated = admin
        .update_settings(pb::UpdateSettingsRequest {
            version,
            changes: vec![pb::SettingChange {
                key: "decision.reject_at".into(),
                value: "0.95".into(),
                reset: false,
            }],
            note: "embedded".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.version, version + 1);
    let audit = admin
        .list_settings_audit(pb::ListSettingsAuditRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.records[0].note, "embedded");
    let stats = admin
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    let pending = stats
        .last_hour
        .iter()
        .find(|c| c.name == "pending_review")
        .map_or(0, |c| c.count);
    assert_eq!(pending, 1);
    assert_eq!(stats.flagged, 1, "back for review after the report");
}

#[tokio::test]
async fn a_second_instance_on_the_same_file_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = embedded(test_config(), &dir);
    let first = moderation::server::App::build_with_model(config.clone(), common::model())
        .expect("the first builds");
    let second = moderation::server::App::build_with_model(config, common::model());
    let message = format!("{:#}", second.err().expect("refused"));
    assert!(message.contains("moderation.db"), "{message}");
    assert!(message.contains("another process"), "{message}");
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_under_load_keeps_every_comment_it_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("moderation.db");
    let config_path = dir.path().join("moderation.toml");
    std::fs::write(
        &config_path,
        format!(
            // Every writer sends its texts under one address: no campaign check holds them.
            "[store]\nbackend = \"embedded\"\npath = \"{}\"\n[server]\ndrain = \"0s\"\n[metrics]\nenabled = false\n[campaigns]\ncopies = 0\n",
            db.display()
        ),
    )
    .unwrap();
    let (mut server, channel) = spawn_server(&config_path).await;
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (channel, accepted, stop) = (channel.clone(), accepted.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut client = CommentServiceClient::new(channel);
            for k in 0..200 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let mut request = submission(&format!("kill-{w}-{k}"));
                request.body = format!("Ý kiến số {k} của người đọc {w} về giá xăng");
                if let Ok(answer) = client.submit_comment(request).await {
                    let answer = answer.into_inner();
                    if answer.outcome() == pb::Outcome::Accepted {
                        accepted.lock().unwrap().push(answer.comment_id);
                    }
                }
            }
        }));
    }
    // Kill it while the writers are busy.
    let started = Instant::now();
    while accepted.lock().unwrap().len() < 100 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = server.0.kill();
    let _ = server.0.wait();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    let answered: Vec<String> = accepted.lock().unwrap().clone();
    assert!(
        answered.len() >= 100,
        "{} accepted before the kill",
        answered.len()
    );

    let (_server, channel) = spawn_server(&config_path).await;
    let mut client = CommentServiceClient::new(channel.clone());
    let mut missing = Vec::new();
    for id in &answered {
        match client
            .get_comment(pb::GetCommentRequest {
                comment_id: id.clone(),
            })
            .await
        {
            Ok(_) => {}
            Err(status) if status.code() == Code::NotFound => missing.push(id.clone()),
            Err(status) => panic!("reading {id}: {status:?}"),
        }
    }
    println!(
        "{} accepted before SIGKILL, all there after the restart",
        answered.len()
    );
    assert!(missing.is_empty(), "lost after SIGKILL: {missing:?}");
    // And the feed delivers every one of them.
    let mut feed = pb::feed_service_client::FeedServiceClient::new(channel.clone());
    let mut events = feed
        .subscribe(pb::SubscribeRequest {
            group: "portal".into(),
            consumer: "web-1".into(),
            visibility_seconds: 600,
        })
        .await
        .unwrap()
        .into_inner();
    let mut delivered = std::collections::HashSet::new();
    while !answered.iter().all(|id| delivered.contains(id)) {
        use tokio_stream::StreamExt;
        let next = tokio::time::timeout(Duration::from_secs(10), events.next()).await;
        let event = next.expect("the feed goes on").expect("open").unwrap();
        delivered.insert(event.comment_id);
    }
}

#[tokio::test]
async fn trimming_removes_what_outlived_its_retention_and_keeps_held_comments() {
    use moderation::decide::Outcome;
    use moderation::store::Store;
    use moderation::store::sqlite::{Retention, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(&dir.path().join("m.db"), Retention::default()).unwrap();
    let at = jiff::Timestamp::now().as_millisecond();
    let ids = [
        common::save_directly(&store, "trim-0", Outcome::Accepted, &[], at).await,
        common::save_directly(&store, "trim-1", Outcome::PendingReview, &[], at).await,
    ];
    let now = jiff::Timestamp::now().as_millisecond();
    assert_eq!(store.trim(now).await.unwrap(), 0, "nothing is old yet");
    // A year later: the decided comment, its answer and stream entry are gone; the held one
    // waits for its moderator.
    let later = now + 366 * 24 * 3600 * 1000;
    assert!(store.trim(later).await.unwrap() >= 3);
    assert!(store.comment(ids[0]).await.unwrap().is_none());
    assert!(store.comment(ids[1]).await.unwrap().is_some());
}

#[tokio::test]
async fn store_copy_moves_everything_into_an_empty_redis_prefix() {
    use moderation::feed::{FeedStore, Name};
    use moderation::review::{Moderator, Query, Report, ReportLimits, ReviewStore, Verdict};
    use moderation::settings::{Audit, SettingsStore};
    use moderation::store::Store;
    use moderation::store::redis::{RedisSettings, RedisStore, RedisUrl};
    use moderation::store::sqlite::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("moderation.db");
    let prefix = format!("{{copy-{}}}:", uuid::Uuid::now_v7().simple());
    let sqlite = SqliteStore::open(&db).unwrap();
    let mut ids = Vec::new();
    for k in 0..2 {
        let at = jiff::Timestamp::now().as_millisecond() + k;
        let key = format!("copy-{k}");
        let held = moderation::decide::Outcome::PendingReview;
        ids.push(common::save_directly(&sqlite, &key, held, &["SPAM_LIKELY"], at).await);
    }
    let now = jiff::Timestamp::now().as_millisecond();
    let lan = Moderator::parse("lan").unwrap();
    sqlite
        .decide(ids[0], 1, &lan, Verdict::Approve, "ổn", now)
        .await
        .unwrap();
    let report = Report::parse(&ids[0].to_string(), "Xúc phạm", "r1").unwrap();
    let limits = ReportLimits {
        kept: 20,
        per_reader: 10,
        window: Duration::from_secs(600),
    };
    sqlite.report(&report, limits, now + 1).await.unwrap();
    ReviewStore::claim(&sqlite, &lan, 1, &[ids[1]], now + 600_000, now)
        .await
        .unwrap();
    let mut next = sqlite.load_settings().await.unwrap();
    next.version = 1;
    let audit = Audit {
        version: 1,
        by: "ops".into(),
        at_ms: now,
        note: "trước khi chuyển".into(),
        changes: Vec::new(),
    };
    sqlite.update_settings(0, &next, &audit).await.unwrap();
    use moderation::readers::ReaderStore;
    let readers_key = sqlite
        .reader_key(&moderation::secret::Secret::new("the embedded store's"))
        .await
        .unwrap();
    let reader = moderation::readers::ReaderKey::new(&moderation::secret::Secret::new("test"))
        .id(common::raw_submission().author_email.as_str());
    let readers_before = sqlite.reader_comments(&reader, 10).await.unwrap();
    assert_eq!(readers_before.len(), 2);
    let before: Vec<_> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push((
                Store::comment(&sqlite, *id).await.unwrap(),
                sqlite.history(*id).await.unwrap(),
            ));
        }
        v
    };
    let flagged_before = sqlite
        .flagged(
            &Query::parse(None, None, None, None, 50, "").unwrap(),
            now + 2,
        )
        .await
        .unwrap()
        .0;
    drop(sqlite);

    let config = dir.path().join("copy.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"{}\"\n[redis]\nprefix = \"{prefix}\"\n",
            db.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let out = common::cli(
        &[
            "store",
            "copy",
            "--to",
            &common::redis_url(),
            "--config",
            config,
        ],
        &[],
    );
    let said = common::stdout(&out);
    assert!(said.contains("copied 2 comments"), "{said}");

    let redis = RedisStore::new(
        RedisSettings {
            url: RedisUrl::new(common::redis_url()),
            prefix: prefix.clone(),
            ..RedisSettings::default()
        },
        Duration::from_secs(1),
    )
    .unwrap();
    for (id, (comment, history)) in ids.iter().zip(&before) {
        assert_eq!(&Store::comment(&redis, *id).await.unwrap(), comment);
        assert_eq!(&redis.history(*id).await.unwrap(), history);
    }
    let flagged_after = redis
        .flagged(
            &Query::parse(None, None, None, None, 50, "").unwrap(),
            now + 2,
        )
        .await
        .unwrap()
        .0;
    assert_eq!(
        flagged_after, flagged_before,
        "the queue, claims, reports and counts"
    );
    assert_eq!(redis.feedback(0).await.unwrap().len(), 1);
    assert_eq!(
        redis.reader_comments(&reader, 10).await.unwrap(),
        readers_before,
        "the reader's comments, newest first"
    );
    let copied_key = redis
        .reader_key(&moderation::secret::Secret::new("a new one"))
        .await
        .unwrap();
    assert_eq!(copied_key, readers_key, "readers keep their ids");
    assert_eq!(redis.load_settings().await.unwrap().version, 1);
    assert_eq!(
        redis.settings_audit(10).await.unwrap()[0].note,
        "trước khi chuyển"
    );
    let events = redis
        .read(
            &Name::parse("group", "portal").unwrap(),
            &Name::parse("consumer", "web-1").unwrap(),
            10,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "the approved comment is in the feed");
    // Copying again into the same prefix is refused: two stores' data never mix.
    let again = common::cli(
        &[
            "store",
            "copy",
            "--to",
            &common::redis_url(),
            "--config",
            config,
        ],
        &[],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds data"));
    common::delete_prefix(&common::redis_url(), &prefix);
}
