//! `moderation readers`: moderators look a reader up and set their standing, over gRPC like any
//! other client.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use super::client::{Client, Connection, explain, runtime};
use crate::proto::v1 as pb;
use crate::proto::v1::reader_service_client::ReaderServiceClient;

/// `readers` flags and subcommands.
#[derive(Debug, Args)]
pub struct ReadersArgs {
    /// The server.
    #[command(flatten)]
    pub connection: Connection,
    /// Who you are, as recorded in the audit (default: the login name). With API keys on, the
    /// key's name is used.
    #[arg(long, env = "MODERATION_MODERATOR", global = true)]
    pub moderator: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub action: ReadersAction,
}

/// `readers` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReadersAction {
    /// A reader's standing and latest comments.
    Show {
        /// The reader: their id (from a comment) or e-mail address.
        who: String,
    },
    /// Set a reader's standing.
    Set(SetArgs),
    /// Lift a reader's standing.
    Lift {
        /// The reader: their id or e-mail address.
        who: String,
    },
}

/// `readers set` flags.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The reader: their id or e-mail address.
    pub who: String,
    /// The standing.
    #[arg(value_enum)]
    pub standing: StandingArg,
    /// When it ends (`2026-12-08T00:00:00Z`, or a span from now: `7days`); a suspension needs
    /// one.
    #[arg(long)]
    pub until: Option<String>,
    /// Why (a ban's or suspension's reason is sent to the portal).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// With a ban or suspension: also reject their waiting comments and take down their
    /// published ones.
    #[arg(long)]
    pub reject_all: bool,
}

/// A standing on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StandingArg {
    /// Skip review unless the classifier is certain.
    Trusted,
    /// Every comment waits for a moderator.
    Premoderated,
    /// Comments refused until --until.
    Suspended,
    /// Comments refused.
    Banned,
}

/// Runs a `readers` subcommand.
pub fn run(args: ReadersArgs) -> Result<()> {
    runtime()?.block_on(async {
        let channel = args.connection.connect().await?;
        let moderator = args
            .moderator
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_default();
        print!("{}", act(channel, &moderator, args.action).await?);
        Ok(())
    })
}

/// `(reader_id, email)` for `who`.
fn named(who: &str) -> (String, String) {
    if who.contains('@') {
        (String::new(), who.to_owned())
    } else {
        (who.to_owned(), String::new())
    }
}

/// `--until` as a time: a timestamp, or a span from now.
fn until(raw: &str) -> Result<prost_types::Timestamp> {
    let now = jiff::Timestamp::now().as_millisecond();
    let at = crate::readers::until(raw, now)
        .map_err(|v| anyhow::anyhow!("--until: {}", v.description))?
        .unwrap_or(now);
    Ok(prost_types::Timestamp {
        seconds: at.div_euclid(1000),
        nanos: 0,
    })
}

async fn act(channel: Client, moderator: &str, action: ReadersAction) -> Result<String> {
    let mut client = ReaderServiceClient::new(channel);
    let (who, standing, until_at, reason, reject_all) = match action {
        ReadersAction::Show { who } => {
            let (reader_id, email) = named(&who);
            let reader = client
                .get_reader(pb::GetReaderRequest { reader_id, email })
                .await
                .map_err(explain)?
                .into_inner();
            return Ok(describe(&reader));
        }
        ReadersAction::Lift { who } => (who, pb::ReaderStanding::None, None, String::new(), false),
        ReadersAction::Set(s) => {
            let standing = match s.standing {
                StandingArg::Trusted => pb::ReaderStanding::Trusted,
                StandingArg::Premoderated => pb::ReaderStanding::Premoderated,
                StandingArg::Suspended => pb::ReaderStanding::Suspended,
                StandingArg::Banned => pb::ReaderStanding::Banned,
            };
            let until_at = s.until.as_deref().map(until).transpose()?;
            (s.who, standing, until_at, s.reason, s.reject_all)
        }
    };
    let (reader_id, email) = named(&who);
    let done = client
        .set_reader_standing(pb::SetReaderStandingRequest {
            reader_id,
            email,
            standing: standing.into(),
            until: until_at,
            reason,
            moderator: moderator.to_owned(),
            reject_all,
        })
        .await
        .map_err(explain)?
        .into_inner();
    let mut out = done.reader.as_ref().map(describe).unwrap_or_default();
    if reject_all {
        out.push_str(&format!(
            "rejected {} waiting, took down {} published\n",
            done.rejected_ids.len(),
            done.taken_down_ids.len()
        ));
        for left in &done.left {
            out.push_str(&format!("left {}: {}\n", left.comment_id, left.why));
        }
    }
    Ok(out)
}

/// A reader in a few lines.
fn describe(r: &pb::Reader) -> String {
    let time = |t: &prost_types::Timestamp| {
        jiff::Timestamp::from_second(t.seconds).map_or_else(|_| "?".into(), |t| t.to_string())
    };
    let standing = r
        .standing()
        .as_str_name()
        .trim_start_matches("READER_STANDING_")
        .to_lowercase();
    let mut out = format!("reader {}: {standing}", r.reader_id);
    if let Some(until) = &r.until {
        out.push_str(&format!(" until {}", time(until)));
    }
    if !r.in_force && r.standing() != pb::ReaderStanding::None {
        out.push_str(" (ended)");
    }
    if !r.reason.is_empty() {
        out.push_str(&format!(" because {}", r.reason));
    }
    if !r.set_by.is_empty() {
        out.push_str(&format!(" (set by {})", r.set_by));
    }
    out.push('\n');
    out.push_str(&format!(
        "latest comments: {} published, {} waiting, {} rejected\n",
        r.accepted, r.held, r.rejected
    ));
    for c in r.latest.iter().take(10) {
        let state = c
            .state()
            .as_str_name()
            .trim_start_matches("COMMENT_STATE_")
            .to_lowercase();
        let body: String = c.body.chars().take(60).collect();
        out.push_str(&format!("  {} {state:<14} {body}\n", c.id));
    }
    out
}
