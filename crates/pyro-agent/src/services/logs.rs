//! Service logs: the end of each stream, cut to whole lines.

use super::*;

impl Services {
    /// A service's record and logs: the last `tail_lines` lines of each stream, or
    /// everything when `None` (at most [`MAX_LOG_BYTES`] each, the end kept).
    pub fn logs(&self, name: &str, tail_lines: Option<u64>) -> ServiceResult<ServiceLogs> {
        let service = self.status(name)?;
        let (stdout, cut_out) = read_log(&self.inner.log_path(name, "stdout"), tail_lines)
            .map_err(|e| io_err("read service log", e))?;
        let (stderr, cut_err) = read_log(&self.inner.log_path(name, "stderr"), tail_lines)
            .map_err(|e| io_err("read service log", e))?;
        Ok(ServiceLogs { service, stdout, stderr, truncated: cut_out || cut_err })
    }
}

/// Read a log: the last [`MAX_LOG_BYTES`] bytes, then the last `tail_lines` lines.
/// Returns the text and whether anything was left out.
fn read_log(path: &Path, tail_lines: Option<u64>) -> io::Result<(String, bool)> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((String::new(), false)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut cut = false;
    if len > MAX_LOG_BYTES {
        file.seek(SeekFrom::Start(len - MAX_LOG_BYTES))?;
        cut = true;
    }
    let mut bytes = Vec::new();
    file.take(MAX_LOG_BYTES).read_to_end(&mut bytes)?;
    if cut {
        // Drop the partial first line.
        match bytes.iter().position(|b| *b == b'\n') {
            Some(i) => drop(bytes.drain(..=i)),
            None => bytes.clear(),
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(match tail_lines {
        None => (text, cut),
        Some(n) => {
            let (tail, dropped) = tail(&text, n);
            (tail.to_owned(), cut || dropped)
        }
    })
}

/// The last `n` lines of `text` (a final line without newline counts), and whether
/// lines were dropped.
pub fn tail(text: &str, n: u64) -> (&str, bool) {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let lines: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
    let total = lines.len() + usize::from(!text.is_empty() && !text.ends_with('\n'));
    if total <= n {
        return (text, false);
    }
    if n == 0 {
        return ("", true);
    }
    // Start after the newline that ends line (total - n).
    let start = lines[total - n - 1] + 1;
    (&text[start..], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), ("b\nc\n", true));
        assert_eq!(tail("a\nb\nc", 2), ("b\nc", true));
        assert_eq!(tail("a\nb\n", 5), ("a\nb\n", false));
        assert_eq!(tail("", 1), ("", false));
        assert_eq!(tail("a\n", 0), ("", true));
    }
}
