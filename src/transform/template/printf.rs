//! Go's `fmt.Sprintf`, `Sprint` and `Sprintln` for template values: the verbs `%v %s %d %q %t %x
//! %X %o %O %b %c %U %e %E %f %F %g %G %%`, flags `+ - # 0 space`, width and precision (also `*`),
//! and Go's in-band error texts (`%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA …)`).

use super::value::{Val, fmt_e, fmt_f, fmt_g, fmt_map, fmt_v, quote};

/// Go's fmt refuses widths and precisions above this (`%!(BADWIDTH)`).
const TOO_LARGE: usize = 1_000_000;

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(s: String, spec: &Spec, numeric: bool) -> String {
    let Some(width) = spec.width else { return s };
    let len = s.chars().count();
    if len >= width {
        return s;
    }
    let fill = width - len;
    if spec.minus {
        return s + &" ".repeat(fill);
    }
    if spec.zero && numeric {
        // Zeros go after the sign.
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'-' | b'+' | b' ') => s.split_at(1),
            _ => ("", s.as_str()),
        };
        return format!("{sign}{}{rest}", "0".repeat(fill));
    }
    " ".repeat(fill) + &s
}

fn signed(neg: bool, digits: String, spec: &Spec) -> String {
    if neg {
        format!("-{digits}")
    } else if spec.plus {
        format!("+{digits}")
    } else if spec.space {
        format!(" {digits}")
    } else {
        digits
    }
}

fn int(i: i64, verb: char, spec: &Spec) -> Option<String> {
    let neg = i < 0;
    let u = i.unsigned_abs();
    let mut digits = match verb {
        'd' | 'v' => u.to_string(),
        'b' => format!("{u:b}"),
        'o' | 'O' => format!("{u:o}"),
        'x' => format!("{u:x}"),
        'X' => format!("{u:X}"),
        'c' => return Some(char::from_u32(i as u32).unwrap_or('\u{FFFD}').to_string()),
        'q' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{FFFD}');
            let q = quote(&c.to_string());
            let inner = &q[1..q.len() - 1];
            let inner = if inner == "\\\"" {
                "\""
            } else if inner == "'" {
                "\\'"
            } else {
                inner
            };
            return Some(format!("'{inner}'"));
        }
        'U' => {
            let s = format!("U+{u:04X}");
            return Some(if spec.sharp {
                format!("{s} '{}'", char::from_u32(i as u32).unwrap_or('\u{FFFD}'))
            } else {
                s
            });
        }
        _ => return None,
    };
    if let Some(p) = spec.prec {
        if digits.len() < p {
            digits = "0".repeat(p - digits.len()) + &digits;
        } else if p == 0 && u == 0 {
            digits.clear();
        }
    }
    let prefix = match verb {
        'O' => "0o",
        'o' if spec.sharp && !digits.starts_with('0') => "0",
        'x' if spec.sharp => "0x",
        'X' if spec.sharp => "0X",
        'b' if spec.sharp => "0b",
        _ => "",
    };
    Some(signed(neg, format!("{prefix}{digits}"), spec))
}

fn float(f: f64, verb: char, spec: &Spec) -> Option<String> {
    let s = match verb {
        'v' | 'g' => fmt_g(f, spec.prec, false),
        'G' => fmt_g(f, spec.prec, true),
        'e' => fmt_e(f, spec.prec.unwrap_or(6), false),
        'E' => fmt_e(f, spec.prec.unwrap_or(6), true),
        'f' | 'F' => fmt_f(f, spec.prec.unwrap_or(6)),
        _ => return None,
    };
    Some(match s.strip_prefix('-') {
        Some(rest) => signed(true, rest.to_string(), spec),
        None if s.starts_with('+') => s,
        None => signed(false, s, spec),
    })
}

fn string(s: &str, verb: char, spec: &Spec) -> Option<String> {
    let s: String = match spec.prec {
        Some(p) if matches!(verb, 's' | 'v' | 'q') => s.chars().take(p).collect(),
        _ => s.to_string(),
    };
    Some(match verb {
        's' | 'v' if spec.sharp && verb == 'v' => quote(&s),
        's' | 'v' => s,
        'q' if spec.sharp && !s.contains('`') => format!("`{s}`"),
        'q' => quote(&s),
        'x' => s.bytes().map(|b| format!("{b:02x}")).collect(),
        'X' => s.bytes().map(|b| format!("{b:02X}")).collect(),
        _ => return None,
    })
}

/// One operand under one verb; `None` when the verb does not apply to its type.
fn operand(v: &Val<'_>, verb: char, spec: &Spec) -> Option<(String, bool)> {
    match v {
        Val::Missing | Val::Nil => (verb == 'v').then(|| ("<nil>".to_string(), false)),
        Val::Bool(b) => matches!(verb, 't' | 'v').then(|| (b.to_string(), false)),
        Val::Int(i) => int(*i, verb, spec).map(|s| (s, !matches!(verb, 'c' | 'q' | 'U'))),
        Val::Float(f) => float(*f, verb, spec).map(|s| (s, true)),
        Val::Str(s) => string(s, verb, spec).map(|s| (s, false)),
        Val::Map(m) => {
            let mut bad = false;
            let out = fmt_map(*m, &mut |s| match string(s, verb, spec) {
                Some(s) => s,
                None => {
                    bad = true;
                    String::new()
                }
            });
            (!bad).then_some((out, false))
        }
        Val::Data => matches!(verb, 'v' | 's').then(|| (fmt_v(v), false)),
    }
}

fn bad_verb(verb: char, v: &Val<'_>) -> String {
    match v {
        Val::Missing | Val::Nil => format!("%!{verb}(<nil>)"),
        other => format!("%!{verb}({}={})", other.type_name(), fmt_v(other)),
    }
}

/// `fmt.Sprintf`. A width (or a numeric precision) above `max` would make the result larger than
/// the output cap: refused before padding is allocated.
pub fn sprintf(format: &str, args: &[Val<'_>], max: usize) -> Result<String, String> {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                '0' => spec.zero = !spec.minus,
                ' ' => spec.space = true,
                _ => break,
            }
            chars.next();
        }
        // Go: a `*` argument that is not an int or is too large is BADWIDTH/BADPREC; a literal
        // number that grows past 10^6 makes the rest of the format unreadable (NOVERB).
        let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, next: &mut usize| -> Num {
            if chars.peek() == Some(&'*') {
                chars.next();
                let v = args.get(*next);
                *next += 1;
                return match v {
                    Some(Val::Int(i)) if (*i).unsigned_abs() as usize <= TOO_LARGE => {
                        Num::Some(i.unsigned_abs() as usize)
                    }
                    _ => Num::Bad,
                };
            }
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                if n.is_some_and(|n| n > TOO_LARGE) {
                    return Num::Overflow;
                }
                chars.next();
                n = Some(n.unwrap_or(0) * 10 + d as usize);
            }
            n.map_or(Num::None, Num::Some)
        };
        match number(&mut chars, &mut next) {
            Num::Some(w) => spec.width = Some(w),
            Num::None => {}
            Num::Bad => out.push_str("%!(BADWIDTH)"),
            Num::Overflow => {
                out.push_str("%!(NOVERB)");
                break;
            }
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            match number(&mut chars, &mut next) {
                Num::Some(p) => spec.prec = Some(p),
                Num::None => spec.prec = Some(0),
                Num::Bad => out.push_str("%!(BADPREC)"),
                Num::Overflow => {
                    out.push_str("%!(NOVERB)");
                    break;
                }
            }
        }
        if spec.width.is_some_and(|w| w > max) || spec.prec.is_some_and(|p| p > max) {
            return Err(format!("template output exceeds {max} bytes"));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        if verb == '[' {
            out.push_str("%!(BADINDEX)");
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        match operand(arg, verb, &spec) {
            Some((s, numeric)) => out.push_str(&pad(s, &spec, numeric)),
            None => out.push_str(&bad_verb(verb, arg)),
        }
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| match a {
                Val::Missing | Val::Nil => "<nil>".to_string(),
                other => format!("{}={}", other.type_name(), fmt_v(other)),
            })
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    Ok(out)
}

enum Num {
    None,
    Some(usize),
    /// A `*` argument that is not a usable int.
    Bad,
    /// A literal too long to be a width.
    Overflow,
}

/// `fmt.Sprint`: a space between operands when neither is a string.
pub fn sprint(args: &[Val<'_>]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = matches!(a, Val::Str(_));
        if i > 0 && !is_str && !matches!(args[i - 1], Val::Str(_)) {
            out.push(' ');
        }
        out.push_str(&fmt_v(a));
    }
    out
}

/// `fmt.Sprintln`: always a space between operands, and a newline.
pub fn sprintln(args: &[Val<'_>]) -> String {
    let mut out: Vec<String> = args.iter().map(fmt_v).collect::<Vec<_>>();
    let mut s = std::mem::take(&mut out).join(" ");
    s.push('\n');
    s
}
