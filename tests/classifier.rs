//! The classifier end to end on fixtures written for these tests: training separates obvious
//! spam from ordinary comments, a saved model scores exactly as it did before saving, damaged
//! or mismatched model files are refused, feature slots never change between builds, and the
//! command line answers every input line.

use std::io::Write;
use std::process::{Command, Stdio};

use moderation::classifier::analyze::analyze;
use moderation::classifier::corpus::Record;
use moderation::classifier::features::{Extractor, FeatureSettings, Features, Idf, Lexicon};
use moderation::classifier::model::{Model, ModelError, ModelInfo};
use moderation::classifier::train::{TrainSettings, train};

/// Ordinary reader comments.
const HAM: &[&str] = &[
    "Bài viết rất hay, cảm ơn tác giả",
    "Mong chính quyền sớm giải quyết cho người dân",
    "Đội tuyển đá quá hay, tự hào Việt Nam",
    "Giá xăng tăng thế này thì khổ người lao động",
    "Tôi đồng ý với ý kiến của bạn ở trên",
    "Thời tiết dạo này thất thường quá, mọi người giữ sức khỏe",
    "Thương các cháu nhỏ, mong gia đình sớm vượt qua",
    "Cần kiểm tra lại quy trình cấp phép xây dựng",
    "Trường học nên giảm tải bài tập cho học sinh",
    "Chúc mừng đội bóng, một trận đấu đáng nhớ",
];

/// Obvious spam: betting, loans, phone numbers and links.
const SPAM: &[&str] = &[
    "Nhà cái uy tín nạp 100k tặng 200k liên hệ zalo 0912345678",
    "Vay tiền nhanh không thế chấp gọi ngay 0987.654.321",
    "Kiếm tiền online 5tr mỗi ngày vào bit.ly/kiemtien",
    "Cá cược bóng đá tỷ lệ cao nhất truy cập nhacai(.)com",
    "Nổ hũ đổi thưởng uy tín, inbox zalo O9l2.345.678",
    "Tuyển cộng tác viên làm tại nhà lương 10tr liên hệ 0901 234 567",
    "Click ngay www.giaithuong-online.vn nhận quà miễn phí",
    "Vay nóng lãi suất thấp duyệt trong 5 phút hotline 0933333333",
    "Casino trực tuyến uy tín, tặng 500k cho thành viên mới t.me/casinovip",
    "Bán sim số đẹp giá rẻ gọi 0868.686.868",
];

/// Records made by pairing every sentence with a few endings, so the fixture has some volume.
fn fixture() -> Vec<Record> {
    let endings = ["", " nhé", " nha mọi người", "!", " ạ"];
    let mut records = Vec::new();
    for (texts, spam) in [(HAM, false), (SPAM, true)] {
        for text in texts {
            for ending in endings {
                records.push(Record {
                    text: format!("{text}{ending}"),
                    spam: Some(spam),
                    toxic: Some(false),
                    source: Some("fixture".into()),
                    ..Record::default()
                });
            }
        }
    }
    // The toxic head needs positives too.
    for text in ["đồ ngu, cút đi", "mày là đồ ngu", "thằng ngu này nói láo"] {
        for ending in endings {
            records.push(Record {
                text: format!("{text}{ending}"),
                spam: Some(false),
                toxic: Some(true),
                source: Some("fixture".into()),
                ..Record::default()
            });
        }
    }
    records
}

fn small_settings() -> TrainSettings {
    TrainSettings {
        features: FeatureSettings {
            hash_bits: 16,
            min_rows: 1,
            ..FeatureSettings::default()
        },
        folds: 3,
        ..TrainSettings::default()
    }
}

fn trained_model() -> Model {
    let info = ModelInfo {
        name: "fixture".into(),
        trained_at: "2026-11-27T00:00:00Z".into(),
        trained_on: vec!["fixture".into()],
    };
    train(
        &fixture(),
        Lexicon::new(["đồ ngu"]),
        &small_settings(),
        info,
        &|_| {},
    )
    .expect("training on the fixture succeeds")
}

#[test]
fn training_on_a_tiny_fixture_separates_obvious_spam_from_ordinary_comments() {
    let model = trained_model();
    // Unseen sentences in the style of each class.
    let spam = model.score(
        "Nhà cái casino uy tín, nạp 200k tặng 300k, zalo 0977.123.456",
        None,
    );
    let ham = model.score("Cảm ơn bài viết, mong chính quyền sớm giải quyết", None);
    assert!(spam.spam > 0.7, "spam scored {}", spam.spam);
    assert!(ham.spam < 0.3, "ham scored {}", ham.spam);
    let toxic = model.score("đồ ngu", None);
    assert!(toxic.toxic > ham.toxic, "{toxic:?} vs {ham:?}");
}

#[test]
fn explanations_name_the_features_that_made_a_comment_spam() {
    let model = trained_model();
    let explanation = model.explain(
        "Vay tiền nhanh, gọi ngay 0912.345.678 hoặc bit.ly/vay",
        None,
        5,
    );
    assert!(explanation.scores.spam > 0.5);
    assert!(!explanation.spam.is_empty());
    assert!(
        explanation.spam.iter().all(|r| r.weight > 0.0),
        "reasons push the score up: {:?}",
        explanation.spam
    );
    let named: Vec<&str> = explanation
        .spam
        .iter()
        .map(|r| r.feature.as_str())
        .collect();
    assert!(
        named
            .iter()
            .any(|f| f.contains("phone number") || f.contains("link")),
        "expected the phone number or the link among {named:?}"
    );
}

#[test]
fn a_saved_model_scores_exactly_as_before_saving() {
    let model = trained_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixture.model");
    model.save(&path).unwrap();
    let loaded = Model::load(&path).unwrap();
    assert_eq!(loaded.info(), model.info());
    assert_eq!(loaded.thresholds(), model.thresholds());
    for text in HAM.iter().chain(SPAM).chain(&["", "🙂🙂", "đồ ngu"]) {
        assert_eq!(
            model.score(text, None),
            loaded.score(text, None),
            "{text:?}"
        );
        assert_eq!(
            model.explain(text, Some("Nguyễn An"), 3),
            loaded.explain(text, Some("Nguyễn An"), 3)
        );
    }
}

#[test]
fn damaged_or_foreign_model_files_are_refused_with_a_reason() {
    let model = trained_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixture.model");
    model.save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let err = Model::from_bytes(&flipped, "flipped").unwrap_err();
    assert!(matches!(err, ModelError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");

    let err = Model::from_bytes(&good[..good.len() - 10], "truncated").unwrap_err();
    assert!(matches!(err, ModelError::Corrupt { .. }), "{err}");

    let err = Model::from_bytes(b"{\"not\": \"a model\"}", "json").unwrap_err();
    assert!(matches!(err, ModelError::NotAModel { .. }), "{err}");

    let mut future = good.clone();
    future[8..12].copy_from_slice(&99u32.to_le_bytes());
    let err = Model::from_bytes(&future, "future").unwrap_err();
    assert!(
        matches!(err, ModelError::FormatVersion { found: 99, .. }),
        "{err}"
    );

    let err = Model::load(&dir.path().join("missing.model")).unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }), "{err}");

    // Bytes left over after the model.
    let mut padded = good.clone();
    let payload_len = good.len() - 24;
    padded.splice(good.len() - 4..good.len() - 4, [0u8; 3]);
    padded[12..20].copy_from_slice(&((payload_len + 3) as u64).to_le_bytes());
    let crc = crc32fast::hash(&padded[20..padded.len() - 4]);
    let end = padded.len();
    padded[end - 4..].copy_from_slice(&crc.to_le_bytes());
    let err = Model::from_bytes(&padded, "padded").unwrap_err();
    assert!(err.to_string().contains("left over"), "{err}");
}

#[test]
fn feature_slots_do_not_change_between_builds() {
    // A model stores slots, not strings: if the hash or the reading of a text changed, every
    // committed model would silently score garbage. These values were recorded when the
    // feature extractor was written; a change here needs a new FEATURE_VERSION and retrained
    // models. The text exercises words, folded words, phrases, entities, character n-grams
    // (ASCII and not), the lexicon and signals.
    let extractor = Extractor::new(
        FeatureSettings::default(),
        Lexicon::new(["đồ ngu"]),
        Idf::default(),
    );
    let text = "Nhà cái uy tín!!! zalo 0912.345.678, bit.ly/abc 500k đồ ngu 😀 ĐẸP";
    let mut features = Features::default();
    extractor.features(&analyze(text), Some(&analyze("Trần Bình")), &mut features);
    let slots: Vec<u32> = features.grams().iter().map(|&(slot, _)| slot).collect();
    let first: [u32; 4] = slots[..4].try_into().unwrap();
    // FNV-1a over the slots, in order.
    let digest = slots.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &s| {
        (h ^ u64::from(s)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    assert_eq!((slots.len(), first, digest), RECORDED);
    // And the same text read twice gives the same slots.
    let mut again = Features::default();
    extractor.features(&analyze(text), Some(&analyze("Trần Bình")), &mut again);
    assert_eq!(features.grams(), again.grams());
}

/// See `feature_slots_do_not_change_between_builds`.
const RECORDED: (usize, [u32; 4], u64) =
    (149, [224505, 427435, 352092, 108685], 3792153200058477128);

/// Runs the built binary with `args`, feeding `input` on standard input.
fn run_cli(args: &[&str], input: impl AsRef<[u8]>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_moderation"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    // A command that fails early may not read its input: a broken pipe here is not the test's
    // concern, the exit status and output are.
    let _ = child.stdin.take().unwrap().write_all(input.as_ref());
    child.wait_with_output().unwrap()
}

#[test]
fn classify_answers_every_line_in_order_and_reports_bad_lines_without_stopping() {
    let model = trained_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixture.model");
    model.save(&path).unwrap();
    let input = [
        r#"{"text": "Vay tiền nhanh gọi 0912345678", "id": 7}"#,
        "this is not json",
        r#"{"text": "Bài viết rất hay", "author": "Lan", "context": "Tin thể thao"}"#,
        "",
        r#"{"author": "no text"}"#,
    ]
    .join("\n");
    // A line that is not UTF-8 gets an error line too, and the line after it is answered.
    let mut input = input.into_bytes();
    input.extend_from_slice(b"\n\xff\xfe\n{\"text\": \"ok\"}\n");
    let out = run_cli(&["classify", "--model", path.to_str().unwrap()], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect();
    assert_eq!(lines.len(), 7);
    for (n, line) in lines.iter().enumerate() {
        assert_eq!(line["line"], n + 1);
    }
    assert!(lines[0]["spam"].as_f64().unwrap() > 0.5);
    assert!(
        lines[0]["reasons"]["spam"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    assert!(lines[1]["error"].as_str().unwrap().contains("JSON"));
    assert!(lines[2]["spam"].as_f64().unwrap() < 0.5);
    assert_eq!(lines[2]["model"], "fixture");
    assert_eq!(lines[3]["error"], "empty line");
    assert!(lines[4]["error"].as_str().unwrap().contains("text"));
    assert_eq!(lines[5]["error"], "not UTF-8");
    assert!(lines[6]["spam"].is_number());
}

#[test]
fn train_and_evaluate_commands_write_a_model_and_a_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fixture.jsonl");
    let lexicon = dir.path().join("lexicon.txt");
    let model = dir.path().join("models/cli-fixture.model");
    let corpus: String = fixture()
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(&data, corpus).unwrap();
    std::fs::write(&lexicon, "đồ ngu\n").unwrap();
    let out = run_cli(
        &[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
            "--lexicon",
            lexicon.to_str().unwrap(),
            "--hash-bits",
            "16",
            "--min-rows",
            "1",
            "--folds",
            "3",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(Model::load(&model).unwrap().info().name, "cli-fixture");

    let out = run_cli(
        &[
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--json",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let spam = &report["heads"][0];
    assert_eq!(spam["head"], "spam");
    assert_eq!(spam["overall"]["count"], fixture().len());
    assert!(spam["overall"]["roc_auc"].as_f64().unwrap() > 0.9);
    assert!(!spam["bands"].as_array().unwrap().is_empty());
}

#[test]
fn a_corrupt_model_is_refused_by_the_command_line_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.model");
    std::fs::write(&path, b"CMODMDL\nrubbish").unwrap();
    let out = run_cli(&["classify", "--model", path.to_str().unwrap()], "{}");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.model") && stderr.contains("corrupt"),
        "{stderr}"
    );
}
