//! What every console page shares: the two languages (Vietnamese first, English), the page
//! layout, and the server-rendered SVG charts. Everything a reader wrote goes through maud's
//! escaping; nothing here builds HTML by concatenating strings.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::session::Session;

/// The console's languages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// Tiếng Việt (the default).
    Vi,
    /// English.
    En,
}

impl Lang {
    /// From the `lang` cookie's value; Vietnamese unless it says English.
    pub fn from_cookie(value: Option<&str>) -> Lang {
        match value {
            Some("en") => Lang::En,
            _ => Lang::Vi,
        }
    }

    /// The `lang` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// The text of `key` in this language; the key itself when the table has none (a test
    /// checks every key the pages use is there).
    pub fn t(self, key: &'static str) -> &'static str {
        TEXTS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or(key, |&(_, vi, en)| match self {
                Lang::Vi => vi,
                Lang::En => en,
            })
    }
}

/// (key, Vietnamese, English).
pub const TEXTS: &[(&str, &str, &str)] = &[
    (
        "dead_letters",
        "Webhook gửi không thành công",
        "Webhook deliveries given up",
    ),
    ("attempts", "Số lần thử", "Attempts"),
    ("error", "Lỗi", "Error"),
    ("title", "Kiểm duyệt bình luận", "Comment moderation"),
    ("queue", "Hàng chờ duyệt", "Review queue"),
    ("ops", "Vận hành", "Operations"),
    ("sign_in", "Đăng nhập", "Sign in"),
    ("sign_out", "Đăng xuất", "Sign out"),
    ("api_key", "Khóa API", "API key"),
    ("your_name", "Tên của bạn", "Your name"),
    (
        "unknown_key",
        "Khóa không đúng.",
        "That key is not recognised.",
    ),
    (
        "no_console_role",
        "Khóa này không có quyền kiểm duyệt hay vận hành.",
        "This key has neither the moderator nor the ops role.",
    ),
    (
        "bad_name",
        "Tên gồm 1–100 chữ, số và . _ - @.",
        "A name is 1 to 100 letters, digits and . _ - @.",
    ),
    (
        "no_keys_note",
        "Xác thực đang tắt: chỉ máy này được vào, chỉ cần tên.",
        "Authentication is off: only this machine may sign in, with a name.",
    ),
    ("article", "Bài viết", "Article"),
    ("reason", "Lý do", "Reason"),
    ("reported", "Bị báo cáo", "Reported"),
    ("filter", "Lọc", "Filter"),
    ("all", "Tất cả", "All"),
    (
        "empty_queue",
        "Không còn bình luận nào chờ duyệt.",
        "Nothing is waiting for review.",
    ),
    ("next_page", "Trang sau", "Next page"),
    ("claim", "Nhận (c)", "Claim (c)"),
    ("approve", "Duyệt (a)", "Approve (a)"),
    ("reject", "Từ chối (r)", "Reject (r)"),
    ("claimed_by", "Đang được duyệt bởi", "Claimed by"),
    ("until", "đến", "until"),
    ("author_record", "Người viết trước đây", "Author so far"),
    ("ip_record", "Địa chỉ IP trước đây", "This address so far"),
    ("accepted_n", "đã đăng", "published"),
    ("rejected_n", "bị từ chối", "rejected"),
    ("reports", "Báo cáo của độc giả", "Readers' reports"),
    ("history", "Lịch sử", "History"),
    ("why_held", "Vì sao bị giữ", "Why it was held"),
    ("reader", "Độc giả", "Reader"),
    ("standing", "Tình trạng", "Standing"),
    ("standing_none", "Bình thường", "None"),
    ("standing_trusted", "Tin cậy", "Trusted"),
    ("standing_premoderated", "Kiểm duyệt trước", "Pre-moderated"),
    ("standing_suspended", "Tạm khoá", "Suspended"),
    ("standing_banned", "Cấm bình luận", "Banned"),
    ("ended", "đã hết hạn", "ended"),
    (
        "reject_all",
        "Từ chối và gỡ mọi bình luận của độc giả",
        "Reject and take down all their comments",
    ),
    ("latest_comments", "Bình luận gần đây", "Latest comments"),
    ("published_n", "đã đăng", "published"),
    ("waiting_n", "đang chờ", "waiting"),
    ("taken_down_n", "bị gỡ", "taken down"),
    ("left_n", "giữ nguyên", "left as they were"),
    ("swept", "Đã xử lý", "Done"),
    ("reject_as", "Từ chối vì", "Reject as"),
    ("label_spam", "Spam", "Spam"),
    ("label_abuse", "Lăng mạ, xúc phạm", "Abuse"),
    ("label_other", "Lý do khác", "Other"),
    ("note", "Ghi chú", "Note"),
    ("confirm", "Xác nhận", "Confirm"),
    ("cancel", "Hủy", "Cancel"),
    ("undo", "Hoàn tác (u)", "Undo (u)"),
    (
        "new_comments",
        "bình luận mới — nhấn . để tải",
        "new comments — press . to load",
    ),
    ("shortcuts", "Phím tắt", "Keyboard shortcuts"),
    (
        "help_keys",
        "j/k: chuyển · c: nhận · a: duyệt · r: từ chối · x: chọn · u: hoàn tác · /: tìm · .: tải lại · ?: trợ giúp",
        "j/k: move · c: claim · a: approve · r: reject · x: select · u: undo · /: search · .: reload · ?: help",
    ),
    ("comment", "Bình luận", "Comment"),
    ("state", "Trạng thái", "State"),
    ("submitted", "Gửi lúc", "Submitted"),
    ("model", "Mô hình", "Model"),
    ("thresholds", "Ngưỡng quyết định", "Decision thresholds"),
    (
        "accept_below",
        "Đăng nếu spam dưới",
        "Publish when spam below",
    ),
    ("reject_at", "Từ chối nếu spam từ", "Reject when spam from"),
    (
        "review_toxic_at",
        "Giữ lại nếu độc hại từ",
        "Hold when toxic from",
    ),
    ("now", "Hiện tại", "Now"),
    ("if_applied", "Nếu áp dụng", "If applied"),
    ("preview", "Xem trước", "Preview"),
    ("apply", "Áp dụng", "Apply"),
    ("recent_traffic", "Lưu lượng gần đây", "Recent traffic"),
    ("comments_n", "bình luận", "comments"),
    ("published", "Đăng", "Published"),
    ("held", "Giữ lại", "Held"),
    ("rejected", "Từ chối", "Rejected"),
    ("spam_scores", "Điểm spam", "Spam scores"),
    ("toxic_scores", "Điểm độc hại", "Toxic scores"),
    ("audit", "Nhật ký thay đổi", "Settings audit"),
    ("version", "Phiên bản", "Version"),
    ("by", "Người đổi", "By"),
    ("when", "Lúc", "When"),
    ("changes", "Thay đổi", "Changes"),
    ("models", "Mô hình", "Models"),
    ("active", "Đang dùng", "Active"),
    ("shadow", "Chạy thử", "Shadow"),
    ("activate", "Kích hoạt", "Activate"),
    (
        "rollback",
        "Quay lại mô hình trước",
        "Roll back to the previous model",
    ),
    (
        "agreement",
        "Mô hình chạy thử đồng ý",
        "Shadow model agrees",
    ),
    ("stats", "Thống kê", "Statistics"),
    ("last_hour", "1 giờ qua", "Last hour"),
    ("last_day", "24 giờ qua", "Last day"),
    ("lists", "Danh sách", "Lists"),
    ("save_lists", "Lưu danh sách", "Save lists"),
    ("saved", "Đã lưu, phiên bản", "Saved, version"),
    (
        "stale_settings",
        "Cài đặt đã bị người khác đổi; trang đã tải lại bản mới nhất.",
        "Someone else changed the settings; the latest are shown.",
    ),
    (
        "not_allowed",
        "Bạn không có quyền xem trang này.",
        "You may not see this page.",
    ),
    (
        "nothing_recent",
        "Chưa có bình luận nào từ khi khởi động.",
        "No comments since this instance started.",
    ),
];

/// The layout every page shares: the header with the navigation, the language switch and
/// sign-out, then `body`. `data` go on `<body>` as `data-*` attributes for the script.
pub fn page(
    lang: Lang,
    title: &str,
    session: Option<&Session>,
    data: &[(&str, String)],
    body: Markup,
) -> Markup {
    let other = match lang {
        Lang::Vi => ("en", "English"),
        Lang::En => ("vi", "Tiếng Việt"),
    };
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t("title")) }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body data-lang=(lang.code()) data-csrf=[session.map(|s| s.csrf.as_str())]
                data-me=[session.map(|s| s.caller.name.as_str())] {
                // maud cannot spread attributes: the rest travel in one element.
                div #data hidden {
                    @for (k, v) in data { span data-key=(k) data-value=(v) {} }
                }
                header {
                    strong { (lang.t("title")) }
                    @if let Some(s) = session {
                        nav {
                            @if s.has(crate::auth::Role::Moderator) { a href="/queue" { (lang.t("queue")) } }
                            @if s.has(crate::auth::Role::Ops) { a href="/ops" { (lang.t("ops")) } }
                        }
                    }
                    span.spacer {}
                    a href={ "/lang/" (other.0) } { (other.1) }
                    @if let Some(s) = session {
                        span.me { (s.caller.name) }
                        form method="post" action="/signout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { (lang.t("sign_out")) }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A histogram as an SVG bar chart over [0, 1], with vertical lines at `lines` (value, CSS
/// class, the threshold it shows: the script moves a `t-new` line as that input changes).
/// Sizes are in the viewBox; the stylesheet scales it.
pub fn histogram_svg(counts: &[usize], lines: &[(f32, &str, &str)], label: &str) -> Markup {
    const W: f32 = 400.0;
    const H: f32 = 120.0;
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f32;
    let bar = W / counts.len().max(1) as f32;
    html! {
        svg.chart viewBox={ "0 0 " (W) " " (H + 14.0) } role="img" aria-label=(label) {
            title { (label) }
            @for (i, &c) in counts.iter().enumerate() {
                @let h = (c as f32 / max) * H;
                rect.bar x=(format!("{:.1}", i as f32 * bar + 1.0)) y=(format!("{:.1}", H - h))
                    width=(format!("{:.1}", (bar - 2.0).max(1.0))) height=(format!("{:.1}", h)) {
                    title { (format!("{:.2}–{:.2}: {c}", i as f32 / counts.len() as f32, (i + 1) as f32 / counts.len() as f32)) }
                }
            }
            @for &(at, class, threshold) in lines {
                @let x = format!("{:.1}", at.clamp(0.0, 1.0) * W);
                line class=(class) data-threshold=(threshold) x1=(x) x2=(x) y1="0" y2=(H) {}
            }
            text x="0" y=(H + 12.0) { "0" }
            text x=(W - 8.0) y=(H + 12.0) { "1" }
        }
    }
}

/// Horizontal bars, one per `(name, value)`, as SVG.
pub fn bars_svg(rows: &[(String, u64)], label: &str) -> Markup {
    const W: f32 = 400.0;
    const ROW: f32 = 18.0;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f32;
    let height = ROW * rows.len().max(1) as f32;
    html! {
        svg.chart viewBox={ "0 0 " (W) " " (height) } role="img" aria-label=(label) {
            title { (label) }
            @for (i, (name, value)) in rows.iter().enumerate() {
                @let y = i as f32 * ROW;
                text x="0" y=(format!("{:.1}", y + 13.0)) { (name) }
                rect.bar x="190" y=(format!("{:.1}", y + 3.0))
                    width=(format!("{:.1}", (*value as f32 / max) * (W - 250.0))) height="12" {}
                text x=(format!("{:.1}", 195.0 + (*value as f32 / max) * (W - 250.0))) y=(format!("{:.1}", y + 13.0)) { (value) }
            }
        }
    }
}

/// A time as readers of this console read it (UTC).
pub fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// A raw string known to be safe markup (only for constants of this module).
pub fn trusted(s: &'static str) -> PreEscaped<&'static str> {
    PreEscaped(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_has_both_languages_and_keys_are_unique() {
        let mut keys = std::collections::HashSet::new();
        for (k, vi, en) in TEXTS {
            assert!(keys.insert(*k), "{k} twice");
            assert!(!vi.is_empty() && !en.is_empty(), "{k}");
        }
        assert_eq!(Lang::Vi.t("approve"), "Duyệt (a)");
        assert_eq!(Lang::En.t("approve"), "Approve (a)");
        assert_eq!(Lang::from_cookie(None), Lang::Vi);
    }

    #[test]
    fn every_key_the_pages_use_is_in_the_table() {
        let sources = [
            include_str!("mod.rs"),
            include_str!("queue.rs"),
            include_str!("ops.rs"),
            include_str!("view.rs"),
        ];
        let mut used = 0;
        for source in sources {
            for piece in source.split(".t(\"").skip(1) {
                let key = piece.split('"').next().unwrap();
                assert!(
                    TEXTS.iter().any(|(k, _, _)| *k == key),
                    "{key:?} has no text"
                );
                used += 1;
            }
        }
        assert!(used > 50, "the pages use {used} keys");
    }

    #[test]
    fn charts_scale_to_the_largest_bar_and_escape_labels() {
        let svg = histogram_svg(&[1, 2, 0, 4], &[(0.5, "t", "reject_at")], "<x>").into_string();
        assert_eq!(svg.matches("<rect").count(), 4);
        assert!(svg.contains("height=\"120.0\""), "{svg}");
        assert!(svg.contains("x1=\"200.0\""), "{svg}");
        assert!(svg.contains("&lt;x&gt;") && !svg.contains("<x>"));
        let bars = bars_svg(&[("a".into(), 3), ("b".into(), 0)], "s").into_string();
        assert_eq!(bars.matches("<rect").count(), 2);
    }
}
