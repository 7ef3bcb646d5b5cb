//! Cost of ops' block and allow lists on the submission path: checking a 500-character comment
//! against empty lists (the default), and against 1,000 phrases, 200 link domains, 100 networks
//! and 100 e-mail domains with disposable-mail blocking on. Run with
//! `cargo bench --bench settings`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use moderation::comment::{Limits, NewComment, RawSubmission};
use moderation::settings::lists::{ListSettings, Lists, domains, networks, phrases};

fn comment() -> NewComment {
    let body = "Giá xăng tăng liên tục thế này thì người lao động khổ quá, mong nhà nước có biện pháp \
                bình ổn giá. Tôi đọc bài trên https://vnexpress.net/kinh-te và thấy chi phí vận \
                chuyển cũng tăng theo, hàng hóa đắt lên từng ngày. Ai có kinh nghiệm tiết kiệm \
                xăng thì chia sẻ với, cảm ơn mọi người nhiều nhé. Mong tòa soạn tiếp tục theo dõi \
                và đưa tin thêm về chuyện này.";
    NewComment::parse(
        &RawSubmission {
            article_id: "kinh-te-1".into(),
            author_name: "Nguyễn Văn An".into(),
            author_email: "an.nguyen@example.com".into(),
            body: body.into(),
            client_ip: "203.0.113.7".into(),
            idempotency_key: "bench".into(),
            ..RawSubmission::default()
        },
        &Limits::default(),
    )
    .unwrap()
}

fn lists(c: &mut Criterion) {
    let comment = comment();
    let empty = Lists::new(&ListSettings::default());
    c.bench_function("lists: check against empty lists", |b| {
        b.iter(|| black_box(empty.check(black_box(&comment))))
    });

    let join = |items: Vec<String>| items.join(", ");
    let settings = ListSettings {
        blocked_words: phrases(&join(
            (0..1000).map(|k| format!("cụm từ cấm số {k}")).collect(),
        ))
        .unwrap(),
        blocked_link_domains: domains(&join(
            (0..200).map(|k| format!("spam{k}.example")).collect(),
        ))
        .unwrap(),
        blocked_ips: networks(&join((0..100).map(|k| format!("10.{k}.0.0/16")).collect())).unwrap(),
        blocked_email_domains: domains(&join(
            (0..100).map(|k| format!("mail{k}.example")).collect(),
        ))
        .unwrap(),
        block_disposable_email: true,
        ..ListSettings::default()
    };
    let full = Lists::new(&settings);
    assert!(full.check(&comment).blocked.is_none());
    c.bench_function(
        "lists: check against 1000 phrases, 200 domains, 100 networks, 100 e-mail domains",
        |b| b.iter(|| black_box(full.check(black_box(&comment)))),
    );
}

criterion_group!(benches, lists);
criterion_main!(benches);
