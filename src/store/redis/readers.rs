//! Readers in Redis ([`ReaderStore`]): each reader's latest comments are a sorted set of ids by
//! arrival (`reader:<id>:comments`, written by the submission script); the key readers' ids are
//! made with is `reader_key`, set once by whichever instance starts first. Stored texts'
//! fingerprints reach the other instances on the `campaigns` channel ([`crate::campaigns::Sharing`]).

use async_trait::async_trait;

use super::{RedisStore, classify};
use crate::comment::CommentId;
use crate::readers::{ReaderId, ReaderStore};
use crate::secret::Secret;
use crate::store::{StoreError, StoredComment};

#[async_trait]
impl ReaderStore for RedisStore {
    async fn reader_comments(
        &self,
        reader: &ReaderId,
        limit: usize,
    ) -> Result<Vec<StoredComment>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(self.reader_index_key(&reader.to_string()))
            .arg(0)
            .arg(limit - 1)
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        let ids: Vec<CommentId> = ids
            .iter()
            .map(|id| CommentId::parse("id", id).map_err(|v| StoreError::Corrupt(v.description)))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // A comment past its retention is gone from storage but may linger in the index.
        Ok(self.comments(&ids).await?.into_iter().flatten().collect())
    }

    async fn reader_key(&self, candidate: &Secret) -> Result<Secret, StoreError> {
        let stored: Option<String> = redis::cmd("SET")
            .arg(self.key("reader_key"))
            .arg(candidate.expose())
            .arg("NX")
            .arg("GET")
            .query_async(&mut self.connection())
            .await
            .map_err(classify)?;
        Ok(stored.map_or_else(|| candidate.clone(), Secret::new))
    }
}

#[async_trait]
impl crate::campaigns::Sharing for RedisStore {
    async fn notes(&self) -> Result<crate::campaigns::Notes, StoreError> {
        use tokio_stream::StreamExt;
        let messages = self.subscribe(&self.campaigns_channel()).await?;
        let notes = messages.filter_map(|message| message.get_payload::<String>().ok());
        Ok(Box::pin(notes))
    }
}
