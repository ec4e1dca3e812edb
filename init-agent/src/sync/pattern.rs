//! Exclude and protect patterns: globs anchored the way rsync's filter rules are.
//! A path is tested as bytes, relative to the transfer root (`etc/hostname`).
//!
//! - `/etc/machine-id`: a leading `/` anchors at the transfer root, so this matches
//!   `etc/machine-id` only.
//! - `*.pid`, `log/*.gz`: without a leading `/`, a pattern matches the last
//!   components of the path, at any depth: `log/*.gz` matches `var/log/a.gz` and
//!   `log/b.gz`, not `var/xlog/a.gz`.
//! - `cache/`: a trailing `/` matches directories only.
//! - `*` matches any bytes but `/`; `?` one byte but `/`; `[a-c]`, `[!a-c]` or
//!   `[^a-c]`, `[[:digit:]]` one byte of a class, never `/`; `**` any bytes,
//!   `/` included; `\` makes the next character literal.
//! - `dir/**` matches everything below `dir`, not `dir` itself; `dir/***` matches
//!   the directory `dir` and everything below it. `a/**/b` needs at least one
//!   directory between `a` and `b` (as in rsync, unlike git).
//! - Matching is byte-wise and case-sensitive: `?` is one byte, so a non-ASCII
//!   character takes `*` or one `?` per byte. Names starting with `.` are not special.
//! - An excluded or protected directory is not descended into, so its match
//!   covers its subtree.
//!
//! Refused: the empty pattern; patterns that would match the root (`/`, `/***`);
//! an unclosed `[`; a trailing lone `\`; NUL. Refused too, because they would
//! silently match nothing or not what was meant: an empty component (`a//b`;
//! `\/` is a separator like `/`), and a `[...]` holding `/`, a non-ASCII
//! character, a reversed range (`[z-a]`) or an unknown `[:class:]`.

use thiserror::Error;

/// One parsed pattern list (exclude or protect).
#[derive(Debug, Clone, Default)]
pub struct PatternSet {
    patterns: Vec<String>,
    compiled: Vec<Pattern>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("empty pattern")]
    Empty,
    #[error("pattern {pattern:?} would match the transfer root")]
    Root { pattern: String },
    #[error("pattern {pattern:?} has an empty path component, so it can never match")]
    EmptyComponent { pattern: String },
    #[error("pattern {pattern:?} has an unclosed '['")]
    UnclosedBracket { pattern: String },
    #[error("pattern {pattern:?} ends with a lone '\\'")]
    TrailingBackslash { pattern: String },
    #[error("pattern {pattern:?} contains a NUL byte")]
    Nul { pattern: String },
    #[error("pattern {pattern:?}: '[...]' holds {reason}")]
    InvalidBracket {
        pattern: String,
        reason: &'static str,
    },
}

impl PatternSet {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let compiled = patterns
            .iter()
            .map(|p| Pattern::compile(p.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            patterns: patterns.iter().map(|p| p.as_ref().to_string()).collect(),
            compiled,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }

    /// `path` is relative to the transfer root: components joined by b'/', no
    /// leading or trailing '/', never empty (the root itself is never matched).
    pub fn matches(&self, path: &[u8], is_dir: bool) -> bool {
        if path.is_empty() {
            return false;
        }
        // One pair of state buffers serves every pattern of the set.
        let width = self.compiled.iter().map(|p| p.tokens.len() + 1).max();
        let mut states = Vec::with_capacity(width.unwrap_or(0));
        let mut next = Vec::with_capacity(width.unwrap_or(0));
        self.compiled
            .iter()
            .any(|p| p.matches(path, is_dir, &mut states, &mut next))
    }

    /// The patterns as given, for printing plans.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// Validate one pattern (used by config validation to report errors with positions).
pub fn validate(pattern: &str) -> Result<(), PatternError> {
    Pattern::compile(pattern).map(drop)
}

/// A path separator. An escaped `\/` is one too: escaping cannot put a `/` inside
/// a file name.
const SLASH: Token = Token::Byte(b'/');

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `?`
    AnyByte,
    /// `[...]`, already negated and without `/`.
    Class(ByteSet),
    /// `*`
    Star,
    /// `**`
    DoubleStar,
    /// Three or more `*`: the same as `**` except in a final `/***`.
    TripleStar,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// What remains once the leading `/`, the trailing `/` and a final `/***` are
    /// taken off into the flags below.
    tokens: Vec<Token>,
    anchored: bool,
    dir_only: bool,
    /// From a final `/***`: the path matches if `tokens` match it as a directory
    /// or match any of its ancestors.
    with_subtree: bool,
}

impl Pattern {
    fn compile(pattern: &str) -> Result<Self, PatternError> {
        let named = || pattern.to_string();
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern.contains('\0') {
            return Err(PatternError::Nul { pattern: named() });
        }
        let mut tokens = tokenize(pattern)?;
        let dir_only = tokens.last() == Some(&SLASH);
        if dir_only {
            tokens.pop();
        }
        let with_subtree = tokens.ends_with(&[SLASH, Token::TripleStar]);
        if with_subtree {
            tokens.truncate(tokens.len().saturating_sub(2));
        }
        let anchored = tokens.first() == Some(&SLASH);
        if anchored {
            tokens.remove(0);
        }
        if tokens.is_empty() {
            return Err(PatternError::Root { pattern: named() });
        }
        // Paths have no empty components, so a `/` at either end of what is left,
        // or two in a row, can never match.
        if tokens.first() == Some(&SLASH)
            || tokens.last() == Some(&SLASH)
            || tokens.windows(2).any(|pair| pair == [SLASH, SLASH])
        {
            return Err(PatternError::EmptyComponent { pattern: named() });
        }
        Ok(Self {
            tokens,
            anchored,
            dir_only,
            with_subtree,
        })
    }

    /// Runs the pattern as an NFA over the path: `states[i]` means "tokens before
    /// `i` have matched the bytes read so far". Linear in path length times pattern
    /// length, whatever the stars, where backtracking can be exponential.
    fn matches(
        &self,
        path: &[u8],
        is_dir: bool,
        states: &mut Vec<bool>,
        next: &mut Vec<bool>,
    ) -> bool {
        let accept = self.tokens.len();
        let type_ok = is_dir || !self.dir_only;
        states.clear();
        states.resize(accept + 1, false);
        next.clear();
        next.resize(accept + 1, false);
        states[0] = true;
        self.follow_empty_stars(states);
        for &byte in path {
            // The bytes read so far name an ancestor directory of the path.
            if byte == b'/' && self.with_subtree && states[accept] {
                return type_ok;
            }
            next.fill(false);
            for (state, token) in self.tokens.iter().enumerate() {
                if !states[state] {
                    continue;
                }
                match token {
                    Token::Star if byte != b'/' => next[state] = true,
                    Token::DoubleStar | Token::TripleStar => next[state] = true,
                    Token::Byte(b) if *b == byte => next[state + 1] = true,
                    Token::AnyByte if byte != b'/' => next[state + 1] = true,
                    Token::Class(set) if set.contains(byte) => next[state + 1] = true,
                    _ => {}
                }
            }
            // Unanchored: a match may also start at any component.
            if byte == b'/' && !self.anchored {
                next[0] = true;
            }
            self.follow_empty_stars(next);
            std::mem::swap(states, next);
            if self.anchored && !states.contains(&true) {
                return false;
            }
        }
        // `dir/***` matches `dir` itself as if it were `dir/`.
        states[accept] && (is_dir || !(self.dir_only || self.with_subtree))
    }

    /// A star may match nothing, so reaching it also reaches the token after it.
    fn follow_empty_stars(&self, states: &mut [bool]) {
        for (state, token) in self.tokens.iter().enumerate() {
            if states[state] && matches!(token, Token::Star | Token::DoubleStar | Token::TripleStar)
            {
                states[state + 1] = true;
            }
        }
    }
}

fn tokenize(pattern: &str) -> Result<Vec<Token>, PatternError> {
    let bytes = pattern.as_bytes();
    let mut tokens = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        i += 1;
        let token = match byte {
            b'\\' => {
                let Some(&escaped) = bytes.get(i) else {
                    return Err(PatternError::TrailingBackslash {
                        pattern: pattern.to_string(),
                    });
                };
                i += 1;
                Token::Byte(escaped)
            }
            b'?' => Token::AnyByte,
            b'[' => {
                let (set, end) = parse_class(pattern, i)?;
                i = end;
                Token::Class(set)
            }
            b'*' => {
                let more = bytes.iter().skip(i).take_while(|&&b| b == b'*').count();
                i += more;
                match more {
                    0 => Token::Star,
                    1 => Token::DoubleStar,
                    _ => Token::TripleStar,
                }
            }
            _ => Token::Byte(byte),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// Parses a class from just after its `[`; returns it and the index after its `]`.
fn parse_class(pattern: &str, start: usize) -> Result<(ByteSet, usize), PatternError> {
    let bytes = pattern.as_bytes();
    let unclosed = || PatternError::UnclosedBracket {
        pattern: pattern.to_string(),
    };
    let invalid = |reason| PatternError::InvalidBracket {
        pattern: pattern.to_string(),
        reason,
    };
    let mut i = start;
    let negated = matches!(bytes.get(i), Some(b'!' | b'^'));
    i += usize::from(negated);
    let mut set = ByteSet::default();
    // A `]` first in the class is a member, as in POSIX: `[]a]`.
    let mut first = true;
    loop {
        let low = match (bytes.get(i), bytes.get(i + 1)) {
            (None, _) | (Some(b'\\'), None) => return Err(unclosed()),
            (Some(b']'), _) if !first => break,
            (Some(b'['), Some(b':')) => {
                let name_start = i + 2;
                let rest = bytes.get(name_start..).unwrap_or_default();
                let name_len = rest
                    .windows(2)
                    .position(|w| w == b":]")
                    .ok_or_else(unclosed)?;
                let name = rest.get(..name_len).unwrap_or_default();
                let named = posix_class(name).ok_or(invalid("an unknown [:class:]"))?;
                set = set.union(named);
                i = name_start + name_len + 2;
                first = false;
                continue;
            }
            (Some(b'\\'), Some(&escaped)) => {
                i += 2;
                escaped
            }
            (Some(&byte), _) => {
                i += 1;
                byte
            }
        };
        first = false;
        let high = match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'-'), Some(b'\\'), Some(&escaped)) => {
                i += 3;
                escaped
            }
            // A `-` before the closing `]` is a member, not a range.
            (Some(b'-'), Some(&byte), _) if byte != b']' && byte != b'\\' => {
                i += 2;
                byte
            }
            _ => low,
        };
        if high < low {
            return Err(invalid("a reversed range"));
        }
        // Byte-wise, `[é]` would match either half of the UTF-8 encoding alone.
        if !high.is_ascii() {
            return Err(invalid("a non-ASCII character"));
        }
        if (low..=high).contains(&b'/') {
            return Err(invalid("'/'"));
        }
        for byte in low..=high {
            set.insert(byte);
        }
    }
    if negated {
        set = set.complement();
    }
    set.remove(b'/');
    Ok((set, i + 1))
}

fn posix_class(name: &[u8]) -> Option<ByteSet> {
    let member: fn(&u8) -> bool = match name {
        b"alnum" => u8::is_ascii_alphanumeric,
        b"alpha" => u8::is_ascii_alphabetic,
        b"blank" => |b| matches!(b, b' ' | b'\t'),
        b"cntrl" => u8::is_ascii_control,
        b"digit" => u8::is_ascii_digit,
        b"graph" => u8::is_ascii_graphic,
        b"lower" => u8::is_ascii_lowercase,
        b"print" => |b| b.is_ascii_graphic() || *b == b' ',
        b"punct" => u8::is_ascii_punctuation,
        // POSIX space includes the vertical tab, which `is_ascii_whitespace` omits.
        b"space" => |b| matches!(b, b' ' | b'\t'..=b'\r'),
        b"upper" => u8::is_ascii_uppercase,
        b"xdigit" => u8::is_ascii_hexdigit,
        _ => return None,
    };
    let mut set = ByteSet::default();
    for byte in (0..=u8::MAX).filter(member) {
        set.insert(byte);
    }
    Some(set)
}

/// 256 bits, one per byte value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ByteSet([u128; 2]);

impl ByteSet {
    fn insert(&mut self, byte: u8) {
        self.0[usize::from(byte >> 7)] |= 1 << (byte & 127);
    }

    fn remove(&mut self, byte: u8) {
        self.0[usize::from(byte >> 7)] &= !(1 << (byte & 127));
    }

    fn contains(&self, byte: u8) -> bool {
        (self.0[usize::from(byte >> 7)] >> (byte & 127)) & 1 == 1
    }

    fn union(self, other: Self) -> Self {
        Self([self.0[0] | other.0[0], self.0[1] | other.0[1]])
    }

    fn complement(self) -> Self {
        Self([!self.0[0], !self.0[1]])
    }
}

#[cfg(test)]
mod tests;
