//! Tokens of Go's text/template syntax: text between actions, and the words inside `{{ }}`.
//! Trim markers (`{{- ` and ` -}}`) are applied here, comments are dropped here.

use super::Error;

/// Templates with more tokens than this are refused before they are parsed: far above what a
/// 10 KiB rule document can hold, and it bounds the parser's memory when the size limit is raised.
pub const MAX_TOKENS: usize = 20_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Text(String),
    /// `{{` (after a left trim marker, if any).
    Open,
    /// `}}` (before a right trim marker, if any).
    Close,
    /// `.Name`
    Field(String),
    /// `.` alone.
    Dot,
    /// `$` or `$name` (the `$` included).
    Var(String),
    Ident(String),
    Str(String),
    /// The literal as written (numbers are typed by the parser, like Go's untyped constants).
    Number(String),
    Char(i64),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
    /// Whether whitespace came right before it (a field after a space starts a new argument).
    pub spaced: bool,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub fn lex(src: &str) -> Result<Vec<Token>, Error> {
    let b = src.as_bytes();
    let mut out: Vec<Token> = Vec::new();
    let mut pos = 0;
    let mut line = 1;
    let mut trim_next_text = false;
    while pos < b.len() || trim_next_text {
        // Text up to the next "{{".
        let start = pos;
        let open = src[pos..].find("{{").map(|i| pos + i);
        let end = open.unwrap_or(b.len());
        let mut text = &src[start..end];
        if trim_next_text {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            trim_next_text = false;
        }
        let left_trim =
            open.is_some_and(|o| b.get(o + 2) == Some(&b'-') && b.get(o + 3).copied().is_some_and(is_space));
        if left_trim {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
        }
        if !text.is_empty() {
            out.push(Token { tok: Tok::Text(text.to_string()), line, spaced: false });
        }
        if out.len() > MAX_TOKENS {
            return Err(Error::at(line, format!("template too long: more than {MAX_TOKENS} tokens")));
        }
        line += src[start..end].matches('\n').count();
        let Some(open) = open else { break };
        pos = open + 2 + if left_trim { 2 } else { 0 };
        let action_line = line;
        // A comment is a whole action: {{/* ... */}}, with optional trim markers.
        if src[pos..].starts_with("/*") {
            let close = src[pos + 2..].find("*/").ok_or(Error::at(line, "unclosed comment"))? + pos + 2;
            line += src[pos..close].matches('\n').count();
            pos = close + 2;
            if src[pos..].starts_with(" -}}") {
                pos += 4;
                trim_next_text = true;
            } else if src[pos..].starts_with("}}") {
                pos += 2;
            } else {
                return Err(Error::at(line, "comment ends before closing delimiter"));
            }
            continue;
        }
        out.push(Token { tok: Tok::Open, line: action_line, spaced: false });
        let mut spaced = true;
        loop {
            if out.len() > MAX_TOKENS {
                return Err(Error::at(line, format!("template too long: more than {MAX_TOKENS} tokens")));
            }
            let Some(&c) = b.get(pos) else { return Err(Error::at(line, "unclosed action")) };
            let push = |out: &mut Vec<Token>, tok: Tok, spaced: bool| out.push(Token { tok, line, spaced });
            if is_space(c) {
                if src[pos + 1..].starts_with("-}}") {
                    pos += 4;
                    trim_next_text = true;
                    push(&mut out, Tok::Close, true);
                    break;
                }
                if c == b'\n' {
                    line += 1;
                }
                pos += 1;
                spaced = true;
                continue;
            }
            if src[pos..].starts_with("}}") {
                pos += 2;
                push(&mut out, Tok::Close, spaced);
                break;
            }
            let was_spaced = spaced;
            spaced = false;
            match c {
                b'|' => {
                    pos += 1;
                    push(&mut out, Tok::Pipe, was_spaced);
                }
                b'(' => {
                    pos += 1;
                    push(&mut out, Tok::LParen, was_spaced);
                }
                b')' => {
                    pos += 1;
                    push(&mut out, Tok::RParen, was_spaced);
                }
                b',' => {
                    pos += 1;
                    push(&mut out, Tok::Comma, was_spaced);
                }
                b':' if b.get(pos + 1) == Some(&b'=') => {
                    pos += 2;
                    push(&mut out, Tok::Declare, was_spaced);
                }
                b'=' => {
                    pos += 1;
                    push(&mut out, Tok::Assign, was_spaced);
                }
                b'"' => {
                    let (s, next) = quoted(src, pos, line)?;
                    pos = next;
                    push(&mut out, Tok::Str(s), was_spaced);
                }
                b'`' => {
                    let close = src[pos + 1..].find('`').ok_or(Error::at(line, "unterminated raw quoted string"))?;
                    let s = &src[pos + 1..pos + 1 + close];
                    let tok = Tok::Str(s.replace('\r', ""));
                    push(&mut out, tok, was_spaced);
                    line += s.matches('\n').count();
                    pos += close + 2;
                }
                b'\'' => {
                    let (v, next) = char_const(src, pos, line)?;
                    pos = next;
                    push(&mut out, Tok::Char(v), was_spaced);
                }
                b'.' if b.get(pos + 1).is_some_and(u8::is_ascii_digit) => {
                    let next = number_end(src, pos);
                    push(&mut out, Tok::Number(src[pos..next].to_string()), was_spaced);
                    pos = next;
                }
                b'.' => {
                    let name_end = word_end(src, pos + 1);
                    if name_end == pos + 1 {
                        push(&mut out, Tok::Dot, was_spaced);
                    } else {
                        push(&mut out, Tok::Field(src[pos + 1..name_end].to_string()), was_spaced);
                    }
                    pos = name_end;
                }
                b'$' => {
                    let name_end = word_end(src, pos + 1);
                    push(&mut out, Tok::Var(src[pos..name_end].to_string()), was_spaced);
                    pos = name_end;
                }
                b'0'..=b'9' | b'+' | b'-' => {
                    let next = number_end(src, pos);
                    if next == pos || (next == pos + 1 && !c.is_ascii_digit()) {
                        return Err(Error::at(line, format!("bad character {:?} in action", c as char)));
                    }
                    let word = &src[pos..next];
                    if src[next..].chars().next().is_some_and(is_alnum) {
                        let bad_end = word_end(src, next);
                        return Err(Error::at(line, format!("bad number syntax: {:?}", &src[pos..bad_end])));
                    }
                    push(&mut out, Tok::Number(word.to_string()), was_spaced);
                    pos = next;
                }
                _ => {
                    let ch = src[pos..].chars().next().unwrap_or('\0');
                    if ch == '_' || ch.is_alphabetic() {
                        let end = word_end(src, pos);
                        push(&mut out, Tok::Ident(src[pos..end].to_string()), was_spaced);
                        pos = end;
                    } else {
                        return Err(Error::at(line, format!("unrecognized character in action: {ch:?}")));
                    }
                }
            }
        }
    }
    Ok(out)
}

fn word_end(src: &str, from: usize) -> usize {
    src[from..].char_indices().find(|&(_, c)| !is_alnum(c)).map_or(src.len(), |(i, _)| from + i)
}

/// The end of a number literal starting at `from` (sign, prefix, digits, point, exponent).
fn number_end(src: &str, from: usize) -> usize {
    let b = src.as_bytes();
    let mut i = from;
    if matches!(b.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut digits: &[u8] = b"0123456789_";
    let mut exp: &[u8] = b"eE";
    if b.get(i) == Some(&b'0') && matches!(b.get(i + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')) {
        let p = b[i + 1].to_ascii_lowercase();
        i += 2;
        digits = match p {
            b'x' => {
                exp = b"pP";
                b"0123456789abcdefABCDEF_"
            }
            b'o' => b"01234567_",
            _ => b"01_",
        };
    }
    while b.get(i).is_some_and(|c| digits.contains(c)) {
        i += 1;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(|c| digits.contains(c)) {
            i += 1;
        }
    }
    if b.get(i).is_some_and(|c| exp.contains(c)) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    if b.get(i) == Some(&b'i') {
        i += 1;
    }
    i
}

fn hex_digits(s: &str, n: usize, line: usize) -> Result<u32, Error> {
    let h = s.get(..n).filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
    h.and_then(|h| u32::from_str_radix(h, 16).ok()).ok_or(Error::at(line, "invalid escape in quoted string"))
}

/// One escape sequence after the backslash; returns the text it stands for and its length.
fn escape(rest: &str, quote: char, line: usize, out: &mut Vec<u8>) -> Result<usize, Error> {
    let c = rest.chars().next().ok_or(Error::at(line, "unterminated quoted string"))?;
    let simple = match c {
        'a' => Some(7u8),
        'b' => Some(8),
        'f' => Some(12),
        'n' => Some(b'\n'),
        'r' => Some(b'\r'),
        't' => Some(b'\t'),
        'v' => Some(11),
        '\\' => Some(b'\\'),
        c if c == quote => Some(c as u8),
        _ => None,
    };
    if let Some(v) = simple {
        out.push(v);
        return Ok(1);
    }
    let push_char = |out: &mut Vec<u8>, v: u32| -> Result<(), Error> {
        let ch = char::from_u32(v).ok_or(Error::at(line, "invalid escape in quoted string"))?;
        out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    };
    match c {
        'x' => {
            out.push(hex_digits(&rest[1..], 2, line)? as u8);
            Ok(3)
        }
        'u' => push_char(out, hex_digits(&rest[1..], 4, line)?).map(|_| 5),
        'U' => push_char(out, hex_digits(&rest[1..], 8, line)?).map(|_| 9),
        '0'..='7' => {
            let o = rest.get(..3).filter(|o| o.bytes().all(|c| (b'0'..=b'7').contains(&c)));
            let v = o.and_then(|o| u32::from_str_radix(o, 8).ok()).filter(|v| *v < 256);
            out.push(v.ok_or(Error::at(line, "invalid escape in quoted string"))? as u8);
            Ok(3)
        }
        _ => Err(Error::at(line, "invalid escape in quoted string")),
    }
}

fn quoted(src: &str, from: usize, line: usize) -> Result<(String, usize), Error> {
    let mut out = Vec::new();
    let mut i = from + 1;
    loop {
        let Some(c) = src[i..].chars().next() else { return Err(Error::at(line, "unterminated quoted string")) };
        match c {
            '"' => break,
            '\n' => return Err(Error::at(line, "unterminated quoted string")),
            '\\' => i += 1 + escape(&src[i + 1..], '"', line, &mut out)?,
            c => {
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                i += c.len_utf8();
            }
        }
    }
    // \x escapes may produce invalid UTF-8; Go keeps the bytes, we replace them (strings are UTF-8).
    Ok((String::from_utf8_lossy(&out).into_owned(), i + 1))
}

fn char_const(src: &str, from: usize, line: usize) -> Result<(i64, usize), Error> {
    let rest = &src[from + 1..];
    let bad = || Error::at(line, "malformed character constant");
    let c = rest.chars().next().ok_or_else(bad)?;
    let (v, len) = if c == '\\' {
        let mut buf = Vec::new();
        let n = escape(&rest[1..], '\'', line, &mut buf)?;
        let s = std::str::from_utf8(&buf).map_err(|_| bad())?;
        let mut chars = s.chars();
        let v = match (chars.next(), chars.next()) {
            (Some(ch), None) => ch as i64,
            _ if buf.len() == 1 => i64::from(buf[0]),
            _ => return Err(bad()),
        };
        (v, 1 + n)
    } else if c == '\'' || c == '\n' {
        return Err(bad());
    } else {
        (c as i64, c.len_utf8())
    };
    if rest[len..].starts_with('\'') { Ok((v, from + 1 + len + 1)) } else { Err(bad()) }
}
