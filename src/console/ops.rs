//! The operators' page: the thresholds over the score distributions of recent traffic, the
//! split they give and the split a change would give (the what-if, decided by the decision
//! function itself on the same comments), applied as a versioned settings update with a note;
//! the settings audit; models (activate, roll back, shadow agreement); the hour and day
//! statistics; the block and allow lists.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Form, Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::view::{self, Lang};
use super::{Console, lang};
use crate::auth::Role;
use crate::decide::Thresholds;
use crate::settings::Change;
use crate::settings::admin::AdminError;
use crate::traffic::{self, Split};

/// Bins of the score charts.
const BINS: usize = 20;

/// Candidate thresholds, as the what-if and the preview carry them (any left out: the
/// current value).
#[derive(Debug, Default, Deserialize)]
pub struct Candidate {
    accept_below: Option<f32>,
    reject_at: Option<f32>,
    review_toxic_at: Option<f32>,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    v: Option<u64>,
}

impl Candidate {
    fn over(&self, now: &Thresholds) -> Thresholds {
        Thresholds {
            accept_below: self.accept_below.unwrap_or(now.accept_below),
            reject_at: self.reject_at.unwrap_or(now.reject_at),
            review_toxic_at: self.review_toxic_at.unwrap_or(now.review_toxic_at),
        }
    }
}

fn split_json(s: &Split) -> serde_json::Value {
    serde_json::json!({ "accepted": s.accepted, "held": s.held, "rejected": s.rejected })
}

/// `GET /api/whatif`: the split of recent traffic now and under the candidate thresholds.
pub async fn whatif(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    UrlQuery(candidate): UrlQuery<Candidate>,
) -> Response {
    if let Err(r) = console.page_session(&headers, Role::Ops) {
        return *r;
    }
    let in_force = console.admin.in_force();
    let t = &in_force.effective.tunables;
    let next = candidate.over(&t.thresholds);
    let samples = console.recent.samples();
    let now = traffic::split(&samples, &t.thresholds, &console.bots, t.decision_shadow);
    let then = traffic::split(&samples, &next, &console.bots, t.decision_shadow);
    let problems: Vec<String> = next
        .problems()
        .into_iter()
        .map(|(k, p)| format!("{k} {p}"))
        .collect();
    Json(serde_json::json!({
        "total": samples.len(),
        "now": split_json(&now),
        "candidate": split_json(&then),
        "problems": problems,
    }))
    .into_response()
}

fn split_cells(s: &Split, id: &str) -> Markup {
    let pct = |n: usize| {
        if s.total() == 0 {
            "(–)".to_owned()
        } else {
            format!("({:.1} %)", n as f64 * 100.0 / s.total() as f64)
        }
    };
    html! {
        @for (name, n) in [("accepted", s.accepted), ("held", s.held), ("rejected", s.rejected)] {
            td { span id={ (id) "-" (name) } { (n) } " " span.pct id={ (id) "-" (name) "-pct" } { (pct(n)) } }
        }
    }
}

fn threshold_inputs(lang: Lang, t: &Thresholds) -> Markup {
    html! {
        @for (name, value) in [("accept_below", t.accept_below), ("reject_at", t.reject_at), ("review_toxic_at", t.review_toxic_at)] {
            label.threshold {
                span { (lang.t(name)) }
                input type="range" min="0" max="1" step="0.01" data-mirror=(name) value=(format!("{value:.2}"));
                input.whatif type="number" min="0" max="1" step="0.01" name=(name) id=(name) value=(format!("{value:.2}"));
            }
        }
    }
}

/// `GET /ops`: the operators' page (with `?accept_below=…` a preview of those thresholds).
pub async fn page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    UrlQuery(candidate): UrlQuery<Candidate>,
) -> Response {
    let session = match console.page_session(&headers, Role::Ops) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    render(
        &console,
        &session,
        lang(&headers),
        &candidate,
        None,
        StatusCode::OK,
    )
    .await
}

async fn render(
    console: &Console,
    session: &super::session::Session,
    lang: Lang,
    candidate: &Candidate,
    problem: Option<String>,
    status: StatusCode,
) -> Response {
    let effective = match console.admin.get().await {
        Ok(e) => e,
        Err(_) => console.admin.in_force().effective.clone(),
    };
    let t = &effective.tunables;
    let next = candidate.over(&t.thresholds);
    let samples = console.recent.samples();
    let now = traffic::split(&samples, &t.thresholds, &console.bots, t.decision_shadow);
    let then = traffic::split(&samples, &next, &console.bots, t.decision_shadow);
    let spam = traffic::histogram(&samples, BINS, |s| s.spam);
    let toxic = traffic::histogram(&samples, BINS, |s| s.toxic);
    let audit = console.admin.audit(20).await.unwrap_or_default();
    let models = console.admin.models().await;
    let stats = console.admin.stats().await.ok();
    let saved = (candidate.msg == "saved").then_some(candidate.v).flatten();
    let body = html! {
        @if let Some(v) = saved { p.notice role="status" { (lang.t("saved")) " " (v) } }
        @if let Some(p) = &problem { p.error role="alert" { (p) } }
        section.thresholds {
            h1 { (lang.t("thresholds")) }
            p { (lang.t("recent_traffic")) ": " span #total { (samples.len()) } " " (lang.t("comments_n"))
                @if samples.is_empty() { " — " (lang.t("nothing_recent")) } }
            div.charts {
                figure {
                    figcaption { (lang.t("spam_scores")) }
                    (view::histogram_svg(&spam, &[
                        (t.thresholds.accept_below, "t-now", "accept_below"),
                        (t.thresholds.reject_at, "t-now", "reject_at"),
                        (next.accept_below, "t-new", "accept_below"),
                        (next.reject_at, "t-new", "reject_at"),
                    ], lang.t("spam_scores")))
                }
                figure {
                    figcaption { (lang.t("toxic_scores")) }
                    (view::histogram_svg(&toxic, &[
                        (t.thresholds.review_toxic_at, "t-now", "review_toxic_at"),
                        (next.review_toxic_at, "t-new", "review_toxic_at"),
                    ], lang.t("toxic_scores")))
                }
            }
            form #thresholds method="post" action="/ops/settings" {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="version" value=(effective.version);
                (threshold_inputs(lang, &next))
                table.split {
                    thead { tr { th {} th { (lang.t("published")) } th { (lang.t("held")) } th { (lang.t("rejected")) } } }
                    tbody {
                        tr { th { (lang.t("now")) } (split_cells(&now, "now")) }
                        tr { th { (lang.t("if_applied")) } (split_cells(&then, "whatif")) }
                    }
                }
                p #whatif-problems.error {}
                label { (lang.t("note")) input name="note" maxlength="500"; }
                button type="submit" formmethod="get" formaction="/ops" { (lang.t("preview")) }
                button #apply type="submit" { (lang.t("apply")) }
            }
        }
        (models_section(lang, session, effective.version, &models, stats.as_ref()))
        (lists_section(lang, session, effective.version, &t.lists))
        (stats_section(lang, stats.as_ref()))
        (dead_letters_section(lang, &console.webhooks.dead_letters()))
        section.audit {
            h2 { (lang.t("audit")) }
            table {
                thead { tr { th { (lang.t("version")) } th { (lang.t("by")) } th { (lang.t("when")) } th { (lang.t("note")) } th { (lang.t("changes")) } } }
                tbody { @for a in &audit {
                    tr { td { (a.version) } td { (a.by) } td { (view::time(a.at_ms)) } td { (a.note) }
                         td { @for c in &a.changes { div { code { (c.key) } ": " (c.old) " → " (c.new) } } } }
                } }
            }
        }
    };
    let page = view::page(lang, lang.t("ops"), Some(session), &[], body);
    (status, page).into_response()
}

fn models_section(
    lang: Lang,
    session: &super::session::Session,
    version: u64,
    models: &[crate::settings::admin::ModelListing],
    stats: Option<&crate::settings::store::Stats>,
) -> Markup {
    let tally = |name: &str| {
        stats
            .and_then(|s| s.last_day.get(name).copied())
            .unwrap_or(0)
    };
    let (same, different) = (tally("model_shadow_same"), tally("model_shadow_different"));
    html! {
        section.models {
            h2 { (lang.t("models")) }
            table {
                tbody { @for m in models {
                    tr {
                        td { code { (m.name) } }
                        td { @if m.active { strong { (lang.t("active")) } } @if m.shadow { " " (lang.t("shadow")) } }
                        td { @if let Some(e) = &m.error { span.error { (e) } } }
                        td { @if !m.active && m.error.is_none() {
                            form method="post" action="/ops/models/activate" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                input type="hidden" name="version" value=(version);
                                input type="hidden" name="name" value=(m.name);
                                button type="submit" { (lang.t("activate")) }
                            }
                        } }
                    }
                } }
            }
            @if same + different > 0 {
                p { (lang.t("agreement")) ": " (format!("{:.1} %", same as f64 * 100.0 / (same + different) as f64)) " (" (same) "/" (same + different) ")" }
            }
            form method="post" action="/ops/models/rollback" {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="version" value=(version);
                button type="submit" { (lang.t("rollback")) }
            }
        }
    }
}

/// The lists the page edits: (key, field name).
const LISTS: [&str; 8] = [
    "blocked_words",
    "allowed_words",
    "blocked_link_domains",
    "allowed_link_domains",
    "blocked_ips",
    "allowed_ips",
    "blocked_email_domains",
    "allowed_email_domains",
];

fn list_value(lists: &crate::settings::lists::ListSettings, name: &str) -> String {
    let v = match name {
        "blocked_words" => &lists.blocked_words,
        "allowed_words" => &lists.allowed_words,
        "blocked_link_domains" => &lists.blocked_link_domains,
        "allowed_link_domains" => &lists.allowed_link_domains,
        "blocked_ips" => &lists.blocked_ips,
        "allowed_ips" => &lists.allowed_ips,
        "blocked_email_domains" => &lists.blocked_email_domains,
        _ => &lists.allowed_email_domains,
    };
    v.join("\n")
}

fn lists_section(
    lang: Lang,
    session: &super::session::Session,
    version: u64,
    lists: &crate::settings::lists::ListSettings,
) -> Markup {
    html! {
        section.lists {
            h2 { (lang.t("lists")) }
            form method="post" action="/ops/lists" {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="version" value=(version);
                div.lists-grid {
                    @for name in LISTS {
                        label { code { (name) } textarea name=(name) rows="4" { (list_value(lists, name)) } }
                    }
                }
                label { input type="checkbox" name="block_disposable_email" value="true" checked[lists.block_disposable_email]; code { "block_disposable_email" } }
                label { (lang.t("note")) input name="note" maxlength="500"; }
                button type="submit" { (lang.t("save_lists")) }
            }
        }
    }
}

fn stats_section(lang: Lang, stats: Option<&crate::settings::store::Stats>) -> Markup {
    let Some(s) = stats else {
        return html! {};
    };
    let rows = |m: &std::collections::BTreeMap<String, u64>| -> Vec<(String, u64)> {
        m.iter().map(|(k, v)| (k.clone(), *v)).collect()
    };
    html! {
        section.stats {
            h2 { (lang.t("stats")) }
            div.charts {
                figure { figcaption { (lang.t("last_hour")) } (view::bars_svg(&rows(&s.last_hour), lang.t("last_hour"))) }
                figure { figcaption { (lang.t("last_day")) } (view::bars_svg(&rows(&s.last_day), lang.t("last_day"))) }
            }
            p { (lang.t("queue")) ": " (s.flagged) }
        }
    }
}

fn dead_letters_section(lang: Lang, dead: &[crate::webhooks::DeadLetter]) -> Markup {
    html! {
        section.webhooks {
            h2 { (lang.t("dead_letters")) " (" (dead.len()) ")" }
            @if !dead.is_empty() {
                table {
                    thead { tr { th { "webhook" } th { (lang.t("when")) } th { "event" } th { (lang.t("attempts")) } th { (lang.t("error")) } } }
                    tbody { @for d in dead.iter().take(50) {
                        tr { td { (d.webhook) } td { (view::time(d.at_ms)) } td { code { (d.kind) } " " (d.event_id) } td { (d.attempts) } td { (d.error) } }
                    } }
                }
            }
        }
    }
}

/// The thresholds form.
#[derive(Deserialize)]
pub struct Apply {
    #[serde(default)]
    csrf: String,
    version: u64,
    accept_below: f32,
    reject_at: f32,
    review_toxic_at: f32,
    #[serde(default)]
    note: String,
}

/// What an update's refusal says on the page (a stale one: the page shows the latest).
fn refused(lang: Lang, e: &AdminError) -> (StatusCode, String) {
    match e {
        AdminError::Stale { .. } => (StatusCode::CONFLICT, lang.t("stale_settings").to_owned()),
        AdminError::Invalid(v) => (
            StatusCode::BAD_REQUEST,
            v.iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        AdminError::NoEarlierModel => (StatusCode::CONFLICT, e.to_string()),
        AdminError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn update(
    console: &Console,
    headers: &HeaderMap,
    csrf: &str,
    version: u64,
    changes: Vec<Change>,
    note: &str,
) -> Response {
    let session = match console.page_session(headers, Role::Ops) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Err(r) = Console::form_csrf(&session, csrf) {
        return r.into_response();
    }
    let lang = lang(headers);
    if changes.is_empty() {
        return Redirect::to("/ops").into_response();
    }
    let answer = console
        .admin
        .update(version, &changes, &session.caller.name, note)
        .await;
    finish(console, &session, lang, answer).await
}

async fn finish(
    console: &Console,
    session: &super::session::Session,
    lang: Lang,
    answer: Result<crate::settings::Effective, AdminError>,
) -> Response {
    match answer {
        Ok(e) => Redirect::to(&format!("/ops?msg=saved&v={}", e.version)).into_response(),
        Err(e) => {
            let (status, message) = refused(lang, &e);
            render(
                console,
                session,
                lang,
                &Candidate::default(),
                Some(message),
                status,
            )
            .await
        }
    }
}

/// `POST /ops/settings`: the thresholds that differ from those in force, as one update.
pub async fn apply(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<Apply>,
) -> Response {
    let t = console.admin.in_force().effective.tunables.thresholds;
    let mut changes = Vec::new();
    for (key, now, new) in [
        ("decision.accept_below", t.accept_below, form.accept_below),
        ("decision.reject_at", t.reject_at, form.reject_at),
        (
            "decision.review_toxic_at",
            t.review_toxic_at,
            form.review_toxic_at,
        ),
    ] {
        if (now - new).abs() > 1e-6 {
            changes.push(Change::Set {
                key: key.to_owned(),
                value: new.to_string(),
            });
        }
    }
    update(
        &console,
        &headers,
        &form.csrf,
        form.version,
        changes,
        &form.note,
    )
    .await
}

/// `POST /ops/lists`: the lists that changed, as one update. (The form's fields are read as a
/// map: its list fields are named after the lists.)
pub async fn lists(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let Ok(version) = field("version").parse::<u64>() else {
        return (
            StatusCode::BAD_REQUEST,
            "version: must be the settings' version",
        )
            .into_response();
    };
    let current = console.admin.in_force().effective.tunables.lists.clone();
    let mut changes = Vec::new();
    for name in LISTS {
        let given = field(name);
        let items: Vec<&str> = crate::settings::list_items(given).collect();
        if items.join("\n") != list_value(&current, name) {
            changes.push(Change::Set {
                key: format!("lists.{name}"),
                value: items.join("\n"),
            });
        }
    }
    let disposable = form.contains_key("block_disposable_email");
    if disposable != current.block_disposable_email {
        changes.push(Change::Set {
            key: "lists.block_disposable_email".into(),
            value: disposable.to_string(),
        });
    }
    update(
        &console,
        &headers,
        field("csrf"),
        version,
        changes,
        field("note"),
    )
    .await
}

/// The activate form.
#[derive(Deserialize)]
pub struct Activate {
    #[serde(default)]
    csrf: String,
    version: u64,
    name: String,
}

/// `POST /ops/models/activate`.
pub async fn activate(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<Activate>,
) -> Response {
    let change = vec![Change::Set {
        key: "model.active".into(),
        value: form.name.clone(),
    }];
    update(&console, &headers, &form.csrf, form.version, change, "").await
}

/// The rollback form.
#[derive(Deserialize)]
pub struct Rollback {
    #[serde(default)]
    csrf: String,
    version: u64,
}

/// `POST /ops/models/rollback`.
pub async fn rollback(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<Rollback>,
) -> Response {
    let session = match console.page_session(&headers, Role::Ops) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Err(r) = Console::form_csrf(&session, &form.csrf) {
        return r.into_response();
    }
    let answer = console
        .admin
        .rollback(form.version, &session.caller.name, "")
        .await;
    finish(&console, &session, lang(&headers), answer).await
}
