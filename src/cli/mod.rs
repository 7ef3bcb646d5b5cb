//! The command line: one binary, one subcommand per job. Each subcommand parses its flags and
//! calls into the library; nothing here decides anything a test would need to check.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::classifier::features::{FeatureSettings, Lexicon};
use crate::classifier::linear::SgdSettings;
use crate::classifier::model::ModelInfo;
use crate::classifier::train::TrainSettings;
use crate::classifier::{Model, batch, corpus, evaluate, train};
use crate::config::{Config, LogFormat, Overrides};
use crate::server::{App, shutdown_signal};

mod client;
mod ops;
mod readers;
mod review;

/// Comment moderation for news portals.
#[derive(Debug, Parser)]
#[command(name = "moderation", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC service.
    Serve(ServeArgs),
    /// Train a model from labeled JSON Lines and save it.
    Train(TrainArgs),
    /// Score a labeled set with a model and print precision, recall, F1, ROC-AUC per source,
    /// calibration and a threshold table.
    Evaluate(EvaluateArgs),
    /// Score comments in bulk: one JSON line in, one JSON line out.
    Classify(ClassifyArgs),
    /// Work the review queue of a running server (for moderators).
    Review(review::ReviewArgs),
    /// Look readers up and set their standing: trusted, pre-moderated, suspended, banned (for
    /// moderators).
    Readers(readers::ReadersArgs),
    /// Write moderators' decisions as labeled corpus records (JSON Lines) for `train`.
    ExportFeedback(ExportFeedbackArgs),
    /// Read and change the runtime settings of a running server (for operators).
    Settings(ops::SettingsArgs),
    /// List, activate and roll back model versions on a running server (for operators).
    Models(ops::ModelsArgs),
    /// Outcome counts over the last hour and day, and the queues (for operators).
    Stats(ops::StatsArgs),
    /// Score the held comments (and the last days' published ones) again with the model and
    /// lists in force, and say which would now be decided otherwise (for operators).
    Rescan(ops::RescanArgs),
    /// Asks a running server's gRPC health service; exits 0 when it is SERVING (container and
    /// orchestrator health checks).
    Health(ops::StatsArgs),
    /// Make an API key: prints the key once and the configuration entry with its hash.
    NewApiKey(ops::NewKeyArgs),
    /// The embedded store: `store copy --to redis://...` moves it into Redis (for several
    /// instances). Run it while the service is stopped.
    Store(StoreArgs),
}

/// `store` subcommands.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// What `store` does.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the embedded store (store.path) into an empty Redis prefix: comments, the queue and
    /// its claims, histories, the streams, decisions, settings and their audit.
    Copy {
        /// The Redis to copy into.
        #[arg(long)]
        to: String,
        /// A TOML configuration file (store.path, redis.prefix).
        #[arg(long, env = "MODERATION_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// `serve` flags (each overrides the configuration file and the environment).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML configuration file (see README); settings it leaves out keep their defaults.
    #[arg(long, env = "MODERATION_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on (server.listen).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Redis URL (redis.url).
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Model file (classifier.model).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

/// `train` flags.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Labeled corpus files (JSON Lines).
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Where to write the model (e.g. `models/vi-en-2026-11-27.model`); its file stem becomes
    /// the model's version name.
    #[arg(long)]
    pub out: PathBuf,
    /// A labeled development set to report figures on after training.
    #[arg(long)]
    pub dev: Option<PathBuf>,
    /// Offensive-word list (one word or phrase per line), saved into the model.
    #[arg(long, default_value = "../shared/data/lexicons/vi-badwords.txt")]
    pub lexicon: PathBuf,
    /// Size of the hashed feature space, as a power of two (10 to 26).
    #[arg(long, default_value_t = FeatureSettings::default().hash_bits,
          value_parser = clap::value_parser!(u8).range(10..=26))]
    pub hash_bits: u8,
    /// Passes over the training data.
    #[arg(long, default_value_t = SgdSettings::default().epochs)]
    pub epochs: usize,
    /// Base learning rate of the sparse models.
    #[arg(long, default_value_t = SgdSettings::default().learning_rate)]
    pub learning_rate: f32,
    /// L2 penalty of the sparse models.
    #[arg(long, default_value_t = SgdSettings::default().l2)]
    pub l2: f32,
    /// Weight of a positive row's loss relative to a negative row's.
    #[arg(long, default_value_t = SgdSettings::default().positive_weight)]
    pub positive_weight: f32,
    /// Blend of naive-Bayes feature scaling (0 = none, 1 = full NB-SVM).
    #[arg(long, default_value_t = SgdSettings::default().nb_blend)]
    pub nb_blend: f32,
    /// Folds for the out-of-fold scores the calibration is fitted on.
    #[arg(long, default_value_t = TrainSettings::default().folds)]
    pub folds: usize,
    /// Ignore the `author` field.
    #[arg(long)]
    pub no_author: bool,
    /// Shortest character n-gram (1 to 8).
    #[arg(long, default_value_t = FeatureSettings::default().char_min,
          value_parser = clap::value_parser!(u8).range(1..=8))]
    pub char_min: u8,
    /// Longest character n-gram (1 to 8).
    #[arg(long, default_value_t = FeatureSettings::default().char_max,
          value_parser = clap::value_parser!(u8).range(1..=8))]
    pub char_max: u8,
    /// Ignore features found in fewer training rows than this.
    #[arg(long, default_value_t = FeatureSettings::default().min_rows)]
    pub min_rows: u32,
}

/// `evaluate` flags.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// A labeled set (JSON Lines).
    #[arg(long)]
    pub data: PathBuf,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `classify` flags.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// The model file; the configured one (classifier.model, MODERATION_CLASSIFIER__MODEL)
    /// when absent.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Input JSON Lines with a `text` field (and optionally `author`); standard input if absent.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Where to write the answers; standard output if absent.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Reasons to give per head.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
}

/// `export-feedback` flags.
#[derive(Debug, Args)]
pub struct ExportFeedbackArgs {
    /// Decisions made at or after this time: a date (`2026-11-01`, UTC), a timestamp
    /// (`2026-11-01T08:00:00+07:00`) or a span back from now (`7days`, `36h`).
    #[arg(long)]
    pub since: String,
    /// Where to write the records; standard output if absent.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A TOML configuration file (its `[redis]` section says where the decisions are).
    #[arg(long, env = "MODERATION_CONFIG")]
    pub config: Option<PathBuf>,
    /// Redis URL (redis.url).
    #[arg(long)]
    pub redis_url: Option<String>,
}

/// Reads `--since`: a date (midnight UTC), a timestamp with its offset, or a span back from
/// `now`. Returns Unix milliseconds.
pub fn parse_since(raw: &str, now: jiff::Timestamp) -> Result<i64> {
    let raw = raw.trim();
    if let Ok(t) = raw.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    if let Ok(date) = raw.parse::<jiff::civil::Date>() {
        return Ok(date
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)?
            .timestamp()
            .as_millisecond());
    }
    if let Ok(span) = humantime::parse_duration(raw) {
        let back = i64::try_from(span.as_millis()).unwrap_or(i64::MAX);
        return Ok(now.as_millisecond().saturating_sub(back));
    }
    anyhow::bail!(
        "--since {raw:?} is neither a date (2026-11-01), a timestamp (2026-11-01T08:00:00Z) \
         nor a span (7days)"
    )
}

/// Runs a parsed command line; errors are printed with their causes.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => run_serve(args),
        Command::Train(args) => run_train(args),
        Command::Evaluate(args) => run_evaluate(args),
        Command::Classify(args) => run_classify(args),
        Command::Review(command) => review::run(command),
        Command::Readers(args) => readers::run(args),
        Command::ExportFeedback(args) => run_export_feedback(args),
        Command::Store(args) => run_store(args),
        Command::Settings(args) => ops::settings(args),
        Command::Models(args) => ops::models(args),
        Command::Stats(args) => ops::stats(args),
        Command::Rescan(args) => ops::rescan(args),
        Command::Health(args) => ops::health(args),
        Command::NewApiKey(args) => ops::new_api_key(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_serve(args: ServeArgs) -> Result<()> {
    let overrides = Overrides {
        listen: args.listen,
        redis_url: args.redis_url,
        model: args.model,
    };
    let config = Config::load(args.config.as_deref(), &overrides)?;
    // Held until the server stops: dropping it writes out the lines still buffered.
    let _logs = init_logging(config.server.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listen = config.server.listen;
        let app = App::build(config)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen} (server.listen)"))?;
        app.run(listener, shutdown_signal()).await
    })
}

/// Lines of log the writer thread may be behind before new ones are dropped (and counted).
const LOG_BUFFER_LINES: usize = 64 * 1024;

/// Structured logs on standard error; `RUST_LOG` filters (default `info`). Lines go through a
/// buffer to a writer thread of their own, so a slow or blocked standard error never stalls a
/// request: when the buffer is full, lines are dropped rather than waited for, and the
/// `log_lines_dropped_total` metric counts them. The guard writes out what is buffered when
/// dropped.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .lossy(true)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    // Colours only for a terminal: a file or a journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    crate::metrics::count_dropped_log_lines(writer.error_counter());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}

fn run_train(args: TrainArgs) -> Result<()> {
    let mut records = Vec::new();
    let mut trained_on = Vec::new();
    for path in &args.data {
        let part = corpus::read(path)?;
        eprintln!("read {} records from {}", part.len(), path.display());
        trained_on.push(format!(
            "{} ({} records)",
            path.file_name().unwrap_or_default().to_string_lossy(),
            part.len()
        ));
        records.extend(part);
    }
    let lexicon_text = std::fs::read_to_string(&args.lexicon)
        .with_context(|| format!("reading the lexicon {}", args.lexicon.display()))?;
    let lexicon = Lexicon::new(lexicon_text.lines());
    eprintln!("lexicon: {} entries", lexicon.len());
    let sgd = SgdSettings {
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        l2: args.l2,
        positive_weight: args.positive_weight,
        nb_blend: args.nb_blend,
        ..SgdSettings::default()
    };
    let settings = TrainSettings {
        features: FeatureSettings {
            hash_bits: args.hash_bits,
            use_author: !args.no_author,
            char_min: args.char_min,
            char_max: args.char_max,
            min_rows: args.min_rows,
            ..FeatureSettings::default()
        },
        spam: sgd,
        toxic: SgdSettings { seed: 11, ..sgd },
        folds: args.folds,
        ..TrainSettings::default()
    };
    let info = ModelInfo {
        name: model_name(&args.out)?,
        trained_at: jiff::Timestamp::now().to_string(),
        trained_on,
    };
    let model = train::train(&records, lexicon, &settings, info, &|line| {
        eprintln!("{line}")
    })?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    model.save(&args.out)?;
    eprintln!("saved {}", args.out.display());
    if let Some(dev) = &args.dev {
        let records = corpus::read(dev)?;
        let report = evaluate::evaluate(&model, &records);
        println!("{}", evaluate::render(&report));
    }
    Ok(())
}

/// The version name of a model written to `path`: its file stem.
fn model_name(path: &Path) -> Result<String> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .context("--out needs a file name")?;
    Ok(stem)
}

fn run_evaluate(args: EvaluateArgs) -> Result<()> {
    let model = Model::load(&args.model)?;
    let records = corpus::read(&args.data)?;
    let report = evaluate::evaluate(&model, &records);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", evaluate::render(&report));
    }
    Ok(())
}

fn run_classify(args: ClassifyArgs) -> Result<()> {
    let path = match &args.model {
        Some(path) => path.clone(),
        None => Config::load(None, &Overrides::default())?.classifier.model,
    };
    let model = Model::load(&path)?;
    let input: Box<dyn std::io::BufRead> = match &args.input {
        Some(path) => Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let output: Box<dyn std::io::Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let started = std::time::Instant::now();
    let summary = batch::classify(&model, input, output, args.top)?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "classified {} lines ({} errors) in {:.2}s: {:.0} comments/s",
        summary.lines,
        summary.errors,
        seconds,
        summary.lines as f64 / seconds.max(1e-9)
    );
    Ok(())
}

fn run_store(args: StoreArgs) -> Result<()> {
    let StoreCommand::Copy { to, config } = args.command;
    let config = Config::load(config.as_deref(), &Overrides::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let from = crate::store::sqlite::SqliteStore::open(&config.store.path)
            .context("opening the embedded store (store.path); stop the service first")?;
        let settings = config
            .redis
            .clone()
            .single_node(crate::store::redis::RedisUrl::new(to));
        let target = settings.url.to_string();
        let into = crate::store::redis::RedisStore::new(settings, std::time::Duration::from_secs(30))?;
        let dump = from.dump().await?;
        let copied = into
            .import(&dump)
            .await
            .with_context(|| format!("copying into {target}"))?;
        println!(
            "copied {} comments, {} stream entries, {} history events and {} settings audit records from {} into {target}",
            copied.comments,
            copied.stream_entries,
            copied.history_events,
            copied.audit_records,
            from.path().display()
        );
        println!("now run the service with --redis-url (or store.backend = \"redis\")");
        Ok(())
    })
}

fn run_export_feedback(args: ExportFeedbackArgs) -> Result<()> {
    let since = parse_since(&args.since, jiff::Timestamp::now())?;
    let overrides = Overrides {
        redis_url: args.redis_url,
        ..Overrides::default()
    };
    let config = Config::load(args.config.as_deref(), &overrides)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // The embedded store is read beside a running service, without its lock.
    let feedback = if config.store.backend == crate::config::Backend::Embedded {
        crate::store::sqlite::SqliteStore::read_feedback(&config.store.path, since)?
    } else {
        // Opened inside the runtime: the Redis client starts its connection task there.
        runtime.block_on(async {
            let storage = crate::server::Storage::open(&config)?;
            storage
                .review()
                .feedback(since)
                .await
                .with_context(|| format!("reading decisions from {}", storage.describe()))
        })?
    };
    let decisions = feedback.len();
    let examples = crate::review::training_examples(feedback);
    let mut output: Box<dyn std::io::Write> = match &args.out {
        Some(path) => Box::new(BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    for record in &examples {
        serde_json::to_writer(&mut output, record)?;
        output.write_all(b"\n")?;
    }
    output.flush()?;
    eprintln!(
        "{} labeled examples from {decisions} decisions since {}",
        examples.len(),
        jiff::Timestamp::from_millisecond(since)?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_dates_timestamps_and_spans() {
        let now: jiff::Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let at = |s: &str| jiff::Timestamp::from_millisecond(parse_since(s, now).unwrap()).unwrap();
        assert_eq!(at("2026-11-01").to_string(), "2026-11-01T00:00:00Z");
        assert_eq!(
            at("2026-11-01T08:00:00+07:00").to_string(),
            "2026-11-01T01:00:00Z"
        );
        assert_eq!(at("7days").to_string(), "2026-11-20T12:00:00Z");
        assert_eq!(at("36h").to_string(), "2026-11-26T00:00:00Z");
        assert!(parse_since("last tuesday", now).is_err());
    }
}
