//! Control characters in text that came from elsewhere (alert summaries, check output,
//! incident subjects, peers' names): stripped before the text is stored, escaped when text is
//! written for humans (CLI tables, the console, emails), so that no value can move the cursor,
//! recolour a terminal, reorder a line or start a forged one ("Sent by mallory").
//!
//! Control here means: C0 (U+0000 to U+001F, tab and newline included), DEL, C1 (U+0080 to
//! U+009F, NEL included), the bidirectional marks, embeddings, overrides and isolates
//! (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069), the line and paragraph
//! separators U+2028 and U+2029, and the byte order mark U+FEFF.

use std::borrow::Cow;

/// Whether `c` is a control character in the sense of the module docs (the set node tags
/// refuse too).
pub fn is_control(c: char) -> bool {
    rover_membership::tags::is_control(c)
}

/// Whether `c` separates words or lines (tab, line feed, CR, NEL, U+2028...): it becomes a
/// space when stripped, so that words stay apart.
fn is_break(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// `text` as one line without control characters: line and word breaks become one space,
/// every other control character is dropped, and the ends are trimmed.
pub fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_break(c) {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else if !is_control(c) {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

/// Whether `text` holds any control character.
pub fn has_control(text: &str) -> bool {
    text.chars().any(is_control)
}

/// `text` for a one-line output: every control character written as `\u{XX}` (so it shows
/// and does nothing). Borrowed when there is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_but(text, |_| false)
}

/// `text` for a multi-line output: like [`escape`], but line feeds stay line feeds.
pub fn escape_keeping_lines(text: &str) -> Cow<'_, str> {
    escape_but(text, |c| c == '\n')
}

fn escape_but(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_control(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_control(c) && !keep(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripping_leaves_one_line_of_visible_text() {
        assert_eq!(
            strip("disk fine\rRESOLVED (forged)"),
            "disk fine RESOLVED (forged)"
        );
        assert_eq!(
            strip("a\n\nSent by mallory, Raft leader."),
            "a Sent by mallory, Raft leader."
        );
        assert_eq!(strip("\u{1b}[31mred\u{1b}[0m\u{7}"), "[31mred[0m");
        assert_eq!(strip("nul\0 del\u{7f} c1\u{9b}"), "nul del c1");
        assert_eq!(strip("ls\u{2028}sep\u{85}nel"), "ls sep nel");
        assert_eq!(strip("\u{202e}txt.exe\u{202c}"), "txt.exe");
        assert_eq!(strip("  été 90% plein  "), "été 90% plein");
    }

    #[test]
    fn escaping_shows_every_control_character_and_keeps_the_rest() {
        assert_eq!(escape("ok"), Cow::Borrowed("ok"));
        assert_eq!(escape("a\rb\u{1b}c"), "a\\u{d}b\\u{1b}c");
        assert_eq!(escape("x\ny"), "x\\u{a}y");
        assert_eq!(escape_keeping_lines("x\ny\rz"), "x\ny\\u{d}z");
        assert_eq!(escape("\u{2066}é"), "\\u{2066}é");
    }
}
