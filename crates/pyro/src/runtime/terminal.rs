//! Turning raw terminal output into plain text (`shell_read` with `plain=true`).
//!
//! [`plain_text`] runs a tiny line model over the text: escape sequences (CSI, OSC,
//! DCS/SOS/PM/APC and two- or three-character ESC sequences) are removed; `\r`
//! returns to column 0 and later characters overwrite; backspace moves one column
//! left; `ESC[K` (all three variants) erases in the line; `ESC[2J`/`ESC[3J` clear
//! everything; `\n` ends a line; tabs are kept; every other control character is
//! dropped. Lines are joined with `\n`.
//!
//! It is not a terminal emulator: cursor movement between lines, scrolling regions and
//! the alternate screen are ignored, so full-screen programs come out garbled.

/// Column limit, so a hostile `ESC[999999999C` cannot allocate without bound.
const MAX_COLUMN: usize = 4096;

/// One parsed piece of terminal output.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// A printable character.
    Char(char),
    /// A control character.
    Control(char),
    /// A CSI sequence: parameters and final byte.
    Csi(String, char),
    /// Any other escape sequence (dropped).
    Escape,
}

/// Split `text` into tokens; an escape sequence cut off at the end is reported by its
/// start (in characters) instead.
fn tokenize(text: &str) -> (Vec<Token>, Option<usize>) {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '\u{1b}' {
            tokens.push(if c.is_control() { Token::Control(c) } else { Token::Char(c) });
            i += 1;
            continue;
        }
        let start = i;
        let Some(&kind) = chars.get(i + 1) else { return (tokens, Some(start)) };
        match kind {
            '[' => {
                let mut j = i + 2;
                let mut params = String::new();
                loop {
                    let Some(&b) = chars.get(j) else { return (tokens, Some(start)) };
                    if ('\u{40}'..='\u{7e}').contains(&b) {
                        tokens.push(Token::Csi(params, b));
                        i = j + 1;
                        break;
                    }
                    if !('\u{20}'..='\u{3f}').contains(&b) {
                        // Malformed: drop the introducer, keep the rest as text.
                        tokens.push(Token::Escape);
                        i = j;
                        break;
                    }
                    params.push(b);
                    j += 1;
                }
            }
            ']' | 'P' | 'X' | '^' | '_' => {
                // String sequences end with BEL (OSC only) or ST (ESC \).
                let mut j = i + 2;
                loop {
                    match chars.get(j) {
                        None => return (tokens, Some(start)),
                        Some('\u{7}') if kind == ']' => {
                            i = j + 1;
                            break;
                        }
                        Some('\u{1b}') => match chars.get(j + 1) {
                            None => return (tokens, Some(start)),
                            Some('\\') => {
                                i = j + 2;
                                break;
                            }
                            Some(_) => j += 1,
                        },
                        Some(_) => j += 1,
                    }
                }
                tokens.push(Token::Escape);
            }
            '(' | ')' | '*' | '+' | '-' | '.' | '/' | '#' | '%' | ' ' => {
                if chars.get(i + 2).is_none() {
                    return (tokens, Some(start));
                }
                tokens.push(Token::Escape);
                i += 3;
            }
            _ => {
                tokens.push(Token::Escape);
                i += 2;
            }
        }
    }
    (tokens, None)
}

/// Character index where an escape sequence that is not complete yet starts at the end
/// of `text`, if there is one.
pub fn incomplete_escape_start(text: &str) -> Option<usize> {
    tokenize(text).1
}

fn first_param(params: &str, default: usize) -> usize {
    params
        .trim_start_matches(['?', '>', '<', '='])
        .split(';')
        .next()
        .and_then(|p| p.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

#[derive(Debug, Default)]
struct Screen {
    done: Vec<String>,
    line: Vec<char>,
    col: usize,
}

impl Screen {
    fn put(&mut self, c: char) {
        if self.col < self.line.len() {
            self.line[self.col] = c;
        } else {
            self.line.resize(self.col, ' ');
            self.line.push(c);
        }
        self.col = (self.col + 1).min(MAX_COLUMN);
    }

    fn csi(&mut self, params: &str, fin: char) {
        match fin {
            'K' => match first_param(params, 0) {
                0 => self.line.truncate(self.col),
                1 => {
                    let end = (self.col + 1).min(self.line.len());
                    self.line[..end].iter_mut().for_each(|c| *c = ' ');
                }
                _ => self.line.clear(),
            },
            'J' if matches!(first_param(params, 0), 2 | 3) => {
                self.done.clear();
                self.line.clear();
                self.col = 0;
            }
            'G' => self.col = (first_param(params, 1) - 1).min(MAX_COLUMN),
            'C' => self.col = (self.col + first_param(params, 1)).min(MAX_COLUMN),
            'D' => self.col = self.col.saturating_sub(first_param(params, 1)),
            _ => {}
        }
    }

    fn finish(mut self) -> String {
        self.done.push(self.line.into_iter().collect());
        self.done.join("\n")
    }
}

/// `text` as plain text (see the module docs).
pub fn plain_text(text: &str) -> String {
    let (tokens, incomplete) = tokenize(text);
    let mut screen = Screen::default();
    for token in tokens {
        match token {
            Token::Char(c) => screen.put(c),
            Token::Control('\n') => {
                let line: String = std::mem::take(&mut screen.line).into_iter().collect();
                screen.done.push(line);
                screen.col = 0;
            }
            Token::Control('\r') => screen.col = 0,
            Token::Control('\u{8}') => screen.col = screen.col.saturating_sub(1),
            Token::Control('\t') => screen.put('\t'),
            Token::Control(_) | Token::Escape => {}
            Token::Csi(params, fin) => screen.csi(&params, fin),
        }
    }
    // An unfinished sequence at the very end is dropped, not printed.
    let _ = incomplete;
    screen.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_modes_are_stripped() {
        assert_eq!(plain_text("\u{1b}[31mred\u{1b}[0m\r\n"), "red\n");
        assert_eq!(
            plain_text("\u{1b}[?2004hpyro$ ls\r\n\u{1b}[?2004l\ra b\r\n"),
            "pyro$ ls\na b\n"
        );
        assert_eq!(plain_text("\u{1b}]0;title\u{7}x\u{1b}]2;t\u{1b}\\y"), "xy");
        assert_eq!(plain_text("\u{1b}P1$r0m\u{1b}\\z\u{1b}(Bq\u{1b}=w"), "zqw");
    }

    #[test]
    fn carriage_return_backspace_and_erase_overwrite() {
        assert_eq!(plain_text("progress 10%\rprogress 100%\n"), "progress 100%\n");
        assert_eq!(plain_text("abcdef\rXY\n"), "XYcdef\n");
        assert_eq!(plain_text("abc\u{8}\u{8}Z\n"), "aZc\n");
        assert_eq!(plain_text("abcdef\r\u{1b}[Knew"), "new");
        assert_eq!(plain_text("abcdef\u{1b}[3D\u{1b}[0K!"), "abc!");
        assert_eq!(plain_text("abcdef\u{1b}[3D\u{1b}[1KX"), "   Xef");
        assert_eq!(plain_text("abc\u{1b}[2Kx"), "   x");
        assert_eq!(plain_text("old\nlines\u{1b}[2J\u{1b}[Hnew"), "new");
        assert_eq!(plain_text("a\u{1b}[5Gb"), "a   b");
    }

    #[test]
    fn other_controls_are_dropped_and_tabs_kept() {
        assert_eq!(plain_text("a\u{7}b\u{0}c\td\u{7f}"), "abc\td");
    }

    #[test]
    fn incomplete_sequences_are_found_at_the_end_only() {
        assert_eq!(incomplete_escape_start("ok\u{1b}[3"), Some(2));
        assert_eq!(incomplete_escape_start("ok\u{1b}"), Some(2));
        assert_eq!(incomplete_escape_start("é\u{1b}]0;title"), Some(1));
        assert_eq!(incomplete_escape_start("ok\u{1b}[31m"), None);
        assert_eq!(incomplete_escape_start("plain"), None);
        assert_eq!(plain_text("ok\u{1b}[3"), "ok");
    }

    #[test]
    fn huge_cursor_moves_are_bounded() {
        let out = plain_text("a\u{1b}[999999999Cb");
        assert!(out.len() <= MAX_COLUMN + 2, "{}", out.len());
    }
}
