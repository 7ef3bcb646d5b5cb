//! Submissions in Redis ([`Store`]): a submission is admitted and stored by one Lua script that
//! checks the idempotency key, tests and charges the rate-limit cells, claims the CAPTCHA
//! answer, queues the comment by its outcome, writes the comment hash and records the answer,
//! atomically and in one round trip.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{RedisStore, Tally, classify, millis};
use crate::captcha::store::{Claim, Claimed};
use crate::comment::{CommentId, IdempotencyKey};
use crate::decide::{Outcome, Reason};
use crate::rate_limit::cluster::Charged;
use crate::review::HistoryEvent;
use crate::store::{Admission, Admitted, Receipt, Store, StoreError, StoredComment, Submission};

/// The submission script: the retry check, the rate-limit cells, the CAPTCHA claim and the
/// store, in one round trip.
///
/// KEYS: idempotency hash, comment hash, accepted stream, flagged set, rejected stream, history
/// list, author's and address's counts, this minute's and this hour's tallies, the reader's
/// index of comments; then one counter per rate-limit cell; then the claim's keys (an image: the challenge and its
/// network's wrong answers; a proof of work: its claim); then the flagged indexes (by article,
/// by reason) a held comment joins.
///
/// ARGV: the number of cells, the claim's kind (`image`, `pow`, `refused` for an answer refused
/// in process, or empty), `1` when a refused
/// claim lets the comment through (shadow), the claimant (the idempotency key); per cell its
/// interval (µs), burst and `1` for a shadow cell; the claim's arguments (an image: wrong
/// answers allowed, the answer's hash, the wrong-answer window in ms; a proof of work: its TTL
/// in ms); then the submission's: fingerprint, answer (JSON), idempotency TTL (ms), outcome,
/// comment id, created (ms), accepted retention (ms), rejected retention (ms), record TTL
/// (ms), history event (JSON), the portal's consumer group, then the number of comment fields
/// and the fields, then the number of stream fields and the fields, then the number of tallies
/// to count and their names; last, the note for other instances' campaign windows (empty for
/// none) and the channel it is published on.
///
/// Refusals return before the first write of the comment; the rate-limit step is the GCRA rule
/// of [`crate::rate_limit::cluster::gcra`] and the claims those of
/// [`crate::captcha::store::image_claim`] and [`crate::captcha::store::pow_claim`]. The queue
/// write comes first: Redis never stops a script halfway once it has written (an out-of-memory
/// refusal comes before the first write), and if anything did fail after it, the comment would
/// be queued without an answer recorded, never an answer without a queued comment.
///
/// The answer: `replay` and the first answer, `conflict`, or the status (`limited`, `refused`,
/// `stored`), the claim's finding (empty without a claim), the throttle's wait (ms), the
/// refusing cell (1-based, 0 for none) and its wait (µs), then the shadow cells that would
/// have refused.
pub(super) const SUBMIT: &str = r#"
local ncells = tonumber(ARGV[1])
local kind = ARGV[2]
local claimant = ARGV[4]
local ca = 5 + ncells * 3
local claim_keys = ({image = 2, pow = 1})[kind] or 0
local claim_args = ({image = 3, pow = 1})[kind] or 0
local b = ca + claim_args - 1
local ck = 12 + ncells
local previous = redis.call('HMGET', KEYS[1], 'fingerprint', 'receipt')
if previous[1] then
  if previous[1] == ARGV[b + 1] then
    return {'replay', previous[2]}
  end
  return {'conflict'}
end
-- Redis' clock, read once by the stream helpers, in microseconds.
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local refused, worst, shadow, next_tat = gcra_test(ncells, 11, 4, now)
local function answer(status, claimed, claim_ms)
  local reply = {status, claimed, tostring(claim_ms), tostring(refused), tostring(worst)}
  for _, i in ipairs(shadow) do reply[#reply + 1] = tostring(i) end
  return reply
end
if refused > 0 then
  return answer('limited', '', 0)
end
gcra_charge(ncells, 11, next_tat, now)
local claimed, claim_ms = '', 0
if kind == 'image' then
  local wrong = tonumber(redis.call('GET', KEYS[ck + 1]) or '0')
  local fields = redis.call('HMGET', KEYS[ck], 'answer', 'used_by')
  local used_by = fields[2] or ''
  if wrong >= tonumber(ARGV[ca]) then
    -- No counter (a limit of 0) waits for nothing, as on the embedded store.
    claimed, claim_ms = 'throttled', math.max(0, redis.call('PTTL', KEYS[ck + 1]))
  elseif not fields[1] then
    claimed = 'missing'
  elseif used_by == '!wrong' or (used_by ~= '' and used_by ~= claimant) then
    claimed = 'used'
  elseif fields[1] ~= ARGV[ca + 1] then
    redis.call('HSET', KEYS[ck], 'used_by', '!wrong')
    redis.call('INCR', KEYS[ck + 1])
    redis.call('PEXPIRE', KEYS[ck + 1], ARGV[ca + 2])
    claimed = 'wrong'
  else
    redis.call('HSET', KEYS[ck], 'used_by', claimant)
    claimed = 'claimed'
  end
elseif kind == 'pow' then
  local owner = redis.call('SET', KEYS[ck], claimant, 'NX', 'GET', 'PX', ARGV[ca])
  claimed = (owner and owner ~= claimant) and 'used' or 'claimed'
elseif kind == 'refused' then
  claimed = 'refused'
end
local shadow_tally = false
if claimed ~= '' and claimed ~= 'claimed' then
  if ARGV[3] ~= '1' then
    return answer('refused', claimed, claim_ms)
  end
  shadow_tally = true
end
local function A(k) return ARGV[b + k] end
-- The comment's fields, the stream entry's fields and the tallies are ranges of ARGV, handed
-- to the commands as they are (no copy into tables).
local c = b + 12
local c_last = c + tonumber(ARGV[c]) * 2
local e = c_last + 1
local e_last = e + tonumber(ARGV[e]) * 2
local t = e_last + 1
local t_last = t + tonumber(ARGV[t])
local outcome = A(4)
if outcome == 'accepted' then
  ensure_group(KEYS[3], A(11))
  redis.call('XADD', KEYS[3], 'MINID', '~', minid(A(7)), '*', unpack(ARGV, e + 1, e_last))
elseif outcome == 'pending_review' then
  redis.call('ZADD', KEYS[4], A(6), A(5))
  for k = ck + claim_keys, #KEYS do redis.call('ZADD', KEYS[k], A(6), A(5)) end
else
  redis.call('XADD', KEYS[5], 'MINID', '~', minid(A(8)), '*', unpack(ARGV, e + 1, e_last))
end
redis.call('HSET', KEYS[2], unpack(ARGV, c + 1, c_last))
redis.call('RPUSH', KEYS[6], A(10))
-- The reader's latest comments (the newest 200), kept as long as a decided comment is.
redis.call('ZADD', KEYS[11], A(6), A(5))
redis.call('ZREMRANGEBYRANK', KEYS[11], 0, -201)
redis.call('PEXPIRE', KEYS[11], A(9))
for k = 9, 10 do
  for n = t + 1, t_last do redis.call('HINCRBY', KEYS[k], ARGV[n], 1) end
  if shadow_tally then redis.call('HINCRBY', KEYS[k], 'shadow_captcha_refused', 1) end
  redis.call('PEXPIRE', KEYS[k], 93600000)
end
if outcome ~= 'pending_review' then
  redis.call('PEXPIRE', KEYS[2], A(9))
  redis.call('PEXPIRE', KEYS[6], A(9))
  for k = 7, 8 do
    redis.call('HINCRBY', KEYS[k], outcome, 1)
    redis.call('PEXPIRE', KEYS[k], A(9))
  end
end
-- The text's fingerprint, for the other instances' campaign windows.
if ARGV[t_last + 1] and ARGV[t_last + 1] ~= '' then
  redis.call('PUBLISH', ARGV[t_last + 2], ARGV[t_last + 1])
end
redis.call('HSET', KEYS[1], 'fingerprint', A(1), 'receipt', A(2), 'comment', A(5))
redis.call('PEXPIRE', KEYS[1], A(3))
return answer('stored', claimed, claim_ms)
"#;

fn parse_receipt(json: &str) -> Result<Receipt, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("stored answer: {e}")))
}

#[async_trait]
#[async_trait]
impl Store for RedisStore {
    async fn receipt(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Option<Receipt>, StoreError> {
        let (stored_fingerprint, receipt): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.idempotency_key(key))
            .arg("fingerprint")
            .arg("receipt")
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        match (stored_fingerprint, receipt) {
            (Some(f), Some(r)) if f == fingerprint => {
                // A retry after an unconfirmed fsync is answered only once it is confirmed.
                let mut connection = self.connection().pinned().await.map_err(classify)?;
                self.confirm_durable(&mut connection).await?;
                parse_receipt(&r).map(Some)
            }
            (Some(_), _) => Err(StoreError::KeyReused),
            _ => Ok(None),
        }
    }

    async fn submit(
        &self,
        admission: Admission<'_>,
        s: Submission<'_>,
    ) -> Result<Admitted, StoreError> {
        let c = s.comment;
        let r = s.receipt;
        let id = r.comment_id.to_string();
        let receipt_json =
            serde_json::to_string(r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let reasons_json =
            serde_json::to_string(&r.reasons).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let created = s.created_at_ms.to_string();
        let parent = c.parent_id.map(|p| p.to_string()).unwrap_or_default();
        let title = c.article_title.as_ref().map_or("", |t| t.as_str());
        let ip = c.client_ip.to_string();
        let spam = r.spam.to_string();
        let toxic = r.toxic.to_string();
        let explanation =
            serde_json::to_string(s.explanation).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let reader = s.reader.to_string();
        let comment: [(&str, &str); 26] = [
            ("id", &id),
            ("article_id", c.article_id.as_str()),
            ("article_title", title),
            ("parent_id", &parent),
            ("author_name", c.author_name.as_str()),
            ("author_email", c.author_email.as_str()),
            ("body", c.body.as_str()),
            ("client_ip", &ip),
            ("reader", &reader),
            ("user_agent", c.user_agent.as_str()),
            ("idempotency_key", c.idempotency_key.as_str()),
            ("state", r.outcome.as_str()),
            ("spam", &spam),
            ("toxic", &toxic),
            ("reasons", &reasons_json),
            ("model_version", &r.model_version),
            ("created_at", &created),
            ("updated_at", &created),
            ("version", "1"),
            ("honeypot_filled", if c.honeypot_filled { "1" } else { "0" }),
            ("explanation", &explanation),
            ("claimed_by", ""),
            ("claim_until", "0"),
            ("reports", "[]"),
            ("report_count", "0"),
            ("decided_by", ""),
        ];
        // What a stream consumer needs to publish (accepted) or audit (rejected) the comment
        // without reading the hash.
        let mut entry: Vec<(&str, &str)> = vec![
            ("id", &id),
            ("article_id", c.article_id.as_str()),
            ("parent_id", &parent),
            ("author_name", c.author_name.as_str()),
            ("body", c.body.as_str()),
            ("created_at", &created),
        ];
        if r.outcome == Outcome::Rejected {
            entry.extend([
                ("spam", spam.as_str()),
                ("toxic", toxic.as_str()),
                ("reasons", reasons_json.as_str()),
                ("model_version", r.model_version.as_str()),
            ]);
        }
        let event = serde_json::to_string(&HistoryEvent {
            at_ms: s.created_at_ms,
            actor: "service".into(),
            action: "submitted".into(),
            state: r.outcome,
            note: String::new(),
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut invocation = self.scripts.submit.prepare_invoke();
        invocation
            .key(self.idempotency_key(&c.idempotency_key))
            .key(self.comment_key(r.comment_id))
            .key(self.key("accepted"))
            .key(self.key("flagged"))
            .key(self.key("rejected"))
            .key(self.history_key(r.comment_id))
            .key(self.author_stats_key(&reader))
            .key(self.ip_stats_key(&ip))
            .key(self.tally_key(Tally::Minute, s.created_at_ms))
            .key(self.tally_key(Tally::Hour, s.created_at_ms))
            .key(self.reader_index_key(&reader));
        self.admit(&mut invocation, admission, c.idempotency_key.as_str());
        invocation.key(self.article_index_key(c.article_id.as_str()));
        for reason in &r.reasons {
            invocation.key(self.reason_index_key(&reason.code));
        }
        invocation
            .arg(s.fingerprint)
            .arg(&receipt_json)
            .arg(millis(self.settings.idempotency_ttl))
            .arg(r.outcome.as_str())
            .arg(&id)
            .arg(s.created_at_ms)
            .arg(millis(self.settings.accepted_retention))
            .arg(millis(self.settings.rejected_retention))
            .arg(millis(self.settings.comment_retention))
            .arg(&event)
            .arg(&self.settings.consumer_group)
            .arg(comment.len());
        for (field, value) in comment {
            invocation.arg(field).arg(value);
        }
        invocation.arg(entry.len());
        for (field, value) in entry {
            invocation.arg(field).arg(value);
        }
        invocation.arg(s.tallies.len() + 1).arg(r.outcome.as_str());
        for tally in s.tallies {
            invocation.arg(tally);
        }
        invocation
            .arg(s.shared.unwrap_or(""))
            .arg(self.campaigns_channel());
        // The script and its confirmation go to the same node, even if a failover is followed
        // in between (a confirmation by the new primary would say nothing of this write).
        let mut connection = self.connection().pinned().await.map_err(classify)?;
        let answer: Vec<String> = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(classify)?;
        let admitted = read_answer(&answer, &admission)?;
        // An answer that a comment is stored is given only once it is durable: a retry's too
        // (the first attempt may have been stored and not confirmed).
        if matches!(admitted, Admitted::Stored { .. } | Admitted::Replayed(_)) {
            self.confirm_durable(&mut connection).await?;
        }
        Ok(admitted)
    }

    async fn comment(&self, id: CommentId) -> Result<Option<StoredComment>, StoreError> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.comment_key(id))
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        if fields.is_empty() {
            return Ok(None);
        }
        read_comment(id, &fields).map(Some)
    }

    async fn check(&self) -> Result<(), StoreError> {
        // A write, not a PING: a Redis that answers but refuses writes (out of memory, a
        // read-only replica) cannot store comments.
        let written: redis::RedisResult<()> = redis::cmd("SET")
            .arg(self.key("health"))
            .arg(jiff::Timestamp::now().as_millisecond())
            .arg("PX")
            .arg(60_000)
            .query_async(&mut self.connection())
            .await;
        self.connection.health().probed(written.as_ref().copied());
        written.map_err(classify)
    }
}

impl RedisStore {
    /// Adds an admission's keys and its leading arguments to the submission script's
    /// invocation (see [`SUBMIT`]).
    fn admit(
        &self,
        invocation: &mut redis::ScriptInvocation<'_>,
        a: Admission<'_>,
        claimant: &str,
    ) {
        for cell in a.cells {
            invocation.key(self.counter_key(cell));
        }
        let kind = match a.claim {
            Some(Claim::Image(image)) => {
                invocation
                    .key(self.key(&format!("captcha:{}", image.nonce)))
                    .key(self.key(&format!("captcha:wrong:{}", image.ip_group)));
                "image"
            }
            Some(Claim::ProofOfWork { challenge, .. }) => {
                invocation.key(self.key(&format!("pow:{challenge}")));
                "pow"
            }
            Some(Claim::Refused(_)) => "refused",
            None => "",
        };
        invocation
            .arg(a.cells.len())
            .arg(kind)
            .arg(if a.claim_shadow { "1" } else { "0" })
            .arg(claimant);
        for cell in a.cells {
            invocation
                .arg(u64::try_from(cell.interval.as_micros()).unwrap_or(u64::MAX))
                .arg(cell.burst.max(1))
                .arg(if cell.shadow { "1" } else { "0" });
        }
        match a.claim {
            Some(Claim::Image(image)) => {
                invocation
                    .arg(image.wrong_limit)
                    .arg(&image.answer_hash)
                    .arg(millis(image.wrong_window).max(1));
            }
            Some(Claim::ProofOfWork { ttl, .. }) => {
                invocation.arg(millis(*ttl).max(1));
            }
            Some(Claim::Refused(_)) | None => {}
        }
    }
}

/// Reads the submission script's answer (see [`SUBMIT`]).
fn read_answer(answer: &[String], admission: &Admission<'_>) -> Result<Admitted, StoreError> {
    let corrupt = || {
        StoreError::Corrupt(format!(
            "unexpected answer from the submit script: {answer:?}"
        ))
    };
    let number = |k: usize| -> Result<u64, StoreError> {
        answer
            .get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(corrupt)
    };
    match answer.first().map(String::as_str) {
        Some("replay") => parse_receipt(answer.get(1).ok_or_else(corrupt)?).map(Admitted::Replayed),
        Some("conflict") => Err(StoreError::KeyReused),
        Some(status @ ("limited" | "refused" | "stored")) => {
            // Cells come back 1-based.
            let shadow_refusals = answer
                .get(5..)
                .unwrap_or_default()
                .iter()
                .filter_map(|p| p.parse::<usize>().ok()?.checked_sub(1))
                .collect();
            let refusing = number(3)?;
            let charged = if refusing > 0 {
                Charged::Refused {
                    position: usize::try_from(refusing - 1).map_err(|_| corrupt())?,
                    wait: Duration::from_micros(number(4)?),
                    shadow_refusals,
                }
            } else {
                Charged::Admitted { shadow_refusals }
            };
            let claimed = match answer.get(1).map(String::as_str) {
                Some("") | None => None,
                Some("claimed") => Some(Claimed::Claimed),
                Some("wrong") => Some(Claimed::Wrong),
                Some("used") => Some(Claimed::Used),
                Some("missing") => Some(Claimed::Missing),
                Some("throttled") => Some(Claimed::Throttled(Duration::from_millis(number(2)?))),
                Some("refused") => Some(Claimed::Refused),
                Some(_) => return Err(corrupt()),
            };
            let charged = (!admission.cells.is_empty()).then_some(charged);
            match (status, charged, claimed) {
                ("limited", Some(c), _) => Ok(Admitted::Limited(c)),
                ("refused", charged, Some(claimed)) => Ok(Admitted::Refused { charged, claimed }),
                ("stored", charged, claimed) => Ok(Admitted::Stored { charged, claimed }),
                _ => Err(corrupt()),
            }
        }
        _ => Err(corrupt()),
    }
}

/// Reads a comment hash back.
pub(crate) fn read_comment(
    id: CommentId,
    f: &HashMap<String, String>,
) -> Result<StoredComment, StoreError> {
    let text = |name: &str| -> Result<String, StoreError> {
        f.get(name)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("comment {id} lacks field {name}")))
    };
    let optional = |name: &str| f.get(name).filter(|v| !v.is_empty()).cloned();
    let number = |name: &str| -> Result<f64, StoreError> {
        text(name)?
            .parse::<f64>()
            .map_err(|e| StoreError::Corrupt(format!("comment {id} field {name}: {e}")))
    };
    let state = match text("state")?.as_str() {
        "accepted" => Outcome::Accepted,
        "pending_review" => Outcome::PendingReview,
        "rejected" => Outcome::Rejected,
        other => {
            return Err(StoreError::Corrupt(format!(
                "comment {id} has unknown state {other:?}"
            )));
        }
    };
    let reasons: Vec<Reason> = serde_json::from_str(&text("reasons")?)
        .map_err(|e| StoreError::Corrupt(format!("comment {id} reasons: {e}")))?;
    Ok(StoredComment {
        id,
        article_id: text("article_id")?,
        article_title: optional("article_title"),
        parent_id: optional("parent_id"),
        author_name: text("author_name")?,
        author_email: text("author_email")?,
        client_ip: text("client_ip")?,
        reader: f.get("reader").cloned().unwrap_or_default(),
        body: text("body")?,
        state,
        spam: number("spam")? as f32,
        toxic: number("toxic")? as f32,
        reasons,
        model_version: text("model_version")?,
        created_at_ms: number("created_at")? as i64,
        updated_at_ms: number("updated_at")? as i64,
        published: state == Outcome::Accepted || f.get("reported").is_some_and(|r| r == "1"),
    })
}
