//! The output buffer of a shell: the whole history since open, decoded as UTF-8 and
//! redacted, with a sparse character index so cursors are cheap to resolve.

use super::*;

/// Characters between two index marks of an [`OutputBuffer`].
const MARK_STRIDE: u64 = 1024;

/// The output of one shell: text plus a sparse character index, fed with raw bytes.
#[derive(Debug, Default)]
pub struct OutputBuffer {
    /// Committed text: what readers see.
    text: String,
    /// Characters in `text`.
    chars: u64,
    /// `marks[k]` is the byte offset of character `k * MARK_STRIDE`.
    marks: Vec<usize>,
    /// Trailing bytes of an incomplete UTF-8 sequence.
    partial: Vec<u8>,
    /// Decoded text not yet committed because its end could start a secret.
    pending: String,
    /// Values to redact, longest first, none empty.
    redact: Vec<String>,
}

impl OutputBuffer {
    /// An empty buffer that replaces each of `redact` with [`REDACTED`].
    pub fn new(redact: &[String]) -> Self {
        let mut redact: Vec<String> = redact.iter().filter(|s| !s.is_empty()).cloned().collect();
        redact.sort_by_key(|s| std::cmp::Reverse(s.len()));
        redact.dedup();
        OutputBuffer { redact, ..OutputBuffer::default() }
    }

    /// Number of committed characters.
    pub fn len_chars(&self) -> u64 {
        self.chars
    }

    /// Whether text is held back (for redaction or as an incomplete UTF-8 sequence).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.partial.is_empty()
    }

    /// Append raw terminal bytes.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        let mut decoded = String::new();
        let mut rest: &[u8] = &self.partial;
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    decoded.push_str(text);
                    rest = &[];
                    break;
                }
                Err(err) => {
                    let (valid, after) = rest.split_at(err.valid_up_to());
                    // `valid` is valid UTF-8 by the contract of `valid_up_to`.
                    decoded.push_str(&String::from_utf8_lossy(valid));
                    match err.error_len() {
                        Some(n) => {
                            decoded.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[n..];
                        }
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        self.partial = rest.to_vec();
        self.pending.push_str(&decoded);
        self.commit(false);
    }

    /// Release everything held back (at the end of output or after a quiet period).
    pub fn flush(&mut self) {
        if !self.partial.is_empty() {
            let tail = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            self.pending.push_str(&tail);
        }
        self.commit(true);
    }

    fn commit(&mut self, all: bool) {
        if self.pending.is_empty() {
            return;
        }
        for secret in &self.redact {
            if self.pending.contains(secret.as_str()) {
                self.pending = self.pending.replace(secret.as_str(), REDACTED);
            }
        }
        let keep_from = if all { self.pending.len() } else { self.hold_back_start() };
        let rest = self.pending.split_off(keep_from);
        let ready = std::mem::replace(&mut self.pending, rest);
        self.append(&ready);
    }

    /// Byte offset in `pending` from which the rest is a proper prefix of a secret
    /// (so it must wait for more output); `pending.len()` when nothing is held back.
    fn hold_back_start(&self) -> usize {
        let mut start = self.pending.len();
        for secret in &self.redact {
            let longest = secret.len().saturating_sub(1).min(self.pending.len());
            for len in (1..=longest).rev() {
                let from = self.pending.len() - len;
                if from < start
                    && self.pending.is_char_boundary(from)
                    && secret.starts_with(&self.pending[from..])
                {
                    start = from;
                    break;
                }
            }
        }
        start
    }

    fn append(&mut self, text: &str) {
        for (offset, _) in text.char_indices() {
            if self.chars.is_multiple_of(MARK_STRIDE) {
                self.marks.push(self.text.len() + offset);
            }
            self.chars += 1;
        }
        self.text.push_str(text);
    }

    /// Byte offset of character `index` (`index <= len_chars()`).
    fn byte_of(&self, index: u64) -> usize {
        if index >= self.chars {
            return self.text.len();
        }
        let mark = usize::try_from(index / MARK_STRIDE).unwrap_or(usize::MAX);
        let base = self.marks.get(mark).copied().unwrap_or(0);
        let skip = usize::try_from(index % MARK_STRIDE).unwrap_or(0);
        self.text[base..].char_indices().nth(skip).map_or(self.text.len(), |(i, _)| base + i)
    }

    /// Up to `max_chars` characters from `cursor` (clamped to the length): returns the
    /// clamped cursor, the text and the cursor after it.
    pub fn read(&self, cursor: u64, max_chars: u64) -> (u64, String, u64) {
        let start = cursor.min(self.chars);
        let end = start.saturating_add(max_chars).min(self.chars);
        let text = self.text[self.byte_of(start)..self.byte_of(end)].to_owned();
        (start, text, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer_text(buf: &OutputBuffer) -> String {
        buf.read(0, u64::MAX).1
    }

    #[test]
    fn cursor_reads_in_chunks_concatenate_to_the_whole() {
        let mut buf = OutputBuffer::new(&[]);
        let text: String = (0..5000).map(|i| format!("{i}é✓\n")).collect();
        for piece in text.as_bytes().chunks(7) {
            buf.push_bytes(piece);
        }
        buf.flush();
        assert_eq!(buffer_text(&buf), text);
        assert_eq!(buf.len_chars(), text.chars().count() as u64);
        for step in [1u64, 3, 1000, 1024, 1025, 70_000] {
            let mut cursor = 0;
            let mut joined = String::new();
            loop {
                let (start, part, next) = buf.read(cursor, step);
                assert_eq!(start, cursor);
                assert_eq!(next - start, part.chars().count() as u64);
                if part.is_empty() {
                    break;
                }
                joined.push_str(&part);
                cursor = next;
            }
            assert_eq!(joined, text, "step {step}");
        }
        // A cursor past the end is clamped.
        let (start, part, next) = buf.read(u64::MAX, 10);
        assert_eq!((start, part.as_str(), next), (buf.len_chars(), "", buf.len_chars()));
    }

    #[test]
    fn split_and_invalid_utf8_is_decoded_with_replacement() {
        let mut buf = OutputBuffer::new(&[]);
        let bytes = "a✓b".as_bytes();
        buf.push_bytes(&bytes[..2]); // 'a' + first byte of ✓
        assert_eq!(buffer_text(&buf), "a");
        assert!(buf.has_pending());
        buf.push_bytes(&bytes[2..]);
        assert_eq!(buffer_text(&buf), "a✓b");
        buf.push_bytes(b"\xff-");
        assert_eq!(buffer_text(&buf), "a✓b\u{fffd}-");
        buf.push_bytes(b"\xe2\x9c");
        buf.flush();
        assert_eq!(buffer_text(&buf), "a✓b\u{fffd}-\u{fffd}");
    }

    #[test]
    fn secrets_are_redacted_even_across_chunks() {
        let mut buf = OutputBuffer::new(&["hunter2".to_owned(), "".to_owned()]);
        buf.push_bytes(b"pw=hun");
        assert_eq!(buffer_text(&buf), "pw=", "a possible secret prefix is held back");
        buf.push_bytes(b"ter2 ok hunter2\r\nhun");
        assert_eq!(buffer_text(&buf), "pw=[REDACTED] ok [REDACTED]\r\n");
        buf.push_bytes(b"gry");
        assert_eq!(buffer_text(&buf), "pw=[REDACTED] ok [REDACTED]\r\nhungry");
        buf.push_bytes(b"h");
        buf.flush();
        assert!(buffer_text(&buf).ends_with("hungryh"));
    }
}
