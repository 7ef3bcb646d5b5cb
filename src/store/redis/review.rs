//! The review queue in Redis: listing by arrival (through per-article and per-reason indexes,
//! never scanning the queue), claims as leases in the comment's hash, decisions and reports as
//! one script each, history lists and the feedback stream.

use std::collections::HashMap;

use async_trait::async_trait;

use super::{RedisStore, classify, entry_text, millis, read_comment};
use crate::comment::CommentId;
use crate::decide::{Outcome, Reason};
use crate::review::{
    Claim, Cursor, Explained, Feedback, FlaggedItem, HistoryEvent, Moderator, Query, Record,
    Report, ReportLimits, ReviewError, ReviewStore, Verdict,
};
use crate::store::{Store, StoreError, StoredComment};

/// Claims comments for a moderator. KEYS: per candidate, its hash and its history list.
/// ARGV: moderator, claim end (ms), now (ms), how many to claim, all-or-none ('1' for explicit
/// ids), history event (JSON, without the comment). Returns the positions (1-based) claimed, or
/// {'refused', position, why, detail} when all-or-none fails.
pub(super) const CLAIM: &str = r#"
local moderator, lease_end, now, want = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local all = ARGV[5] == '1'
local claimed = {}
local n = #KEYS / 2
for i = 1, n do
  if #claimed >= want then break end
  local f = redis.call('HMGET', KEYS[i * 2 - 1], 'state', 'claimed_by', 'claim_until')
  local why, detail = nil, ''
  if not f[1] then
    why = 'missing'
  elseif f[1] ~= 'pending_review' then
    why, detail = 'not_in_review', f[1]
  elseif f[2] and f[2] ~= '' and tonumber(f[3] or '0') > now and (f[2] ~= moderator or not all) then
    -- Explicit ids renew one's own lease; claiming by count takes only unclaimed ones.
    why, detail = 'claimed', f[2]
  end
  if why then
    if all then return {'refused', tostring(i), why, detail} end
  else
    claimed[#claimed + 1] = i
  end
end
for _, i in ipairs(claimed) do
  redis.call('HSET', KEYS[i * 2 - 1], 'claimed_by', moderator, 'claim_until', lease_end)
  redis.call('RPUSH', KEYS[i * 2], ARGV[6])
end
local answer = {'claimed'}
for _, i in ipairs(claimed) do answer[#answer + 1] = tostring(i) end
return answer
"#;

/// Decides a waiting comment. KEYS: comment hash, flagged set, accepted stream, rejected
/// stream, history, feedback stream, removed stream, author counts, address counts, this
/// minute's and this hour's tallies, then the flagged indexes it is in. ARGV: version expected, moderator, 'approve' | 'reject', now (ms),
/// record TTL (ms), accepted retention (ms), rejected retention (ms), feedback retention (ms),
/// history event (JSON), feedback spam label ('true' | 'false' | ''), feedback toxic label,
/// language guess, the portal's consumer group. Runs after [`super::STREAM_HELPERS`].
pub(super) const DECIDE: &str = r#"
local f = redis.call('HMGET', KEYS[1], 'state', 'version', 'claimed_by', 'claim_until', 'id',
  'article_id', 'parent_id', 'author_name', 'body', 'created_at', 'spam', 'toxic', 'reasons',
  'model_version', 'article_title', 'reported')
if not f[1] then return {'missing'} end
if f[1] ~= 'pending_review' then return {'not_in_review', f[1]} end
if f[2] ~= ARGV[1] then return {'stale', f[2]} end
local now = tonumber(ARGV[4])
if f[3] and f[3] ~= '' and f[3] ~= ARGV[2] and tonumber(f[4] or '0') > now then
  return {'claimed', f[3]}
end
local id = f[5]
local state
local reported = f[16] == '1'
if ARGV[3] == 'approve' then
  state = 'accepted'
  -- A reported comment stayed published while under review: approving it keeps it there.
  if not reported then
    ensure_group(KEYS[3], ARGV[13])
    redis.call('XADD', KEYS[3], 'MINID', '~', minid(ARGV[6]), '*', 'id', id, 'article_id', f[6],
      'parent_id', f[7], 'author_name', f[8], 'body', f[9], 'created_at', f[10])
  end
else
  state = 'rejected'
  redis.call('XADD', KEYS[4], 'MINID', '~', minid(ARGV[7]), '*', 'id', id, 'article_id', f[6],
    'parent_id', f[7], 'author_name', f[8], 'body', f[9], 'created_at', f[10], 'spam', f[11],
    'toxic', f[12], 'reasons', f[13], 'model_version', f[14], 'decided_by', ARGV[2])
  -- Rejecting a reported comment takes it down: the portal reads `removed`.
  if reported then
    redis.call('XADD', KEYS[7], 'MINID', '~', minid(ARGV[6]), '*', 'id', id, 'article_id', f[6])
  end
end
redis.call('ZREM', KEYS[2], id)
for k = 12, #KEYS do redis.call('ZREM', KEYS[k], id) end
local verdict = ARGV[3] == 'approve' and 'approved' or 'rejected'
for k = 10, 11 do
  redis.call('HINCRBY', KEYS[k], 'moderator_' .. verdict, 1)
  redis.call('HINCRBY', KEYS[k], 'moderator:' .. ARGV[2] .. ':' .. verdict, 1)
  redis.call('PEXPIRE', KEYS[k], 93600000)
end
local version = tonumber(f[2]) + 1
redis.call('HSET', KEYS[1], 'state', state, 'version', version, 'updated_at', ARGV[4],
  'decided_by', ARGV[2], 'claimed_by', '', 'claim_until', '0', 'reported', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('RPUSH', KEYS[5], ARGV[9])
redis.call('PEXPIRE', KEYS[5], ARGV[5])
for k = 8, 9 do
  -- A reported comment was counted as accepted when it was published.
  if not reported then
    redis.call('HINCRBY', KEYS[k], state, 1)
  elseif state == 'rejected' then
    redis.call('HINCRBY', KEYS[k], 'accepted', -1)
    redis.call('HINCRBY', KEYS[k], 'rejected', 1)
  end
  redis.call('PEXPIRE', KEYS[k], ARGV[5])
end
redis.call('XADD', KEYS[6], 'MINID', '~', minid(ARGV[8]), '*', 'comment_id', id, 'text', f[9],
  'spam', ARGV[10], 'toxic', ARGV[11], 'lang', ARGV[12], 'author', f[8], 'context', f[15] or '',
  'decided_at', ARGV[4], 'moderator', ARGV[2])
return {'decided', state, tostring(version)}
"#;

/// Brings a published comment back to the queue with a reader's report. KEYS: comment hash,
/// flagged set, history, the comment's reporters (a set of hashes), the reader's report counter,
/// then the flagged indexes it joins (its article, each reason it was held for, REPORTED).
/// ARGV: report reason (JSON string of a Reason), now (ms), history event (JSON), reporter hash,
/// reports kept, reports per reader per window, window (ms), record TTL (ms).
///
/// Each reader counts once per comment; only the most recent reports are kept, so a comment's
/// hash stays small however many readers report it.
pub(super) const REPORT: &str = r#"
local f = redis.call('HMGET', KEYS[1], 'state', 'version', 'id', 'reports', 'reasons', 'reported',
  'report_count')
if not f[1] then return {'missing'} end
local joining = f[1] == 'pending_review' and f[6] == '1'
if not joining and f[1] ~= 'accepted' then return {'not_published', f[1]} end
if redis.call('SISMEMBER', KEYS[4], ARGV[4]) == 1 then return {'duplicate'} end
local sent = tonumber(redis.call('GET', KEYS[5]) or '0')
if sent >= tonumber(ARGV[6]) then
  return {'throttled', tostring(redis.call('PTTL', KEYS[5]))}
end
redis.call('INCR', KEYS[5])
if sent == 0 then redis.call('PEXPIRE', KEYS[5], ARGV[7]) end
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[8])
local reason = cjson.decode(ARGV[1])
local reports = cjson.decode(f[4] or '[]')
reports[#reports + 1] = reason.message
while #reports > tonumber(ARGV[5]) do table.remove(reports, 1) end
local count = tonumber(f[7] or '0') + 1
redis.call('RPUSH', KEYS[3], ARGV[3])
if joining then
  -- Already back for review: one more reader's report joins the others.
  redis.call('HSET', KEYS[1], 'reports', cjson.encode(reports), 'report_count', count)
  return {'reported', f[2]}
end
local reasons = cjson.decode(f[5] or '[]')
local listed = false
for _, r in ipairs(reasons) do if r.code == reason.code then listed = true end end
if not listed then reasons[#reasons + 1] = reason end
local version = tonumber(f[2]) + 1
redis.call('HSET', KEYS[1], 'state', 'pending_review', 'version', version, 'updated_at', ARGV[2],
  'reported', '1', 'reports', cjson.encode(reports), 'reasons', cjson.encode(reasons),
  'report_count', count)
redis.call('PERSIST', KEYS[1])
redis.call('ZADD', KEYS[2], ARGV[2], f[3])
for k = 6, #KEYS do redis.call('ZADD', KEYS[k], ARGV[2], f[3]) end
redis.call('PERSIST', KEYS[3])
return {'reported', tostring(version)}
"#;

fn event(at_ms: i64, actor: &str, action: &str, state: Outcome, note: &str) -> String {
    serde_json::to_string(&HistoryEvent {
        at_ms,
        actor: actor.to_owned(),
        action: action.to_owned(),
        state,
        note: note.to_owned(),
    })
    .unwrap_or_default()
}

#[async_trait]
impl ReviewStore for RedisStore {
    async fn comment(&self, id: CommentId) -> Result<Option<StoredComment>, StoreError> {
        Store::comment(self, id).await
    }

    async fn flagged(
        &self,
        query: &Query,
        now_ms: i64,
    ) -> Result<(Vec<FlaggedItem>, Option<Cursor>), StoreError> {
        // The narrowest index: by article (a reason filter is then applied to what it
        // holds), else by reason, else the whole queue. Each is sorted by arrival, so a page
        // is a range read, never a scan of the queue.
        let (index, reason_filter) = match (&query.article, &query.reason) {
            (Some(article), reason) => (self.article_index_key(article.as_str()), reason.clone()),
            (None, Some(reason)) => (self.reason_index_key(reason), None),
            (None, None) => (self.key("flagged"), None),
        };
        let age_ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let newest = query
            .min_age
            .map_or("+inf".to_owned(), |a| (now_ms - age_ms(a)).to_string());
        let oldest = query
            .max_age
            .map_or(0, |a| now_ms.saturating_sub(age_ms(a)));
        let batch = query.page_size + 1;
        let mut items = Vec::with_capacity(query.page_size);
        let mut cursor = query.after;
        // Entries already read at the score a read starts from: comments arriving in the same
        // millisecond share a score, and a read must not start over at the first of them.
        let mut skip = 0;
        // With a reason filter on the article index some items are skipped: read on, a
        // bounded number of batches, then hand back a token to go on from.
        for _ in 0..10 {
            let from = cursor.map_or(oldest, |c| c.arrived_ms.max(oldest));
            let entries: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&index)
                .arg(from)
                .arg(&newest)
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(skip)
                .arg(batch)
                .arg("WITHSCORES")
                .query_async(&mut self.connection())
                .await
                .map_err(classify)?;
            let exhausted = entries.len() < batch;
            // Scores are whole milliseconds, well inside f64's exact range.
            let read: Vec<(CommentId, i64)> = entries
                .iter()
                .filter_map(|(id, score)| Some((CommentId::parse("id", id).ok()?, *score as i64)))
                .collect();
            let candidates: Vec<(CommentId, i64)> = read
                .iter()
                .copied()
                .filter(|&(id, arrived)| {
                    cursor.is_none_or(|c| (arrived, id) > (c.arrived_ms, c.id))
                })
                .collect();
            let loaded = self.load_items(&candidates, now_ms).await?;
            for (&(id, arrived), item) in candidates.iter().zip(loaded) {
                if items.len() == query.page_size {
                    // More follow: the next page starts after the last item looked at.
                    return Ok((items, cursor));
                }
                cursor = Some(Cursor {
                    arrived_ms: arrived,
                    id,
                });
                let wanted = reason_filter.as_ref().is_none_or(|r| {
                    item.as_ref()
                        .is_some_and(|i| i.comment.reasons.iter().any(|x| &x.code == r))
                });
                if let Some(item) = item.filter(|_| wanted) {
                    items.push(item);
                }
            }
            if exhausted {
                return Ok((items, None));
            }
            if items.len() == query.page_size {
                return Ok((items, cursor));
            }
            let next_from = cursor.map_or(oldest, |c| c.arrived_ms.max(oldest));
            let at_next = read.iter().filter(|(_, a)| *a == next_from).count();
            skip = if next_from == from {
                skip + at_next
            } else {
                at_next
            };
        }
        Ok((items, cursor))
    }

    async fn claim(
        &self,
        moderator: &Moderator,
        count: usize,
        ids: &[CommentId],
        until_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<FlaggedItem>, ReviewError> {
        let explicit = !ids.is_empty();
        let mut claimed: Vec<CommentId> = Vec::new();
        let mut offset = 0;
        // By count: read the oldest candidates, let the script claim what is free, read on
        // past what others hold until enough are claimed or the queue ends (the request's
        // deadline bounds the walk).
        loop {
            let candidates: Vec<CommentId> = if explicit {
                ids.to_vec()
            } else {
                let batch = ((count - claimed.len()) * 4).max(100);
                let raw: Vec<String> = redis::cmd("ZRANGE")
                    .arg(self.key("flagged"))
                    .arg(offset)
                    .arg(offset + batch - 1)
                    .query_async(&mut self.connection())
                    .await
                    .map_err(classify)?;
                offset += batch;
                if raw.is_empty() {
                    break;
                }
                raw.iter()
                    .filter_map(|id| CommentId::parse("id", id).ok())
                    .filter(|id| !claimed.contains(id))
                    .collect()
            };
            let mut invocation = self.scripts.claim.prepare_invoke();
            for id in &candidates {
                invocation
                    .key(self.comment_key(*id))
                    .key(self.history_key(*id));
            }
            let want = if explicit {
                candidates.len()
            } else {
                count - claimed.len()
            };
            let answer: Vec<String> = invocation
                .arg(moderator.as_str())
                .arg(until_ms)
                .arg(now_ms)
                .arg(want)
                .arg(if explicit { "1" } else { "0" })
                .arg(event(
                    now_ms,
                    moderator.as_str(),
                    "claimed",
                    Outcome::PendingReview,
                    "",
                ))
                .invoke_async(&mut self.connection())
                .await
                .map_err(classify)?;
            if answer.first().map(String::as_str) == Some("refused") {
                let position: usize = answer.get(1).and_then(|p| p.parse().ok()).unwrap_or(1);
                let id = candidates[position.saturating_sub(1).min(candidates.len() - 1)];
                let detail = answer.get(3).cloned().unwrap_or_default();
                return Err(match answer.get(2).map(String::as_str) {
                    Some("missing") => ReviewError::NotFound(id),
                    Some("not_in_review") => ReviewError::NotInReview {
                        id,
                        state: parse_state(&detail),
                    },
                    _ => ReviewError::ClaimedByOther {
                        id,
                        moderator: detail,
                    },
                });
            }
            claimed.extend(
                answer
                    .iter()
                    .skip(1)
                    .filter_map(|p| p.parse::<usize>().ok())
                    .filter_map(|p| candidates.get(p - 1).copied()),
            );
            if explicit || claimed.len() >= count {
                break;
            }
        }
        let with_times: Vec<(CommentId, i64)> = claimed.iter().map(|id| (*id, 0)).collect();
        Ok(self
            .load_items(&with_times, now_ms)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    async fn decide(
        &self,
        id: CommentId,
        version: u64,
        moderator: &Moderator,
        verdict: Verdict,
        note: &str,
        now_ms: i64,
    ) -> Result<(Outcome, u64), ReviewError> {
        // The indexes to leave and the labels depend on the comment: read it first; the
        // script checks its version again, so nothing can slip in between.
        let comment = crate::store::Store::comment(self, id)
            .await?
            .ok_or(ReviewError::NotFound(id))?;
        let (spam, toxic) = verdict.labels(&comment.reasons);
        let label = |l: Option<bool>| l.map_or(String::new(), |b| b.to_string());
        let (action, state) = match verdict {
            Verdict::Approve => ("approve", Outcome::Accepted),
            Verdict::Reject(_) => ("reject", Outcome::Rejected),
        };
        let settings = self.settings();
        let mut invocation = self.scripts.decide.prepare_invoke();
        invocation
            .key(self.comment_key(id))
            .key(self.key("flagged"))
            .key(self.key("accepted"))
            .key(self.key("rejected"))
            .key(self.history_key(id))
            .key(self.key("feedback"))
            .key(self.key("removed"))
            .key(self.author_stats_key(&crate::store::counts_key(
                &comment.reader,
                &comment.author_email,
            )))
            .key(self.ip_stats_key(&comment.client_ip))
            .key(self.tally_key(super::Tally::Minute, now_ms))
            .key(self.tally_key(super::Tally::Hour, now_ms))
            .key(self.article_index_key(&comment.article_id));
        for reason in &comment.reasons {
            invocation.key(self.reason_index_key(&reason.code));
        }
        let answer: Vec<String> = invocation
            .arg(version)
            .arg(moderator.as_str())
            .arg(action)
            .arg(now_ms)
            .arg(millis(settings.comment_retention))
            .arg(millis(settings.accepted_retention))
            .arg(millis(settings.rejected_retention))
            .arg(millis(settings.feedback_retention))
            .arg(event(
                now_ms,
                moderator.as_str(),
                if state == Outcome::Accepted {
                    "approved"
                } else {
                    "rejected"
                },
                state,
                note,
            ))
            .arg(label(spam))
            .arg(label(toxic))
            .arg(crate::review::rules::language(&comment.body))
            .arg(&settings.consumer_group)
            .invoke_async(&mut self.connection())
            .await
            .map_err(classify)?;
        match answer.first().map(String::as_str) {
            Some("decided") => Ok((
                parse_state(answer.get(1).map_or("", String::as_str)),
                answer.get(2).and_then(|v| v.parse().ok()).unwrap_or(0),
            )),
            Some("missing") => Err(ReviewError::NotFound(id)),
            Some("not_in_review") => Err(ReviewError::NotInReview {
                id,
                state: parse_state(answer.get(1).map_or("", String::as_str)),
            }),
            Some("stale") => Err(ReviewError::Stale {
                id,
                current: answer.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
                given: version,
            }),
            Some("claimed") => Err(ReviewError::ClaimedByOther {
                id,
                moderator: answer.get(1).cloned().unwrap_or_default(),
            }),
            other => Err(StoreError::Corrupt(format!("decide script answered {other:?}")).into()),
        }
    }

    async fn report(
        &self,
        report: &Report,
        limits: ReportLimits,
        now_ms: i64,
    ) -> Result<u64, ReviewError> {
        let id = report.id;
        let comment = crate::store::Store::comment(self, id)
            .await?
            .ok_or(ReviewError::NotFound(id))?;
        let reported = serde_json::to_string(&Reason {
            code: "REPORTED".into(),
            message: report.reason.clone(),
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Listed under every reason it carries, as a held comment is, so a listing by reason
        // finds it whichever index it reads.
        let mut invocation = self.scripts.report.prepare_invoke();
        invocation
            .key(self.comment_key(id))
            .key(self.key("flagged"))
            .key(self.history_key(id))
            .key(self.key(&format!("reporters:{id}")))
            .key(self.key(&format!("reports:by:{}", report.reporter)))
            .key(self.article_index_key(&comment.article_id))
            .key(self.reason_index_key(crate::review::REPORTED));
        for reason in comment
            .reasons
            .iter()
            .filter(|r| r.code != crate::review::REPORTED)
        {
            invocation.key(self.reason_index_key(&reason.code));
        }
        let answer: Vec<String> = invocation
            .arg(reported)
            .arg(now_ms)
            .arg(event(
                now_ms,
                "reader",
                "reported",
                Outcome::PendingReview,
                &report.reason,
            ))
            .arg(&report.reporter)
            .arg(limits.kept.max(1))
            .arg(limits.per_reader)
            .arg(millis(limits.window).max(1))
            .arg(millis(self.settings.comment_retention))
            .invoke_async(&mut self.connection())
            .await
            .map_err(classify)?;
        match answer.first().map(String::as_str) {
            Some("reported") => Ok(answer.get(1).and_then(|v| v.parse().ok()).unwrap_or(0)),
            Some("missing") => Err(ReviewError::NotFound(id)),
            Some("not_published") => Err(ReviewError::NotPublished {
                id,
                state: parse_state(answer.get(1).map_or("", String::as_str)),
            }),
            Some("duplicate") => Err(ReviewError::AlreadyReported(id)),
            Some("throttled") => {
                let left = answer.get(1).and_then(|v| v.parse::<u64>().ok());
                Err(ReviewError::TooManyReports(
                    std::time::Duration::from_millis(left.unwrap_or(1000).max(1)),
                ))
            }
            other => Err(StoreError::Corrupt(format!("report script answered {other:?}")).into()),
        }
    }

    async fn history(&self, id: CommentId) -> Result<Vec<HistoryEvent>, StoreError> {
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.history_key(id))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        raw.iter()
            .map(|e| {
                serde_json::from_str(e)
                    .map_err(|err| StoreError::Corrupt(format!("history of {id}: {err}")))
            })
            .collect()
    }

    async fn feedback(&self, since_ms: i64) -> Result<Vec<Feedback>, StoreError> {
        let mut out = Vec::new();
        let mut from = format!("{}-0", since_ms.max(0));
        loop {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(self.key("feedback"))
                .arg(&from)
                .arg("+")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.connection())
                .await
                .map_err(classify)?;
            let done = reply.ids.len() < 1000;
            for entry in &reply.ids {
                out.push(Feedback::from_fields(|name| entry_text(entry, name)));
                from = format!("({}", entry.id);
            }
            if done {
                break;
            }
        }
        Ok(out)
    }
}

impl RedisStore {
    /// Loads the items of `ids` in two round trips (their hashes, then their sources' counts);
    /// `None` for one that vanished meanwhile.
    async fn load_items(
        &self,
        ids: &[(CommentId, i64)],
        now_ms: i64,
    ) -> Result<Vec<Option<FlaggedItem>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (id, _) in ids {
            pipe.hgetall(self.comment_key(*id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        let mut pipe = redis::pipe();
        for hash in &hashes {
            let email = hash.get("author_email").map_or("", String::as_str);
            let reader = hash.get("reader").map_or("", String::as_str);
            let ip = hash.get("client_ip").map_or("", String::as_str);
            pipe.hgetall(self.author_stats_key(&crate::store::counts_key(reader, email)));
            pipe.hgetall(self.ip_stats_key(ip));
        }
        let stats: Vec<HashMap<String, u32>> = pipe
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        let record = |m: &HashMap<String, u32>| Record {
            accepted: m.get("accepted").copied().unwrap_or(0),
            rejected: m.get("rejected").copied().unwrap_or(0),
        };
        ids.iter()
            .zip(&hashes)
            .enumerate()
            .map(|(k, ((id, _), hash))| {
                if hash.is_empty() {
                    return Ok(None);
                }
                let comment = read_comment(*id, hash)?;
                let field = |name: &str| hash.get(name).map_or("", String::as_str);
                let claim_until: i64 = field("claim_until").parse().unwrap_or(0);
                let claim =
                    (!field("claimed_by").is_empty() && claim_until > now_ms).then(|| Claim {
                        moderator: field("claimed_by").to_owned(),
                        until_ms: claim_until,
                    });
                Ok(Some(FlaggedItem {
                    version: field("version").parse().unwrap_or(0),
                    explanation: serde_json::from_str::<Vec<Explained>>(field("explanation"))
                        .unwrap_or_default(),
                    reports: serde_json::from_str(field("reports")).unwrap_or_default(),
                    report_count: field("report_count").parse().unwrap_or(0),
                    arrived_ms: ids[k].1,
                    claim,
                    author: record(&stats[k * 2]),
                    ip: record(&stats[k * 2 + 1]),
                    comment,
                }))
            })
            .collect()
    }
}

fn parse_state(state: &str) -> Outcome {
    match state {
        "accepted" => Outcome::Accepted,
        "rejected" => Outcome::Rejected,
        _ => Outcome::PendingReview,
    }
}

#[async_trait]
impl crate::rescan::PublishedStore for RedisStore {
    /// The accepted stream's entries since `since_ms` (as far back as `accepted_retention`
    /// keeps them), each comment read again: one taken down since is left out.
    async fn published_since(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredComment>, StoreError> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.key("accepted"))
            .arg(format!("{}-0", since_ms.max(0)))
            .arg("+")
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        let ids: Vec<CommentId> = reply
            .ids
            .iter()
            .filter_map(|e| CommentId::parse("id", &entry_text(e, "id")).ok())
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let comments = self.comments(&ids).await?;
        Ok(comments
            .into_iter()
            .flatten()
            .filter(|c| c.published)
            .collect())
    }
}
