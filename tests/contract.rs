//! The storage contract: every behaviour a port promises, run against every backend that
//! implements it (Redis under a prefix of the test's own, and the embedded SQLite store in a
//! real file of its own), with one body per behaviour, as limitador runs each test on all its
//! storages.

mod common;

use std::sync::Arc;
use std::time::Duration;

use moderation::captcha::store::{ChallengeStore, ImageClaim, ImageClaimed};
use moderation::comment::{CommentId, Limits, NewComment, RawSubmission};
use moderation::decide::{Outcome, Reason};
use moderation::rate_limit::Bucket;
use moderation::rate_limit::cluster::{Cell, Charged, CounterStore};
use moderation::store::redis::{Connection, RedisChallenges, RedisCounters, RedisStore};
use moderation::store::sqlite::SqliteStore;
use moderation::store::{Receipt, Saved, Store, StoreError, Submission};

/// The ports of one backend, and what to clean up after.
struct Backend {
    submissions: Arc<dyn Store>,
    counters: Arc<dyn CounterStore>,
    challenges: Arc<dyn ChallengeStore>,
    _cleanup: Cleanup,
}

enum Cleanup {
    Redis { prefix: String },
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Cleanup::Redis { prefix } = self {
            common::delete_prefix(&common::redis_url(), prefix);
        }
    }
}

impl Backend {
    fn redis() -> Backend {
        let prefix = format!("{{contract-{}}}:", uuid::Uuid::now_v7().simple());
        let connection = Connection::new(
            &common::redis_url(),
            Duration::from_millis(500),
            Duration::from_secs(1),
        )
        .unwrap();
        let settings = moderation::store::redis::RedisSettings {
            url: moderation::store::redis::RedisUrl::new(common::redis_url()),
            prefix: prefix.clone(),
            ..Default::default()
        };
        let store = RedisStore::new(settings, Duration::from_secs(1)).unwrap();
        Backend {
            submissions: Arc::new(store),
            counters: Arc::new(RedisCounters::new(connection.clone(), &prefix)),
            challenges: Arc::new(RedisChallenges::new(connection, &prefix)),
            _cleanup: Cleanup::Redis { prefix },
        }
    }

    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("moderation.db")).unwrap();
        Backend {
            submissions: Arc::new(store.clone()),
            counters: Arc::new(store.clone()),
            challenges: Arc::new(store),
            _cleanup: Cleanup::Sqlite(dir),
        }
    }
}

/// Runs the body (an async fn taking a [`Backend`]) once per backend, as two tests.
macro_rules! on_every_backend {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn redis() {
                super::$name(super::Backend::redis()).await;
            }

            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Backend::sqlite()).await;
            }
        }
    };
}

fn cell(bucket: Bucket, key: &str, per: Duration, burst: u32) -> Cell {
    Cell {
        bucket,
        key: key.into(),
        interval: per,
        burst,
        shadow: false,
    }
}

on_every_backend!(counters_admit_a_burst_then_refuse_with_the_real_wait);
async fn counters_admit_a_burst_then_refuse_with_the_real_wait(b: Backend) {
    let hour = Duration::from_secs(3600);
    let ip = [cell(Bucket::Ip, "203.0.113.7", hour, 2)];
    for _ in 0..2 {
        let charged = b.counters.charge(&ip).await.unwrap();
        assert!(matches!(charged, Charged::Admitted { .. }), "{charged:?}");
    }
    match b.counters.charge(&ip).await.unwrap() {
        Charged::Refused { position, wait, .. } => {
            assert_eq!(position, 0);
            assert!(
                wait > hour - Duration::from_secs(5) && wait <= hour,
                "{wait:?}"
            );
        }
        other => panic!("the third is refused, got {other:?}"),
    }
}

on_every_backend!(counters_charge_all_or_nothing);
async fn counters_charge_all_or_nothing(b: Backend) {
    let hour = Duration::from_secs(3600);
    let article = cell(Bucket::Article, "bai-1", hour, 1);
    let roomy = cell(Bucket::Global, "", hour, 2);
    b.counters
        .charge(std::slice::from_ref(&article))
        .await
        .unwrap();
    // The article refuses: the global bucket is not charged either.
    let refused = b
        .counters
        .charge(&[roomy.clone(), article.clone()])
        .await
        .unwrap();
    assert!(
        matches!(refused, Charged::Refused { position: 1, .. }),
        "{refused:?}"
    );
    for _ in 0..2 {
        let admitted = b
            .counters
            .charge(std::slice::from_ref(&roomy))
            .await
            .unwrap();
        assert!(matches!(admitted, Charged::Admitted { .. }), "{admitted:?}");
    }
}

on_every_backend!(a_shadow_counter_reports_without_refusing);
async fn a_shadow_counter_reports_without_refusing(b: Backend) {
    let hour = Duration::from_secs(3600);
    let shadow = Cell {
        shadow: true,
        ..cell(Bucket::Email, "hash", hour, 1)
    };
    b.counters
        .charge(std::slice::from_ref(&shadow))
        .await
        .unwrap();
    let charged = b.counters.charge(&[shadow]).await.unwrap();
    assert_eq!(
        charged,
        Charged::Admitted {
            shadow_refusals: vec![0]
        }
    );
}

fn claim<'a>(nonce: &'a str, claimant: &'a str, answer: &'a str) -> ImageClaim<'a> {
    ImageClaim {
        nonce,
        ip_group: "2001:db8:1:2::/64",
        claimant,
        answer_hash: answer,
        wrong_limit: 2,
        wrong_window: Duration::from_secs(600),
    }
}

on_every_backend!(an_image_challenge_is_claimed_once_and_a_wrong_answer_spends_it);
async fn an_image_challenge_is_claimed_once_and_a_wrong_answer_spends_it(b: Backend) {
    let c = &b.challenges;
    let ttl = Duration::from_secs(300);
    c.put_image("n1", "right", ttl).await.unwrap();
    assert_eq!(
        c.claim_image(&claim("n1", "k1", "right")).await.unwrap(),
        ImageClaimed::Claimed
    );
    // The same submission may present it again; another may not.
    assert_eq!(
        c.claim_image(&claim("n1", "k1", "right")).await.unwrap(),
        ImageClaimed::Claimed
    );
    assert_eq!(
        c.claim_image(&claim("n1", "k2", "right")).await.unwrap(),
        ImageClaimed::Used
    );
    c.put_image("n2", "right", ttl).await.unwrap();
    assert_eq!(
        c.claim_image(&claim("n2", "k3", "wrong")).await.unwrap(),
        ImageClaimed::Wrong
    );
    assert_eq!(
        c.claim_image(&claim("n2", "k3", "right")).await.unwrap(),
        ImageClaimed::Used,
        "spent for its own submission's retry too"
    );
    assert_eq!(
        c.claim_image(&claim("nope", "k4", "right")).await.unwrap(),
        ImageClaimed::Missing
    );
}

on_every_backend!(wrong_answers_throttle_their_network_for_the_window);
async fn wrong_answers_throttle_their_network_for_the_window(b: Backend) {
    let c = &b.challenges;
    let ttl = Duration::from_secs(300);
    for nonce in ["w1", "w2", "w3"] {
        c.put_image(nonce, "right", ttl).await.unwrap();
    }
    for nonce in ["w1", "w2"] {
        assert_eq!(
            c.claim_image(&claim(nonce, nonce, "wrong")).await.unwrap(),
            ImageClaimed::Wrong
        );
    }
    match c.claim_image(&claim("w3", "k", "right")).await.unwrap() {
        ImageClaimed::Throttled(left) => {
            assert!(
                left > Duration::from_secs(590) && left <= Duration::from_secs(600),
                "{left:?}"
            );
        }
        other => panic!("throttled, got {other:?}"),
    }
    let elsewhere = ImageClaim {
        ip_group: "198.51.100.9",
        ..claim("w3", "k", "right")
    };
    assert_eq!(
        c.claim_image(&elsewhere).await.unwrap(),
        ImageClaimed::Claimed
    );
}

on_every_backend!(an_image_challenge_expires);
async fn an_image_challenge_expires(b: Backend) {
    let c = &b.challenges;
    c.put_image("short", "right", Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        c.claim_image(&claim("short", "k", "right")).await.unwrap(),
        ImageClaimed::Missing
    );
}

on_every_backend!(a_proof_of_work_is_claimed_by_its_first_submission);
async fn a_proof_of_work_is_claimed_by_its_first_submission(b: Backend) {
    let c = &b.challenges;
    let ttl = Duration::from_secs(60);
    assert_eq!(c.claim_pow("target", "k1", ttl).await.unwrap(), None);
    assert_eq!(
        c.claim_pow("target", "k2", ttl).await.unwrap().as_deref(),
        Some("k1")
    );
    assert_eq!(
        c.claim_pow("target", "k1", ttl).await.unwrap().as_deref(),
        Some("k1"),
        "the first submission's retry sees its own claim"
    );
    assert_eq!(
        c.claim_pow("brief", "k3", Duration::from_millis(50))
            .await
            .unwrap(),
        None
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        c.claim_pow("brief", "k4", ttl).await.unwrap(),
        None,
        "a claim ends with its challenge"
    );
}

fn comment(key: &str, body: &str) -> NewComment {
    let raw = RawSubmission {
        idempotency_key: key.into(),
        body: body.into(),
        ..common::raw_submission()
    };
    NewComment::parse(&raw, &Limits::default()).unwrap()
}

fn receipt(outcome: Outcome) -> Receipt {
    Receipt {
        comment_id: CommentId::new(),
        outcome,
        spam: 0.5,
        toxic: 0.25,
        reasons: vec![Reason {
            code: "SPAM_LIKELY".into(),
            message: "spam score 0.50".into(),
        }],
        model_version: "test-model".into(),
    }
}

async fn save(b: &Backend, c: &NewComment, r: &Receipt) -> Result<Saved, StoreError> {
    b.submissions
        .save(Submission {
            comment: c,
            receipt: r,
            fingerprint: &c.fingerprint(),
            created_at_ms: 1_764_252_147_958,
            explanation: &[],
            tallies: &["shadow_decision_rejected"],
        })
        .await
}

on_every_backend!(a_submission_is_stored_once_and_read_back_as_sent);
async fn a_submission_is_stored_once_and_read_back_as_sent(b: Backend) {
    for outcome in [Outcome::Accepted, Outcome::PendingReview, Outcome::Rejected] {
        let key = format!("k-{}", outcome.as_str());
        let c = comment(&key, "Bài viết rất hay, cảm ơn tác giả.");
        let r = receipt(outcome);
        assert_eq!(save(&b, &c, &r).await.unwrap(), Saved::Stored);
        let stored = b.submissions.comment(r.comment_id).await.unwrap().unwrap();
        assert_eq!(stored.state, outcome);
        assert_eq!(stored.body, c.body.as_str());
        assert_eq!(stored.author_email, c.author_email.as_str());
        assert_eq!(
            stored.article_title.as_deref(),
            Some("Giá xăng tăng từ chiều nay")
        );
        assert_eq!(stored.reasons, r.reasons);
        assert_eq!(stored.model_version, "test-model");
        assert_eq!(stored.created_at_ms, 1_764_252_147_958);
        assert!((stored.spam - 0.5).abs() < 1e-6);
        let first = b
            .submissions
            .receipt(&c.idempotency_key, &c.fingerprint())
            .await
            .unwrap();
        assert_eq!(first, Some(r.clone()));
    }
    assert!(
        b.submissions
            .comment(CommentId::new())
            .await
            .unwrap()
            .is_none()
    );
    b.submissions.check().await.unwrap();
}

on_every_backend!(a_retry_gets_the_first_answer_and_another_comment_is_refused);
async fn a_retry_gets_the_first_answer_and_another_comment_is_refused(b: Backend) {
    let c = comment("retry-1", "Ý kiến thứ nhất");
    let first = receipt(Outcome::Accepted);
    save(&b, &c, &first).await.unwrap();
    // A racing retry that was scored again: the first answer, nothing new stored.
    let again = receipt(Outcome::Rejected);
    assert_eq!(
        save(&b, &c, &again).await.unwrap(),
        Saved::Replayed(first.clone())
    );
    assert!(
        b.submissions
            .comment(again.comment_id)
            .await
            .unwrap()
            .is_none()
    );
    let other = comment("retry-1", "Một bình luận khác hẳn");
    assert!(matches!(
        save(&b, &other, &receipt(Outcome::Accepted)).await,
        Err(StoreError::KeyReused)
    ));
    assert!(matches!(
        b.submissions
            .receipt(&other.idempotency_key, &other.fingerprint())
            .await,
        Err(StoreError::KeyReused)
    ));
}
