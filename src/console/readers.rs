//! The reader panel: a reader's standing, what their latest comments became, and the form that
//! sets or lifts a standing ("ban and reject all" included). Reached from a comment's page.

use std::sync::Arc;

use axum::extract::{Form, Path, Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::view::{self, Lang};
use super::{Console, lang};
use crate::auth::Role;
use crate::readers::desk::Profile;
use crate::readers::{ReaderId, Standing};
use crate::review::Moderator;

/// What the page says after a change.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    rejected: Option<usize>,
    #[serde(default)]
    down: Option<usize>,
    #[serde(default)]
    left: Option<usize>,
}

/// The form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct StandingForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    standing: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    reject_all: Option<String>,
}

fn standing_name(lang: Lang, s: Option<Standing>) -> &'static str {
    lang.t(match s {
        None => "standing_none",
        Some(Standing::Trusted) => "standing_trusted",
        Some(Standing::Premoderated) => "standing_premoderated",
        Some(Standing::Suspended) => "standing_suspended",
        Some(Standing::Banned) => "standing_banned",
    })
}

/// `GET /readers/{id}`.
pub async fn page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    UrlQuery(done): UrlQuery<Done>,
) -> Response {
    let session = match console.page_session(&headers, Role::Moderator) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let lang = lang(&headers);
    let Ok(id) = ReaderId::parse("reader_id", &id) else {
        return (StatusCode::NOT_FOUND, "no such reader").into_response();
    };
    match console.desk.profile(id, console.deadline()).await {
        Ok(profile) => {
            let body = panel(lang, &session, &profile, &done, None);
            view::page(lang, lang.t("reader"), Some(&session), &[], body).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

fn panel(
    lang: Lang,
    session: &super::session::Session,
    p: &Profile,
    done: &Done,
    problem: Option<&str>,
) -> maud::Markup {
    let now = jiff::Timestamp::now().as_millisecond();
    let current = p.status.as_ref().map(|(s, _, _)| s.standing);
    let h = &p.history;
    html! {
        h1 { (lang.t("reader")) " " code { (p.id.to_string()) } }
        @if let Some(rejected) = done.rejected {
            p.notice { (lang.t("swept")) ": " (rejected) " " (lang.t("rejected_n")) ", "
                (done.down.unwrap_or(0)) " " (lang.t("taken_down_n"))
                @if let Some(left) = done.left.filter(|l| *l > 0) { ", " (left) " " (lang.t("left_n")) } }
        }
        @if let Some(problem) = problem { p.problem { (problem) } }
        p.standing { (lang.t("standing")) ": " strong #standing { (standing_name(lang, current)) }
            @if let Some((s, by, at)) = &p.status {
                @if let Some(until) = s.until_ms { " " (lang.t("until")) " " (view::time(until)) }
                @if !s.in_force(now) { " (" (lang.t("ended")) ")" }
                @if !s.reason.is_empty() { " · " (s.reason) }
                " · " (by) " · " (view::time(*at))
            }
        }
        p #record { (h.accepted) " " (lang.t("published_n")) " · " (h.held) " " (lang.t("waiting_n"))
            " · " (h.rejected) " " (lang.t("rejected_n")) }
        form #standing-form method="post" action={ "/readers/" (p.id.to_string()) } {
            input type="hidden" name="csrf" value=(session.csrf);
            label { (lang.t("standing")) " "
                select name="standing" {
                    @for (value, s) in [("none", None), ("trusted", Some(Standing::Trusted)),
                        ("premoderated", Some(Standing::Premoderated)), ("suspended", Some(Standing::Suspended)),
                        ("banned", Some(Standing::Banned))] {
                        option value=(value) selected[s == current] { (standing_name(lang, s)) }
                    }
                }
            }
            label { (lang.t("until")) " " input type="text" name="until" placeholder="7days | 2026-12-08T00:00:00Z"; }
            label { (lang.t("reason")) " " input type="text" name="reason" maxlength="500"; }
            label { input type="checkbox" name="reject_all" value="1"; " " (lang.t("reject_all")) }
            button type="submit" { (lang.t("apply")) }
        }
        h2 { (lang.t("latest_comments")) }
        table.latest { tbody { @for c in h.latest.iter().take(50) {
            tr { td { a href={ "/comments/" (c.id.to_string()) } { (view::time(c.created_at_ms)) } }
                 td.state { (c.state.as_str()) } td { (c.body.chars().take(120).collect::<String>()) } }
        } } }
    }
}

/// `POST /readers/{id}`: sets or lifts the standing.
pub async fn set(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<StandingForm>,
) -> Response {
    let session = match console.page_session(&headers, Role::Moderator) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Err(r) = Console::form_csrf(&session, &form.csrf) {
        return r.into_response();
    }
    let lang = lang(&headers);
    let Ok(id) = ReaderId::parse("reader_id", &id) else {
        return (StatusCode::NOT_FOUND, "no such reader").into_response();
    };
    let deadline = console.deadline();
    match apply(&console, &session.caller.name, id, &form, deadline).await {
        Ok(Some(swept)) => Redirect::to(&format!(
            "/readers/{id}?rejected={}&down={}&left={}",
            swept.rejected.len(),
            swept.taken_down.len(),
            swept.left.len()
        ))
        .into_response(),
        Ok(None) => Redirect::to(&format!("/readers/{id}")).into_response(),
        Err(problem) => {
            let profile = match console.desk.profile(id, deadline).await {
                Ok(p) => p,
                Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
            };
            let body = panel(lang, &session, &profile, &Done::default(), Some(&problem));
            let page = view::page(lang, lang.t("reader"), Some(&session), &[], body);
            (StatusCode::BAD_REQUEST, page).into_response()
        }
    }
}

/// Carries out the form; `Ok(Some)` when it swept the reader's comments.
async fn apply(
    console: &Console,
    who: &str,
    id: ReaderId,
    form: &StandingForm,
    deadline: std::time::Instant,
) -> Result<Option<crate::readers::desk::Swept>, String> {
    let now = jiff::Timestamp::now().as_millisecond();
    let standing = match form.standing.as_str() {
        "none" => None,
        name => Some(Standing::parse(name).ok_or_else(|| format!("standing: {name:?}"))?),
    };
    let until = crate::readers::until(&form.until, now).map_err(|v| v.description)?;
    let status = crate::readers::requested(standing, until, &form.reason, now).map_err(|v| {
        v.iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let sweep = form.reject_all.is_some();
    match (&status, sweep) {
        (Some(s), true) if matches!(s.standing, Standing::Banned | Standing::Suspended) => {
            let moderator = Moderator::parse(who).map_err(|v| v.description)?;
            let swept = console
                .desk
                .ban_and_reject_all(id, s, &moderator, &s.reason, deadline)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Some(swept))
        }
        (_, true) => Err("reject_all: only with a ban or a suspension".into()),
        _ => {
            console
                .desk
                .set(id, status.as_ref(), who, &form.reason, deadline)
                .await
                .map_err(|e| e.to_string())?;
            Ok(None)
        }
    }
}
