//! The operators' command line: runtime settings, model versions, statistics, and API keys.
//! Like `review`, it talks gRPC to a running server.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::client::{Client, Connection, explain, runtime};
use super::review::{new_table, when};
use crate::auth::Role;
use crate::proto::v1 as pb;
use crate::proto::v1::admin_service_client::AdminServiceClient;

/// `settings` flags and subcommands.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// The server.
    #[command(flatten)]
    pub connection: Connection,
    /// What to do.
    #[command(subcommand)]
    pub action: SettingsAction,
}

/// `settings` subcommands.
#[derive(Debug, Subcommand)]
pub enum SettingsAction {
    /// Show every setting with its value, where it came from, and the version.
    Get,
    /// Change settings on every instance: KEY=VALUE ... (KEY=@FILE reads a list from a file,
    /// one entry per line).
    Set {
        /// The changes.
        #[arg(required_unless_present = "reset")]
        changes: Vec<String>,
        /// Drop the runtime value of these keys (the configuration's applies again).
        #[arg(long)]
        reset: Vec<String>,
        /// The version the changes replace (default: the version read just before).
        #[arg(long)]
        version: Option<u64>,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Who changed what and when, newest first.
    History {
        /// How many records.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// `models` flags and subcommands.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// The server.
    #[command(flatten)]
    pub connection: Connection,
    /// What to do.
    #[command(subcommand)]
    pub action: ModelsAction,
}

/// `models` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// The models in the models directory, and which are in force.
    List,
    /// Make a model the active one on every instance.
    Activate {
        /// The model's name.
        name: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Make the model active before the last switch active again.
    Rollback {
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Score with a candidate model beside the active one and compare their decisions
    /// (`--off` to stop).
    Shadow {
        /// The candidate's name.
        #[arg(required_unless_present = "off")]
        name: Option<String>,
        /// Stop scoring a candidate.
        #[arg(long)]
        off: bool,
    },
}

/// `stats` flags.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The server.
    #[command(flatten)]
    pub connection: Connection,
}

/// `rescan` flags.
#[derive(Debug, Args)]
pub struct RescanArgs {
    /// The server.
    #[command(flatten)]
    pub connection: Connection,
    /// Also the comments published in this many last days.
    #[arg(long, default_value_t = 0)]
    pub published_days: u32,
    /// Bring the published ones that would now be held or rejected back to the queue.
    #[arg(long)]
    pub flag: bool,
}

/// `rescan`: held (and recently published) comments scored again with what is in force.
pub fn rescan(args: RescanArgs) -> Result<()> {
    runtime()?.block_on(async {
        let mut client = admin(&args.connection).await?;
        let r = client
            .rescan(pb::RescanRequest {
                published_days: args.published_days,
                flag: args.flag,
            })
            .await
            .map_err(explain)?
            .into_inner();
        println!(
            "{} comments scored again with {}: {} would be decided otherwise, {} brought back to the queue",
            r.scanned, r.model, r.changed, r.flagged
        );
        let name = |s: i32| {
            pb::CommentState::try_from(s)
                .map(|s| s.as_str_name().trim_start_matches("COMMENT_STATE_").to_lowercase())
                .unwrap_or_default()
        };
        for c in &r.changes {
            println!(
                "{}  {} → {}  spam {:.2} toxic {:.2}  {}",
                c.comment_id,
                name(c.now),
                name(c.would),
                c.spam_score,
                c.toxic_score,
                c.reasons.join(", ")
            );
        }
        Ok(())
    })
}

/// `new-api-key` flags.
#[derive(Debug, Args)]
pub struct NewKeyArgs {
    /// Whose key (recorded as the actor in histories and the audit log).
    #[arg(long)]
    pub name: String,
    /// A role of the key: portal, moderator or ops (repeat the flag for several).
    #[arg(long = "role", required = true, value_parser = parse_role, value_name = "portal|moderator|ops")]
    pub roles: Vec<Role>,
}

fn parse_role(raw: &str) -> Result<Role, String> {
    Role::ALL
        .into_iter()
        .find(|r| r.name() == raw)
        .ok_or_else(|| "must be portal, moderator or ops".to_owned())
}

/// Prints a new key and the entry that configures it.
pub fn new_api_key(args: NewKeyArgs) -> Result<()> {
    if crate::review::Moderator::parse(&args.name).is_err() {
        bail!("--name must be 1 to 100 letters, digits and . _ - @");
    }
    let key = crate::auth::new_key().context("reading the system's random source")?;
    let roles: Vec<String> = args.roles.iter().map(|r| format!("\"{r}\"")).collect();
    println!("# Give this key to {} (it is shown once):", args.name);
    println!("#   {key}");
    println!("# and add this entry to the configuration:");
    println!("[[auth.keys]]");
    println!("name = \"{}\"", args.name);
    println!("roles = [{}]", roles.join(", "));
    println!("sha256 = \"{}\"", crate::auth::hash(&key));
    Ok(())
}

fn source_name(source: i32) -> &'static str {
    match pb::SettingSource::try_from(source) {
        Ok(pb::SettingSource::File) => "file",
        Ok(pb::SettingSource::Model) => "model",
        Ok(pb::SettingSource::Runtime) => "runtime",
        _ => "?",
    }
}

/// The settings as a table.
pub fn settings_table(s: &pb::Settings) -> String {
    let mut t = new_table(["KEY", "VALUE", "SOURCE", "SET BY", "SET AT (UTC)"]);
    for setting in &s.settings {
        t.add_row([
            setting.key.clone(),
            setting.value.clone(),
            source_name(setting.source).to_owned(),
            setting.set_by.clone(),
            setting
                .set_at
                .as_ref()
                .map(|at| when(at.seconds * 1000))
                .unwrap_or_default(),
        ]);
    }
    format!("settings version {}\n{t}\n", s.version)
}

/// Reads `KEY=VALUE` (or `KEY=@FILE`) into a change.
fn change(raw: &str) -> Result<pb::SettingChange> {
    let (key, value) = raw
        .split_once('=')
        .with_context(|| format!("{raw:?} is not KEY=VALUE"))?;
    let value = match value.strip_prefix('@') {
        Some(path) => {
            let path = PathBuf::from(path);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        }
        None => value.to_owned(),
    };
    Ok(pb::SettingChange {
        key: key.trim().to_owned(),
        value,
        reset: false,
    })
}

async fn admin(connection: &Connection) -> Result<AdminServiceClient<Client>> {
    Ok(AdminServiceClient::new(connection.connect().await?))
}

/// Runs a `settings` subcommand.
pub fn settings(args: SettingsArgs) -> Result<()> {
    runtime()?.block_on(async {
        let mut client = admin(&args.connection).await?;
        let out = match args.action {
            SettingsAction::Get => {
                let s = client
                    .get_settings(pb::GetSettingsRequest {})
                    .await
                    .map_err(explain)?
                    .into_inner();
                settings_table(&s)
            }
            SettingsAction::Set {
                changes,
                reset,
                version,
                note,
            } => {
                let mut all: Vec<pb::SettingChange> =
                    changes.iter().map(|c| change(c)).collect::<Result<_>>()?;
                all.extend(reset.into_iter().map(|key| pb::SettingChange {
                    key,
                    value: String::new(),
                    reset: true,
                }));
                let version = match version {
                    Some(v) => v,
                    None => {
                        client
                            .get_settings(pb::GetSettingsRequest {})
                            .await
                            .map_err(explain)?
                            .into_inner()
                            .version
                    }
                };
                let s = client
                    .update_settings(pb::UpdateSettingsRequest {
                        version,
                        changes: all,
                        note,
                    })
                    .await
                    .map_err(explain)?
                    .into_inner();
                settings_table(&s)
            }
            SettingsAction::History { limit } => {
                let records = client
                    .list_settings_audit(pb::ListSettingsAuditRequest { limit })
                    .await
                    .map_err(explain)?
                    .into_inner()
                    .records;
                let mut t = new_table(["VERSION", "WHEN (UTC)", "BY", "KEY", "OLD → NEW", "NOTE"]);
                for r in records {
                    for c in r.changes {
                        t.add_row([
                            r.version.to_string(),
                            r.at.map(|a| when(a.seconds * 1000)).unwrap_or_default(),
                            r.by.clone(),
                            c.key,
                            format!("{} → {}", c.old_value, c.new_value),
                            r.note.clone(),
                        ]);
                    }
                }
                format!("{t}\n")
            }
        };
        print!("{out}");
        Ok(())
    })
}

/// Runs a `models` subcommand.
pub fn models(args: ModelsArgs) -> Result<()> {
    runtime()?.block_on(async {
        let mut client = admin(&args.connection).await?;
        let out = match args.action {
            ModelsAction::List => {
                let models = client
                    .list_models(pb::ListModelsRequest {})
                    .await
                    .map_err(explain)?
                    .into_inner()
                    .models;
                let mut t = new_table([
                    "MODEL",
                    "IN FORCE",
                    "TRAINED (UTC)",
                    "THRESHOLDS",
                    "TRAINED ON / ERROR",
                ]);
                for m in models {
                    let role = match (m.active, m.shadow) {
                        (true, _) => "active",
                        (_, true) => "shadow",
                        _ => "",
                    };
                    t.add_row([
                        m.name,
                        role.to_owned(),
                        m.trained_at,
                        format!(
                            "{:.2} / {:.2} / {:.2}",
                            m.recommended_accept_below,
                            m.recommended_reject_at,
                            m.recommended_review_toxic_at
                        ),
                        if m.error.is_empty() {
                            m.trained_on.join(", ")
                        } else {
                            m.error
                        },
                    ]);
                }
                format!("{t}\n")
            }
            ModelsAction::Activate { name, note } => {
                let s = client
                    .activate_model(pb::ActivateModelRequest {
                        name: name.clone(),
                        version: 0,
                        note,
                    })
                    .await
                    .map_err(explain)?
                    .into_inner();
                format!("{name} is active (settings version {})\n", s.version)
            }
            ModelsAction::Rollback { note } => {
                let s = client
                    .rollback_model(pb::RollbackModelRequest { note, version: 0 })
                    .await
                    .map_err(explain)?
                    .into_inner();
                let active = s
                    .settings
                    .iter()
                    .find(|x| x.key == "model.active")
                    .map(|x| x.value.clone())
                    .unwrap_or_default();
                format!(
                    "{active} is active again (settings version {})\n",
                    s.version
                )
            }
            ModelsAction::Shadow { name, off } => {
                let value = if off {
                    String::new()
                } else {
                    name.unwrap_or_default()
                };
                let version = client
                    .get_settings(pb::GetSettingsRequest {})
                    .await
                    .map_err(explain)?
                    .into_inner()
                    .version;
                let s = client
                    .update_settings(pb::UpdateSettingsRequest {
                        version,
                        changes: vec![pb::SettingChange {
                            key: "model.shadow".into(),
                            value: value.clone(),
                            reset: false,
                        }],
                        note: String::new(),
                    })
                    .await
                    .map_err(explain)?
                    .into_inner();
                if value.is_empty() {
                    format!("no candidate model (settings version {})\n", s.version)
                } else {
                    format!(
                        "{value} is scored in shadow (settings version {})\n",
                        s.version
                    )
                }
            }
        };
        print!("{out}");
        Ok(())
    })
}

/// Runs `stats`.
pub fn stats(args: StatsArgs) -> Result<()> {
    runtime()?.block_on(async {
        let mut client = admin(&args.connection).await?;
        let s = client
            .get_stats(pb::GetStatsRequest {})
            .await
            .map_err(explain)?
            .into_inner();
        print!("{}", stats_table(&s));
        Ok(())
    })
}

/// `health`: SERVING or not, from the server's gRPC health service.
pub fn health(args: StatsArgs) -> Result<()> {
    runtime()?.block_on(async {
        let channel = args.connection.connect().await?;
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        let answer = client
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .map_err(explain)?
            .into_inner();
        let status = answer.status();
        println!("{}", status.as_str_name());
        anyhow::ensure!(
            status == tonic_health::pb::health_check_response::ServingStatus::Serving,
            "the server is not serving"
        );
        Ok(())
    })
}

/// Statistics as a table.
pub fn stats_table(s: &pb::GetStatsResponse) -> String {
    let mut names: Vec<&str> = s
        .last_hour
        .iter()
        .chain(&s.last_day)
        .map(|c| c.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let count = |list: &[pb::Count], name: &str| {
        list.iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.count)
            .to_string()
    };
    let mut t = new_table(["COUNT", "LAST HOUR", "LAST DAY"]);
    for name in names {
        t.add_row([
            name.to_owned(),
            count(&s.last_hour, name),
            count(&s.last_day, name),
        ]);
    }
    format!(
        "{t}\nwaiting for moderators: {}\naccepted, not yet read by the portal: {}\nsettings version {}, model {}{}\n",
        s.flagged,
        s.accepted_unread,
        s.settings_version,
        s.active_model,
        if s.shadow_model.is_empty() {
            String::new()
        } else {
            format!(" (candidate in shadow: {})", s.shadow_model)
        }
    )
}
