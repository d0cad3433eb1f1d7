//! Finds where a field path sits in JSON text, so a check made after parsing (a value the API
//! server would reject) can still point at its line and column. serde_json keeps no spans, and
//! the case files are small, so a second pass over the text is the simplest honest answer.

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// The 1-based (line, column) of the value at `path`, or of the deepest prefix of it that exists.
pub fn locate(text: &str, path: &[Step]) -> (usize, usize) {
    let bytes = text.as_bytes();
    let mut scanner = Scanner { bytes, pos: 0 };
    scanner.skip_ws();
    let offset = scanner.find(path).unwrap_or(scanner.pos);
    line_col(text, offset)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Walks `path` from the value at the current position; returns the offset of its value.
    /// On a missing step it returns the offset of the last value it reached.
    fn find(&mut self, path: &[Step]) -> Option<usize> {
        let start = self.pos;
        let Some((step, rest)) = path.split_first() else {
            return Some(start);
        };
        match (step, self.peek()) {
            (Step::Key(key), Some(b'{')) => {
                self.pos += 1;
                loop {
                    self.skip_ws();
                    if self.peek() != Some(b'"') {
                        return Some(start);
                    }
                    let name = self.string()?;
                    self.skip_ws();
                    if self.peek() != Some(b':') {
                        return Some(start);
                    }
                    self.pos += 1;
                    self.skip_ws();
                    if name == *key {
                        return self.find(rest);
                    }
                    self.skip_value()?;
                    self.skip_ws();
                    if self.peek() == Some(b',') {
                        self.pos += 1;
                    } else {
                        return Some(start);
                    }
                }
            }
            (Step::Index(index), Some(b'[')) => {
                self.pos += 1;
                let mut idx = 0;
                loop {
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        return Some(start);
                    }
                    if idx == *index {
                        return self.find(rest);
                    }
                    self.skip_value()?;
                    self.skip_ws();
                    if self.peek() == Some(b',') {
                        self.pos += 1;
                        idx += 1;
                    } else {
                        return Some(start);
                    }
                }
            }
            _ => Some(start),
        }
    }

    /// Reads a string token (the raw text between the quotes; escapes are kept as written).
    fn string(&mut self) -> Option<String> {
        self.pos += 1;
        let begin = self.pos;
        while let Some(b) = self.peek() {
            match b {
                b'\\' => self.pos += 2,
                b'"' => {
                    let raw = std::str::from_utf8(&self.bytes[begin..self.pos])
                        .ok()?
                        .to_string();
                    self.pos += 1;
                    return Some(raw);
                }
                _ => self.pos += 1,
            }
        }
        None
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                while let Some(b) = self.peek() {
                    match b {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                self.pos += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
                None
            }
            _ => {
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    self.pos += 1;
                }
                Some(())
            }
        }
    }
}
