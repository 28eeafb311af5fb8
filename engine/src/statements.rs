//! Splitting scripts into statements and parsing the statements Moltres
//! handles itself: `ATTACH`, `DETACH` and `SHOW SOURCES`. Everything else is
//! DataFusion SQL.
//!
//! Both work on sqlparser's tokens, so quotes, comments and dollar-quoted
//! strings are respected and no statement text is ever pasted together.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::error::{Error, Result};

/// A statement Moltres runs itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoltresStatement {
    /// `ATTACH [DATABASE] 'url' AS name [(READ_ONLY, key 'value', ...)]`
    Attach {
        /// The URL or path.
        url: String,
        /// The alias.
        alias: String,
        /// `READ_ONLY` was given.
        read_only: bool,
        /// Other options.
        options: BTreeMap<String, String>,
    },
    /// `DETACH [DATABASE] [IF EXISTS] name`
    Detach {
        /// The alias.
        alias: String,
        /// `IF EXISTS` was given.
        if_exists: bool,
    },
    /// `SHOW SOURCES`
    ShowSources,
    /// `REFRESH SOURCE name`: forget cached schemas, tables and columns.
    Refresh {
        /// The alias.
        alias: String,
    },
}

fn tokenize(sql: &str) -> Result<Vec<Token>> {
    Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| Error::Statement(format!("SQL syntax error: {e}")))
}

fn is_trivia(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_))
}

/// Splits a script into statements at top-level semicolons. Each statement is
/// the script's own text (from its first token to its semicolon), so quoting
/// and escapes are kept byte for byte; comments before a statement and
/// statements that are only whitespace and comments are dropped.
pub fn split_statements(sql: &str) -> Result<Vec<String>> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| Error::Statement(format!("SQL syntax error: {e}")))?;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    // Locations count lines and characters from 1.
    let offset = |location: Location| -> usize {
        let Some(line_start) = (location.line as usize)
            .checked_sub(1)
            .and_then(|l| line_starts.get(l))
        else {
            return sql.len();
        };
        sql[*line_start..]
            .char_indices()
            .nth((location.column as usize).saturating_sub(1))
            .map_or(sql.len(), |(i, _)| line_start + i)
    };
    let mut statements = Vec::new();
    let mut first: Option<usize> = None;
    for token in tokens {
        match token.token {
            Token::SemiColon => {
                if let Some(start) = first.take() {
                    let end = offset(token.span.start);
                    statements.push(sql[start..end].trim_end().to_string());
                }
            }
            Token::EOF => {}
            ref t if is_trivia(t) => {}
            _ => {
                if first.is_none() {
                    first = Some(offset(token.span.start));
                }
            }
        }
    }
    if let Some(start) = first {
        statements.push(sql[start..].trim_end().to_string());
    }
    Ok(statements)
}

/// True when `sql` holds at least one complete statement and nothing after
/// the last semicolon but whitespace and comments (used by the shell to know
/// when a multi-line statement is finished). Unterminated quotes are incomplete.
pub fn is_complete(sql: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return false;
    };
    let mut complete = false;
    for token in tokens {
        match token {
            Token::SemiColon => complete = true,
            Token::EOF => {}
            t if is_trivia(&t) => {}
            _ => complete = false,
        }
    }
    complete
}

/// Parses `sql` as a Moltres statement, or `None` when it is ordinary SQL.
pub fn parse_moltres_statement(sql: &str) -> Result<Option<MoltresStatement>> {
    let tokens: Vec<Token> = tokenize(sql)?
        .into_iter()
        .filter(|t| !is_trivia(t) && *t != Token::EOF && *t != Token::SemiColon)
        .collect();
    let mut p = Parser { tokens, at: 0 };
    if p.keyword(Keyword::ATTACH) {
        return p.attach().map(Some);
    }
    if p.keyword(Keyword::DETACH) {
        p.keyword(Keyword::DATABASE);
        let if_exists = if p.keyword(Keyword::IF) {
            p.expect_keyword(Keyword::EXISTS, "DETACH IF EXISTS name")?;
            true
        } else {
            false
        };
        let alias = p.identifier("DETACH [IF EXISTS] name")?;
        p.end("DETACH [IF EXISTS] name")?;
        return Ok(Some(MoltresStatement::Detach { alias, if_exists }));
    }
    if p.word("REFRESH") && p.word("SOURCE") {
        let alias = p.identifier("REFRESH SOURCE name")?;
        p.end("REFRESH SOURCE name")?;
        return Ok(Some(MoltresStatement::Refresh { alias }));
    }
    p.at = 0;
    if p.keyword(Keyword::SHOW) && p.word("SOURCES") {
        p.end("SHOW SOURCES")?;
        return Ok(Some(MoltresStatement::ShowSources));
    }
    Ok(None)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

const ATTACH_USAGE: &str = "ATTACH 'url' AS name [(READ_ONLY, option 'value', ...)]";

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn keyword(&mut self, keyword: Keyword) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.keyword == keyword && w.quote_style.is_none() => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn word(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w))
                if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word) =>
            {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn expect_keyword(&mut self, keyword: Keyword, usage: &str) -> Result<()> {
        if self.keyword(keyword) {
            Ok(())
        } else {
            Err(self.error(usage))
        }
    }

    fn error(&self, usage: &str) -> Error {
        match self.peek() {
            Some(t) => Error::Statement(format!("unexpected '{t}'; expected {usage}")),
            None => Error::Statement(format!("incomplete statement; expected {usage}")),
        }
    }

    fn identifier(&mut self, usage: &str) -> Result<String> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let name = if w.quote_style.is_some() {
                    w.value.clone()
                } else {
                    w.value.to_ascii_lowercase()
                };
                self.at += 1;
                Ok(name)
            }
            _ => Err(self.error(usage)),
        }
    }

    fn string(&mut self, usage: &str) -> Result<String> {
        match self.peek() {
            Some(Token::SingleQuotedString(s)) | Some(Token::DoubleQuotedString(s)) => {
                let s = s.clone();
                self.at += 1;
                Ok(s)
            }
            _ => Err(self.error(usage)),
        }
    }

    fn end(&self, usage: &str) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error(usage)),
        }
    }

    fn attach(&mut self) -> Result<MoltresStatement> {
        self.keyword(Keyword::DATABASE);
        let url = self.string(ATTACH_USAGE)?;
        self.expect_keyword(Keyword::AS, ATTACH_USAGE)?;
        let alias = self.identifier(ATTACH_USAGE)?;
        let mut read_only = false;
        let mut options = BTreeMap::new();
        if self.peek() == Some(&Token::LParen) {
            self.at += 1;
            loop {
                let key = self.identifier(ATTACH_USAGE)?;
                if key.eq_ignore_ascii_case("read_only") {
                    read_only = true;
                } else {
                    if self.peek() == Some(&Token::Eq) {
                        self.at += 1;
                    }
                    let value = match self.peek() {
                        Some(Token::Number(n, _)) => {
                            let n = n.clone();
                            self.at += 1;
                            n
                        }
                        Some(Token::Word(w)) if w.quote_style.is_none() => {
                            let v = w.value.clone();
                            self.at += 1;
                            v
                        }
                        _ => self.string(ATTACH_USAGE)?,
                    };
                    options.insert(key.to_ascii_lowercase(), value);
                }
                match self.peek() {
                    Some(Token::Comma) => self.at += 1,
                    Some(Token::RParen) => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(self.error(ATTACH_USAGE)),
                }
            }
        }
        self.end(ATTACH_USAGE)?;
        Ok(MoltresStatement::Attach {
            url,
            alias,
            read_only,
            options,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_top_level_semicolons() {
        let s = split_statements("select ';' as a; -- c;\n select 2;;\n/* x; */").unwrap();
        assert_eq!(s, vec!["select ';' as a", "select 2"]);
        // Escaped quotes and multi-byte characters survive as written.
        let s = split_statements("SELECT 'it''s', 'é;ü' ;\n\tSELECT $$a;b$$").unwrap();
        assert_eq!(s, vec!["SELECT 'it''s', 'é;ü'", "SELECT $$a;b$$"]);
    }

    #[test]
    fn completeness() {
        assert!(is_complete("select 1;"));
        assert!(is_complete("select 1; -- done"));
        assert!(!is_complete("select 1"));
        assert!(!is_complete("select ';"));
        assert!(!is_complete("select 1; select"));
    }

    #[test]
    fn parses_attach() {
        let s = parse_moltres_statement("ATTACH 'testdata/' AS Files (READ_ONLY, delimiter ';')")
            .unwrap()
            .unwrap();
        let MoltresStatement::Attach {
            url,
            alias,
            read_only,
            options,
        } = s
        else {
            panic!("not attach")
        };
        assert_eq!(url, "testdata/");
        assert_eq!(alias, "files");
        assert!(read_only);
        assert_eq!(options["delimiter"], ";");
        let err = parse_moltres_statement("ATTACH testdata AS x").unwrap_err();
        assert!(err.to_string().contains("ATTACH 'url' AS name"), "{err}");
        assert_eq!(
            parse_moltres_statement("detach if exists \"Pg\"").unwrap(),
            Some(MoltresStatement::Detach {
                alias: "Pg".into(),
                if_exists: true
            })
        );
        assert_eq!(
            parse_moltres_statement("show sources").unwrap(),
            Some(MoltresStatement::ShowSources)
        );
        assert_eq!(parse_moltres_statement("show tables").unwrap(), None);
        assert_eq!(
            parse_moltres_statement("REFRESH SOURCE pg").unwrap(),
            Some(MoltresStatement::Refresh { alias: "pg".into() })
        );
        assert_eq!(
            parse_moltres_statement("REFRESH MATERIALIZED VIEW v").unwrap(),
            None
        );
        assert_eq!(parse_moltres_statement("select 1").unwrap(), None);
    }
}
