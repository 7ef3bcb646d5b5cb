//! A complete consumer of the portal's feed: subscribes as `web-1` of group `portal`,
//! publishes or takes down each comment (here: prints it), and acknowledges it afterwards, so
//! that a crash between the two makes the event come again rather than vanish. Repeats are
//! dropped by comment id, as the feed delivers at least once.
//!
//! `cargo run --example feed_consumer -- http://127.0.0.1:50051 [api-key]`

use std::collections::HashSet;

use moderation::proto::v1 as pb;
use pb::feed_service_client::FeedServiceClient;
use tokio_stream::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let key = args.next();
    let channel = tonic::transport::Channel::from_shared(server)?
        .connect()
        .await?;
    let mut feed = FeedServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
        if let Some(key) = &key {
            let value = format!("Bearer {key}").parse().map_err(|_| {
                tonic::Status::invalid_argument("the API key is not a header value")
            })?;
            r.metadata_mut().insert("authorization", value);
        }
        Ok(r)
    });
    // A real portal keeps this in its database, beside the comments it published.
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let request = pb::SubscribeRequest {
            group: "portal".into(),
            consumer: "web-1".into(),
            visibility_seconds: 60,
        };
        let mut events = match feed.subscribe(request).await {
            Ok(r) => r.into_inner(),
            Err(status) => {
                eprintln!("subscribing failed ({status}); again in a second");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(e) => e,
                Err(status) => {
                    eprintln!("the feed broke ({status}); subscribing again");
                    break;
                }
            };
            let first_time = seen.insert(format!("{}:{}", event.kind, event.comment_id));
            if first_time {
                match event.kind() {
                    pb::FeedEventKind::Published => println!(
                        "publish {} under {}: {}: {}",
                        event.comment_id, event.article_id, event.author_name, event.body
                    ),
                    pb::FeedEventKind::Removed => {
                        println!("take down {} under {}", event.comment_id, event.article_id)
                    }
                    pb::FeedEventKind::Unspecified => {}
                }
            }
            feed.ack(pb::AckRequest {
                group: "portal".into(),
                cursors: vec![event.cursor],
            })
            .await?;
        }
    }
}
