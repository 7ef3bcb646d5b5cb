//! The moderators' and operators' console: server-rendered pages in the browser, on their own
//! address (`[http] listen`), served by the same binary. Moderators work the review queue
//! ([`queue`]); operators tune thresholds with a what-if on recent traffic, models and lists
//! ([`ops`]). Sign-in and sessions are [`session`]; the marked spans [`marks`]; the layout,
//! the two languages and the charts [`view`].
//!
//! Every response carries a strict Content-Security-Policy (scripts and styles from the
//! console's own embedded files only), every state-changing request must come from the
//! console's own pages (its origin) and carry the session's CSRF token, and every text a reader
//! wrote is escaped by the templates.

pub mod marks;
pub mod ops;
pub mod queue;
pub mod readers;
pub mod session;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::decide::BotRules;
use crate::review::Queue;
use crate::settings::admin::Admin;
use crate::traffic::Recent;
use session::{Gatekeeper, Session, SignInError};
use view::Lang;

/// Section `[http]`: the console's listener (the HTTP integrations share it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Serve the console.
    pub enabled: bool,
    /// Address and port. On this machine only by default; behind a TLS proxy for others.
    pub listen: SocketAddr,
    /// A session ends this long after sign-in.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
    /// A session ends after this long without a request.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// How long a decision can be undone before it is sent (0: sent at once, no undo).
    #[serde(with = "humantime_serde")]
    pub undo_window: Duration,
    /// Mark the session cookie Secure always, not only when a proxy says the console is
    /// reached over HTTPS (`X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            session_lifetime: Duration::from_secs(12 * 3600),
            session_idle: Duration::from_secs(2 * 3600),
            undo_window: Duration::from_secs(5),
            secure_cookies: false,
        }
    }
}

/// What the console serves from.
pub struct Console {
    /// The review queue.
    pub queue: Arc<Queue>,
    /// Runtime settings, models, statistics.
    pub admin: Arc<Admin>,
    /// Readers' standings.
    pub desk: Arc<crate::readers::desk::Desk>,
    /// The inputs of recent decisions.
    pub recent: Arc<Recent>,
    /// The submission pipeline (the Akismet and Coral APIs submit through it).
    pub pipeline: Arc<crate::pipeline::Pipeline>,
    /// `[coral]`.
    pub coral: crate::integrations::coral::CoralSettings,
    /// The webhooks' dispatcher (its dead letters).
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// The bot rules decisions use (for the what-if).
    pub bots: BotRules,
    /// How callers sign in.
    pub gate: Gatekeeper,
    /// Signed-in callers.
    pub sessions: session::Sessions,
    /// `[http]`.
    pub settings: HttpSettings,
    /// How long a storage call may take.
    pub request_timeout: Duration,
}

/// A refusal, as a page or a JSON answer.
pub struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    /// A refusal with `status`, a stable `code` and a readable `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

impl Console {
    /// When a storage call made now must be answered.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.request_timeout
    }

    /// The session a request presents, if it is live.
    pub fn session(&self, headers: &HeaderMap) -> Option<Session> {
        session::cookie(headers, session::COOKIE).and_then(|t| self.sessions.get(t))
    }

    /// The session of a request that needs `role`: a page redirects to sign-in without one.
    pub fn page_session(&self, headers: &HeaderMap, role: Role) -> Result<Session, Box<Response>> {
        match self.session(headers) {
            None => Err(Box::new(Redirect::to("/signin").into_response())),
            Some(s) if s.has(role) => Ok(s),
            Some(s) => Err(Box::new(forbidden_page(lang(headers), &s))),
        }
    }

    /// The session of an API call that needs `role` and changes something: its CSRF token
    /// must be the session's.
    pub fn api_session(&self, headers: &HeaderMap, role: Role) -> Result<Session, Refusal> {
        let session = self.session(headers).ok_or_else(|| {
            Refusal::new(
                StatusCode::UNAUTHORIZED,
                "SIGNED_OUT",
                "the session ended: sign in again",
            )
        })?;
        if !session.has(role) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "ROLE",
                format!("this needs the {role} role"),
            ));
        }
        let given = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !crate::secret::same(given, &session.csrf) {
            return Err(csrf_refusal());
        }
        Ok(session)
    }

    /// Whether a form's `csrf` field is the session's.
    pub fn form_csrf(session: &Session, given: &str) -> Result<(), Refusal> {
        if crate::secret::same(given, &session.csrf) {
            Ok(())
        } else {
            Err(csrf_refusal())
        }
    }
}

fn csrf_refusal() -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "CSRF",
        "the request does not carry this session's CSRF token",
    )
}

/// The language a request asks for (the `lang` cookie).
pub fn lang(headers: &HeaderMap) -> Lang {
    Lang::from_cookie(session::cookie(headers, "lang"))
}

fn forbidden_page(lang: Lang, session: &Session) -> Response {
    let page = view::page(
        lang,
        lang.t("not_allowed"),
        Some(session),
        &[],
        html! { p.notice { (lang.t("not_allowed")) } },
    );
    (StatusCode::FORBIDDEN, page).into_response()
}

/// The console's routes.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/signin", get(sign_in_page).post(sign_in))
        .route("/signout", post(sign_out))
        .route("/lang/{lang}", get(switch_lang))
        .route("/assets/console.js", get(script))
        .route("/assets/console.css", get(stylesheet))
        .route("/queue", get(queue::page))
        .route("/queue/events", get(queue::events))
        .route("/comments/{id}", get(queue::comment_page))
        .route("/readers/{id}", get(readers::page).post(readers::set))
        .route("/api/claim", post(queue::claim))
        .route("/api/decide", post(queue::decide))
        .route("/ops", get(ops::page))
        .route("/api/whatif", get(ops::whatif))
        .route("/ops/settings", post(ops::apply))
        .route("/ops/models/activate", post(ops::activate))
        .route("/ops/models/rollback", post(ops::rollback))
        .route("/ops/lists", post(ops::lists))
        .merge(crate::integrations::routes())
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
        .layer(middleware::from_fn_with_state(console.clone(), guard))
        .with_state(console)
}

/// Serves the console on `listener` until the task is stopped.
pub async fn serve(listener: tokio::net::TcpListener, console: Arc<Console>) {
    let service = router(console).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, service).await {
        tracing::error!(error = %e, "the console failed");
    }
}

/// The Content-Security-Policy of every response: nothing but the console's own files.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Before every route: clients the console does not serve (protected mode) are refused, a
/// state-changing request from another origin is refused; after: the security headers.
async fn guard(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = if !console.gate.serves(peer) {
        (
            StatusCode::FORBIDDEN,
            "protected mode: authentication is off, so the console is served only on this machine\n",
        )
            .into_response()
    } else if request.method() != Method::GET
        && request.method() != Method::HEAD
        && !session::same_origin(request.headers())
    {
        Refusal::new(
            StatusCode::FORBIDDEN,
            "CROSS_ORIGIN",
            "state-changing requests must come from the console's own pages",
        )
        .into_response()
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn home(State(console): State<Arc<Console>>, headers: HeaderMap) -> Redirect {
    match console.session(&headers) {
        Some(s) if s.has(Role::Moderator) => Redirect::to("/queue"),
        Some(_) => Redirect::to("/ops"),
        None => Redirect::to("/signin"),
    }
}

fn sign_in_form(console: &Console, lang: Lang, problem: Option<&str>) -> maud::Markup {
    let wants_key = console.gate.wants_key();
    view::page(
        lang,
        lang.t("sign_in"),
        None,
        &[],
        html! {
            form.signin method="post" action="/signin" {
                h1 { (lang.t("sign_in")) }
                @if !wants_key { p.notice { (lang.t("no_keys_note")) } }
                @if let Some(p) = problem { p.error role="alert" { (p) } }
                label {
                    @if wants_key { (lang.t("api_key")) } @else { (lang.t("your_name")) }
                    input #credential name="credential" required autofocus
                        type=(if wants_key { "password" } else { "text" }) autocomplete="off";
                }
                button type="submit" { (lang.t("sign_in")) }
            }
        },
    )
}

async fn sign_in_page(State(console): State<Arc<Console>>, headers: HeaderMap) -> maud::Markup {
    sign_in_form(&console, lang(&headers), None)
}

/// The sign-in form.
#[derive(Deserialize)]
struct SignIn {
    credential: String,
}

async fn sign_in(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let lang = lang(&headers);
    match console.gate.sign_in(&form.credential) {
        Ok(caller) => {
            let to = if caller.has(Role::Moderator) {
                "/queue"
            } else {
                "/ops"
            };
            tracing::info!(who = %caller.name, "signed in to the console");
            let token = console.sessions.start(caller);
            let secure = console.settings.secure_cookies || session::over_https(&headers);
            let cookie = session::set_cookie(&token, console.sessions.lifetime(), secure);
            ([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response()
        }
        Err(e) => {
            let problem = match e {
                SignInError::UnknownKey => lang.t("unknown_key"),
                SignInError::NoConsoleRole => lang.t("no_console_role"),
                SignInError::BadName => lang.t("bad_name"),
            };
            (
                StatusCode::UNAUTHORIZED,
                sign_in_form(&console, lang, Some(problem)),
            )
                .into_response()
        }
    }
}

/// A form that only carries the CSRF token.
#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Some(token) = session::cookie(&headers, session::COOKIE)
        && let Some(s) = console.sessions.get(token)
    {
        if let Err(refused) = Console::form_csrf(&s, &form.csrf) {
            return refused.into_response();
        }
        console.sessions.end(token);
    }
    let secure = console.settings.secure_cookies || session::over_https(&headers);
    (
        [(
            header::SET_COOKIE,
            session::set_cookie("", Duration::ZERO, secure),
        )],
        Redirect::to("/signin"),
    )
        .into_response()
}

async fn switch_lang(Path(code): Path<String>, headers: HeaderMap) -> Response {
    let code = if code == "en" { "en" } else { "vi" };
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/".to_owned());
    let cookie = format!("lang={code}; Path=/; SameSite=Strict; Max-Age=31536000");
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

const SCRIPT: &str = include_str!("assets/console.js");
const STYLESHEET: &str = include_str!("assets/console.css");

/// An embedded file, cached for five minutes.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
}

async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn stylesheet() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLESHEET)
}
