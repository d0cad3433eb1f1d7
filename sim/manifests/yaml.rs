//! YAML (and JSON, a subset of it) text into `serde_json::Value` trees, one per document, keeping
//! where every node came from.
//!
//! The event parser is `saphyr-parser`; the tree is built here so that we decide three things
//! ourselves: how plain scalars resolve, how far aliases may expand, and how deep nesting may go.
//!
//! Scalar resolution mirrors `gopkg.in/yaml.v2` (which Kubernetes' `sigs.k8s.io/yaml`, Prometheus
//! and Loki all decode with): `true/yes/on/y` and their capitalised forms are booleans, `~`,
//! `null` and the empty plain scalar are null, Go's `ParseInt(s, 0, 64)` forms (decimal, `0x`,
//! `0o`, `0b`, a leading `0` for octal) are integers, and the `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)
//! ([eE][-+]?[0-9]+)?` shape and `.inf`/`.nan` are floats. Quoted and block scalars are strings.
//! Mapping keys become strings (as `sigs.k8s.io/yaml` makes them for JSON). A plain `<<` key
//! merges mappings (YAML 1.1 merge keys, which yaml.v2 honours); a duplicate key is an error.
//!
//! Invariants: no recursion over input-derived depth (an explicit stack, and a depth limit so
//! that serde and `Drop` later stay shallow); alias expansion is charged to a node budget
//! before any copy is made, so an alias bomb is refused with bounded memory; a syntax error
//! anywhere fails the whole text (no partial documents come back).

use std::collections::{BTreeMap, BTreeSet};

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// Most nodes one text may expand to, aliases included.
pub const MAX_NODES: usize = 500_000;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 128;

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Where one node sits: the key that names it (absent for sequence items and the root) and the
/// value itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldSpan {
    pub key: Option<Position>,
    pub value: Position,
}

/// How a string scalar was written, kept so that a config embedded in it can point back into the
/// outer file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarForm {
    Plain,
    Quoted,
    /// A `|` block: content line `k` (1-based) is source line `indicator_line + k`.
    Literal,
    /// A `>` block: lines are folded, so only the first line maps exactly.
    Folded,
}

/// The positions of every node of one document, keyed by field path
/// (`spec.metrics[2].pods.target.averageValue`; the root is the empty path).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPositions {
    spans: BTreeMap<String, FieldSpan>,
    forms: BTreeMap<String, ScalarForm>,
}

impl FieldPositions {
    /// The span of exactly this path, if the document has it.
    pub fn get(&self, path: &str) -> Option<FieldSpan> {
        self.spans.get(path).copied()
    }

    /// The span of this path or, when the path is absent (a missing field, an alias copy), of its
    /// nearest ancestor that exists.
    pub fn nearest(&self, path: &str) -> Option<(String, FieldSpan)> {
        let mut current = path.to_string();
        loop {
            if let Some(span) = self.spans.get(&current) {
                return Some((current, *span));
            }
            if current.is_empty() {
                return None;
            }
            current = parent_path(&current).to_string();
        }
    }

    /// How the string scalar at `path` was written.
    pub fn form(&self, path: &str) -> Option<ScalarForm> {
        self.forms.get(path).copied()
    }

    /// Every recorded path with its span, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, FieldSpan)> {
        self.spans.iter().map(|(path, span)| (path.as_str(), *span))
    }

    /// The positions below `prefix`, re-rooted so that `prefix` becomes the empty path.
    pub fn subtree(&self, prefix: &str) -> FieldPositions {
        let mut out = FieldPositions::default();
        for (path, span) in &self.spans {
            if let Some(rest) = strip_path_prefix(path, prefix) {
                out.spans.insert(rest.to_string(), *span);
            }
        }
        for (path, form) in &self.forms {
            if let Some(rest) = strip_path_prefix(path, prefix) {
                out.forms.insert(rest.to_string(), *form);
            }
        }
        out
    }

    /// Moves every position through `map` (used for configs embedded in a string).
    pub fn remap(&mut self, map: impl Fn(Position) -> Position) {
        for span in self.spans.values_mut() {
            span.key = span.key.map(&map);
            span.value = map(span.value);
        }
    }

    fn insert(&mut self, path: String, span: FieldSpan) {
        // An alias copy can make two nodes share a path only through duplicate keys, which are
        // refused; the first recorded span wins either way.
        self.spans.entry(path).or_insert(span);
    }
}

/// Removes `prefix` from the front of `path` when `path` is `prefix` or lies below it.
pub fn strip_path_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some(rest)
    } else if let Some(below) = rest.strip_prefix('.') {
        Some(below)
    } else if rest.starts_with('[') {
        Some(rest)
    } else {
        None
    }
}

/// The path one level up: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``.
pub fn parent_path(path: &str) -> &str {
    if path.ends_with(']')
        && let Some(open) = path.rfind('[')
    {
        return &path[..open];
    }
    match path.rfind('.') {
        Some(dot) => &path[..dot],
        None => "",
    }
}

/// Joins a parent path and a mapping key the way `serde_path_to_error` prints paths.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Joins a parent path and a sequence index.
pub fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// One parsed document.
#[derive(Clone, Debug)]
pub struct Document {
    /// 1-based index among the documents of the text, counting empty ones so that the number
    /// matches what an editor shows between `---` lines.
    pub index: usize,
    pub value: Value,
    pub positions: FieldPositions,
    /// Where the document's root node starts.
    pub start: Position,
}

/// Why a text could not be turned into documents. Positions are in the text given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    /// 1-based document index, 0 when the error is before any document.
    pub document: usize,
    pub position: Position,
    pub path: String,
    pub message: String,
}

enum Container {
    Seq(Vec<Value>),
    Map {
        map: Map<String, Value>,
        pending_key: Option<(String, Position)>,
        /// The pending key is a plain `<<`: its value is merged, not stored.
        pending_merge: bool,
        /// Keys that came from a merge, which an explicit key may still override.
        merged: BTreeSet<String>,
    },
}

struct Frame {
    container: Container,
    path: String,
    anchor: usize,
    nodes_at_start: usize,
}

struct Builder {
    document: usize,
    nodes: usize,
    anchors: BTreeMap<usize, (Value, usize)>,
    stack: Vec<Frame>,
    positions: FieldPositions,
    root: Option<(Value, Position)>,
}

fn position_of(span: &Span) -> Position {
    // saphyr-parser counts lines from 1 and columns from 0.
    Position {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

impl Builder {
    fn error(&self, position: Position, path: &str, message: impl Into<String>) -> YamlError {
        YamlError {
            document: self.document,
            position,
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// Where the next node goes: its path, and whether it is a mapping key.
    fn next_slot(&self) -> (String, bool) {
        match self.stack.last() {
            None => (String::new(), false),
            Some(frame) => match &frame.container {
                Container::Seq(items) => (join_index(&frame.path, items.len()), false),
                Container::Map {
                    pending_key: Some((key, _)),
                    ..
                } => (join_key(&frame.path, key), false),
                Container::Map {
                    pending_key: None, ..
                } => (frame.path.clone(), true),
            },
        }
    }

    fn charge(&mut self, count: usize, position: Position, path: &str) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(count);
        if self.nodes > MAX_NODES {
            return Err(self.error(
                position,
                path,
                format!("more than {MAX_NODES} nodes (after expanding aliases); refusing an alias bomb or an oversized document"),
            ));
        }
        Ok(())
    }

    /// Places a finished node in its parent (or as the document root).
    fn place(
        &mut self,
        value: Value,
        position: Position,
        anchor: usize,
        node_count: usize,
    ) -> Result<(), YamlError> {
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), node_count));
        }
        let document = self.document;
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some((value, position));
            return Ok(());
        };
        match &mut frame.container {
            Container::Seq(items) => items.push(value),
            Container::Map {
                map,
                pending_key,
                pending_merge,
                merged,
            } => match pending_key.take() {
                Some(_) if std::mem::take(pending_merge) => {
                    // YAML 1.1 merge keys (`<<: *defaults`), as yaml.v2 reads them: the merged
                    // mappings fill in keys the mapping does not set itself; earlier mappings
                    // of a merge list win over later ones.
                    let sources = match value {
                        Value::Object(single) => vec![single],
                        Value::Array(items) if items.iter().all(Value::is_object) => items
                            .into_iter()
                            .filter_map(|item| match item {
                                Value::Object(inner) => Some(inner),
                                _ => None,
                            })
                            .collect(),
                        _ => {
                            return Err(YamlError {
                                document,
                                position,
                                path: join_key(&frame.path, "<<"),
                                message: "a merge key `<<` takes a mapping or a list of mappings"
                                    .into(),
                            });
                        }
                    };
                    for source in sources {
                        for (key, item) in source {
                            if !map.contains_key(&key) {
                                merged.insert(key.clone());
                                map.insert(key, item);
                            }
                        }
                    }
                }
                Some((key, _)) => {
                    map.insert(key, value);
                }
                None => {
                    return Err(YamlError {
                        document,
                        position,
                        path: frame.path.clone(),
                        message: "a mapping key must be a scalar".into(),
                    });
                }
            },
        }
        Ok(())
    }

    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        anchor: usize,
        tag_suffix: Option<&str>,
        span: &Span,
    ) -> Result<(), YamlError> {
        let position = position_of(span);
        let (path, is_key) = self.next_slot();
        self.charge(1, position, &path)?;
        if is_key {
            let frame = self
                .stack
                .last_mut()
                .expect("next_slot said a mapping is open");
            let key = text.to_string();
            if let Container::Map {
                map,
                pending_key,
                pending_merge,
                merged,
            } = &mut frame.container
            {
                if style == ScalarStyle::Plain && key == "<<" {
                    *pending_merge = true;
                    *pending_key = Some((key, position));
                    return Ok(());
                }
                if map.contains_key(&key) && !merged.remove(&key) {
                    let key_path = join_key(&frame.path, &key);
                    let first = self
                        .positions
                        .get(&key_path)
                        .and_then(|s| s.key)
                        .unwrap_or_default();
                    return Err(YamlError {
                        document: self.document,
                        position,
                        path: key_path,
                        message: format!("duplicate key {key:?} (first at line {})", first.line),
                    });
                }
                *pending_key = Some((key, position));
            }
            if anchor > 0 {
                self.anchors
                    .insert(anchor, (Value::String(text.to_string()), 1));
            }
            return Ok(());
        }
        let value = match tag_suffix {
            Some("str") => Value::String(text.to_string()),
            _ if style != ScalarStyle::Plain => Value::String(text.to_string()),
            _ => resolve_plain(text),
        };
        let key_position = self.pending_key_position();
        self.positions.insert(
            path.clone(),
            FieldSpan {
                key: key_position,
                value: position,
            },
        );
        if value.is_string() {
            let form = match style {
                ScalarStyle::Plain => ScalarForm::Plain,
                ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => ScalarForm::Quoted,
                ScalarStyle::Literal => ScalarForm::Literal,
                ScalarStyle::Folded => ScalarForm::Folded,
            };
            self.positions.forms.insert(path, form);
        }
        self.place(value, position, anchor, 1)
    }

    fn pending_key_position(&self) -> Option<Position> {
        match self.stack.last().map(|frame| &frame.container) {
            Some(Container::Map {
                pending_key: Some((_, position)),
                ..
            }) => Some(*position),
            _ => None,
        }
    }

    fn open(&mut self, container: Container, anchor: usize, span: &Span) -> Result<(), YamlError> {
        let position = position_of(span);
        let (path, is_key) = self.next_slot();
        if is_key {
            return Err(self.error(
                position,
                &path,
                "a mapping key must be a scalar, not a mapping or sequence",
            ));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error(
                position,
                &path,
                format!("nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.charge(1, position, &path)?;
        // Block mappings report their start at the first key; that is where an editor should jump.
        let key_position = self.pending_key_position();
        self.positions.insert(
            path.clone(),
            FieldSpan {
                key: key_position,
                value: position,
            },
        );
        let nodes_at_start = self.nodes;
        self.stack.push(Frame {
            container,
            path,
            anchor,
            nodes_at_start,
        });
        Ok(())
    }

    fn close(&mut self, span: &Span) -> Result<(), YamlError> {
        let frame = self
            .stack
            .pop()
            .expect("the parser balances start and end events");
        let value = match frame.container {
            Container::Seq(items) => Value::Array(items),
            Container::Map { map, .. } => Value::Object(map),
        };
        let count = self.nodes - frame.nodes_at_start + 1;
        let position = self
            .positions
            .get(&frame.path)
            .map(|s| s.value)
            .unwrap_or_else(|| position_of(span));
        self.place(value, position, frame.anchor, count)
    }

    fn alias(&mut self, anchor: usize, span: &Span) -> Result<(), YamlError> {
        let position = position_of(span);
        let (path, is_key) = self.next_slot();
        let Some(count) = self.anchors.get(&anchor).map(|(_, count)| *count) else {
            return Err(self.error(position, &path, "alias to an unknown anchor"));
        };
        // Charge before copying: the copy is only made when the budget allows it.
        self.charge(count, position, &path)?;
        let value = self
            .anchors
            .get(&anchor)
            .map(|(value, _)| value.clone())
            .expect("looked up above");
        if is_key {
            let Value::String(key) = value else {
                return Err(self.error(
                    position,
                    &path,
                    "an alias used as a mapping key must name a string",
                ));
            };
            let frame = self
                .stack
                .last_mut()
                .expect("next_slot said a mapping is open");
            if let Container::Map { pending_key, .. } = &mut frame.container {
                *pending_key = Some((key, position));
            }
            return Ok(());
        }
        let key_position = self.pending_key_position();
        self.positions.insert(
            path,
            FieldSpan {
                key: key_position,
                value: position,
            },
        );
        self.place(value, position, 0, count)
    }
}

/// Parses every document of `text`. Documents that hold nothing (a trailing `---`, comments
/// only) are skipped but still counted, so indices match the file.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder {
        document: 0,
        nodes: 0,
        anchors: BTreeMap::new(),
        stack: Vec::new(),
        positions: FieldPositions::default(),
        root: None,
    };
    let mut documents = Vec::new();
    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(pair) => pair,
            Err(scan) => {
                let marker = scan.marker();
                return Err(YamlError {
                    document: builder.document,
                    position: Position {
                        line: marker.line(),
                        column: marker.col() + 1,
                    },
                    path: builder.next_slot().0,
                    message: format!("YAML syntax error: {}", scan.info()),
                });
            }
        };
        match event {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                builder.document += 1;
                builder.anchors.clear();
                builder.positions = FieldPositions::default();
                builder.root = None;
            }
            Event::DocumentEnd => {
                if let Some((value, start)) = builder.root.take() {
                    let positions = std::mem::take(&mut builder.positions);
                    if !value.is_null() {
                        documents.push(Document {
                            index: builder.document,
                            value,
                            positions,
                            start,
                        });
                    }
                }
            }
            Event::Alias(anchor) => builder.alias(anchor, &span)?,
            Event::Scalar(text, style, anchor, tag) => {
                let suffix = tag
                    .as_ref()
                    .filter(|t| t.handle == "tag:yaml.org,2002:" || t.handle == "!!")
                    .map(|t| t.suffix.clone());
                builder.scalar(&text, style, anchor, suffix.as_deref(), &span)?
            }
            Event::SequenceStart(anchor, _) => {
                builder.open(Container::Seq(Vec::new()), anchor, &span)?
            }
            Event::MappingStart(anchor, _) => builder.open(
                Container::Map {
                    map: Map::new(),
                    pending_key: None,
                    pending_merge: false,
                    merged: BTreeSet::new(),
                },
                anchor,
                &span,
            )?,
            Event::SequenceEnd | Event::MappingEnd => builder.close(&span)?,
        }
    }
    Ok(documents)
}

/// Resolves a plain scalar as `gopkg.in/yaml.v2` does.
pub fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false);
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => {
            // JSON has no infinities or NaN; keep the text, as `sigs.k8s.io/yaml` cannot carry them either.
            return Value::String(text.to_string());
        }
        _ => {}
    }
    if let Some(int) = parse_go_int(text) {
        return Value::Number(int);
    }
    if looks_like_yaml_float(text)
        && let Ok(float) = text.parse::<f64>()
        && let Some(number) = Number::from_f64(float)
    {
        return Value::Number(number);
    }
    Value::String(text.to_string())
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint`: sign, base prefix, `_` between digits.
fn parse_go_int(text: &str) -> Option<Number> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if body.is_empty() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest.to_string(), true)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest.to_string(), true)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    // Go allows underscores only with a base prefix, and only between digits.
    if digits.contains('_')
        && (!prefixed || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__"))
    {
        return None;
    }
    let digits: String = digits.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(&digits, radix).ok()?;
    if negative {
        if magnitude <= i64::MAX as u64 + 1 {
            Some(Number::from((magnitude as i128).wrapping_neg() as i64))
        } else {
            None
        }
    } else {
        Some(Number::from(magnitude))
    }
}

fn looks_like_yaml_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (int.is_empty() && !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()))
                || (!int.is_empty()
                    && int.bytes().all(|b| b.is_ascii_digit())
                    && frac.bytes().all(|b| b.is_ascii_digit()))
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(exp) => {
            let digits = exp.strip_prefix(['-', '+']).unwrap_or(exp);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
    };
    mantissa_ok && exponent_ok
}
