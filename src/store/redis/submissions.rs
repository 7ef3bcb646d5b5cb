//! Submissions in Redis ([`Store`]): a submission is stored by one Lua script that checks the
//! idempotency key, queues the comment by its outcome, writes the comment hash and records the
//! answer, atomically and in one round trip.

use std::collections::HashMap;

use async_trait::async_trait;

use super::{RedisStore, Tally, classify, millis};
use crate::comment::{CommentId, IdempotencyKey};
use crate::decide::{Outcome, Reason};
use crate::review::HistoryEvent;
use crate::store::{Receipt, Saved, Store, StoreError, StoredComment, Submission};

/// The submission script. KEYS: idempotency hash, comment hash, accepted stream, flagged set,
/// rejected stream, history list, author's and address's counts, this minute's and this hour's
/// tallies, then the flagged indexes (by article, by reason) a held comment joins. ARGV:
/// fingerprint, answer (JSON), idempotency TTL (ms), outcome, comment id, created (ms),
/// accepted retention (ms), rejected retention (ms), record TTL (ms), history event (JSON), the
/// portal's consumer group, then the number of comment fields and the fields, then the number
/// of stream fields and the fields, then the number of tallies to count and their names.
///
/// The queue write comes first: Redis never stops a script halfway once it has written (an
/// out-of-memory refusal comes before the first write), and if anything did fail after it, the
/// comment would be queued without an answer recorded, never an answer without a queued comment.
pub(super) const SUBMIT: &str = r#"
local previous = redis.call('HMGET', KEYS[1], 'fingerprint', 'receipt')
if previous[1] then
  if previous[1] == ARGV[1] then
    return {'replay', previous[2]}
  end
  return {'conflict'}
end
local i = 12
local comment = {}
for k = 1, tonumber(ARGV[i]) * 2 do comment[k] = ARGV[i + k] end
i = i + tonumber(ARGV[i]) * 2 + 1
local entry = {}
for k = 1, tonumber(ARGV[i]) * 2 do entry[k] = ARGV[i + k] end
i = i + tonumber(ARGV[i]) * 2 + 1
local tallies = {}
for k = 1, tonumber(ARGV[i]) do tallies[k] = ARGV[i + k] end
local outcome = ARGV[4]
if outcome == 'accepted' then
  ensure_group(KEYS[3], ARGV[11])
  redis.call('XADD', KEYS[3], 'MINID', '~', minid(ARGV[7]), '*', unpack(entry))
elseif outcome == 'pending_review' then
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[5])
  for k = 11, #KEYS do redis.call('ZADD', KEYS[k], ARGV[6], ARGV[5]) end
else
  redis.call('XADD', KEYS[5], 'MINID', '~', minid(ARGV[8]), '*', unpack(entry))
end
redis.call('HSET', KEYS[2], unpack(comment))
redis.call('RPUSH', KEYS[6], ARGV[10])
for k = 9, 10 do
  for _, name in ipairs(tallies) do redis.call('HINCRBY', KEYS[k], name, 1) end
  redis.call('PEXPIRE', KEYS[k], 93600000)
end
if outcome ~= 'pending_review' then
  redis.call('PEXPIRE', KEYS[2], ARGV[9])
  redis.call('PEXPIRE', KEYS[6], ARGV[9])
  for k = 7, 8 do
    redis.call('HINCRBY', KEYS[k], outcome, 1)
    redis.call('PEXPIRE', KEYS[k], ARGV[9])
  end
end
redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'receipt', ARGV[2], 'comment', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'stored'}
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
                self.confirm_durable().await?;
                parse_receipt(&r).map(Some)
            }
            (Some(_), _) => Err(StoreError::KeyReused),
            _ => Ok(None),
        }
    }

    async fn save(&self, s: Submission<'_>) -> Result<Saved, StoreError> {
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
        let comment: [(&str, &str); 25] = [
            ("id", &id),
            ("article_id", c.article_id.as_str()),
            ("article_title", title),
            ("parent_id", &parent),
            ("author_name", c.author_name.as_str()),
            ("author_email", c.author_email.as_str()),
            ("body", c.body.as_str()),
            ("client_ip", &ip),
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
            .key(self.author_stats_key(c.author_email.as_str()))
            .key(self.ip_stats_key(&ip))
            .key(self.tally_key(Tally::Minute, s.created_at_ms))
            .key(self.tally_key(Tally::Hour, s.created_at_ms))
            .key(self.article_index_key(c.article_id.as_str()));
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
        let answer: Vec<String> = invocation
            .invoke_async(&mut self.connection())
            .await
            .map_err(classify)?;
        match answer.first().map(String::as_str) {
            Some("stored") => {
                self.confirm_durable().await?;
                Ok(Saved::Stored)
            }
            Some("replay") => {
                let json = answer
                    .get(1)
                    .ok_or_else(|| StoreError::Corrupt("replayed answer missing".to_owned()))?;
                parse_receipt(json).map(Saved::Replayed)
            }
            Some("conflict") => Err(StoreError::KeyReused),
            other => Err(StoreError::Corrupt(format!(
                "unexpected answer from the submit script: {other:?}"
            ))),
        }
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
        self.connection.health().probed(written.is_ok());
        written.map_err(classify)
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
        body: text("body")?,
        state,
        spam: number("spam")? as f32,
        toxic: number("toxic")? as f32,
        reasons,
        model_version: text("model_version")?,
        created_at_ms: number("created_at")? as i64,
        updated_at_ms: number("updated_at")? as i64,
    })
}
