//! Scoring cost of the committed default model: one ~500-character comment, scores only and
//! scores with explanations. Run with `cargo bench --bench classifier`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use moderation::classifier::Model;
use moderation::classifier::analyze::{Analysis, analyze_into};
use moderation::classifier::features::Features;

/// A Vietnamese comment of about 500 characters, in the style of a reader's comment under a
/// news article, with a phone number and a link as spam would have (written for this benchmark).
const COMMENT: &str = "Bài viết rất hay và đầy đủ thông tin, cảm ơn tác giả đã tổng hợp. \
Tôi đã theo dõi vụ việc này từ đầu năm và thấy chính quyền địa phương xử lý còn chậm, \
người dân trong khu phố phải chờ đợi rất lâu mới được giải quyết. Mong các cơ quan chức năng \
sớm vào cuộc, kiểm tra lại toàn bộ hồ sơ và công khai kết quả cho bà con được biết. \
Ai cần tư vấn thủ tục nhà đất miễn phí thì liên hệ 0912.345.678 hoặc xem thêm tại \
trang tuvan-nhadat.vn nhé, bên mình làm nhanh gọn, uy tín, hỗ trợ tận tình 24/7 cho mọi người!!";

fn default_model() -> Model {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(moderation::classifier::DEFAULT_MODEL);
    Model::load(&path).expect("the committed default model loads")
}

fn scoring(c: &mut Criterion) {
    let model = default_model();
    let chars = COMMENT.chars().count();
    // The stages of one score, to see where the time goes.
    let mut analysis = Analysis::default();
    c.bench_function("stage: analyse (normalise, tokens)", |b| {
        b.iter(|| analyze_into(black_box(COMMENT), &mut analysis))
    });
    analyze_into(COMMENT, &mut analysis);
    let mut features = Features::default();
    c.bench_function("stage: extract features", |b| {
        b.iter(|| {
            model
                .extractor()
                .features(black_box(&analysis), None, &mut features)
        })
    });
    let mut sparse = Vec::new();
    c.bench_function("stage: weigh features", |b| {
        b.iter(|| {
            model
                .extractor()
                .weigh(black_box(features.grams()), &mut sparse)
        })
    });
    eprintln!(
        "{} distinct features, {} weighed",
        features.grams().len(),
        sparse.len()
    );
    c.bench_function(&format!("score one comment ({chars} chars)"), |b| {
        b.iter(|| model.score(black_box(COMMENT), black_box(Some("Nguyễn Văn An"))))
    });
    c.bench_function(
        &format!("score and explain one comment ({chars} chars)"),
        |b| b.iter(|| model.explain(black_box(COMMENT), black_box(Some("Nguyễn Văn An")), 3)),
    );
}

criterion_group!(benches, scoring);
criterion_main!(benches);
