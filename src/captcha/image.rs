//! The image challenge: five or six characters drawn distorted on noise, from an alphabet
//! without look-alikes (no 0/O, 1/l/I, 2/Z, 5/S, 8/B). The answer is kept only as a keyed hash
//! in Redis, with the challenge's time to live; a challenge is claimed by the first submission
//! that answers it, right or wrong (a wrong answer spends it), and wrong answers are counted per
//! address (an IPv6 address by its /64).

use std::time::Duration;

use captcha::filters::{Dots, Noise, Wave};

use std::sync::Arc;

use super::store::{ChallengeStore, Claim, ImageClaim};
use super::{CaptchaError, hex, keyed_hash, now_ms, same};
use crate::secret::Secret;

/// The characters an image is made of: capitals and digits that cannot be mistaken for each
/// other (the answer is read case-insensitively).
pub const ALPHABET: &[char] = &[
    'A', 'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K', 'M', 'N', 'P', 'R', 'T', 'U', 'V', 'W', 'X', 'Y',
    '3', '4', '6', '7', '9',
];

/// Pixel size of an image.
pub const WIDTH: u32 = 240;
/// See [`WIDTH`].
pub const HEIGHT: u32 = 90;

/// An issued image challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageChallenge {
    /// The id the answer is sent back with.
    pub id: String,
    /// The image, PNG.
    pub png: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// When the challenge stops being valid (Unix ms).
    pub expires_at_ms: i64,
}

/// Draws `chars` random characters of [`ALPHABET`]: (the text, the PNG).
pub fn render(chars: u8) -> Option<(String, Vec<u8>)> {
    let mut image = captcha::Captcha::new();
    // Distortion and noise are applied to the cropped view, not the whole canvas: a fifth of
    // the pixels, and the PNG encoder (the costliest step) compresses less noise.
    image
        .set_chars(ALPHABET)
        .add_chars(u32::from(chars))
        .view(WIDTH, HEIGHT)
        .apply_filter(Wave::new(2.0, 10.0).horizontal())
        .apply_filter(Wave::new(2.0, 6.0).vertical())
        .apply_filter(Noise::new(0.15))
        .apply_filter(Dots::new(8).min_radius(2).max_radius(4));
    image.as_tuple()
}

/// Issues and checks image challenges.
pub struct ImageCaptcha {
    store: Arc<dyn ChallengeStore>,
    secret: Secret,
    ttl: Duration,
    chars: u8,
    wrong_limit: u32,
    wrong_window: Duration,
}

/// The parts of a challenge id: issued (Unix ms), nonce, signature.
fn parse_id(id: &str) -> Option<(i64, &str, &str)> {
    let mut parts = id.splitn(3, '.');
    let issued = i64::from_str_radix(parts.next()?, 16).ok()?;
    let nonce = parts.next()?;
    let signature = parts.next()?;
    let ok = nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some((issued, nonce, signature))
}

/// What a reader typed, as compared: spaces removed, capitals.
fn normalize(answer: &str) -> String {
    answer
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

impl ImageCaptcha {
    /// Image challenges kept in `store`, signed and hashed with `secret`.
    pub fn new(
        store: Arc<dyn ChallengeStore>,
        secret: &Secret,
        ttl: Duration,
        chars: u8,
        wrong_limit: u32,
        wrong_window: Duration,
    ) -> Self {
        ImageCaptcha {
            store,
            secret: secret.clone(),
            ttl,
            chars,
            wrong_limit,
            wrong_window,
        }
    }

    fn signature(&self, issued: i64, nonce: &str) -> String {
        keyed_hash(
            &self.secret,
            &[b"image", issued.to_string().as_bytes(), nonce.as_bytes()],
        )[..32]
            .to_owned()
    }

    fn answer_hash(&self, id: &str, answer: &str) -> String {
        keyed_hash(
            &self.secret,
            &[b"answer", id.as_bytes(), normalize(answer).as_bytes()],
        )
    }

    /// Draws and stores a new challenge.
    pub async fn issue(&self) -> Result<ImageChallenge, CaptchaError> {
        let chars = self.chars;
        // Drawing is a couple of milliseconds of CPU: off the async workers.
        let (text, png) = tokio::task::spawn_blocking(move || render(chars))
            .await
            .ok()
            .flatten()
            .ok_or_else(|| CaptchaError::Unavailable("the image could not be drawn".into()))?;
        self.store(&text, png).await
    }

    /// Stores a challenge whose answer is `text` and whose image is `png`. [`issue`] draws
    /// both; tests, which cannot read an image, choose the text.
    ///
    /// [`issue`]: ImageCaptcha::issue
    pub async fn store(&self, text: &str, png: Vec<u8>) -> Result<ImageChallenge, CaptchaError> {
        let issued = now_ms();
        let nonce = hex(uuid::Uuid::new_v4().as_bytes());
        let id = format!("{issued:x}.{nonce}.{}", self.signature(issued, &nonce));
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        self.store
            .put_image(&nonce, &self.answer_hash(&id, text), self.ttl)
            .await?;
        Ok(ImageChallenge {
            id,
            png,
            width: WIDTH,
            height: HEIGHT,
            expires_at_ms: issued + ttl_ms,
        })
    }

    /// Checks the challenge `id` is one of ours and makes the claim of `answer` from the
    /// network `ip_group` (an address, or an IPv6 /64: see
    /// [`crate::comment::ClientIp::group`]); whether the answer is right is decided where the
    /// challenge is kept, when the submission claims it.
    pub fn claim(&self, id: &str, answer: &str, ip_group: &str) -> Result<Claim, CaptchaError> {
        let Some((issued, nonce, signature)) = parse_id(id) else {
            return Err(CaptchaError::Unknown);
        };
        if !same(signature, &self.signature(issued, nonce)) {
            return Err(CaptchaError::Unknown);
        }
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        Ok(Claim::Image(ImageClaim {
            nonce: nonce.to_owned(),
            ip_group: ip_group.to_owned(),
            answer_hash: self.answer_hash(id, answer),
            wrong_limit: self.wrong_limit,
            wrong_window: self.wrong_window,
            expires_at_ms: issued.saturating_add(ttl_ms),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_pngs_of_the_requested_characters_from_the_alphabet() {
        for chars in [5, 6] {
            let (text, png) = render(chars).unwrap();
            assert_eq!(text.chars().count(), usize::from(chars));
            assert!(text.chars().all(|c| ALPHABET.contains(&c)), "{text}");
            assert_eq!(&png[1..4], b"PNG");
            // The PNG header's width and height.
            let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
            let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
            assert_eq!((width, height), (WIDTH, HEIGHT));
        }
    }

    #[test]
    fn the_alphabet_has_no_look_alikes() {
        for c in ['0', 'O', '1', 'I', 'L', '2', 'Z', '5', 'S', '8', 'B'] {
            assert!(!ALPHABET.contains(&c), "{c}");
        }
    }

    #[test]
    fn answers_are_compared_without_case_or_spaces() {
        assert_eq!(normalize(" ab c7 "), "ABC7");
    }

    #[test]
    fn challenge_ids_parse_only_in_their_own_format() {
        let nonce = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            parse_id(&format!("1a.{nonce}.sig")),
            Some((26, nonce, "sig"))
        );
        for bad in [
            "",
            "zz.00.sig",
            "1a.short.sig",
            "1a",
            "1a.0123456789abcdef0123456789abcdeg.s",
        ] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }
}
