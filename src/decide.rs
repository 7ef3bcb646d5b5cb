//! The decision: what happens to a comment, from its scores and the thresholds ops set. Pure:
//! no I/O, no clock, so it is tested as a table.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::classifier::Scores;

/// The thresholds a decision uses. Scores are calibrated probabilities, so a threshold reads
/// as a chance: `reject_at = 0.8` rejects comments at least 80 % likely to be spam.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Spam probability below which a comment is accepted.
    pub accept_below: f32,
    /// Spam probability at or above which a comment is rejected.
    pub reject_at: f32,
    /// Toxic probability at or above which a comment goes at least to review.
    pub review_toxic_at: f32,
}

impl Thresholds {
    /// Every problem with these thresholds, as (setting, description) pairs.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("accept_below", self.accept_below),
            ("reject_at", self.reject_at),
            ("review_toxic_at", self.review_toxic_at),
        ] {
            if !(0.0..=1.0).contains(&value) {
                problems.push((name, format!("must be between 0 and 1, is {value}")));
            }
        }
        if self.accept_below > self.reject_at {
            problems.push((
                "accept_below",
                format!(
                    "must not be above reject_at ({} > {})",
                    self.accept_below, self.reject_at
                ),
            ));
        }
        problems
    }
}

impl From<crate::classifier::Thresholds> for Thresholds {
    fn from(t: crate::classifier::Thresholds) -> Self {
        Thresholds {
            accept_below: t.accept_below,
            reject_at: t.reject_at,
            review_toxic_at: t.review_toxic_at,
        }
    }
}

/// What a bot signal does to a comment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BotAction {
    /// Nothing (the signal is not used).
    Ignore,
    /// At least review.
    Review,
    /// Reject.
    #[default]
    Reject,
}

/// `[bots]`: signals that need no CAPTCHA.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BotRules {
    /// What a filled honeypot field does (people never see the field; form-filling bots fill
    /// it).
    pub honeypot: BotAction,
    /// A form sent sooner than this after the portal rendered it was not typed by a person;
    /// zero switches the check off.
    #[serde(with = "humantime_serde")]
    pub min_fill_time: std::time::Duration,
    /// What a too-fast form does.
    pub too_fast: BotAction,
}

impl Default for BotRules {
    fn default() -> Self {
        BotRules {
            honeypot: BotAction::Reject,
            min_fill_time: std::time::Duration::from_secs(3),
            too_fast: BotAction::Review,
        }
    }
}

/// What the bot checks saw in a submission.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BotSignals {
    /// The honeypot field was filled.
    pub honeypot_filled: bool,
    /// How long the form was open before it was sent, when the portal said when it was
    /// rendered.
    pub fill_time: Option<std::time::Duration>,
}

/// Where a comment goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Published.
    Accepted,
    /// Held for a moderator.
    PendingReview,
    /// Rejected as spam.
    Rejected,
}

impl Outcome {
    /// The name used in storage and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::PendingReview => "pending_review",
            Outcome::Rejected => "rejected",
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;

    /// Reads [`Outcome::as_str`] back; anything else is an error, never a default.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "accepted" => Ok(Outcome::Accepted),
            "pending_review" => Ok(Outcome::PendingReview),
            "rejected" => Ok(Outcome::Rejected),
            other => Err(format!("unknown state {other:?}")),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule that weighed in a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReasonCode {
    /// Spam score at or above `reject_at`.
    SpamCertain,
    /// Spam score between `accept_below` and `reject_at`.
    SpamLikely,
    /// Toxic score at or above `review_toxic_at`.
    ToxicLikely,
    /// The honeypot field was filled.
    BotHoneypot,
    /// The form was sent faster than a person can fill it.
    BotTooFast,
    /// A phrase on ops' block list.
    BlockedWord,
    /// A link to a blocked domain.
    BlockedLink,
    /// Sent from a blocked address or network.
    BlockedIp,
    /// An e-mail address of a blocked (or disposable-mail) domain.
    BlockedEmail,
    /// Its article is pre-moderated, or it came in the pre-moderated hours: it waits for an
    /// editor whatever its scores (certain spam is still rejected).
    Premoderated,
    /// Its reader is pre-moderated (by a moderator, or automatically after rejections).
    ReaderPremoderated,
    /// Its reader's first comment, held as ops asked (`readers.hold_first_comment`).
    FirstComment,
    /// The same text (or nearly) came from other readers within the window: a campaign.
    DuplicateCampaign,
    /// The reader posted the same text (or nearly) before within the window.
    DuplicateRepeat,
}

impl ReasonCode {
    /// Every rule, most severe first.
    pub const ALL: [ReasonCode; 14] = [
        ReasonCode::SpamCertain,
        ReasonCode::SpamLikely,
        ReasonCode::ToxicLikely,
        ReasonCode::BotHoneypot,
        ReasonCode::BotTooFast,
        ReasonCode::BlockedWord,
        ReasonCode::BlockedLink,
        ReasonCode::BlockedIp,
        ReasonCode::BlockedEmail,
        ReasonCode::Premoderated,
        ReasonCode::ReaderPremoderated,
        ReasonCode::FirstComment,
        ReasonCode::DuplicateCampaign,
        ReasonCode::DuplicateRepeat,
    ];

    /// The stable code sent to the portal.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::SpamCertain => "SPAM_CERTAIN",
            ReasonCode::SpamLikely => "SPAM_LIKELY",
            ReasonCode::ToxicLikely => "TOXIC_LIKELY",
            ReasonCode::BotHoneypot => "BOT_HONEYPOT",
            ReasonCode::BotTooFast => "BOT_TOO_FAST",
            ReasonCode::BlockedWord => "BLOCKED_WORD",
            ReasonCode::BlockedLink => "BLOCKED_LINK",
            ReasonCode::BlockedIp => "BLOCKED_IP",
            ReasonCode::BlockedEmail => "BLOCKED_EMAIL",
            ReasonCode::Premoderated => "PREMODERATED",
            ReasonCode::ReaderPremoderated => "READER_PREMODERATED",
            ReasonCode::FirstComment => "FIRST_COMMENT",
            ReasonCode::DuplicateCampaign => "DUPLICATE_CAMPAIGN",
            ReasonCode::DuplicateRepeat => "DUPLICATE_REPEAT",
        }
    }
}

/// A reason as stored and sent: a code and a short readable message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable code (`SPAM_LIKELY`).
    pub code: String,
    /// Readable explanation ("spam score 0.93: 1 phone number, link to bit.ly").
    pub message: String,
}

/// A decision and the rules behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Where the comment goes.
    pub outcome: Outcome,
    /// The rules that fired, most severe first (empty for a plain acceptance).
    pub rules: Vec<ReasonCode>,
    /// With the classifier in shadow: what it would have decided (`outcome` is then decided
    /// without it).
    pub shadow: Option<Outcome>,
}

/// What the newsroom's controls and the bot checks saw in a submission, beside its scores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The bot signals.
    pub bots: BotSignals,
    /// Pre-moderation applies (its article, or the hour).
    pub premoderated: bool,
    /// What the reader's standing does.
    pub reader: crate::readers::Effect,
    /// It is the reader's first comment, and ops hold first comments.
    pub first_comment: bool,
    /// Whether the text is a near copy of recent ones.
    pub duplicate: Duplicate,
}

/// Whether a comment's text is a near copy of recent comments (see [`crate::campaigns`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Duplicate {
    /// No.
    #[default]
    None,
    /// Of enough other readers' to be a campaign.
    Campaign,
    /// Of the same reader's.
    Repeat,
}

/// [`decide_live`] with pre-moderation: a comment that would be accepted waits for an editor
/// instead (reason `PREMODERATED`); rejections stand, so certain spam never reaches the queue.
pub fn decide_with(
    scores: Option<Scores>,
    t: &Thresholds,
    bots: &BotRules,
    seen: Seen,
    blocked: Option<ReasonCode>,
    classifier_shadow: bool,
) -> Decision {
    let mut d = decide_live(scores, t, bots, seen.bots, blocked, classifier_shadow);
    if seen.reader == crate::readers::Effect::Trusted {
        trust(&mut d);
    }
    if seen.premoderated {
        if d.outcome == Outcome::Accepted {
            d.outcome = Outcome::PendingReview;
            d.rules.push(ReasonCode::Premoderated);
        }
        if d.shadow == Some(Outcome::Accepted) {
            d.shadow = Some(Outcome::PendingReview);
        }
    }
    // What moderators should know of a comment that is not rejected, even one already held.
    let holds = [
        (
            seen.reader == crate::readers::Effect::Premoderated,
            ReasonCode::ReaderPremoderated,
        ),
        (seen.first_comment, ReasonCode::FirstComment),
        (
            seen.duplicate == Duplicate::Campaign,
            ReasonCode::DuplicateCampaign,
        ),
        (
            seen.duplicate == Duplicate::Repeat,
            ReasonCode::DuplicateRepeat,
        ),
    ];
    for (fired, rule) in holds {
        if fired && d.outcome != Outcome::Rejected {
            d.outcome = Outcome::PendingReview;
            d.rules.push(rule);
        }
        if fired && d.shadow == Some(Outcome::Accepted) {
            d.shadow = Some(Outcome::PendingReview);
        }
    }
    d
}

/// A trusted reader's comment skips review the classifier alone asked for (its "likely"
/// rules); certain spam is still rejected, and every other rule stands.
fn trust(d: &mut Decision) {
    let likely = |r: &ReasonCode| matches!(r, ReasonCode::SpamLikely | ReasonCode::ToxicLikely);
    if d.outcome == Outcome::PendingReview && d.rules.iter().all(likely) {
        d.outcome = Outcome::Accepted;
        d.rules.clear();
    }
    if d.shadow == Some(Outcome::PendingReview) && d.rules.iter().all(likely) {
        d.shadow = Some(Outcome::Accepted);
    }
}

/// Decides: spam below `accept_below` is accepted, at or above `reject_at` rejected, between
/// held for review; a toxic score at or above `review_toxic_at` sends an accepted comment to
/// review (abuse is a moderator's call, never an automatic rejection); a bot signal rejects or
/// sends to review as `bots` says. With ops' switches: a comment matching a block list is
/// rejected for it (it was not scored, `scores` is `None`); with the classifier in shadow its
/// rules only say what would have happened, and the comment is decided by the bot rules alone.
pub fn decide_live(
    scores: Option<Scores>,
    t: &Thresholds,
    bots: &BotRules,
    seen: BotSignals,
    blocked: Option<ReasonCode>,
    classifier_shadow: bool,
) -> Decision {
    if let Some(block) = blocked {
        return Decision {
            outcome: Outcome::Rejected,
            rules: vec![block],
            shadow: None,
        };
    }
    match scores {
        Some(scores) if classifier_shadow => {
            let (would, _) = apply_rules(Some(scores), t, bots, seen);
            let (outcome, rules) = apply_rules(None, t, bots, seen);
            Decision {
                outcome,
                rules,
                shadow: Some(would),
            }
        }
        _ => {
            let (outcome, rules) = apply_rules(scores, t, bots, seen);
            Decision {
                outcome,
                rules,
                shadow: None,
            }
        }
    }
}

/// The rules; the classifier's only when there are scores.
fn apply_rules(
    scores: Option<Scores>,
    t: &Thresholds,
    bots: &BotRules,
    seen: BotSignals,
) -> (Outcome, Vec<ReasonCode>) {
    let mut rules = Vec::new();
    let mut outcome = Outcome::Accepted;
    if let Some(scores) = scores {
        if scores.spam >= t.reject_at {
            rules.push(ReasonCode::SpamCertain);
            outcome = Outcome::Rejected;
        } else if scores.spam >= t.accept_below {
            rules.push(ReasonCode::SpamLikely);
            outcome = Outcome::PendingReview;
        }
        if scores.toxic >= t.review_toxic_at {
            rules.push(ReasonCode::ToxicLikely);
            outcome = outcome.max_severity(Outcome::PendingReview);
        }
    }
    let too_fast =
        !bots.min_fill_time.is_zero() && seen.fill_time.is_some_and(|t| t < bots.min_fill_time);
    for (fired, rule, action) in [
        (seen.honeypot_filled, ReasonCode::BotHoneypot, bots.honeypot),
        (too_fast, ReasonCode::BotTooFast, bots.too_fast),
    ] {
        let at_least = match action {
            BotAction::Ignore => continue,
            BotAction::Review => Outcome::PendingReview,
            BotAction::Reject => Outcome::Rejected,
        };
        if fired {
            rules.push(rule);
            outcome = outcome.max_severity(at_least);
        }
    }
    (outcome, rules)
}

impl Outcome {
    /// The more severe of two outcomes.
    fn max_severity(self, other: Outcome) -> Outcome {
        let rank = |o: Outcome| match o {
            Outcome::Accepted => 0,
            Outcome::PendingReview => 1,
            Outcome::Rejected => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decision without ops' switches, as most tables below need.
    fn decide(scores: Scores, t: &Thresholds, bots: &BotRules, seen: BotSignals) -> Decision {
        decide_live(Some(scores), t, bots, seen, None, false)
    }

    const T: Thresholds = Thresholds {
        accept_below: 0.3,
        reject_at: 0.8,
        review_toxic_at: 0.5,
    };

    #[test]
    fn decisions_follow_the_thresholds() {
        use Outcome::*;
        use ReasonCode::*;
        let table: &[(f32, f32, Outcome, &[ReasonCode])] = &[
            (0.0, 0.0, Accepted, &[]),
            (0.29, 0.49, Accepted, &[]),
            (0.3, 0.0, PendingReview, &[SpamLikely]),
            (0.79, 0.0, PendingReview, &[SpamLikely]),
            (0.8, 0.0, Rejected, &[SpamCertain]),
            (1.0, 0.0, Rejected, &[SpamCertain]),
            (0.1, 0.5, PendingReview, &[ToxicLikely]),
            (0.5, 0.9, PendingReview, &[SpamLikely, ToxicLikely]),
            (0.9, 0.9, Rejected, &[SpamCertain, ToxicLikely]),
        ];
        for &(spam, toxic, outcome, rules) in table {
            let d = decide(
                Scores { spam, toxic },
                &T,
                &BotRules::default(),
                BotSignals::default(),
            );
            assert_eq!(d.outcome, outcome, "spam {spam} toxic {toxic}");
            assert_eq!(d.rules, rules, "spam {spam} toxic {toxic}");
        }
    }

    #[test]
    fn equal_accept_and_reject_thresholds_leave_no_review_band_for_spam() {
        let t = Thresholds {
            accept_below: 0.5,
            reject_at: 0.5,
            review_toxic_at: 1.0,
        };
        let d = |spam| {
            decide(
                Scores { spam, toxic: 0.0 },
                &t,
                &BotRules::default(),
                BotSignals::default(),
            )
        };
        assert_eq!(d(0.49).outcome, Outcome::Accepted);
        assert_eq!(d(0.5).outcome, Outcome::Rejected);
    }

    #[test]
    fn bot_signals_reject_or_hold_as_configured() {
        use BotAction::*;
        use std::time::Duration;
        let clean = Scores {
            spam: 0.0,
            toxic: 0.0,
        };
        let quick = Some(Duration::from_millis(800));
        let slow = Some(Duration::from_secs(30));
        /// (honeypot action, too-fast action, honeypot filled, fill time, outcome, rules)
        type Row = (
            BotAction,
            BotAction,
            bool,
            Option<Duration>,
            Outcome,
            &'static [ReasonCode],
        );
        let table: &[Row] = &[
            (Reject, Review, false, slow, Outcome::Accepted, &[]),
            (Reject, Review, false, None, Outcome::Accepted, &[]),
            (
                Reject,
                Review,
                true,
                slow,
                Outcome::Rejected,
                &[ReasonCode::BotHoneypot],
            ),
            (
                Review,
                Review,
                true,
                slow,
                Outcome::PendingReview,
                &[ReasonCode::BotHoneypot],
            ),
            (Ignore, Review, true, slow, Outcome::Accepted, &[]),
            (
                Reject,
                Review,
                false,
                quick,
                Outcome::PendingReview,
                &[ReasonCode::BotTooFast],
            ),
            (
                Reject,
                Reject,
                false,
                quick,
                Outcome::Rejected,
                &[ReasonCode::BotTooFast],
            ),
            (Reject, Ignore, false, quick, Outcome::Accepted, &[]),
            (
                Review,
                Review,
                true,
                quick,
                Outcome::PendingReview,
                &[ReasonCode::BotHoneypot, ReasonCode::BotTooFast],
            ),
        ];
        for &(honeypot, too_fast, filled, fill_time, outcome, rules) in table {
            let bots = BotRules {
                honeypot,
                too_fast,
                min_fill_time: Duration::from_secs(3),
            };
            let seen = BotSignals {
                honeypot_filled: filled,
                fill_time,
            };
            let d = decide(clean, &T, &bots, seen);
            assert_eq!(
                d.outcome, outcome,
                "{honeypot:?} {too_fast:?} {filled} {fill_time:?}"
            );
            assert_eq!(d.rules, rules);
        }
        // A zero minimum switches the timing check off.
        let off = BotRules {
            min_fill_time: Duration::ZERO,
            ..BotRules::default()
        };
        let seen = BotSignals {
            honeypot_filled: false,
            fill_time: Some(Duration::ZERO),
        };
        assert_eq!(decide(clean, &T, &off, seen).outcome, Outcome::Accepted);
        // Spam rejection is not softened by a review-only bot rule.
        let spam = Scores {
            spam: 0.95,
            toxic: 0.0,
        };
        let seen = BotSignals {
            honeypot_filled: true,
            fill_time: None,
        };
        let bots = BotRules {
            honeypot: Review,
            ..BotRules::default()
        };
        assert_eq!(decide(spam, &T, &bots, seen).outcome, Outcome::Rejected);
    }

    #[test]
    fn blocks_reject_and_a_shadowed_classifier_only_says_what_it_would_do() {
        let spam = Some(Scores {
            spam: 0.95,
            toxic: 0.0,
        });
        let bots = BotRules::default();
        let quiet = BotSignals::default();
        let blocked = decide_live(None, &T, &bots, quiet, Some(ReasonCode::BlockedIp), false);
        assert_eq!(blocked.outcome, Outcome::Rejected);
        assert_eq!(blocked.rules, [ReasonCode::BlockedIp]);

        let enforced = decide_live(spam, &T, &bots, quiet, None, false);
        assert_eq!(
            (enforced.outcome, enforced.shadow),
            (Outcome::Rejected, None)
        );
        let shadowed = decide_live(spam, &T, &bots, quiet, None, true);
        assert_eq!(shadowed.outcome, Outcome::Accepted);
        assert!(shadowed.rules.is_empty());
        assert_eq!(shadowed.shadow, Some(Outcome::Rejected));
        // Bot rules still apply with the classifier in shadow.
        let honeypot = BotSignals {
            honeypot_filled: true,
            fill_time: None,
        };
        let caught = decide_live(spam, &T, &bots, honeypot, None, true);
        assert_eq!(caught.outcome, Outcome::Rejected);
        assert_eq!(caught.rules, [ReasonCode::BotHoneypot]);
        // A zero accept threshold does not make the shadowed classifier hold everything.
        let zero = Thresholds {
            accept_below: 0.0,
            ..T
        };
        let clean = Some(Scores {
            spam: 0.0,
            toxic: 0.0,
        });
        let d = decide_live(clean, &zero, &bots, quiet, None, true);
        assert_eq!(
            (d.outcome, d.shadow),
            (Outcome::Accepted, Some(Outcome::PendingReview))
        );
    }

    #[test]
    fn premoderation_holds_what_would_be_published_and_nothing_else() {
        let t = Thresholds {
            accept_below: 0.3,
            reject_at: 0.9,
            review_toxic_at: 0.5,
        };
        let bots = BotRules::default();
        let seen = Seen {
            premoderated: true,
            ..Seen::default()
        };
        let with = |spam: f32| {
            decide_with(
                Some(Scores { spam, toxic: 0.0 }),
                &t,
                &bots,
                seen,
                None,
                false,
            )
        };
        let fine = with(0.1);
        assert_eq!(fine.outcome, Outcome::PendingReview);
        assert_eq!(fine.rules, [ReasonCode::Premoderated]);
        assert_eq!(
            with(0.5).rules,
            [ReasonCode::SpamLikely],
            "held anyway: no second reason"
        );
        assert_eq!(
            with(0.95).outcome,
            Outcome::Rejected,
            "certain spam is still rejected"
        );
        let blocked = decide_with(None, &t, &bots, seen, Some(ReasonCode::BlockedWord), false);
        assert_eq!(blocked.outcome, Outcome::Rejected);
        let shadowed = decide_with(
            Some(Scores {
                spam: 0.1,
                toxic: 0.0,
            }),
            &t,
            &bots,
            seen,
            None,
            true,
        );
        assert_eq!(
            (shadowed.outcome, shadowed.shadow),
            (Outcome::PendingReview, Some(Outcome::PendingReview))
        );
        let off = Seen {
            premoderated: false,
            ..seen
        };
        assert_eq!(
            decide_with(
                Some(Scores {
                    spam: 0.1,
                    toxic: 0.0
                }),
                &t,
                &bots,
                off,
                None,
                false
            )
            .outcome,
            Outcome::Accepted
        );
    }

    #[test]
    fn readers_standings_first_comments_and_copies() {
        use crate::readers::Effect;
        let t = Thresholds {
            accept_below: 0.3,
            reject_at: 0.9,
            review_toxic_at: 0.5,
        };
        let bots = BotRules::default();
        let with = |seen: Seen, spam: f32, toxic: f32| {
            decide_with(Some(Scores { spam, toxic }), &t, &bots, seen, None, false)
        };
        let trusted = Seen {
            reader: Effect::Trusted,
            ..Seen::default()
        };
        let skipped = with(trusted, 0.5, 0.6);
        assert_eq!(
            (skipped.outcome, skipped.rules.len()),
            (Outcome::Accepted, 0)
        );
        assert_eq!(
            with(trusted, 0.95, 0.0).outcome,
            Outcome::Rejected,
            "certain spam"
        );
        let honeypot = Seen {
            bots: BotSignals {
                honeypot_filled: true,
                fill_time: None,
            },
            ..trusted
        };
        let bots_review = BotRules {
            honeypot: BotAction::Review,
            ..BotRules::default()
        };
        let caught = decide_with(
            Some(Scores {
                spam: 0.5,
                toxic: 0.0,
            }),
            &t,
            &bots_review,
            honeypot,
            None,
            false,
        );
        assert_eq!(
            caught.outcome,
            Outcome::PendingReview,
            "a bot rule still holds it"
        );
        for (seen, code) in [
            (
                Seen {
                    reader: Effect::Premoderated,
                    ..Seen::default()
                },
                ReasonCode::ReaderPremoderated,
            ),
            (
                Seen {
                    first_comment: true,
                    ..Seen::default()
                },
                ReasonCode::FirstComment,
            ),
            (
                Seen {
                    duplicate: Duplicate::Campaign,
                    ..Seen::default()
                },
                ReasonCode::DuplicateCampaign,
            ),
            (
                Seen {
                    duplicate: Duplicate::Repeat,
                    ..Seen::default()
                },
                ReasonCode::DuplicateRepeat,
            ),
        ] {
            let fine = with(seen, 0.1, 0.0);
            assert_eq!(
                (fine.outcome, fine.rules.clone()),
                (Outcome::PendingReview, vec![code])
            );
            let likely = with(seen, 0.5, 0.0);
            assert_eq!(
                likely.rules,
                [ReasonCode::SpamLikely, code],
                "moderators see both"
            );
            assert_eq!(with(seen, 0.95, 0.0).outcome, Outcome::Rejected);
        }
        assert_eq!(with(Seen::default(), 0.1, 0.0).outcome, Outcome::Accepted);
    }

    #[test]
    fn inconsistent_thresholds_are_reported() {
        assert!(T.problems().is_empty());
        let bad = Thresholds {
            accept_below: 0.9,
            reject_at: 0.5,
            review_toxic_at: 1.5,
        };
        let fields: Vec<&str> = bad.problems().iter().map(|p| p.0).collect();
        assert_eq!(fields, ["review_toxic_at", "accept_below"]);
    }
}
