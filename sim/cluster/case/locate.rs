//! Finds where a field path (`existingPods[2].node`) sits in a JSON text, so checks made
//! after parsing (a pod bound to a missing node) still point at a line and column. A small
//! scanner over the raw text: it only needs to skip values, never to build them.

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a path the way diagnostics print it: `nodes[0].allocatable.cpu`.
pub fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Index(idx) => out.push_str(&format!("[{idx}]")),
        }
    }
    out
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn string(&mut self) -> Option<String> {
        self.skip_ws();
        if self.peek()? != b'"' {
            return None;
        }
        self.pos += 1;
        let start = self.pos;
        while self.peek()? != b'"' {
            if self.peek()? == b'\\' {
                self.pos += 1;
            }
            self.pos += 1;
        }
        let raw = std::str::from_utf8(&self.bytes[start..self.pos])
            .ok()?
            .to_string();
        self.pos += 1;
        Some(raw)
    }

    fn skip_value(&mut self) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.pos += 1;
                self.skip_ws();
                if self.peek()? == close {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    if open == b'{' {
                        self.string()?;
                        self.eat(b':')?;
                    }
                    self.skip_value()?;
                    self.skip_ws();
                    match self.peek()? {
                        b',' => self.pos += 1,
                        c if c == close => {
                            self.pos += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace())
                {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }

    /// Positions the scanner at the start of the value at `path`.
    fn find(&mut self, path: &[Seg]) -> Option<()> {
        self.skip_ws();
        let Some((first, rest)) = path.split_first() else {
            return Some(());
        };
        match first {
            Seg::Key(wanted) => {
                self.eat(b'{')?;
                loop {
                    let key = self.string()?;
                    self.eat(b':')?;
                    if key == *wanted {
                        return self.find(rest);
                    }
                    self.skip_value()?;
                    self.eat(b',')?;
                }
            }
            Seg::Index(wanted) => {
                self.eat(b'[')?;
                for _ in 0..*wanted {
                    self.skip_value()?;
                    self.eat(b',')?;
                }
                self.find(rest)
            }
        }
    }
}

/// Line and column (both from 1) of the value at `path`, or of the deepest ancestor found.
pub fn locate(text: &str, path: &[Seg]) -> (usize, usize) {
    let mut depth = path.len();
    loop {
        let mut scanner = Scanner {
            bytes: text.as_bytes(),
            pos: 0,
        };
        if scanner.find(&path[..depth]).is_some() {
            scanner.skip_ws();
            return line_col(text, scanner.pos);
        }
        if depth == 0 {
            return (1, 1);
        }
        depth -= 1;
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
