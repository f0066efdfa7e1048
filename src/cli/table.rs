//! Aligned text columns for the read commands.

use crate::control_chars;

/// Renders rows under a header with columns padded to their widest cell. Control characters
/// in a cell are shown escaped (`\u{1b}`), never sent to the terminal.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| control_chars::escape(cell).into_owned())
                .collect()
        })
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// "12s ago" style age of a unix-ms timestamp.
pub fn ago(then_ms: Option<u64>, now_ms: u64) -> String {
    let Some(then) = then_ms else {
        return "-".into();
    };
    let secs = now_ms.saturating_sub(then) / 1000;
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m{}s ago", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h{}m ago", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_the_widest_cell() {
        let out = render(
            &["NAME", "STATUS"],
            &[vec!["a-long-name".into(), "alive".into()]],
        );
        assert_eq!(out, "NAME         STATUS\na-long-name  alive\n");
    }

    #[test]
    fn control_characters_in_a_cell_are_escaped_not_printed() {
        let out = render(
            &["NAME", "SUMMARY"],
            &[vec!["disk".into(), "fine\rRESOLVED \u{1b}[2J\u{7}".into()]],
        );
        assert_eq!(
            out,
            "NAME  SUMMARY\ndisk  fine\\u{d}RESOLVED \\u{1b}[2J\\u{7}\n"
        );
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(None, 5), "-");
        assert_eq!(ago(Some(1_000), 13_000), "12s ago");
        assert_eq!(ago(Some(0), 125_000), "2m5s ago");
    }
}
