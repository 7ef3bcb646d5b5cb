//! The moderators' pages: the queue (held comments oldest first, with the spans that made the
//! decision marked in the text), the claim and decision calls its script makes, the live view
//! (server-sent events), and a comment's page with its history.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

use super::marks::{self, MarkKind};
use super::view::{self, Lang};
use super::{Console, Refusal, lang};
use crate::auth::Role;
use crate::comment::CommentId;
use crate::decide::ReasonCode;
use crate::review::{
    ClaimRequest, Decision, FlaggedItem, Label, Query, REPORTED, ReviewError, Verdict,
};

/// The queue page's filters, as the URL carries them.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    article: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    reported: Option<String>,
    #[serde(default)]
    after: String,
}

impl Filters {
    fn query(&self) -> Result<Query, Vec<crate::comment::Violation>> {
        let reason = if self.reported.is_some() {
            Some(REPORTED)
        } else {
            Some(self.reason.trim()).filter(|r| !r.is_empty())
        };
        let article = Some(self.article.trim()).filter(|a| !a.is_empty());
        Query::parse(article, reason, None, None, 0, self.after.trim())
    }

    /// The URL of the page after this one.
    fn next(&self, token: &str) -> String {
        let mut url = url_with(
            "/queue?",
            &[("article", &self.article), ("reason", &self.reason)],
        );
        if self.reported.is_some() {
            url.push_str("&reported=1");
        }
        url.push_str("&after=");
        url.push_str(&encode(token));
        url
    }
}

fn url_with(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = base.to_owned();
    for (k, v) in pairs {
        url.push_str(k);
        url.push('=');
        url.push_str(&encode(v));
        url.push('&');
    }
    url.pop();
    url
}

/// Percent-encodes a query value (letters, digits and `-._~` stay).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The readable title of a reason code.
fn reason_title(lang: Lang, code: &str) -> &'static str {
    let (vi, en) = match code {
        "SPAM_CERTAIN" => ("Gần như chắc chắn là spam", "Almost certainly spam"),
        "SPAM_LIKELY" => ("Có thể là spam", "Likely spam"),
        "TOXIC_LIKELY" => ("Có thể độc hại, xúc phạm", "Likely toxic or abusive"),
        "BOT_HONEYPOT" => (
            "Ô ẩn của biểu mẫu bị điền",
            "The hidden form field was filled",
        ),
        "BOT_TOO_FAST" => (
            "Gửi nhanh hơn người thật",
            "Sent faster than a person types",
        ),
        "BLOCKED_WORD" => ("Có từ bị chặn", "Contains a blocked phrase"),
        "BLOCKED_LINK" => ("Có liên kết bị chặn", "Links to a blocked domain"),
        "BLOCKED_IP" => ("Gửi từ địa chỉ bị chặn", "Sent from a blocked address"),
        "BLOCKED_EMAIL" => ("E-mail bị chặn", "Blocked e-mail domain"),
        "PREMODERATED" => ("Kiểm duyệt trước khi đăng", "Pre-moderated"),
        "READER_PREMODERATED" => ("Độc giả bị kiểm duyệt trước", "The reader is pre-moderated"),
        "FIRST_COMMENT" => (
            "Bình luận đầu tiên của độc giả",
            "The reader's first comment",
        ),
        "DUPLICATE_CAMPAIGN" => (
            "Cùng nội dung từ nhiều độc giả (chiến dịch)",
            "Same text from many readers (a campaign)",
        ),
        "DUPLICATE_REPEAT" => ("Độc giả gửi lặp lại", "The reader posted it again"),
        REPORTED => ("Độc giả báo cáo", "Reported by readers"),
        _ => ("Lý do khác", "Other reason"),
    };
    match lang {
        Lang::Vi => vi,
        Lang::En => en,
    }
}

/// A score as a label: `high` from 0.8, `mid` from 0.5.
fn score_label(lang: Lang, head: &str, score: f32) -> Markup {
    let level = if score >= 0.8 {
        "high"
    } else if score >= 0.5 {
        "mid"
    } else {
        "low"
    };
    let name = match (head, lang) {
        ("spam", _) => "Spam",
        (_, Lang::Vi) => "Độc hại",
        (_, Lang::En) => "Toxic",
    };
    html! { span class={ "label " (head) " " (level) } { (name) " " (format!("{score:.2}")) } }
}

/// A comment's text with its marks.
pub fn marked_body(text: &str, found: &[marks::Mark]) -> Markup {
    html! {
        p.body {
            @for (piece, mark) in marks::pieces(text, found) {
                @match mark {
                    None => (piece),
                    Some(m) if m.kind == MarkKind::Hidden => {
                        mark class=(m.kind.class()) title=(m.why) { "⟦" (m.why) "⟧" }
                    }
                    Some(m) => mark class=(m.kind.class()) title=(m.why) { (piece) },
                }
            }
        }
    }
}

/// The explanation's features of the heads that weighed in the decision (spam for a spam
/// reason, toxic for a toxic one; both when neither is among the reasons): a toxic word
/// marked on a comment held as spam only would send the moderator looking for abuse.
fn weighed(item: &FlaggedItem) -> Vec<crate::review::Explained> {
    let has = |prefix: &str| {
        item.comment
            .reasons
            .iter()
            .any(|r| r.code.starts_with(prefix))
    };
    let (spam, toxic) = (has("SPAM_"), has("TOXIC_"));
    item.explanation
        .iter()
        .filter(|e| (!spam && !toxic) || (spam && e.head == "spam") || (toxic && e.head == "toxic"))
        .cloned()
        .collect()
}

/// One card of the queue.
pub fn card(lang: Lang, item: &FlaggedItem, blocked: &[String], me: &str) -> Markup {
    let c = &item.comment;
    let found = marks::marks(&c.body, &weighed(item), blocked);
    let claimed_by = item.claim.as_ref().map(|k| k.moderator.as_str());
    let mine = claimed_by == Some(me);
    html! {
        article.card id={ "c-" (c.id) } data-id=(c.id) data-version=(item.version)
            data-claimed-by=(claimed_by.unwrap_or_default())
            data-until=(item.claim.as_ref().map_or(0, |k| k.until_ms))
            tabindex="-1" {
            header {
                input.sel type="checkbox" aria-label="select";
                a.article href={ "/comments/" (c.id) } {
                    (c.article_title.as_deref().unwrap_or(&c.article_id))
                }
                span.author { (c.author_name) }
                span.when { (view::time(c.created_at_ms)) }
                (score_label(lang, "spam", c.spam))
                (score_label(lang, "toxic", c.toxic))
            }
            (marked_body(&c.body, &found))
            ul.reasons {
                @for r in &c.reasons {
                    li { strong { (reason_title(lang, &r.code)) } @if !r.message.is_empty() { ": " (r.message) } }
                }
                @if item.report_count > 0 {
                    li { strong { (reason_title(lang, REPORTED)) } ": " (item.report_count) }
                }
            }
            p.record {
                (lang.t("author_record")) ": " (item.author.accepted) " " (lang.t("accepted_n")) ", "
                (item.author.rejected) " " (lang.t("rejected_n")) " · "
                (lang.t("ip_record")) ": " (item.ip.accepted) " " (lang.t("accepted_n")) ", "
                (item.ip.rejected) " " (lang.t("rejected_n"))
            }
            @if !item.reports.is_empty() {
                details.reports open {
                    summary { (lang.t("reports")) " (" (item.report_count) ")" }
                    ul { @for r in &item.reports { li { (r) } } }
                }
            }
            p.lease.mine[mine] {
                @if let Some(k) = &item.claim {
                    (lang.t("claimed_by")) " " (k.moderator) " " (lang.t("until")) " " (view::time(k.until_ms))
                }
            }
            p.message role="status" {}
            div.actions {
                button type="button" data-act="claim" { (lang.t("claim")) }
                button type="button" data-act="approve" { (lang.t("approve")) }
                button type="button" data-act="reject" { (lang.t("reject")) }
            }
        }
    }
}

/// `GET /queue`: a page of held comments.
pub async fn page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    UrlQuery(filters): UrlQuery<Filters>,
) -> Response {
    let session = match console.page_session(&headers, Role::Moderator) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let lang = lang(&headers);
    let (items, next, problem) = match filters.query() {
        Ok(query) => match console.queue.list(&query, console.deadline()).await {
            Ok(page) => (page.items, page.next, None),
            Err(e) => (Vec::new(), None, Some(e.to_string())),
        },
        Err(violations) => (
            Vec::new(),
            None,
            Some(
                violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        ),
    };
    let in_force = console.admin.in_force();
    let blocked = &in_force.effective.tunables.lists.blocked_words;
    let data = [
        (
            "undo-ms",
            console.settings.undo_window.as_millis().to_string(),
        ),
        (
            "lease-ms",
            console.queue.settings().lease.as_millis().to_string(),
        ),
    ];
    let body = html! {
        form.filters method="get" action="/queue" {
            label { (lang.t("article")) input #search name="article" value=(filters.article); }
            label { (lang.t("reason"))
                select name="reason" {
                    option value="" { (lang.t("all")) }
                    @for code in ReasonCode::ALL.iter().map(|r| r.as_str()).chain([REPORTED]) {
                        option value=(code) selected[filters.reason == code] { (reason_title(lang, code)) }
                    }
                }
            }
            label { input type="checkbox" name="reported" value="1" checked[filters.reported.is_some()]; (lang.t("reported")) }
            button type="submit" { (lang.t("filter")) }
        }
        @if let Some(p) = &problem { p.error role="alert" { (p) } }
        p #live.notice hidden { span #new-count { "0" } " " (lang.t("new_comments")) }
        section #queue {
            @for item in &items { (card(lang, item, blocked, &session.caller.name)) }
        }
        p #empty.notice hidden[!items.is_empty()] { (lang.t("empty_queue")) }
        @if let Some(next) = next {
            a.next href=(filters.next(&next.token())) { (lang.t("next_page")) }
        }
        (dialogs(lang))
    };
    view::page(lang, lang.t("queue"), Some(&session), &data, body).into_response()
}

fn dialogs(lang: Lang) -> Markup {
    html! {
        dialog #reject-dialog {
            form method="dialog" {
                h2 { (lang.t("reject_as")) }
                label { input type="radio" name="label" value="spam" checked; (lang.t("label_spam")) }
                label { input type="radio" name="label" value="abuse"; (lang.t("label_abuse")) }
                label { input type="radio" name="label" value=""; (lang.t("label_other")) }
                label { (lang.t("note")) input #reject-note name="note" maxlength="1000"; }
                menu {
                    button type="submit" value="confirm" { (lang.t("confirm")) }
                    button type="submit" value="cancel" { (lang.t("cancel")) }
                }
            }
        }
        dialog #help-dialog {
            h2 { (lang.t("shortcuts")) }
            p { (lang.t("help_keys")) }
            form method="dialog" { button { "OK" } }
        }
        div #toast role="status" hidden {
            span #toast-text {}
            button #undo type="button" { (lang.t("undo")) }
        }
    }
}

/// `GET /comments/{id}`: one comment, its scores and reasons, and its whole history.
pub async fn comment_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let session = match console.page_session(&headers, Role::Moderator) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let lang = lang(&headers);
    let Ok(id) = CommentId::parse("comment_id", &id) else {
        return (StatusCode::NOT_FOUND, "no such comment").into_response();
    };
    let deadline = console.deadline();
    let comment = match console.queue.comment(id, deadline).await {
        Ok(Some(c)) => c,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such comment").into_response(),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let history = console
        .queue
        .history(id, deadline)
        .await
        .unwrap_or_default();
    let blocked = &console
        .admin
        .in_force()
        .effective
        .tunables
        .lists
        .blocked_words;
    let found = marks::marks(&comment.body, &[], blocked);
    let body = html! {
        article.comment {
            h1 { (comment.article_title.as_deref().unwrap_or(&comment.article_id)) }
            p { (lang.t("state")) ": " strong.state { (comment.state.as_str()) } " · "
                @if comment.reader.is_empty() { (comment.author_name) }
                @else { a.reader href={ "/readers/" (comment.reader) } { (comment.author_name) } }
                " · " (view::time(comment.created_at_ms)) " · "
                (lang.t("model")) " " (comment.model_version) }
            p { (score_label(lang, "spam", comment.spam)) " " (score_label(lang, "toxic", comment.toxic)) }
            (marked_body(&comment.body, &found))
            @if !comment.reasons.is_empty() {
                h2 { (lang.t("why_held")) }
                ul.reasons { @for r in &comment.reasons {
                    li { strong { (reason_title(lang, &r.code)) } @if !r.message.is_empty() { ": " (r.message) } }
                } }
            }
        }
        h2 { (lang.t("history")) }
        table.history {
            thead { tr { th { (lang.t("when")) } th { (lang.t("by")) } th { "" } th { (lang.t("state")) } th { (lang.t("note")) } } }
            tbody { @for e in &history {
                tr { td { (view::time(e.at_ms)) } td { (e.actor) } td.action { (e.action) } td { (e.state.as_str()) } td { (e.note) } }
            } }
        }
    };
    view::page(lang, lang.t("comment"), Some(&session), &[], body).into_response()
}

/// A claim from the queue's script.
#[derive(Deserialize)]
pub struct ClaimBody {
    ids: Vec<String>,
}

/// One claimed comment.
#[derive(Serialize)]
struct Claimed {
    id: String,
    version: u64,
    until_ms: i64,
}

/// `POST /api/claim`: claims (or renews the claim on) the given comments.
pub async fn claim(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Json(body): Json<ClaimBody>,
) -> Response {
    let session = match console.api_session(&headers, Role::Moderator) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let lang = lang(&headers);
    let settings = console.queue.settings();
    let request = match ClaimRequest::parse(&session.caller.name, 0, &body.ids, None, settings) {
        Ok(r) => r,
        Err(v) => return refusal(lang, &ReviewError::Invalid(v)).into_response(),
    };
    match console.queue.claim(&request, console.deadline()).await {
        Ok(items) => {
            let claimed: Vec<Claimed> = items
                .iter()
                .map(|i| Claimed {
                    id: i.comment.id.to_string(),
                    version: i.version,
                    until_ms: i.claim.as_ref().map_or(0, |c| c.until_ms),
                })
                .collect();
            Json(serde_json::json!({ "claimed": claimed })).into_response()
        }
        Err(e) => refusal(lang, &e).into_response(),
    }
}

/// A decision on one or more comments, from the queue's script.
#[derive(Deserialize)]
pub struct DecideBody {
    items: Vec<DecideItem>,
    verdict: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    note: String,
}

/// A comment and the version the moderator saw.
#[derive(Deserialize)]
struct DecideItem {
    id: String,
    version: u64,
}

/// What became of one decided comment.
#[derive(Serialize)]
struct Outcome {
    id: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// `POST /api/decide`: approves or rejects each comment at the version the moderator saw;
/// each answered on its own (a stale one refused with why, the others decided).
pub async fn decide(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Json(body): Json<DecideBody>,
) -> Response {
    let session = match console.api_session(&headers, Role::Moderator) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let lang = lang(&headers);
    let verdict = match (body.verdict.as_str(), body.label.as_deref()) {
        ("approve", _) => Some(Verdict::Approve),
        ("reject", Some("spam")) => Some(Verdict::Reject(Some(Label::Spam))),
        ("reject", Some("abuse")) => Some(Verdict::Reject(Some(Label::Abuse))),
        ("reject", _) => Some(Verdict::Reject(None)),
        _ => None,
    };
    if body.items.is_empty() || body.items.len() > console.queue.settings().max_claim {
        return Refusal::new(
            StatusCode::BAD_REQUEST,
            "INVALID",
            format!(
                "1 to {} comments per decision",
                console.queue.settings().max_claim
            ),
        )
        .into_response();
    }
    let mut results = Vec::with_capacity(body.items.len());
    for item in &body.items {
        let parsed = Decision::parse(
            &item.id,
            item.version,
            &session.caller.name,
            verdict,
            &body.note,
        );
        let answer = match parsed {
            Ok(d) => console.queue.decide(&d, console.deadline()).await,
            Err(v) => Err(ReviewError::Invalid(v)),
        };
        results.push(match answer {
            Ok((state, version)) => Outcome {
                id: item.id.clone(),
                ok: true,
                state: Some(state.as_str()),
                version: Some(version),
                error: None,
                message: None,
            },
            Err(e) => {
                let r = refusal(lang, &e);
                Outcome {
                    id: item.id.clone(),
                    ok: false,
                    state: None,
                    version: None,
                    error: Some(r.code),
                    message: Some(r.message),
                }
            }
        });
    }
    Json(serde_json::json!({ "results": results })).into_response()
}

/// A refused review operation, in the moderator's language.
fn refusal(lang: Lang, e: &ReviewError) -> Refusal {
    let vi = lang == Lang::Vi;
    match e {
        ReviewError::Stale { current, given, .. } => Refusal::new(
            StatusCode::CONFLICT,
            "STALE_VERSION",
            if vi {
                format!(
                    "Bình luận đã thay đổi từ khi bạn mở (phiên bản {given} → {current}). Quyết định chưa được ghi: hãy xem lại rồi quyết định."
                )
            } else {
                format!(
                    "This comment changed since you opened it (version {given} → {current}). Your decision was not applied: look at it again, then decide."
                )
            },
        ),
        ReviewError::ClaimedByOther { moderator, .. } => Refusal::new(
            StatusCode::CONFLICT,
            "CLAIMED_BY_OTHER",
            if vi {
                format!("{moderator} đang duyệt bình luận này.")
            } else {
                format!("{moderator} is reviewing this comment.")
            },
        ),
        ReviewError::NotInReview { state, .. } => Refusal::new(
            StatusCode::CONFLICT,
            "NOT_IN_REVIEW",
            if vi {
                format!("Bình luận không còn chờ duyệt (đang là {state}).")
            } else {
                format!("This comment is no longer waiting for review (it is {state}).")
            },
        ),
        ReviewError::NotFound(_) => Refusal::new(StatusCode::NOT_FOUND, "NOT_FOUND", e.to_string()),
        ReviewError::Invalid(v) => Refusal::new(
            StatusCode::BAD_REQUEST,
            "INVALID",
            v.iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ReviewError::Store(_) => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            if vi {
                "Kho dữ liệu chưa trả lời; quyết định chưa được ghi, hãy thử lại.".to_owned()
            } else {
                "Storage did not answer; the decision was not applied, try again.".to_owned()
            },
        ),
        other => Refusal::new(StatusCode::CONFLICT, "REFUSED", other.to_string()),
    }
}

/// `GET /queue/events`: the queue's changes as server-sent events (`held`, `claimed`,
/// `decided`, `reported`; `reload` when this view fell behind).
pub async fn events(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if let Err(r) = console.page_session(&headers, Role::Moderator) {
        return *r;
    }
    let stream = BroadcastStream::new(console.queue.events().subscribe()).map(|event| {
        Ok::<_, Infallible>(match event {
            Ok(e) => {
                let json = serde_json::to_value(&e).unwrap_or_default();
                let kind = json["kind"].as_str().unwrap_or("change").to_owned();
                Event::default().event(kind).data(json.to_string())
            }
            Err(_) => Event::default().event("reload").data("{}"),
        })
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
