//! Unicode clean-up shared by every part that reads a reader's text.
//!
//! Two views of the same text are needed: the *stored* text (what the portal publishes: NFC,
//! invisible formatting removed, nothing else changed) and the *analysed* text (what the
//! classifier reads: also compatibility-folded, lower-cased and, per word, stripped of
//! diacritics). Both start from [`is_invisible`], so "what counts as invisible" is decided once.

use std::sync::OnceLock;

use unicode_normalization::UnicodeNormalization;

/// True for characters that change how text is shown or ordered but carry no letter of their
/// own: zero-width spaces and joiners, bidi marks/embeddings/isolates, the soft hyphen, the byte
/// order mark, variation selectors, Hangul fillers and tag characters.
///
/// Spammers put these between letters ("n\u{200B}h\u{200B}à c\u{200B}á\u{200B}i") so that word
/// filters miss them; the bidi ones can also make a comment display differently from what it
/// says.
#[inline]
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// Zero-width characters and bidi controls: what [`clean`] removes from stored text. A narrower
/// set than [`is_invisible`]: variation selectors stay (they choose how an emoji is drawn).
fn is_zero_width_or_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// True for emoji and pictographic symbols (the characters a zero-width joiner may join).
fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0x1F000..=0x1FAFF | 0xFE0F)
}

/// Why a text was refused by [`clean`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextError {
    /// It contains a control character other than a newline (or a tab, where allowed).
    Control(char),
}

/// A reader's text as it is stored and published: NFC, line breaks as `\n`, zero-width and
/// bidi characters removed (a zero-width joiner between two emoji stays, so "👨‍👩‍👧" is still
/// one family), leading and trailing whitespace trimmed. Control characters are refused, except
/// line breaks and tabs when `multiline`.
pub fn clean(input: &str, multiline: bool) -> Result<String, TextError> {
    // Most text arrives in NFC (what keyboards and browsers produce): checked, not rebuilt.
    let composed: std::borrow::Cow<'_, str> = if is_nfc(input) {
        std::borrow::Cow::Borrowed(input)
    } else {
        std::borrow::Cow::Owned(input.nfc().collect())
    };
    let mut out = String::with_capacity(composed.len());
    // Whether a character was left out: only then can two neighbours compose anew.
    let mut removed = false;
    let mut chars = composed.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                // \r\n and a lone \r are both one line break.
                chars.next_if_eq(&'\n');
                if !multiline {
                    return Err(TextError::Control('\r'));
                }
                out.push('\n');
            }
            '\n' | '\t' if multiline => out.push(c),
            '\u{200D}' => {
                let joins_emoji = out.chars().next_back().is_some_and(is_emoji)
                    && chars.peek().copied().is_some_and(is_emoji);
                if joins_emoji {
                    out.push(c);
                } else {
                    removed = true;
                }
            }
            c if is_zero_width_or_bidi(c) => removed = true,
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                return Err(TextError::Control(c));
            }
            c => out.push(c),
        }
    }
    // Removing a character can bring a letter and a combining mark together ("ư", U+200B,
    // U+0301): composed again, so what is stored is NFC and cleaning it again changes nothing.
    let trimmed = out.trim();
    if removed && !is_nfc(trimmed) {
        return Ok(trimmed.nfc().collect());
    }
    if trimmed.len() == out.len() {
        return Ok(out);
    }
    Ok(trimmed.to_owned())
}

/// Whether `text` is in NFC, by the quick check (which answers "maybe" for a few rare
/// characters: then it is composed to be sure).
fn is_nfc(text: &str) -> bool {
    match unicode_normalization::is_nfc_quick(text.chars()) {
        unicode_normalization::IsNormalized::Yes => true,
        unicode_normalization::IsNormalized::No => false,
        unicode_normalization::IsNormalized::Maybe => text.nfc().eq(text.chars()),
    }
}

/// The ASCII letter a Latin letter is written on, with its diacritics removed ("ệ" → 'e',
/// "đ" → 'd', "Ư" → 'U'); any other character is returned unchanged.
///
/// Vietnamese is often typed without diacritics ("nha cai" for "nhà cái"), so the classifier
/// reads every word in this folded form as well.
#[inline]
pub fn fold_diacritics(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    let code = c as u32;
    if !(FOLD_START..FOLD_END).contains(&code) {
        return c;
    }
    fold_table()[(code - FOLD_START) as usize]
}

/// Latin-1 Supplement up to the end of Latin Extended Additional: every precomposed Latin
/// letter Vietnamese (and most European languages) use.
const FOLD_START: u32 = 0x00C0;
const FOLD_END: u32 = 0x1F00;

/// Built once from the Unicode canonical decompositions rather than written out by hand, so it
/// covers every precomposed letter in the range.
fn fold_table() -> &'static [char] {
    static TABLE: OnceLock<Vec<char>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (FOLD_START..FOLD_END)
            .map(|code| {
                let Some(c) = char::from_u32(code) else {
                    return '\u{FFFD}';
                };
                match c {
                    'đ' => 'd',
                    'Đ' => 'D',
                    'ø' => 'o',
                    'Ø' => 'O',
                    'ł' => 'l',
                    'Ł' => 'L',
                    _ => {
                        let mut base = c;
                        let mut first = true;
                        unicode_normalization::char::decompose_canonical(c, |d| {
                            if first {
                                base = d;
                                first = false;
                            }
                        });
                        if base.is_ascii() { base } else { c }
                    }
                }
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_removes_every_vietnamese_tone_and_vowel_mark() {
        let cases = [
            ("nhà cái", "nha cai"),
            ("đánh bạc", "danh bac"),
            ("ĐƯỜNG", "DUONG"),
            ("người việt", "nguoi viet"),
            ("ỹỷỳýỵ", "yyyyy"),
            ("ơớờởỡợ", "oooooo"),
            ("ăắằẳẵặâấầẩẫậ", "aaaaaaaaaaaa"),
            ("naïve café", "naive cafe"),
        ];
        for (input, want) in cases {
            let got: String = input.chars().map(fold_diacritics).collect();
            assert_eq!(got, want, "folding {input:?}");
        }
    }

    #[test]
    fn folding_leaves_other_scripts_alone() {
        for c in ['中', 'я', '😀', 'ß'] {
            assert_eq!(fold_diacritics(c), c);
        }
    }

    #[test]
    fn clean_text_is_nfc_trimmed_and_free_of_invisible_formatting() {
        assert_eq!(clean("  vie\u{0323}\u{0302}t  ", false).unwrap(), "việt");
        assert_eq!(clean("nh\u{200B}à c\u{202E}ái", false).unwrap(), "nhà cái");
        assert_eq!(clean("một\r\nhai\rba", true).unwrap(), "một\nhai\nba");
        assert_eq!(clean("a\tb", true).unwrap(), "a\tb");
        // A family emoji keeps its joiners; a joiner between letters goes.
        let family = "👨\u{200D}👩\u{200D}👧";
        assert_eq!(clean(family, false).unwrap(), family);
        assert_eq!(clean("a\u{200D}b", false).unwrap(), "ab");
        // Marks a removed character kept apart are composed.
        assert_eq!(clean("u\u{031B}\u{200B}\u{0301}", false).unwrap(), "ứ");
        assert_eq!(clean("❤\u{FE0F}", false).unwrap(), "❤\u{FE0F}");
    }

    #[test]
    fn clean_refuses_control_characters() {
        assert_eq!(clean("a\u{7}b", true), Err(TextError::Control('\u{7}')));
        assert_eq!(clean("tên\nhai dòng", false), Err(TextError::Control('\n')));
        assert_eq!(clean("a\u{85}b", true), Err(TextError::Control('\u{85}')));
        assert_eq!(
            clean("a\u{2028}b", true),
            Err(TextError::Control('\u{2028}'))
        );
    }

    #[test]
    fn invisible_characters_are_recognised_and_letters_are_not() {
        for c in [
            '\u{200B}', '\u{200D}', '\u{202E}', '\u{2066}', '\u{FEFF}', '\u{00AD}',
        ] {
            assert!(is_invisible(c), "{:?} should be invisible", c);
        }
        for c in ['a', 'ệ', ' ', '😀', '\n'] {
            assert!(!is_invisible(c), "{c:?} should be visible");
        }
    }
}
