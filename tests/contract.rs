//! The storage contract: every behaviour a port promises, run against every backend that
//! implements it (Redis under a prefix of the test's own, and the embedded SQLite store in a
//! real file of its own), with one body per behaviour, as limitador runs each test on all its
//! storages.

mod common;

use std::sync::Arc;
use std::time::Duration;

use moderation::captcha::store::{ChallengeStore, Claim, Claimed, ImageClaim};
use moderation::comment::{CommentId, Limits, NewComment, RawSubmission};
use moderation::decide::{Outcome, Reason};
use moderation::feed::{EventKind, FeedStore, Name};
use moderation::rate_limit::Bucket;
use moderation::rate_limit::cluster::{Cell, Charged, CounterStore};
use moderation::readers::{ReaderKey, ReaderStore};
use moderation::review::{
    Moderator, Query, Report, ReportLimits, ReviewError, ReviewStore, Verdict,
};
use moderation::secret::Secret;
use moderation::settings::{Audit, AuditChange, SettingsStore};
use moderation::store::redis::{Connection, RedisChallenges, RedisCounters, RedisStore};
use moderation::store::sqlite::SqliteStore;
use moderation::store::{
    Admission, Admitted, Receipt, SHADOW_CAPTCHA_REFUSED, Saved, Store, StoreError, Submission,
};

/// The ports of one backend, and what to clean up after.
struct Backend {
    feed: Arc<dyn FeedStore>,
    submissions: Arc<dyn Store>,
    review: Arc<dyn ReviewStore>,
    settings: Arc<dyn SettingsStore>,
    counters: Arc<dyn CounterStore>,
    challenges: Arc<dyn ChallengeStore>,
    readers: Arc<dyn ReaderStore>,
    _cleanup: Cleanup,
}

enum Cleanup {
    /// Keys under `prefix` on each of these nodes.
    Redis {
        urls: Vec<String>,
        prefix: String,
    },
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Cleanup::Redis { urls, prefix } = self {
            for url in urls {
                common::delete_prefix(url, prefix);
            }
        }
    }
}

impl Backend {
    fn redis() -> Backend {
        let prefix = format!("{{contract-{}}}:", uuid::Uuid::now_v7().simple());
        let settings = moderation::store::redis::RedisSettings {
            url: moderation::store::redis::RedisUrl::new(common::redis_url()),
            prefix,
            ..Default::default()
        };
        Self::on_redis(settings, vec![common::redis_url()])
    }

    /// Through the sentinels of a primary with one replica.
    fn sentinel() -> Backend {
        let deployment = common::deploy::shared_sentinel();
        let prefix = format!("{{contract-{}}}:", uuid::Uuid::now_v7().simple());
        Self::on_redis(deployment.settings(&prefix), deployment.urls())
    }

    /// On a cluster of three primaries.
    fn cluster() -> Backend {
        let deployment = common::deploy::shared_cluster();
        let prefix = format!("{{contract-{}}}:", uuid::Uuid::now_v7().simple());
        Self::on_redis(deployment.settings(&prefix), deployment.urls())
    }

    fn on_redis(settings: moderation::store::redis::RedisSettings, urls: Vec<String>) -> Backend {
        let prefix = settings.prefix.clone();
        let connection = Connection::open(&settings, Duration::from_secs(1)).unwrap();
        let store = Arc::new(RedisStore::new(settings, Duration::from_secs(1)).unwrap());
        Backend {
            feed: store.clone(),
            submissions: store.clone(),
            review: store.clone(),
            readers: store.clone(),
            settings: store,
            counters: Arc::new(RedisCounters::new(connection.clone(), &prefix)),
            challenges: Arc::new(RedisChallenges::new(connection, &prefix)),
            _cleanup: Cleanup::Redis { urls, prefix },
        }
    }

    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("moderation.db")).unwrap();
        Backend {
            feed: Arc::new(store.clone()),
            submissions: Arc::new(store.clone()),
            review: Arc::new(store.clone()),
            settings: Arc::new(store.clone()),
            readers: Arc::new(store.clone()),
            counters: Arc::new(store.clone()),
            challenges: Arc::new(store),
            _cleanup: Cleanup::Sqlite(dir),
        }
    }
}

/// Runs the body (an async fn taking a [`Backend`]) once per backend: Redis (one node,
/// through Sentinel, and as a cluster) and SQLite, as four tests.
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

            #[tokio::test]
            async fn sentinel() {
                super::$name(super::Backend::sentinel()).await;
            }

            #[tokio::test]
            async fn cluster() {
                super::$name(super::Backend::cluster()).await;
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

fn image(nonce: &str, answer: &str) -> Claim {
    Claim::Image(ImageClaim {
        nonce: nonce.into(),
        ip_group: "2001:db8:1:2::/64".into(),
        answer_hash: answer.into(),
        wrong_limit: 2,
        wrong_window: Duration::from_secs(600),
        expires_at_ms: 0,
    })
}

fn pow(challenge: &str, ttl: Duration) -> Claim {
    Claim::ProofOfWork {
        challenge: challenge.into(),
        ttl,
    }
}

/// Submits a comment under `key` with `admission`; returns what the store found.
async fn submit(b: &Backend, key: &str, admission: Admission<'_>) -> (Admitted, Receipt) {
    let c = comment(key, "Bình luận có xác thực");
    let r = receipt(Outcome::Accepted);
    let admitted = b
        .submissions
        .submit(
            admission,
            Submission {
                comment: &c,
                reader: &moderation::readers::ReaderKey::new(&moderation::secret::Secret::new(
                    "test",
                ))
                .id(c.author_email.as_str()),
                receipt: &r,
                fingerprint: &c.fingerprint(),
                created_at_ms: 1_764_252_147_958,
                explanation: &[],
                tallies: &[],
                shared: None,
            },
        )
        .await
        .unwrap();
    (admitted, r)
}

/// What the claim of `claim` by submission `key` found, and whether the comment was stored.
async fn claim(b: &Backend, key: &str, claim: &Claim) -> (Claimed, bool) {
    let admission = Admission {
        claim: Some(claim),
        ..Admission::default()
    };
    let (admitted, r) = submit(b, key, admission).await;
    let stored = b.submissions.comment(r.comment_id).await.unwrap().is_some();
    match admitted {
        Admitted::Stored {
            claimed: Some(found),
            ..
        } => (found, stored),
        Admitted::Refused { claimed, .. } => (claimed, stored),
        other => panic!("a claim, got {other:?}"),
    }
}

on_every_backend!(an_image_challenge_is_claimed_once_and_a_wrong_answer_spends_it);
async fn an_image_challenge_is_claimed_once_and_a_wrong_answer_spends_it(b: Backend) {
    let ttl = Duration::from_secs(300);
    b.challenges.put_image("n1", "right", ttl).await.unwrap();
    assert_eq!(
        claim(&b, "k1", &image("n1", "right")).await,
        (Claimed::Claimed, true)
    );
    // Its retry gets the first answer; another submission is refused and nothing stored.
    let (again, _) = submit(
        &b,
        "k1",
        Admission {
            claim: Some(&image("n1", "right")),
            ..Admission::default()
        },
    )
    .await;
    assert!(matches!(again, Admitted::Replayed(_)), "{again:?}");
    assert_eq!(
        claim(&b, "k2", &image("n1", "right")).await,
        (Claimed::Used, false)
    );
    b.challenges.put_image("n2", "right", ttl).await.unwrap();
    assert_eq!(
        claim(&b, "k3", &image("n2", "wrong")).await,
        (Claimed::Wrong, false)
    );
    assert_eq!(
        claim(&b, "k3", &image("n2", "right")).await,
        (Claimed::Used, false),
        "spent for its own submission's retry too"
    );
    assert_eq!(
        claim(&b, "k4", &image("nope", "right")).await,
        (Claimed::Missing, false)
    );
}

on_every_backend!(wrong_answers_throttle_their_network_for_the_window);
async fn wrong_answers_throttle_their_network_for_the_window(b: Backend) {
    let ttl = Duration::from_secs(300);
    for nonce in ["w1", "w2", "w3"] {
        b.challenges.put_image(nonce, "right", ttl).await.unwrap();
    }
    for nonce in ["w1", "w2"] {
        assert_eq!(
            claim(&b, nonce, &image(nonce, "wrong")).await.0,
            Claimed::Wrong
        );
    }
    match claim(&b, "k", &image("w3", "right")).await {
        (Claimed::Throttled(left), false) => {
            assert!(
                left > Duration::from_secs(590) && left <= Duration::from_secs(600),
                "{left:?}"
            );
        }
        other => panic!("throttled, got {other:?}"),
    }
    let Claim::Image(mut elsewhere) = image("w3", "right") else {
        unreachable!()
    };
    elsewhere.ip_group = "198.51.100.9".into();
    assert_eq!(
        claim(&b, "k", &Claim::Image(elsewhere)).await,
        (Claimed::Claimed, true)
    );
}

on_every_backend!(an_image_challenge_expires);
async fn an_image_challenge_expires(b: Backend) {
    b.challenges
        .put_image("short", "right", Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        claim(&b, "k", &image("short", "right")).await,
        (Claimed::Missing, false)
    );
}

on_every_backend!(a_proof_of_work_is_claimed_by_its_first_submission);
async fn a_proof_of_work_is_claimed_by_its_first_submission(b: Backend) {
    let ttl = Duration::from_secs(60);
    assert_eq!(
        claim(&b, "k1", &pow("target", ttl)).await,
        (Claimed::Claimed, true)
    );
    assert_eq!(
        claim(&b, "k2", &pow("target", ttl)).await,
        (Claimed::Used, false)
    );
    let brief = pow("brief", Duration::from_millis(50));
    assert_eq!(claim(&b, "k3", &brief).await, (Claimed::Claimed, true));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        claim(&b, "k4", &pow("brief", ttl)).await,
        (Claimed::Claimed, true),
        "a claim ends with its challenge"
    );
}

on_every_backend!(a_refused_cell_claims_nothing_and_a_refused_claim_keeps_its_charge);
async fn a_refused_cell_claims_nothing_and_a_refused_claim_keeps_its_charge(b: Backend) {
    let hour = Duration::from_secs(3600);
    let cells = [cell(Bucket::Ip, "203.0.113.8", hour, 1)];
    b.challenges
        .put_image("c1", "right", Duration::from_secs(300))
        .await
        .unwrap();
    // A wrong answer: refused, nothing stored, but the address's one comment is spent.
    let wrong = image("c1", "wrong");
    let (admitted, r) = submit(
        &b,
        "c-1",
        Admission {
            cells: &cells,
            claim: Some(&wrong),
            claim_shadow: false,
        },
    )
    .await;
    assert!(
        matches!(
            admitted,
            Admitted::Refused {
                charged: Some(Charged::Admitted { .. }),
                claimed: Claimed::Wrong
            }
        ),
        "{admitted:?}"
    );
    assert!(b.submissions.comment(r.comment_id).await.unwrap().is_none());
    // Limited: no claim is made, nothing is stored.
    b.challenges
        .put_image("c2", "right", Duration::from_secs(300))
        .await
        .unwrap();
    let right = image("c2", "right");
    let (admitted, r) = submit(
        &b,
        "c-2",
        Admission {
            cells: &cells,
            claim: Some(&right),
            claim_shadow: false,
        },
    )
    .await;
    match admitted {
        Admitted::Limited(Charged::Refused {
            position: 0, wait, ..
        }) => {
            assert!(wait > Duration::from_secs(3500), "{wait:?}")
        }
        other => panic!("limited, got {other:?}"),
    }
    assert!(b.submissions.comment(r.comment_id).await.unwrap().is_none());
    assert_eq!(
        claim(&b, "c-3", &right).await,
        (Claimed::Claimed, true),
        "c2 is still free"
    );
}

on_every_backend!(a_claim_in_shadow_lets_the_comment_through_and_counts_it);
async fn a_claim_in_shadow_lets_the_comment_through_and_counts_it(b: Backend) {
    let wrong = pow("never-issued-but-claimed", Duration::from_secs(60));
    assert_eq!(claim(&b, "s-1", &wrong).await, (Claimed::Claimed, true));
    let admission = Admission {
        claim: Some(&wrong),
        claim_shadow: true,
        ..Admission::default()
    };
    let (admitted, r) = submit(&b, "s-2", admission).await;
    assert!(
        matches!(
            admitted,
            Admitted::Stored {
                claimed: Some(Claimed::Used),
                ..
            }
        ),
        "{admitted:?}"
    );
    assert!(b.submissions.comment(r.comment_id).await.unwrap().is_some());
    let stats = b.settings.stats(1_764_252_147_958, "portal").await.unwrap();
    assert_eq!(stats.last_hour.get(SHADOW_CAPTCHA_REFUSED), Some(&1));
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
    save_at(b, c, r, 1_764_252_147_958).await
}

async fn save_at(
    b: &Backend,
    c: &NewComment,
    r: &Receipt,
    at_ms: i64,
) -> Result<Saved, StoreError> {
    b.submissions
        .save(Submission {
            comment: c,
            reader: &moderation::readers::ReaderKey::new(&moderation::secret::Secret::new("test"))
                .id(c.author_email.as_str()),
            receipt: r,
            fingerprint: &c.fingerprint(),
            created_at_ms: at_ms,
            explanation: &[],
            tallies: &["shadow_decision_rejected"],
            shared: None,
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

/// Holds `n` comments, the k-th arriving at `T0 + k` ms, under article `a-<k % 2>`; returns
/// their ids in arrival order.
async fn hold(b: &Backend, n: usize) -> Vec<CommentId> {
    let mut ids = Vec::new();
    for k in 0..n {
        let mut raw = RawSubmission {
            idempotency_key: format!("held-{k}"),
            body: format!("Ý kiến số {k}"),
            article_id: format!("a-{}", k % 2),
            ..common::raw_submission()
        };
        raw.author_email = format!("reader{k}@example.vn");
        let c = NewComment::parse(&raw, &Limits::default()).unwrap();
        let mut r = receipt(Outcome::PendingReview);
        if k == 0 {
            r.reasons.push(Reason {
                code: "BOT_TOO_FAST".into(),
                message: "the form was sent 0.4 s after it was shown".into(),
            });
        }
        save_at(b, &c, &r, T0 + k as i64).await.unwrap();
        ids.push(r.comment_id);
    }
    ids
}

const T0: i64 = 1_764_252_000_000;
const NOW: i64 = T0 + 60_000;

fn query(page_size: usize) -> Query {
    Query::parse(None, None, None, None, page_size as u32, "").unwrap()
}

fn moderator(name: &str) -> Moderator {
    Moderator::parse(name).unwrap()
}

on_every_backend!(held_comments_page_oldest_first_with_their_filters);
async fn held_comments_page_oldest_first_with_their_filters(b: Backend) {
    let ids = hold(&b, 5).await;
    let mut seen = Vec::new();
    let mut q = query(2);
    loop {
        let (items, next) = b.review.flagged(&q, NOW).await.unwrap();
        seen.extend(items.iter().map(|i| i.comment.id));
        match next {
            Some(cursor) => q.after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let (items, _) = b.review.flagged(&query(50), NOW).await.unwrap();
    let first = &items[0];
    assert_eq!(first.version, 1);
    assert_eq!(first.arrived_ms, T0);
    assert_eq!(first.comment.state, Outcome::PendingReview);
    assert!(first.claim.is_none());
    assert_eq!(first.report_count, 0);
    let by_article = Query::parse(Some("a-1"), None, None, None, 50, "").unwrap();
    let (items, _) = b.review.flagged(&by_article, NOW).await.unwrap();
    let got: Vec<CommentId> = items.iter().map(|i| i.comment.id).collect();
    assert_eq!(got, [ids[1], ids[3]]);
    let by_reason = Query::parse(None, Some("BOT_TOO_FAST"), None, None, 50, "").unwrap();
    let (items, _) = b.review.flagged(&by_reason, NOW).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].comment.id, ids[0]);
    let both = Query::parse(Some("a-0"), Some("BOT_TOO_FAST"), None, None, 50, "").unwrap();
    assert_eq!(b.review.flagged(&both, NOW).await.unwrap().0.len(), 1);
    let young = Query::parse(None, None, None, Some(1), 50, "").unwrap();
    assert!(
        b.review.flagged(&young, NOW).await.unwrap().0.is_empty(),
        "all older than 1 s"
    );
}

on_every_backend!(claims_never_overlap_and_explicit_ones_are_all_or_none);
async fn claims_never_overlap_and_explicit_ones_are_all_or_none(b: Backend) {
    let ids = hold(&b, 4).await;
    let until = NOW + 600_000;
    let lan = b
        .review
        .claim(&moderator("lan"), 2, &[], until, NOW)
        .await
        .unwrap();
    let minh = b
        .review
        .claim(&moderator("minh"), 2, &[], until, NOW)
        .await
        .unwrap();
    let lan_ids: Vec<CommentId> = lan.iter().map(|i| i.comment.id).collect();
    let minh_ids: Vec<CommentId> = minh.iter().map(|i| i.comment.id).collect();
    assert_eq!(lan_ids, ids[..2]);
    assert_eq!(minh_ids, ids[2..]);
    assert_eq!(lan[0].claim.as_ref().unwrap().moderator, "lan");
    let refused = b
        .review
        .claim(&moderator("minh"), 2, &[ids[3], ids[0]], until, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ReviewError::ClaimedByOther { moderator, .. } if moderator == "lan"),
        "{refused:?}"
    );
    // Nothing was taken by the refused claim; a lapsed claim is free again.
    let later = until + 1;
    let again = b
        .review
        .claim(&moderator("minh"), 1, &[ids[0]], later + 600_000, later)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    let missing = b
        .review
        .claim(&moderator("lan"), 1, &[CommentId::new()], until, NOW)
        .await
        .unwrap_err();
    assert!(matches!(missing, ReviewError::NotFound(_)), "{missing:?}");
}

on_every_backend!(decisions_are_versioned_respect_claims_and_are_recorded);
async fn decisions_are_versioned_respect_claims_and_are_recorded(b: Backend) {
    let ids = hold(&b, 2).await;
    let (lan, minh) = (moderator("lan"), moderator("minh"));
    b.review
        .claim(&lan, 1, &[ids[0]], NOW + 600_000, NOW)
        .await
        .unwrap();
    let approve = Verdict::Approve;
    let stale = b
        .review
        .decide(ids[0], 7, &lan, approve, "", NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(
            stale,
            ReviewError::Stale {
                current: 1,
                given: 7,
                ..
            }
        ),
        "{stale:?}"
    );
    let held = b
        .review
        .decide(ids[0], 1, &minh, approve, "", NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(held, ReviewError::ClaimedByOther { .. }),
        "{held:?}"
    );
    let decided = b
        .review
        .decide(ids[0], 1, &lan, approve, "ổn", NOW)
        .await
        .unwrap();
    assert_eq!(decided, (Outcome::Accepted, 2));
    let twice = b
        .review
        .decide(ids[0], 2, &lan, approve, "", NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(twice, ReviewError::NotInReview { .. }),
        "{twice:?}"
    );
    let rejected = b
        .review
        .decide(ids[1], 1, &minh, Verdict::Reject(None), "quảng cáo", NOW)
        .await
        .unwrap();
    assert_eq!(rejected, (Outcome::Rejected, 2));
    let history = b.review.history(ids[0]).await.unwrap();
    let actions: Vec<&str> = history.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["submitted", "claimed", "approved"]);
    assert_eq!(history[2].note, "ổn");
    assert_eq!(history[2].actor, "lan");
    let (items, _) = b.review.flagged(&query(50), NOW).await.unwrap();
    assert!(items.is_empty(), "both left the queue");
    let stored = b.review.comment(ids[0]).await.unwrap().unwrap();
    assert_eq!(stored.state, Outcome::Accepted);
    let examples = b.review.feedback(0).await.unwrap();
    let labels: Vec<(Option<bool>, Option<bool>, &str)> = examples
        .iter()
        .map(|f| (f.record.spam, f.record.toxic, f.moderator.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            (Some(false), Some(false), "lan"),
            (Some(true), None, "minh")
        ]
    );
    assert_eq!(examples[0].record.lang.as_deref(), Some("vi"));
}

fn reader_report(id: CommentId, reporter: &str) -> Report {
    Report::parse(&id.to_string(), "Xúc phạm người khác", reporter).unwrap()
}

const LIMITS: ReportLimits = ReportLimits {
    kept: 2,
    per_reader: 10,
    window: Duration::from_secs(600),
};

on_every_backend!(reports_reopen_a_published_comment_once_per_reader);
async fn reports_reopen_a_published_comment_once_per_reader(b: Backend) {
    let ids = hold(&b, 2).await;
    let lan = moderator("lan");
    let not_yet = b
        .review
        .report(&reader_report(ids[0], "r1"), LIMITS, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(not_yet, ReviewError::NotPublished { .. }),
        "{not_yet:?}"
    );
    b.review
        .decide(ids[0], 1, &lan, Verdict::Approve, "", NOW)
        .await
        .unwrap();
    let v = b
        .review
        .report(&reader_report(ids[0], "r1"), LIMITS, NOW + 1)
        .await
        .unwrap();
    assert_eq!(v, 3);
    for (k, reader) in ["r2", "r3"].into_iter().enumerate() {
        let joined = b
            .review
            .report(&reader_report(ids[0], reader), LIMITS, NOW + 2 + k as i64)
            .await
            .unwrap();
        assert_eq!(joined, 3, "joins without a new version");
    }
    let again = b
        .review
        .report(&reader_report(ids[0], "r2"), LIMITS, NOW + 9)
        .await
        .unwrap_err();
    assert!(
        matches!(again, ReviewError::AlreadyReported(_)),
        "{again:?}"
    );
    let reported = Query::parse(None, Some("REPORTED"), None, None, 50, "").unwrap();
    let (items, _) = b.review.flagged(&reported, NOW + 10).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].comment.id, ids[0]);
    assert_eq!(items[0].report_count, 3);
    assert_eq!(items[0].reports.len(), 2, "only the latest kept");
    assert_eq!(items[0].comment.state, Outcome::PendingReview);
    let limited = ReportLimits {
        per_reader: 1,
        ..LIMITS
    };
    b.review
        .decide(ids[1], 1, &lan, Verdict::Approve, "", NOW)
        .await
        .unwrap();
    let other = Report::parse(&ids[1].to_string(), "spam", "r1").unwrap();
    let throttled = b
        .review
        .report(&other, limited, NOW + 11)
        .await
        .unwrap_err();
    assert!(
        matches!(throttled, ReviewError::TooManyReports(_)),
        "{throttled:?}"
    );
    // Rejecting the reported comment takes it down; its history says who reported.
    let decided = b
        .review
        .decide(ids[0], 3, &lan, Verdict::Reject(None), "", NOW + 20)
        .await
        .unwrap();
    assert_eq!(decided, (Outcome::Rejected, 4));
    let history = b.review.history(ids[0]).await.unwrap();
    assert!(history.iter().filter(|e| e.action == "reported").count() == 3);
    let examples = b.review.feedback(0).await.unwrap();
    let last = examples.last().unwrap();
    assert_eq!(
        (last.record.spam, last.record.toxic),
        (Some(false), Some(true))
    );
}

fn audit(version: u64, note: &str) -> Audit {
    Audit {
        version,
        by: "ops".into(),
        at_ms: NOW,
        note: note.into(),
        changes: vec![AuditChange {
            key: "decision.reject_at".into(),
            old: "0.79".into(),
            new: "0.85".into(),
        }],
    }
}

on_every_backend!(settings_update_at_their_version_audited_and_announced);
async fn settings_update_at_their_version_audited_and_announced(b: Backend) {
    use tokio_stream::StreamExt;
    let s = &b.settings;
    let mut announced = s.announcements().await.unwrap();
    let stored = s.load_settings().await.unwrap();
    assert_eq!(stored.version, 0);
    let mut next = stored.clone();
    next.version = 1;
    assert_eq!(
        s.update_settings(0, &next, &audit(1, "đợt spam"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.update_settings(0, &next, &audit(1, "late"))
            .await
            .unwrap(),
        Some(1),
        "stale"
    );
    let mut third = next.clone();
    third.version = 2;
    s.update_settings(1, &third, &audit(2, "second"))
        .await
        .unwrap();
    assert_eq!(s.load_settings().await.unwrap().version, 2);
    let records = s.settings_audit(10).await.unwrap();
    let notes: Vec<&str> = records.iter().map(|a| a.note.as_str()).collect();
    assert_eq!(notes, ["second", "đợt spam"]);
    assert_eq!(records[1].changes[0].new, "0.85");
    let first = tokio::time::timeout(Duration::from_secs(5), announced.next())
        .await
        .expect("announced");
    assert_eq!(first, Some(1));
}

on_every_backend!(statistics_count_outcomes_and_queues);
async fn statistics_count_outcomes_and_queues(b: Backend) {
    hold(&b, 2).await;
    let c = comment("stats-1", "Bài viết rất hay");
    let now = jiff::Timestamp::now().as_millisecond();
    save_at(&b, &c, &receipt(Outcome::Accepted), now)
        .await
        .unwrap();
    let stats = b.settings.stats(now, "portal").await.unwrap();
    assert_eq!(stats.last_hour.get("accepted"), Some(&1));
    assert_eq!(stats.last_hour.get("shadow_decision_rejected"), Some(&1));
    assert_eq!(stats.flagged, 2);
    let depths = b.settings.queue_depths("portal").await.unwrap();
    assert_eq!(depths.flagged, 2);
}

fn name(n: &str) -> Name {
    Name::parse("group", n).unwrap()
}

async fn accept(b: &Backend, k: usize) -> CommentId {
    let c = comment(&format!("feed-{k}"), &format!("Bình luận số {k}"));
    let r = receipt(Outcome::Accepted);
    save(b, &c, &r).await.unwrap();
    r.comment_id
}

on_every_backend!(the_feed_delivers_in_order_and_again_until_acknowledged);
async fn the_feed_delivers_in_order_and_again_until_acknowledged(b: Backend) {
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for k in 0..5 {
            ids.push(accept(&b, k).await.to_string());
        }
        ids
    };
    let (portal, web1, web2) = (name("portal"), name("web-1"), name("web-2"));
    let long = Duration::from_secs(60);
    let first = b.feed.read(&portal, &web1, 3, long).await.unwrap();
    let got: Vec<&str> = first.iter().map(|e| e.comment_id.as_str()).collect();
    assert_eq!(got, ids[..3]);
    assert!(first.iter().all(|e| e.kind == EventKind::Published));
    assert_eq!(first[0].body, "Bình luận số 0");
    assert_eq!(first[0].created_at_ms, 1_764_252_147_958);
    let rest = b.feed.read(&portal, &web2, 10, long).await.unwrap();
    let got: Vec<&str> = rest.iter().map(|e| e.comment_id.as_str()).collect();
    assert_eq!(
        got,
        ids[3..],
        "another consumer of the group gets what follows"
    );
    assert!(
        b.feed
            .read(&portal, &web2, 10, long)
            .await
            .unwrap()
            .is_empty()
    );
    // Acknowledge two of the first three; the third comes back once its visibility ends.
    let acked = b
        .feed
        .ack(&portal, &[first[0].cursor.clone(), first[1].cursor.clone()])
        .await
        .unwrap();
    assert_eq!(acked, 2);
    assert_eq!(
        b.feed
            .ack(&portal, &[first[0].cursor.clone()])
            .await
            .unwrap(),
        0
    );
    assert_eq!(b.feed.ack(&portal, &["nonsense".into()]).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let again = b
        .feed
        .read(&portal, &web2, 10, Duration::from_millis(50))
        .await
        .unwrap();
    let got: Vec<&str> = again.iter().map(|e| e.comment_id.as_str()).collect();
    assert_eq!(got, [ids[2].as_str(), ids[3].as_str(), ids[4].as_str()]);
    // Another group starts from the oldest event kept.
    let archive = b
        .feed
        .read(&name("archive"), &web1, 10, long)
        .await
        .unwrap();
    assert_eq!(archive.len(), 5);
}

on_every_backend!(a_comment_taken_down_after_a_report_is_a_removal_in_the_feed);
async fn a_comment_taken_down_after_a_report_is_a_removal_in_the_feed(b: Backend) {
    let ids = hold(&b, 1).await;
    let lan = moderator("lan");
    b.review
        .decide(ids[0], 1, &lan, Verdict::Approve, "", NOW)
        .await
        .unwrap();
    b.review
        .report(&reader_report(ids[0], "r1"), LIMITS, NOW + 1)
        .await
        .unwrap();
    b.review
        .decide(ids[0], 3, &lan, Verdict::Reject(None), "", NOW + 2)
        .await
        .unwrap();
    let events = b
        .feed
        .read(&name("portal"), &name("web-1"), 10, Duration::from_secs(60))
        .await
        .unwrap();
    let kinds: Vec<(EventKind, &str)> = events
        .iter()
        .map(|e| (e.kind, e.comment_id.as_str()))
        .collect();
    let id = ids[0].to_string();
    assert_eq!(
        kinds,
        [
            (EventKind::Published, id.as_str()),
            (EventKind::Removed, id.as_str())
        ]
    );
    assert_eq!(events[1].article_id, "a-0");
}

on_every_backend!(an_answer_refused_in_process_is_refused_after_the_retry_check_and_the_charge);
async fn an_answer_refused_in_process_is_refused_after_the_retry_check_and_the_charge(b: Backend) {
    let hour = Duration::from_secs(3600);
    let cells = [cell(Bucket::Ip, "203.0.113.9", hour, 2)];
    let refused = Claim::Refused(moderation::captcha::CaptchaError::Missing);
    let admission = Admission {
        cells: &cells,
        claim: Some(&refused),
        claim_shadow: false,
    };
    let (admitted, r) = submit(&b, "early-1", admission).await;
    assert!(
        matches!(
            admitted,
            Admitted::Refused {
                charged: Some(Charged::Admitted { .. }),
                claimed: Claimed::Refused
            }
        ),
        "{admitted:?}"
    );
    assert!(b.submissions.comment(r.comment_id).await.unwrap().is_none());
    // It was charged: one comment is left of the burst of two.
    let none = Admission {
        cells: &cells,
        ..Admission::default()
    };
    assert!(matches!(
        submit(&b, "early-2", none).await.0,
        Admitted::Stored { .. }
    ));
    assert!(matches!(
        submit(&b, "early-3", none).await.0,
        Admitted::Limited(_)
    ));
    // A retry of a stored submission is answered first, whatever its answer now.
    assert!(matches!(
        submit(&b, "early-2", admission).await.0,
        Admitted::Replayed(_)
    ));
}

on_every_backend!(with_no_wrong_answers_allowed_every_answer_is_throttled_without_a_wait);
async fn with_no_wrong_answers_allowed_every_answer_is_throttled_without_a_wait(b: Backend) {
    b.challenges
        .put_image("z1", "right", Duration::from_secs(300))
        .await
        .unwrap();
    let Claim::Image(mut none_allowed) = image("z1", "right") else {
        unreachable!()
    };
    none_allowed.wrong_limit = 0;
    assert_eq!(
        claim(&b, "z-1", &Claim::Image(none_allowed)).await,
        (Claimed::Throttled(Duration::ZERO), false)
    );
}

on_every_backend!(a_readers_comments_are_listed_newest_first_under_their_id);
async fn a_readers_comments_are_listed_newest_first_under_their_id(b: Backend) {
    let key = ReaderKey::new(&Secret::new("test"));
    let by = |k: usize, email: &str| {
        let mut c = comment(&format!("reader-{k}"), &format!("Ý kiến thứ {k} của tôi"));
        c.author_email = moderation::comment::Email::parse(email).unwrap();
        c
    };
    let mut lan = Vec::new();
    for k in 0..3 {
        let (c, r) = (by(k, "lan@example.vn"), receipt(Outcome::Accepted));
        save_at(&b, &c, &r, T0 + k as i64).await.unwrap();
        lan.push(r.comment_id);
    }
    let (c, r) = (by(9, "minh@example.vn"), receipt(Outcome::PendingReview));
    save_at(&b, &c, &r, T0 + 9).await.unwrap();
    let listed = b
        .readers
        .reader_comments(&key.id("lan@example.vn"), 10)
        .await
        .unwrap();
    let ids: Vec<CommentId> = listed.iter().map(|c| c.id).collect();
    assert_eq!(ids, [lan[2], lan[1], lan[0]], "newest first");
    assert!(
        listed
            .iter()
            .all(|c| c.reader == key.id("lan@example.vn").to_string())
    );
    let two = b
        .readers
        .reader_comments(&key.id("lan@example.vn"), 2)
        .await
        .unwrap();
    assert_eq!(two.len(), 2);
    let minh = b
        .readers
        .reader_comments(&key.id("minh@example.vn"), 10)
        .await
        .unwrap();
    assert_eq!((minh.len(), minh[0].state), (1, Outcome::PendingReview));
    let nobody = b
        .readers
        .reader_comments(&key.id("an@example.vn"), 10)
        .await
        .unwrap();
    assert!(nobody.is_empty());
}

on_every_backend!(the_readers_key_is_the_first_one_stored);
async fn the_readers_key_is_the_first_one_stored(b: Backend) {
    let first = b.readers.reader_key(&Secret::new("first")).await.unwrap();
    assert_eq!(first.expose(), "first");
    let again = b.readers.reader_key(&Secret::new("second")).await.unwrap();
    assert_eq!(
        again.expose(),
        "first",
        "every instance agrees on the first key"
    );
}
