//! Batch scoring of JSON Lines (the `classify` command): one output line per input line, in
//! order, scored on every core. A line that cannot be read gets an error line, never a crash.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

use super::model::{Model, Reason};

/// Input lines scored together; big enough to keep every core busy, small enough that output
/// keeps flowing on a pipe.
const BATCH: usize = 4096;

/// An input line. Other fields (`context`, labels, ids) are ignored, so corpus files and the
/// portal's own records can be piped in unchanged; the article title (`context`) is not a model
/// input (the model card says why).
#[derive(Deserialize)]
struct Input {
    text: String,
    #[serde(default)]
    author: Option<String>,
}

#[derive(Serialize)]
struct Scored<'a> {
    line: usize,
    spam: f32,
    toxic: f32,
    model: &'a str,
    reasons: Reasons,
}

#[derive(Serialize)]
struct Reasons {
    spam: Vec<Reason>,
    toxic: Vec<Reason>,
}

#[derive(Serialize)]
struct Failed {
    line: usize,
    error: String,
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines read.
    pub lines: usize,
    /// Lines answered with an error.
    pub errors: usize,
}

/// Scores every line of `input` and writes one JSON line per input line to `output`, with
/// `top` reasons per head.
pub fn classify(
    model: &Model,
    input: impl BufRead,
    mut output: impl Write,
    top: usize,
) -> io::Result<Summary> {
    let mut summary = Summary::default();
    let mut input = input;
    let mut batch: Vec<Line> = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        while batch.len() < BATCH {
            let mut bytes = Vec::new();
            if input.read_until(b'\n', &mut bytes)? == 0 {
                break;
            }
            if bytes.ends_with(b"\n") {
                bytes.pop();
                if bytes.ends_with(b"\r") {
                    bytes.pop();
                }
            }
            batch.push(String::from_utf8(bytes).map_err(|_| ()));
        }
        if batch.is_empty() {
            break;
        }
        let first = summary.lines + 1;
        for (answer, failed) in score_batch(model, &batch, first, top) {
            summary.errors += usize::from(failed);
            output.write_all(answer.as_bytes())?;
            output.write_all(b"\n")?;
        }
        summary.lines += batch.len();
    }
    output.flush()?;
    Ok(summary)
}

/// An input line, or `Err` when it is not UTF-8.
type Line = Result<String, ()>;

/// Answers for `lines` (numbered from `first`), in order, with whether each is an error.
fn score_batch(model: &Model, lines: &[Line], first: usize, top: usize) -> Vec<(String, bool)> {
    super::parallel_chunks(lines, |offset, part| {
        part.iter()
            .enumerate()
            .map(|(k, line)| answer(model, line, first + offset + k, top))
            .collect()
    })
}

fn answer(model: &Model, line: &Line, number: usize, top: usize) -> (String, bool) {
    let failed = |error: String| {
        let body = serde_json::to_string(&Failed {
            line: number,
            error,
        })
        .unwrap_or_default();
        (body, true)
    };
    let Ok(line) = line else {
        return failed("not UTF-8".to_owned());
    };
    if line.trim().is_empty() {
        return failed("empty line".to_owned());
    }
    let input: Input = match serde_json::from_str(line) {
        Ok(input) => input,
        Err(e) => return failed(format!("not a JSON object with a string \"text\": {e}")),
    };
    let explanation = model.explain(&input.text, input.author.as_deref(), top);
    let scored = Scored {
        line: number,
        spam: explanation.scores.spam,
        toxic: explanation.scores.toxic,
        model: &model.info().name,
        reasons: Reasons {
            spam: explanation.spam,
            toxic: explanation.toxic,
        },
    };
    match serde_json::to_string(&scored) {
        Ok(body) => (body, false),
        Err(e) => failed(format!("cannot encode the answer: {e}")),
    }
}
