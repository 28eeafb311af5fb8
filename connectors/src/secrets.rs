//! Passwords found by the structure of the text that carries them, never by
//! what a password is assumed to look like.
//!
//! * [`redact_url`]: a URL with the password of its userinfo and the values
//!   of its password-like parameters replaced by `***`, whether or not the
//!   URL parses (a bad port or a malformed IPv6 host included).
//! * [`redact_sql`]: a statement with the passwords of the URLs in its
//!   string literals, and of `password = ...` options, replaced.
//! * [`remember_url`] / [`remember_sql`] and [`scrub`]: the passwords seen
//!   in this process, replaced wherever they appear in a message (a driver's
//!   error, a log line, a panic), in every form they are written in (as
//!   written, percent-decoded, with quotes doubled, escaped for JSON or
//!   Rust's `{:?}`).
//!
//! The userinfo of a URL ends at its *last* `@`: a password holding `@`, `/`,
//! `?`, `#`, `:`, a quote or a space is hidden whole, at the price of hiding
//! more than the password when a later part of the URL holds an `@`.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{OnceLock, RwLock};

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

const MASK: &str = "***";

/// Shorter secrets are hidden where the structure shows them, but not
/// searched for in free text (a one-letter password would blank out every
/// occurrence of that letter).
const MIN_SCRUBBED: usize = 3;

/// Parameter names whose values are secrets.
fn is_secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "sig",
        "auth",
        "credential",
        "sas",
    ]
    .iter()
    .any(|k| key.contains(k))
}

/// A SQL word that names a secret (stricter than parameter names: a column
/// `author` or `monkey` is not one).
fn is_secret_word(word: &str) -> bool {
    let word = word.trim().to_ascii_lowercase();
    [
        "password", "passwd", "pwd", "secret", "token", "api_key", "apikey",
    ]
    .iter()
    .any(|k| word.contains(k))
}

/// Where `scheme://` starts in `text` (the scheme's first byte) and where
/// the text after `://` begins.
fn schemes(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = text[at..].find("://") {
        let sep = at + i;
        let mut start = sep;
        while start > 0 {
            let c = bytes[start - 1];
            if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-') {
                start -= 1;
            } else {
                break;
            }
        }
        // A scheme starts with a letter.
        while start < sep && !bytes[start].is_ascii_alphabetic() {
            start += 1;
        }
        if start < sep {
            found.push((start, sep + 3));
        }
        at = sep + 3;
    }
    found
}

/// The byte ranges of the secrets of the URL that starts at `rest` (just
/// after `://`) and ends at `end`.
fn url_ranges(text: &str, rest: usize, end: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let body = &text[rest..end];
    let authority_end = match body.rfind('@') {
        Some(at) => {
            let userinfo = &body[..at];
            if let Some(colon) = userinfo.find(':') {
                ranges.push(rest + colon + 1..rest + at);
            }
            at + 1
        }
        None => 0,
    };
    // Parameters: from the first `?` (a password may hold one, or an `@`
    // may follow it: both readings are taken). A secret's value runs to the
    // end of the URL, since it may hold `&` or `#` as written.
    for q in [
        body.find('?'),
        body[authority_end..].find('?').map(|q| q + authority_end),
    ]
    .into_iter()
    .flatten()
    {
        let mut pos = rest + q + 1;
        for pair in text[pos..end].split('&') {
            let key = match pair.find('=') {
                Some(eq) => &pair[..eq],
                // `password%3Dvalue`: a parser decodes it into a pair.
                None => pair,
            };
            if is_secret_key(&percent_decode(key)) {
                let value = if key.len() < pair.len() {
                    key.len() + 1
                } else {
                    // Hide what follows the name inside the pair.
                    key.to_ascii_lowercase()
                        .find("%3d")
                        .map_or(pair.len(), |i| i + 3)
                };
                ranges.push(pos + value..end);
                break;
            }
            pos += pair.len() + 1;
        }
    }
    ranges
}

/// The ranges of `text` to hide: each URL's secrets (a URL runs to the end of
/// `text`, so its userinfo ends at the last `@`).
fn ranges_in_url(text: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    if let Some((_, rest)) = schemes(text).first() {
        ranges.extend(url_ranges(text, *rest, text.len()));
    } else if let Some(colon) = text.find(':')
        && colon > 0
        && text[..colon]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-'))
    {
        // `postgres:user:password@host/db` (the `//` forgotten): the same
        // parts after the scheme.
        ranges.extend(url_ranges(text, colon + 1, text.len()));
    }
    // What a WHATWG parser takes for the password, should it differ.
    if let Ok(parsed) = url::Url::parse(text)
        && let Some(password) = parsed.password()
        && let Some(at) = text.find(password)
    {
        ranges.push(at..at + password.len());
    }
    ranges
}

/// `text` with `ranges` replaced by `***` (overlaps merged).
fn mask(text: &str, mut ranges: Vec<Range<usize>>) -> String {
    ranges.retain(|r| r.start < r.end);
    if ranges.is_empty() {
        return text.to_string();
    }
    ranges.sort_by_key(|r| r.start);
    // Overlapping or touching ranges are one.
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in merged {
        out.push_str(&text[at..r.start]);
        out.push_str(MASK);
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

/// What to tell a user whose database URL does not parse, or parses into
/// another shape than written: a password holding `/`, `?` or `#` as they
/// are ends the host part early.
pub const USERINFO_HINT: &str = "a '/', '?', '#' or '@' in the user name or password must be \
     percent-encoded (%2F, %3F, %23, %40)";

/// Whether a parsed database URL shows the signs of a user name or password
/// holding `/`, `?` or `#` as they are: a fragment, or an `@` in the path.
pub fn misread_userinfo(parsed: &url::Url) -> bool {
    parsed.fragment().is_some() || parsed.path().contains('@')
}

/// Whether `url`, read as text, has a user name or password holding `/`,
/// `?` or `#` as they are: an `@` after `://` with one of them before it.
/// A parser would end the host part there and report the password's tail
/// as a path or a parameter.
pub fn misread_userinfo_text(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    rest.rfind('@')
        .is_some_and(|at| rest[..at].contains(['/', '?', '#']))
}

/// `url` with its password (userinfo or a password-like parameter) replaced
/// by `***`, found by the URL's structure, whether or not it parses.
pub fn redact_url(url: &str) -> String {
    mask(url, ranges_in_url(url))
}

/// The secrets of `url` (as written in it).
pub fn url_secrets(url: &str) -> Vec<String> {
    ranges_in_url(url)
        .into_iter()
        .filter(|r| r.start < r.end)
        .map(|r| url[r].to_string())
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with `%`, spaces, `#`, `?` and controls percent-encoded (as a
/// driver may print a path or URI built from it).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' | ' ' | '#' | '?' | '"' | '<' | '>' | '\\' | '`' | '{' | '}' | '^' | '|' => {
                out.push_str(&format!("%{:02X}", c as u32))
            }
            c if c.is_control() && (c as u32) < 0x80 => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The remembered secrets, and the automaton that finds them (built again,
/// when next needed, after a new one is remembered).
#[derive(Default)]
struct Known {
    forms: std::collections::HashSet<String>,
    finder: Option<aho_corasick::AhoCorasick>,
}

fn known() -> &'static RwLock<Known> {
    static KNOWN: OnceLock<RwLock<Known>> = OnceLock::new();
    KNOWN.get_or_init(Default::default)
}

/// Remembers `secret`, in every form a message may show it, so that
/// [`scrub`] hides it.
pub fn remember(secret: &str) {
    remember_forms(secret);
    // A parser that stops at a quote or a line break shows only a piece of
    // a password (`unexpected 'Hunter2'`): each piece long enough to be
    // searched for is remembered as well.
    let pieces: Vec<&str> = secret
        .split(|c: char| matches!(c, '\'' | '"' | '\r' | '\n' | '?' | '#' | '@') || c.is_control())
        .filter(|p| p.chars().count() >= MIN_PIECE)
        .collect();
    if pieces.len() > 1 || pieces.first().is_some_and(|p| p.len() < secret.len()) {
        for piece in pieces {
            remember_forms(piece);
        }
    }
}

/// Pieces of a password shorter than this are not searched for alone.
const MIN_PIECE: usize = 4;

fn remember_forms(secret: &str) {
    let collapsed = secret.replace("''", "'");
    let mut forms = Vec::new();
    for s in [
        percent_decode(secret),
        percent_decode(&collapsed),
        secret.to_string(),
        collapsed,
    ] {
        let debug = format!("{s:?}");
        let debug = debug[1..debug.len() - 1].to_string();
        if let Ok(json) = serde_json::to_string(&s) {
            forms.push(json[1..json.len() - 1].to_string());
        }
        // A `{:?}` of a parser's value inside a JSON log line.
        if let Ok(json) = serde_json::to_string(&debug) {
            forms.push(json[1..json.len() - 1].to_string());
        }
        forms.push(debug);
        forms.push(s.replace('\'', "''"));
        forms.push(s.replace('"', "\"\""));
        forms.push(s.to_lowercase());
        forms.push(percent_encode(&s));
        forms.push(s);
    }
    forms.retain(|f| f.chars().count() >= MIN_SCRUBBED);
    {
        let known = known().read().unwrap_or_else(|e| e.into_inner());
        if forms.iter().all(|f| known.forms.contains(f)) {
            return;
        }
    }
    let mut known = known().write().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if known.forms.insert(form) {
            known.finder = None;
        }
    }
}

/// Remembers the secrets of `url`.
pub fn remember_url(url: &str) {
    for secret in url_secrets(url) {
        remember(&secret);
    }
}

/// Remembers the secrets of the URLs and password options in `sql` (before
/// the statement is parsed, logged or run).
pub fn remember_sql(sql: &str) {
    if !might_hold_secrets(sql) {
        return;
    }
    for (text, range) in sql_secret_ranges(sql) {
        remember(&text[range]);
    }
}

fn might_hold_secrets(text: &str) -> bool {
    text.contains("://") || text.contains('@') || {
        let lower = text.to_ascii_lowercase();
        [
            "password", "passwd", "pwd", "secret", "token", "api_key", "apikey",
        ]
        .iter()
        .any(|k| lower.contains(k))
    }
}

/// The secrets in `sql`, as (text, range): the text is the whole statement
/// or one string literal's raw contents.
fn sql_secret_ranges(sql: &str) -> Vec<(String, Range<usize>)> {
    let mut found = Vec::new();
    if let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql)
        .with_unescape(false)
        .tokenize()
    {
        let mut key = Key::None;
        // Whether the token before was a secret's value: a quote left
        // undoubled inside it splits it into tokens that touch
        // (`'a'Hunter2'Secret'`), all of them the value.
        let mut in_value = false;
        let mut spaced = false;
        for token in &tokens {
            if matches!(token, Token::Whitespace(_)) {
                spaced = true;
                continue;
            }
            // Touching tokens, or a string literal after a space (SQL
            // joins adjacent literals: `'Zq9' 'xR4'`), continue the value.
            let continues = if spaced {
                string_value(token).is_some()
            } else {
                !matches!(
                    token,
                    Token::Comma | Token::RParen | Token::SemiColon | Token::EOF
                )
            };
            spaced = false;
            if in_value && continues {
                let text = match string_value(token) {
                    Some(value) => value.to_string(),
                    None => token.to_string(),
                };
                found.push((text.clone(), 0..text.len()));
                continue;
            }
            in_value = false;
            if key != Key::None && is_assignment(token) {
                key = Key::Equals;
                continue;
            }
            if let Some(value) = string_value(token) {
                if key != Key::None {
                    found.push((value.to_string(), 0..value.len()));
                    in_value = true;
                } else {
                    for r in ranges_in_url(value) {
                        found.push((value.to_string(), r));
                    }
                    for r in key_value_ranges(value) {
                        found.push((value.to_string(), r));
                    }
                }
            } else if key.takes(token) {
                let text = match token {
                    Token::Word(w) => w.value.clone(),
                    t => t.to_string(),
                };
                found.push((text.clone(), 0..text.len()));
                in_value = true;
            }
            key = Key::after(token);
        }
    }
    // As text too (an unmatched or undoubled quote in a password).
    for r in raw_ranges(sql) {
        found.push((sql.to_string(), r));
    }
    found.retain(|(_, r)| r.start < r.end);
    found
}

/// `password=value` pairs of a key-value DSN: the value runs to the next
/// space, or is quoted.
fn key_value_ranges(text: &str) -> Vec<Range<usize>> {
    static KEY: OnceLock<regex::Regex> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        regex::Regex::new(
            r"(?i)\b(?:password|passwd|pwd|secret|token|api_?key)\s*=\s*('(?:[^'\\]|\\.|'')*'?|[^\s&;]+)",
        )
        .expect("a valid pattern")
    });
    key.captures_iter(text)
        .filter_map(|c| c.get(1))
        .map(|m| m.range())
        .collect()
}

/// Whether the tokens just read name a secret (`password`, `'secret_key'`),
/// and whether an `=` followed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    None,
    Named,
    Equals,
}

impl Key {
    fn after(token: &Token) -> Key {
        let named = match token {
            // `password`, `"password"`, `` `password` ``, `[password]`.
            Token::Word(w) => is_secret_word(&w.value),
            t => string_value(t).is_some_and(|v| v.len() < 40 && is_secret_key(v)),
        };
        if named { Key::Named } else { Key::None }
    }

    /// Whether `token`, not a string, is the secret's value: a word or
    /// number after `=`, or a quoted name or a word that is no keyword
    /// right after the name (`(password hunter2)`, `password "x"`).
    fn takes(self, token: &Token) -> bool {
        use datafusion::sql::sqlparser::keywords::Keyword;
        match (self, token) {
            (Key::Equals, Token::Word(_) | Token::Number(..)) => true,
            (Key::Named, Token::Word(w)) => {
                w.quote_style.is_some() || w.keyword == Keyword::NoKeyword
            }
            (Key::Named, Token::Number(..)) => true,
            _ => false,
        }
    }
}

/// `=`, `:`, `=>` or `TO` between a setting's name and its value.
fn is_assignment(token: &Token) -> bool {
    use datafusion::sql::sqlparser::keywords::Keyword;
    match token {
        Token::Eq | Token::Colon | Token::RArrow => true,
        Token::Word(w) => w.quote_style.is_none() && w.keyword == Keyword::TO,
        _ => false,
    }
}

fn string_value(token: &Token) -> Option<&str> {
    match token {
        Token::SingleQuotedString(s)
        | Token::DoubleQuotedString(s)
        | Token::EscapedStringLiteral(s)
        | Token::NationalStringLiteral(s)
        | Token::UnicodeStringLiteral(s) => Some(s),
        Token::DollarQuotedString(d) => Some(&d.value),
        _ => None,
    }
}

/// `sql` with the passwords of the URLs in its string literals, and of
/// password-like options (`password 'x'`, `'secret_access_key' 'x'`,
/// `password=x`), replaced by `***`; the rest of the text is kept as written.
pub fn redact_sql(sql: &str) -> String {
    if !might_hold_secrets(sql) {
        return sql.to_string();
    }
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql)
        .with_unescape(false)
        .tokenize()
    else {
        return scrub(&mask(sql, raw_ranges(sql))).into_owned();
    };
    let mut out = String::with_capacity(sql.len());
    let mut key = Key::None;
    for token in &tokens {
        let text = token.to_string();
        if matches!(token, Token::Whitespace(_)) {
            out.push_str(&text);
            continue;
        }
        if key != Key::None && is_assignment(token) {
            out.push_str(&text);
            key = Key::Equals;
            continue;
        }
        match string_value(token) {
            Some(value) => {
                let masked = if key != Key::None {
                    MASK.to_string()
                } else {
                    let mut ranges = ranges_in_url(value);
                    ranges.extend(key_value_ranges(value));
                    mask(value, ranges)
                };
                // The token's own quotes around the new contents.
                let open = text.find(value).unwrap_or(0);
                let close = open + value.len();
                out.push_str(&text[..open]);
                out.push_str(&masked);
                out.push_str(&text[close.min(text.len())..]);
            }
            None if key.takes(token) => out.push_str(MASK),
            None => out.push_str(&text),
        }
        key = Key::after(token);
    }
    // Read as text too: a quote inside a password, not doubled, ends the
    // literal early, and the password's tail reads as more tokens.
    let raw = raw_ranges(&out);
    scrub(&mask(&out, raw)).into_owned()
}

/// The secrets of `text` read without tokens: each URL runs to the end of
/// the text, and `password=` values.
fn raw_ranges(text: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    for (_, rest) in schemes(text) {
        ranges.extend(url_ranges(text, rest, text.len()));
    }
    // `https:user:password@host` (no `//`, which clients still read as a
    // password): up to the last `@` before the literal's closing quote.
    static BARE: OnceLock<regex::Regex> = OnceLock::new();
    let bare = BARE.get_or_init(|| {
        regex::Regex::new(r"(?i)(?:^|[\s'\x22(=])[a-z][a-z0-9+.\-]*:[^\s'\x22:@/]*:")
            .expect("a valid pattern")
    });
    for m in bare.find_iter(text) {
        let start = m.end();
        let end = text[start..].find('\'').map_or(text.len(), |q| start + q);
        if let Some(at) = text[start..end].rfind('@') {
            ranges.push(start..start + at);
        }
    }
    ranges.extend(key_value_ranges(text));
    ranges
}

fn finder() -> Option<aho_corasick::AhoCorasick> {
    {
        let known = known().read().unwrap_or_else(|e| e.into_inner());
        if known.forms.is_empty() {
            return None;
        }
        if let Some(finder) = &known.finder {
            return Some(finder.clone());
        }
    }
    let mut known = known().write().unwrap_or_else(|e| e.into_inner());
    let finder = aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::Standard)
        .build(known.forms.iter())
        .ok()?;
    known.finder = Some(finder.clone());
    Some(finder)
}

/// `text` with every remembered secret, and the password of every
/// `scheme://user:password@` (up to a space or a quote), replaced by `***`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let mut out: Cow<'_, str> = Cow::Borrowed(text);
    if let Some(finder) = finder() {
        // Every match, overlapping ones too (two readings of one URL may
        // each cover part of it): their union is hidden.
        let ranges: Vec<Range<usize>> = finder
            .find_overlapping_iter(text)
            .map(|m| m.range())
            .collect();
        if !ranges.is_empty() {
            out = Cow::Owned(mask(text, ranges));
        }
    }
    static URL: OnceLock<regex::Regex> = OnceLock::new();
    let url = URL.get_or_init(|| {
        regex::Regex::new(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\x22\\]*:)[^@\s'\x22\\]*@")
            .expect("a valid pattern")
    });
    if url.is_match(&out) {
        out = Cow::Owned(url.replace_all(&out, "${1}***@").into_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passwords built from the characters that end or split a URL's parts
    /// and a statement's literals, each between two markers that must not
    /// survive redaction.
    fn hostile_passwords() -> Vec<String> {
        let pieces = [
            "'", "''", " ", "@", "/", "?", "#", ":", "%", "%40", "\"", "\\", "&", "=", ";", "\t",
            "é", "🦀", "$$", "--", "/*", "[", "]", "+",
        ];
        let mut out = Vec::new();
        for a in pieces {
            for b in pieces {
                out.push(format!("Zq{a}x{b}Zq"));
            }
        }
        out
    }

    /// URL shapes around a password: userinfo, a password parameter, a bad
    /// port, a malformed IPv6 host, no host at all.
    fn urls(password: &str) -> Vec<String> {
        vec![
            format!("postgres://bob:{password}@db.example:5432/x"),
            format!("postgres://bob:{password}@db.example:99999/x"),
            format!("postgres://bob:{password}@[::1/x"),
            format!("mysql://bob:{password}@/x?sslmode=require"),
            format!("mysql://db/x?user=a&password={password}"),
            format!("mysql://db/x?PassWord={password}&sslmode=disable"),
            format!("postgres://:{password}@h/x?a=b@c"),
        ]
    }

    #[test]
    fn urls_lose_their_passwords_whatever_they_hold() {
        for password in hostile_passwords() {
            for url in urls(&password) {
                let redacted = redact_url(&url);
                assert!(!redacted.contains("Zq"), "{url} -> {redacted}");
                assert!(redacted.contains("***"), "{url} -> {redacted}");
            }
        }
        assert_eq!(
            redact_url("postgres://bob:s3cret@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(
            redact_url("mysql://db/x?user=a&password=s3cret"),
            "mysql://db/x?user=a&password=***"
        );
        assert_eq!(redact_url("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(redact_url("testdata/"), "testdata/");
        assert_eq!(redact_url("s3://bucket/prefix/"), "s3://bucket/prefix/");
    }

    #[test]
    fn statements_lose_their_passwords() {
        for password in hostile_passwords() {
            let quoted = password.replace('\'', "''");
            for url in urls(&quoted) {
                for sql in [
                    format!("ATTACH '{url}' AS pg"),
                    format!("ATTACH '{url}' AS pg (READ_ONLY); SELECT 'a@b'"),
                    // Not valid SQL (the quote not doubled): still hidden.
                    format!("ATTACH '{}' AS pg", url.replace("''", "'")),
                ] {
                    let redacted = redact_sql(&sql);
                    assert!(!redacted.contains("Zq"), "{sql} -> {redacted}");
                    assert!(redacted.starts_with("ATTACH '"), "{sql} -> {redacted}");
                }
            }
            for sql in [
                format!(
                    "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 's3://b/t.csv' OPTIONS ('aws.secret_access_key' '{quoted}')"
                ),
                format!("host=db user=app password='{quoted}' dbname=x"),
            ] {
                let redacted = redact_sql(&sql);
                assert!(!redacted.contains("Zq"), "{sql} -> {redacted}");
            }
        }
        assert_eq!(
            redact_sql("SELECT 'a:b@c' FROM t WHERE url = 'https://example.com/x'"),
            "SELECT 'a:b@c' FROM t WHERE url = 'https://example.com/x'"
        );
        assert_eq!(
            redact_sql("SELECT password FROM users WHERE id = 1"),
            "SELECT password FROM users WHERE id = 1"
        );
    }

    #[test]
    fn remembered_passwords_are_scrubbed_in_every_form() {
        let password = "Qv it's\"a@b\\c%2Fd";
        remember_sql(&format!(
            "ATTACH 'postgres://u:{}@h/x' AS pg",
            password.replace('\'', "''")
        ));
        for text in [
            password.to_string(),
            format!("{password:?}"),
            serde_json::to_string(password).unwrap(),
            password.replace("%2F", "/"),
        ] {
            let scrubbed = scrub(&text);
            assert!(!scrubbed.contains("Qv"), "{text} -> {scrubbed}");
        }
    }
}
