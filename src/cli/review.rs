//! `moderation review`: the moderators' command line. It talks gRPC to a running server, like
//! any other client, and prints the queue as a table.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{ColumnConstraint, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::client::{Client, Connection, explain, runtime};

use crate::proto::v1 as pb;
use crate::proto::v1::moderation_service_client::ModerationServiceClient;

/// `review` flags and subcommands.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The server.
    #[command(flatten)]
    pub connection: Connection,
    /// Who you are, as recorded in the history (default: the login name). With API keys on,
    /// the key's name is used and this may be left out.
    #[arg(long, env = "MODERATION_MODERATOR", global = true)]
    pub moderator: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub action: ReviewAction,
}

/// `review` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReviewAction {
    /// List waiting comments, oldest first.
    List(ListArgs),
    /// Claim waiting comments so nobody else works on them: the oldest unclaimed ones, or the
    /// ids given.
    Claim(ClaimArgs),
    /// Publish a waiting comment.
    Approve(DecideArgs),
    /// Reject a waiting comment.
    Reject(RejectArgs),
    /// Show who did what to a comment.
    History {
        /// The comment.
        id: String,
    },
}

/// `review list` flags.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only comments under this article.
    #[arg(long)]
    pub article: Option<String>,
    /// Only comments held for this reason (SPAM_LIKELY, TOXIC_LIKELY, REPORTED, ...).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only comments waiting at least this long (`15m`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub min_age: Option<Duration>,
    /// Only comments waiting at most this long (`2h`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_age: Option<Duration>,
    /// Comments per page.
    #[arg(long, default_value_t = 20)]
    pub page_size: u32,
    /// Where to go on from (printed under the previous page).
    #[arg(long, default_value = "")]
    pub page_token: String,
}

/// `review claim` flags.
#[derive(Debug, Args)]
pub struct ClaimArgs {
    /// How many of the oldest unclaimed comments.
    #[arg(long, default_value_t = 10)]
    pub count: u32,
    /// How long the claim lasts (`10m`; the server's default if absent).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub lease: Option<Duration>,
    /// Claim exactly these comments instead.
    pub ids: Vec<String>,
}

/// `review approve` flags.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The comment.
    pub id: String,
    /// The version you saw (from `list` or `claim`); if absent, the comment is claimed first
    /// and decided at its current version.
    #[arg(long)]
    pub version: Option<u64>,
    /// A note for the history.
    #[arg(long, default_value = "")]
    pub note: String,
}

/// `review reject` flags.
#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The comment, version and note.
    #[command(flatten)]
    pub decide: DecideArgs,
    /// What it is, for retraining (default: what it was held for).
    #[arg(long, value_enum)]
    pub label: Option<LabelArg>,
}

/// `--label`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LabelArg {
    /// Spam.
    Spam,
    /// Abuse.
    Abuse,
}

/// Runs a `review` subcommand.
pub fn run(args: ReviewArgs) -> Result<()> {
    runtime()?.block_on(async {
        let channel = args.connection.connect().await?;
        // With API keys on, the server takes the name from the key.
        let moderator = args
            .moderator
            .or_else(|| {
                args.connection
                    .api_key
                    .is_none()
                    .then(|| std::env::var("USER").ok())
                    .flatten()
            })
            .unwrap_or_default();
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let out = act(channel, &moderator, args.action, now_ms).await?;
        print!("{out}");
        Ok(())
    })
}

async fn act(
    channel: Client,
    moderator: &str,
    action: ReviewAction,
    now_ms: i64,
) -> Result<String> {
    let mut client = ModerationServiceClient::new(channel);
    match action {
        ReviewAction::List(a) => {
            let page = client
                .list_flagged(pb::ListFlaggedRequest {
                    article_id: a.article,
                    reason: a.reason,
                    min_age_seconds: a.min_age.map(seconds),
                    max_age_seconds: a.max_age.map(seconds),
                    page_size: a.page_size,
                    page_token: a.page_token,
                })
                .await
                .map_err(explain)?
                .into_inner();
            let mut out = table(&page.items, now_ms);
            if !page.next_page_token.is_empty() {
                out.push_str(&format!(
                    "next page: --page-token {}\n",
                    page.next_page_token
                ));
            }
            Ok(out)
        }
        ReviewAction::Claim(a) => {
            let claimed = client
                .claim_flagged(pb::ClaimFlaggedRequest {
                    moderator: moderator.to_owned(),
                    count: if a.ids.is_empty() { a.count } else { 0 },
                    comment_ids: a.ids,
                    lease_seconds: a.lease.map(seconds),
                })
                .await
                .map_err(explain)?
                .into_inner();
            Ok(table(&claimed.items, now_ms))
        }
        ReviewAction::Approve(a) => {
            decide(
                &mut client,
                moderator,
                a,
                pb::ModeratorDecision::Approve,
                None,
            )
            .await
        }
        ReviewAction::Reject(r) => {
            let label = r.label.map(|l| match l {
                LabelArg::Spam => pb::RejectLabel::Spam,
                LabelArg::Abuse => pb::RejectLabel::Abuse,
            });
            decide(
                &mut client,
                moderator,
                r.decide,
                pb::ModeratorDecision::Reject,
                label,
            )
            .await
        }
        ReviewAction::History { id } => {
            let history = client
                .get_comment_history(pb::GetCommentHistoryRequest { comment_id: id })
                .await
                .map_err(explain)?
                .into_inner();
            let mut t = new_table(["WHEN (UTC)", "WHO", "WHAT", "STATE", "NOTE"]);
            for e in history.events {
                t.add_row([
                    e.at.map(|t| when(t.seconds * 1000)).unwrap_or_default(),
                    e.actor,
                    e.action.clone(),
                    state_name(e.state),
                    e.note,
                ]);
            }
            Ok(format!("{t}\n"))
        }
    }
}

async fn decide(
    client: &mut ModerationServiceClient<Client>,
    moderator: &str,
    a: DecideArgs,
    decision: pb::ModeratorDecision,
    label: Option<pb::RejectLabel>,
) -> Result<String> {
    let version = match a.version {
        Some(v) => v,
        // Claiming it by id checks nobody else holds it and reads its version.
        None => client
            .claim_flagged(pb::ClaimFlaggedRequest {
                moderator: moderator.to_owned(),
                count: 0,
                comment_ids: vec![a.id.clone()],
                lease_seconds: Some(60),
            })
            .await
            .map_err(explain)?
            .into_inner()
            .items
            .first()
            .map(|i| i.version)
            .context("the server claimed nothing")?,
    };
    let decided = client
        .decide_comment(pb::DecideCommentRequest {
            comment_id: a.id.clone(),
            version,
            decision: decision.into(),
            label: label.unwrap_or(pb::RejectLabel::Unspecified).into(),
            moderator: moderator.to_owned(),
            note: a.note,
        })
        .await
        .map_err(explain)?
        .into_inner();
    Ok(format!(
        "{} is now {} (version {})\n",
        a.id,
        state_name(decided.state),
        decided.version
    ))
}

fn seconds(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn state_name(state: i32) -> String {
    pb::CommentState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("COMMENT_STATE_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| state.to_string())
}

pub(super) fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A span as people say it: `45s`, `12m`, `3h05m`, `2d04h`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

pub(super) fn new_table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    // Wrapped to a terminal's width, or to 160 columns when piped.
    if !t.is_tty() {
        t.set_width(160);
    }
    t
}

/// Waiting comments as a table: what a moderator reads to decide.
pub fn table(items: &[pb::FlaggedItem], now_ms: i64) -> String {
    if items.is_empty() {
        return "nothing waiting\n".to_owned();
    }
    let mut t = new_table([
        "ID / VERSION",
        "WAITING",
        "SPAM",
        "TOXIC",
        "WHY",
        "AUTHOR ✓/✗",
        "IP ✓/✗",
        "CLAIMED BY",
        "COMMENT",
    ]);
    // The id is copied into `approve` and `reject`: never wrapped.
    if let Some(id) = t.column_mut(0) {
        id.set_constraint(ColumnConstraint::ContentWidth);
    }
    for item in items {
        let Some(c) = &item.comment else { continue };
        let since = c.updated_at.as_ref().or(c.created_at.as_ref());
        let waited = since.map_or(0, |t| now_ms - t.seconds * 1000);
        let mut why: Vec<String> = c
            .reasons
            .iter()
            .map(|r| {
                if r.message.is_empty() {
                    r.code.clone()
                } else {
                    format!("{}: {}", r.code, r.message)
                }
            })
            .collect();
        why.extend(item.reports.iter().map(|r| format!("report: {r}")));
        let record = |r: &Option<pb::AuthorRecord>| {
            r.as_ref()
                .map_or("-".to_owned(), |r| format!("{}/{}", r.accepted, r.rejected))
        };
        let claim = item.claim.as_ref().map_or(String::new(), |c| {
            let left = c.until.as_ref().map_or(0, |u| u.seconds * 1000 - now_ms);
            format!("{} ({} left)", c.moderator, age(left))
        });
        let mut text: String = c.body.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.chars().count() > 120 {
            text = text.chars().take(119).collect::<String>() + "…";
        }
        let author = match &c.author_email {
            Some(email) => format!("{} <{email}>", c.author_name),
            None => c.author_name.clone(),
        };
        t.add_row([
            format!("{}\nv{}", c.id, item.version),
            age(waited),
            format!("{:.2}", c.spam_score),
            format!("{:.2}", c.toxic_score),
            why.join("\n"),
            record(&item.author_record),
            record(&item.ip_record),
            claim,
            format!("{author}: {text}"),
        ]);
    }
    format!("{t}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_people_say_them() {
        assert_eq!(age(45_000), "45s");
        assert_eq!(age(12 * 60_000 + 5_000), "12m");
        assert_eq!(age(3 * 3_600_000 + 5 * 60_000), "3h05m");
        assert_eq!(age(2 * 86_400_000 + 4 * 3_600_000), "2d04h");
        assert_eq!(age(-5), "0s");
    }

    #[test]
    fn the_table_shows_what_a_moderator_decides_on() {
        let now_ms = 1_764_000_000_000;
        let item = pb::FlaggedItem {
            comment: Some(pb::Comment {
                id: "0193a0a0-0000-7000-8000-000000000001".into(),
                author_name: "Trần Văn Bình".into(),
                author_email: Some("binh@example.vn".into()),
                body: "Liên hệ  zalo\n0912 345 678 để nhận quà".into(),
                spam_score: 0.62,
                toxic_score: 0.04,
                reasons: vec![pb::Reason {
                    code: "SPAM_LIKELY".into(),
                    message: "spam score 0.62: phone number".into(),
                }],
                created_at: Some(prost_types::Timestamp {
                    seconds: now_ms / 1000 - 300,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            version: 3,
            author_record: Some(pb::AuthorRecord {
                accepted: 4,
                rejected: 1,
            }),
            claim: Some(pb::Claim {
                moderator: "lan".into(),
                until: Some(prost_types::Timestamp {
                    seconds: now_ms / 1000 + 120,
                    nanos: 0,
                }),
            }),
            ..Default::default()
        };
        let out = table(&[item], now_ms);
        // Cells wrap with the width: look for whole words.
        for expected in [
            "0193a0a0-0000-7000-8000-000000000001",
            "v3",
            "5m",
            "0.62",
            "0.04",
            "SPAM_LIKELY:",
            "phone",
            "4/1",
            "lan (2m left)",
            "Bình",
            "<binh@example.vn>:",
            "zalo",
            "0912",
        ] {
            assert!(out.contains(expected), "{expected:?} missing from\n{out}");
        }
        assert_eq!(table(&[], now_ms), "nothing waiting\n");
    }
}
