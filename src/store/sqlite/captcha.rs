//! CAPTCHA challenges in SQLite ([`ChallengeStore`]): image challenges with their holder and
//! expiry, each network's wrong answers, claimed proofs of work; each claim is made in its
//! submission's transaction ([`claim`]), applying [`image_claim`] or [`pow_claim`].

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, exec, now_ms, row, unavailable};
use crate::captcha::CaptchaError;
use crate::captcha::store::{
    ChallengeStore, Claim, Claimed, Holder, ImageClaim, StoredImage, image_claim, pow_claim,
};
use crate::store::StoreError;

/// How a holder is written: empty, a submission's key, or `!wrong` (never an idempotency key).
fn holder_text(holder: &Holder) -> &str {
    match holder {
        Holder::Free => "",
        Holder::Submission(s) => s,
        Holder::Spent => "!wrong",
    }
}

fn holder(text: String) -> Holder {
    match text.as_str() {
        "" => Holder::Free,
        "!wrong" => Holder::Spent,
        _ => Holder::Submission(text),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

fn unavailable_captcha(e: StoreError) -> CaptchaError {
    CaptchaError::Unavailable(e.to_string())
}

/// Makes a submission's claim (`claimant`: its idempotency key) in its transaction.
pub(super) fn claim(
    tx: &rusqlite::Transaction<'_>,
    claim: &Claim,
    claimant: &str,
) -> Result<Claimed, StoreError> {
    match claim {
        Claim::Image(c) => claim_image(tx, c, claimant),
        Claim::ProofOfWork { challenge, ttl } => claim_pow(tx, challenge, claimant, *ttl),
        Claim::Refused(_) => Ok(Claimed::Refused),
    }
}

fn claim_image(
    tx: &rusqlite::Transaction<'_>,
    c: &ImageClaim,
    claimant: &str,
) -> Result<Claimed, StoreError> {
    let now = now_ms();
    let wrong: Option<(i64, i64)> = row(
        tx,
        "SELECT count, expires_ms FROM captcha_wrong WHERE network = ?1 AND expires_ms > ?2",
        params![c.ip_group, now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(unavailable)?;
    let stored: Option<StoredImage> = row(
        tx,
        "SELECT answer, holder FROM captcha_images WHERE nonce = ?1 AND expires_ms > ?2",
        params![c.nonce, now],
        |r| {
            Ok(StoredImage {
                answer_hash: r.get(0)?,
                holder: holder(r.get(1)?),
            })
        },
    )
    .optional()
    .map_err(unavailable)?;
    let so_far = wrong.map_or(0, |(n, _)| u32::try_from(n).unwrap_or(u32::MAX));
    let (found, next) = image_claim(stored.as_ref(), so_far, c, claimant);
    if let Some(next) = &next {
        exec(
            tx,
            "UPDATE captcha_images SET holder = ?2 WHERE nonce = ?1",
            params![c.nonce, holder_text(next)],
        )
        .map_err(unavailable)?;
    }
    match found {
        Claimed::Throttled(_) => {
            let left = wrong.map_or(0, |(_, expires)| (expires - now).max(0));
            Ok(Claimed::Throttled(Duration::from_millis(
                u64::try_from(left).unwrap_or(0),
            )))
        }
        Claimed::Wrong => {
            exec(
                tx,
                "INSERT INTO captcha_wrong (network, count, expires_ms) VALUES (?1, 1, ?2)
                 ON CONFLICT (network) DO UPDATE SET
                   count = CASE WHEN expires_ms > ?3 THEN count + 1 ELSE 1 END,
                   expires_ms = excluded.expires_ms",
                params![c.ip_group, now + millis(c.wrong_window), now],
            )
            .map_err(unavailable)?;
            Ok(found)
        }
        other => Ok(other),
    }
}

fn claim_pow(
    tx: &rusqlite::Transaction<'_>,
    challenge: &str,
    claimant: &str,
    ttl: Duration,
) -> Result<Claimed, StoreError> {
    let now = now_ms();
    let owner: Option<String> = row(
        tx,
        "SELECT claimant FROM pow_claims WHERE challenge = ?1 AND expires_ms > ?2",
        params![challenge, now],
        |r| r.get(0),
    )
    .optional()
    .map_err(unavailable)?;
    if owner.is_none() {
        exec(
            tx,
            "INSERT OR REPLACE INTO pow_claims (challenge, claimant, expires_ms)
             VALUES (?1, ?2, ?3)",
            params![challenge, claimant, now + millis(ttl)],
        )
        .map_err(unavailable)?;
    }
    Ok(pow_claim(owner.as_deref(), claimant))
}

#[async_trait]
impl ChallengeStore for SqliteStore {
    async fn put_image(
        &self,
        nonce: &str,
        answer_hash: &str,
        ttl: Duration,
    ) -> Result<(), CaptchaError> {
        let (nonce, answer) = (nonce.to_owned(), answer_hash.to_owned());
        let expires = now_ms() + millis(ttl);
        self.transaction(move |tx| {
            exec(
                tx,
                "INSERT OR REPLACE INTO captcha_images (nonce, answer, holder, expires_ms)
                 VALUES (?1, ?2, '', ?3)",
                params![nonce, answer, expires],
            )
            .map_err(unavailable)
        })
        .await
        .map(|_| ())
        .map_err(unavailable_captcha)
    }
}
