//! Fills an empty Redis prefix from a [`Dump`] of the embedded store, in the layout the rest of
//! this backend reads: comments, the flagged queue and its indexes, histories, the streams
//! (accepted, rejected, removed, feedback: new entry ids, same order), counts, answers kept for
//! retries, reporters, the runtime settings and their audit. Left behind, as transient: rate-limit
//! counters, CAPTCHA challenges, tallies of the last day, and the feed's consumer positions (a
//! group starts again from the oldest entry, so consumers see repeats, which they drop by id).

use std::collections::HashMap;

use super::{RedisStore, classify};
use crate::store::StoreError;
use crate::store::sqlite::{Dump, Rows};

/// How much was copied, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Comments.
    pub comments: usize,
    /// Stream entries.
    pub stream_entries: usize,
    /// History events.
    pub history_events: usize,
    /// Settings audit records.
    pub audit_records: usize,
}

fn maps(rows: &Rows) -> Vec<HashMap<&str, &str>> {
    rows.iter()
        .map(|row| {
            row.iter()
                .map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or("")))
                .collect()
        })
        .collect()
}

/// Commands sent per round trip.
const CHUNK: usize = 500;

impl RedisStore {
    /// Whether anything is stored under the prefix.
    async fn prefix_in_use(&self) -> Result<bool, StoreError> {
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.settings().prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.connection())
                .await
                .map_err(classify)?;
            // The health probe's key does not count.
            if keys.iter().any(|k| *k != self.key("health")) {
                return Ok(true);
            }
            if next == 0 {
                return Ok(false);
            }
            cursor = next;
        }
    }

    /// Copies `dump` in; refuses a prefix already in use, so two portals' data never mix.
    pub async fn import(&self, dump: &Dump) -> Result<Imported, StoreError> {
        if self.prefix_in_use().await? {
            return Err(StoreError::Unavailable(format!(
                "the Redis prefix {:?} already holds data: copy into an empty one",
                self.settings().prefix
            )));
        }
        let mut commands: Vec<redis::Cmd> = Vec::new();
        let mut imported = Imported::default();
        let mut expiry: HashMap<String, String> = HashMap::new();
        for c in maps(&dump.comments) {
            let key = self.key(&format!("comment:{}", c["id"]));
            let mut hset = redis::cmd("HSET");
            hset.arg(&key);
            for (field, value) in &c {
                if *field != "expires_ms" {
                    hset.arg(*field).arg(*value);
                }
            }
            commands.push(hset);
            let reader = c.get("reader").copied().unwrap_or("");
            if !reader.is_empty() {
                commands.push(
                    redis::cmd("ZADD")
                        .arg(self.reader_index_key(reader))
                        .arg(c["created_at"])
                        .arg(c["id"])
                        .clone(),
                );
            }
            if !c["expires_ms"].is_empty() {
                expiry.insert(c["id"].to_owned(), c["expires_ms"].to_owned());
                commands.push(
                    redis::cmd("PEXPIREAT")
                        .arg(&key)
                        .arg(c["expires_ms"])
                        .clone(),
                );
            }
            imported.comments += 1;
        }
        for f in maps(&dump.flagged) {
            let (id, at) = (f["comment_id"], f["arrived_ms"]);
            for index in [
                self.key("flagged"),
                self.key(&format!("flagged:article:{}", f["article_id"])),
            ] {
                commands.push(redis::cmd("ZADD").arg(index).arg(at).arg(id).clone());
            }
        }
        for r in maps(&dump.flagged_reasons) {
            let index = self.key(&format!("flagged:reason:{}", r["code"]));
            commands.push(
                redis::cmd("ZADD")
                    .arg(index)
                    .arg(r["arrived_ms"])
                    .arg(r["comment_id"])
                    .clone(),
            );
        }
        for h in maps(&dump.history) {
            let key = self.key(&format!("history:{}", h["comment_id"]));
            commands.push(redis::cmd("RPUSH").arg(&key).arg(h["event"]).clone());
            if let Some(at) = expiry.get(h["comment_id"]) {
                commands.push(redis::cmd("PEXPIREAT").arg(&key).arg(at).clone());
            }
            imported.history_events += 1;
        }
        for s in maps(&dump.streams) {
            let fields: HashMap<String, String> = serde_json::from_str(s["fields"])
                .map_err(|e| StoreError::Corrupt(format!("stream entry: {e}")))?;
            let mut xadd = redis::cmd("XADD");
            xadd.arg(self.key(s["stream"])).arg("*");
            for (k, v) in &fields {
                xadd.arg(k).arg(v);
            }
            commands.push(xadd);
            imported.stream_entries += 1;
        }
        for n in maps(&dump.source_counts) {
            let key = self.key(&format!("stats:{}", n["key"]));
            commands.push(
                redis::cmd("HSET")
                    .arg(&key)
                    .arg("accepted")
                    .arg(n["accepted"])
                    .arg("rejected")
                    .arg(n["rejected"])
                    .clone(),
            );
            commands.push(
                redis::cmd("PEXPIREAT")
                    .arg(&key)
                    .arg(n["expires_ms"])
                    .clone(),
            );
        }
        for i in maps(&dump.idempotency) {
            let key = self.key(&format!("idem:{}", i["key"]));
            commands.push(
                redis::cmd("HSET")
                    .arg(&key)
                    .arg("fingerprint")
                    .arg(i["fingerprint"])
                    .arg("receipt")
                    .arg(i["receipt"])
                    .arg("comment")
                    .arg(i["comment_id"])
                    .clone(),
            );
            commands.push(
                redis::cmd("PEXPIREAT")
                    .arg(&key)
                    .arg(i["expires_ms"])
                    .clone(),
            );
        }
        for r in maps(&dump.reporters) {
            let key = self.key(&format!("reporters:{}", r["comment_id"]));
            commands.push(redis::cmd("SADD").arg(&key).arg(r["reporter"]).clone());
            commands.push(
                redis::cmd("PEXPIREAT")
                    .arg(&key)
                    .arg(r["expires_ms"])
                    .clone(),
            );
        }
        for s in maps(&dump.settings) {
            commands.push(
                redis::cmd("HSET")
                    .arg(self.key("settings"))
                    .arg("version")
                    .arg(s["version"])
                    .arg("doc")
                    .arg(s["doc"])
                    .clone(),
            );
        }
        for a in maps(&dump.settings_audit) {
            commands.push(
                redis::cmd("XADD")
                    .arg(self.key("settings:audit"))
                    .arg("*")
                    .arg("version")
                    .arg(a["version"])
                    .arg("by")
                    .arg(a["by_whom"])
                    .arg("at")
                    .arg(a["at_ms"])
                    .arg("note")
                    .arg(a["note"])
                    .arg("changes")
                    .arg(a["changes"])
                    .clone(),
            );
            imported.audit_records += 1;
        }
        for m in maps(&dump.meta) {
            if m["name"] == "reader_key" {
                commands.push(
                    redis::cmd("SET")
                        .arg(self.key("reader_key"))
                        .arg(m["value"])
                        .clone(),
                );
            }
        }
        for chunk in commands.chunks(CHUNK) {
            let mut pipe = redis::pipe();
            for command in chunk {
                pipe.add_command(command.clone()).ignore();
            }
            pipe.query_async::<()>(&mut self.connection())
                .await
                .map_err(classify)?;
        }
        Ok(imported)
    }
}
