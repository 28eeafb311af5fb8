//! The last lines of defence of a statement: nothing a user writes or
//! reads may abort the process that embeds Moltres.
//!
//! * Expressions nested deeper than [`MAX_DEPTH`] (10,000 `OR` terms, 8,000
//!   `+` terms) are refused before they are planned: DataFusion plans and
//!   evaluates expressions recursively, and past a few thousand levels it
//!   overflows the thread's stack, which aborts the process (a stack
//!   overflow cannot be caught).
//! * A panic while a statement is planned, or while its result is read (a
//!   reader of a corrupt file, say), fails that statement with an error
//!   naming the panic; the session goes on ([`catch`], and the
//!   [`ObservedExec`](crate::observe) stream of every query).

use std::future::Future;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Word};
use futures::FutureExt;

use crate::error::{Error, Result};

/// Most levels of nested operators and parentheses in one expression.
/// DataFusion's planner, optimizer and evaluator recurse once or more per
/// level; 1,000 levels run on a 2 MiB thread in an unoptimized build.
pub const MAX_DEPTH: usize = 1_000;

/// Refuses `sql` when an expression in it nests deeper than [`MAX_DEPTH`]
/// levels. The depth is estimated from tokens, without building a tree:
/// each binary operator in a chain (`a OR b OR c`: the parser nests a
/// chain on its left) and each parenthesis adds a level; a comma or a
/// clause keyword ends a chain. The estimate is never below the depth of
/// the tree the parser builds.
pub fn check_depth(sql: &str) -> Result<()> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        // The parser reports what is wrong with it.
        return Ok(());
    };
    let relations = estimated_relations(&tokens);
    if relations > MAX_RELATIONS {
        return Err(Error::Statement(format!(
            "query of about {relations} query blocks, joins and set operations (SELECT, JOIN, \
             UNION, tables listed in FROM, WITH entries); at most {MAX_RELATIONS} are allowed, \
             since each nests the plan one level deeper. Split it, or stage parts with \
             CREATE TABLE ... AS"
        )));
    }
    let nesting = deepest_nesting(&tokens);
    if nesting > MAX_NESTING {
        return Err(Error::Statement(format!(
            "parentheses, brackets or CASEs nested {nesting} deep; at most {MAX_NESTING} are allowed \
             (the SQL parser gives up at about 50 levels, and for nested CAST and ARRAY it \
             takes time exponential in the depth before it does)"
        )));
    }
    let inlined = inlined_relations(&tokens);
    if inlined > MAX_RELATIONS {
        return Err(Error::Statement(format!(
            "query reads about {inlined} tables once its WITH entries are put in place (an \
             entry read twice by the next, and so on, doubles at each step); at most \
             {MAX_RELATIONS} are allowed. Stage entries with CREATE TABLE ... AS"
        )));
    }
    let expansion = deepest_operand_copies(&tokens);
    if expansion > MAX_COPIED_OPERANDS {
        return Err(Error::Statement(format!(
            "BETWEEN or IN nested {expansion} deep in its own operand; at most \
             {MAX_COPIED_OPERANDS} are allowed (each level copies the operand below it: \
             `x BETWEEN a AND b` is `x >= a AND x <= b`, so the expression doubles per level)"
        )));
    }
    let (conditionals, subqueries) = deepest_costly_nesting(&tokens);
    if conditionals > MAX_CONDITIONAL_NESTING {
        return Err(Error::Statement(format!(
            "coalesce, ifnull, nvl or nullif nested {conditionals} deep; at most \
             {MAX_CONDITIONAL_NESTING} are allowed (DataFusion's planner takes time exponential \
             in their depth). coalesce(a, b, c) takes any number of arguments"
        )));
    }
    if subqueries > MAX_SUBQUERY_NESTING {
        return Err(Error::Statement(format!(
            "subqueries nested {subqueries} deep; at most {MAX_SUBQUERY_NESTING} are allowed \
             (DataFusion's planner takes time exponential in their depth). Stage inner parts \
             with WITH or CREATE TABLE ... AS"
        )));
    }
    let items = widest_select(&tokens);
    if items > MAX_SELECT_ITEMS {
        return Err(Error::Statement(format!(
            "SELECT list of {items} items; at most {MAX_SELECT_ITEMS} are allowed, since \
             DataFusion's planner takes time quadratic in their number (5,000 plan in a few \
             seconds, 200,000 would take hours). Select fewer columns, or `*`"
        )));
    }
    let depth = estimated_depth(&tokens);
    if depth > MAX_DEPTH {
        return Err(Error::Statement(format!(
            "expression nested about {depth} levels deep (operators in one chain plus \
             parentheses); at most {MAX_DEPTH} are allowed. A long chain of `x = 1 OR x = 2 \
             OR ...` is `x IN (1, 2, ...)`; a long sum is better split over subqueries"
        )));
    }
    Ok(())
}

/// Most query blocks, joins and set operations in one statement. Plans
/// nest one level per join, UNION branch and referenced WITH entry, and
/// DataFusion walks them recursively: 600 joins or chained WITH entries,
/// or 2,000 UNION branches, overflowed an 8 MiB stack in an unoptimized
/// build.
pub const MAX_RELATIONS: usize = 500;

/// Most parentheses and brackets open at once. sqlparser's recursion
/// limit (50 by default) refuses deeper nesting anyway, but for `CAST(`,
/// `TRY_CAST(` and `ARRAY[` nested about 48 deep it backtracks for minutes
/// before it does (found by an outsider's attack: 100% CPU, no timeout
/// can interrupt the synchronous parser).
pub const MAX_NESTING: usize = 40;

fn deepest_nesting(tokens: &[Token]) -> usize {
    use datafusion::sql::sqlparser::keywords::Keyword;
    let (mut depth, mut deepest) = (0usize, 0usize);
    for token in tokens {
        match token {
            // A CASE nests the parser as a parenthesis does (an outsider's
            // `CAST(CASE WHEN true THEN` 24 deep spun for minutes).
            Token::LParen | Token::LBracket => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Token::Word(word) if word.keyword == Keyword::CASE => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
            Token::Word(word) if word.keyword == Keyword::END => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Most calls of coalesce, ifnull, nvl, nvl2 and nullif nested in one
/// another. DataFusion 55 plans each one's arguments more than once, so
/// planning time doubles with each level (found by an outsider's attack:
/// 18 levels took 10 s, and the synchronous planner cannot be timed out).
pub const MAX_CONDITIONAL_NESTING: usize = 12;

/// Most subqueries nested in one another (`(SELECT ... (SELECT ...))`):
/// planning time grows exponentially with the depth of nested scalar
/// subqueries under CAST (an outsider's 15 levels took 7 s).
pub const MAX_SUBQUERY_NESTING: usize = 12;

/// The deepest nesting of conditional functions ([`MAX_CONDITIONAL_NESTING`])
/// and of subqueries ([`MAX_SUBQUERY_NESTING`]).
fn deepest_costly_nesting(tokens: &[Token]) -> (usize, usize) {
    use datafusion::sql::sqlparser::keywords::Keyword;
    #[derive(Clone, Copy, PartialEq)]
    enum Open {
        Conditional,
        Plain,
    }
    // What each open parenthesis is; a plain one becomes a subquery when
    // SELECT (or WITH, VALUES) follows it.
    let mut open: Vec<(Open, bool)> = Vec::new();
    let (mut conditionals, mut subqueries) = (0usize, 0usize);
    let mut previous: Option<&Token> = None;
    for token in tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))) {
        match token {
            Token::LParen => {
                let kind = match previous {
                    Some(Token::Word(word))
                        if ["coalesce", "ifnull", "nvl", "nvl2", "nullif"]
                            .iter()
                            .any(|f| word.value.eq_ignore_ascii_case(f)) =>
                    {
                        Open::Conditional
                    }
                    _ => Open::Plain,
                };
                open.push((kind, false));
                let depth = open.iter().filter(|(k, _)| *k == Open::Conditional).count();
                conditionals = conditionals.max(depth);
            }
            Token::RParen => {
                open.pop();
            }
            Token::Word(word)
                if matches!(
                    word.keyword,
                    Keyword::SELECT | Keyword::WITH | Keyword::VALUES
                ) && matches!(previous, Some(Token::LParen)) =>
            {
                if let Some(last) = open.last_mut() {
                    last.1 = true;
                }
                subqueries = subqueries.max(open.iter().filter(|(_, sub)| *sub).count());
            }
            _ => {}
        }
        previous = Some(token);
    }
    (conditionals, subqueries)
}

/// Most levels of BETWEEN or IN whose operand holds another: DataFusion
/// rewrites `x BETWEEN a AND b` as `x >= a AND x <= b` and a short IN list
/// as ORs, copying `x` each time, so the expression doubles per level (an
/// outsider's 18 levels of `(x BETWEEN 0 AND 2)::INT` planned in 58 s, and
/// a scalar subquery compared with BETWEEN, nested 8 deep, in 14.5 s).
pub const MAX_COPIED_OPERANDS: usize = 6;

/// The deepest chain of BETWEEN / IN whose operand (the parenthesized group
/// before it, at its level) holds another: estimated from tokens, per
/// parenthesis level, from the groups closed at that level since the last
/// comma.
fn deepest_operand_copies(tokens: &[Token]) -> usize {
    use datafusion::sql::sqlparser::keywords::Keyword;
    // Per open level: (the deepest chain among groups closed at this level
    // since the last comma, the deepest chain anywhere in the level).
    let mut levels: Vec<(usize, usize)> = vec![(0, 0)];
    let mut deepest = 0;
    for token in tokens {
        match token {
            Token::LParen => levels.push((0, 0)),
            Token::RParen if levels.len() > 1 => {
                let (_, inside) = levels.pop().expect("more than one level");
                let level = levels.last_mut().expect("the bottom level stays");
                level.0 = level.0.max(inside);
                level.1 = level.1.max(inside);
            }
            Token::Comma => {
                if let Some(level) = levels.last_mut() {
                    level.0 = 0;
                }
            }
            Token::Word(word) if matches!(word.keyword, Keyword::BETWEEN | Keyword::IN) => {
                let level = levels.last_mut().expect("the bottom level stays");
                let chain = level.0 + 1;
                level.1 = level.1.max(chain);
                deepest = deepest.max(chain);
            }
            _ => {}
        }
    }
    deepest
}

/// About how many tables a statement reads once DataFusion puts each WITH
/// entry in place of its references (it inlines them): each entry weighs
/// the sum of the entries it names (at least one), and the statement the
/// sum of the entries its body names. Only the statement's leading WITH.
fn inlined_relations(tokens: &[Token]) -> usize {
    use datafusion::sql::sqlparser::keywords::Keyword;
    let words: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let mut at = 0;
    while matches!(words.get(at), Some(Token::LParen)) {
        at += 1;
    }
    if !matches!(words.get(at), Some(Token::Word(w)) if w.keyword == Keyword::WITH) {
        return 0;
    }
    at += 1;
    if matches!(words.get(at), Some(Token::Word(w)) if w.keyword == Keyword::RECURSIVE) {
        return 0;
    }
    let mut weights: Vec<(String, usize)> = Vec::new();
    let weigh = |body: &[&Token], weights: &[(String, usize)]| -> usize {
        body.iter()
            .filter_map(|t| match t {
                Token::Word(w) => weights
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(&w.value))
                    .map(|(_, weight)| *weight),
                _ => None,
            })
            .fold(0usize, |sum, w| sum.saturating_add(w))
    };
    loop {
        // name [ (columns) ] AS [ [NOT] MATERIALIZED ] ( body )
        let Some(Token::Word(name)) = words.get(at) else {
            return 0;
        };
        let name = name.value.clone();
        let Some(open) = (at..words.len()).find(|i| {
            matches!(words[*i], Token::LParen)
                && matches!(words.get(i.wrapping_sub(1)), Some(Token::Word(w)) if w.keyword == Keyword::AS || w.keyword == Keyword::MATERIALIZED)
        }) else {
            return 0;
        };
        let mut depth = 0usize;
        let mut close = None;
        for (i, token) in words.iter().enumerate().skip(open) {
            match token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            return 0;
        };
        let weight = weigh(&words[open + 1..close], &weights).max(1);
        weights.push((name, weight));
        at = close + 1;
        if matches!(words.get(at), Some(Token::Comma)) {
            at += 1;
        } else {
            return weigh(&words[at..], &weights);
        }
    }
}

/// Most items in one SELECT list. DataFusion 55's SQL planner compares
/// each select item's name with every earlier one's (and resolves each
/// column by a linear search), so planning time grows with the square of
/// the list: 20,000 constants plan in 48 s in an unoptimized build, and a
/// list of 200,000 would not finish for hours (no timeout can interrupt
/// planning, which is synchronous).
pub const MAX_SELECT_ITEMS: usize = 20_000;

/// The items of the longest SELECT list (commas at its level, plus one).
fn widest_select(tokens: &[Token]) -> usize {
    use datafusion::sql::sqlparser::keywords::Keyword;
    // Per parenthesis level: the items of the SELECT list being read.
    let mut lists: Vec<Option<usize>> = vec![None];
    let mut widest = 0;
    for token in tokens {
        match token {
            Token::LParen => {
                lists.push(None);
                continue;
            }
            Token::RParen if lists.len() > 1 => {
                lists.pop();
                continue;
            }
            _ => {}
        }
        let list = lists.last_mut().expect("the bottom level stays");
        match token {
            Token::Comma => {
                if let Some(items) = list {
                    *items += 1;
                    widest = widest.max(*items);
                }
            }
            Token::Word(word) => match word.keyword {
                Keyword::SELECT => {
                    *list = Some(1);
                    widest = widest.max(1);
                }
                Keyword::FROM
                | Keyword::WHERE
                | Keyword::GROUP
                | Keyword::HAVING
                | Keyword::ORDER
                | Keyword::LIMIT
                | Keyword::WINDOW
                | Keyword::QUALIFY
                | Keyword::UNION
                | Keyword::INTERSECT
                | Keyword::EXCEPT
                | Keyword::INTO => *list = None,
                _ => {}
            },
            _ => {}
        }
    }
    widest
}

/// SELECT, JOIN, UNION/INTERSECT/EXCEPT and commas between the tables of a
/// FROM clause, counted over the whole statement.
fn estimated_relations(tokens: &[Token]) -> usize {
    use datafusion::sql::sqlparser::keywords::Keyword;
    // Per parenthesis level: whether a FROM clause is being read.
    let mut in_from = vec![false];
    let mut count = 0;
    for token in tokens {
        match token {
            Token::LParen => in_from.push(false),
            Token::RParen if in_from.len() > 1 => {
                in_from.pop();
            }
            Token::Comma if *in_from.last().expect("the bottom level stays") => count += 1,
            Token::Word(word) => {
                let from = in_from.last_mut().expect("the bottom level stays");
                match word.keyword {
                    Keyword::SELECT => {
                        count += 1;
                        *from = false;
                    }
                    Keyword::FROM => *from = true,
                    Keyword::JOIN | Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT => {
                        count += 1
                    }
                    Keyword::WHERE
                    | Keyword::GROUP
                    | Keyword::HAVING
                    | Keyword::ORDER
                    | Keyword::LIMIT
                    | Keyword::WINDOW
                    | Keyword::QUALIFY => *from = false,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    count
}

fn estimated_depth(tokens: &[Token]) -> usize {
    /// One parenthesis (or CASE) level: the depth where it opened, and the
    /// operators of each precedence class in the current chain.
    struct Level {
        base: usize,
        chain: [usize; CLASSES],
    }
    impl Level {
        /// A chain of one class nests once per operator; each other class
        /// present adds a level over it (`a = 1 OR a = 2 OR ...` is an
        /// `OR` chain with one `=` under each).
        fn depth(&self) -> usize {
            let longest = self.chain.iter().max().copied().unwrap_or(0);
            let classes = self.chain.iter().filter(|n| **n > 0).count();
            self.base + longest + classes.saturating_sub(1)
        }
    }
    let mut stack = vec![Level {
        base: 0,
        chain: [0; CLASSES],
    }];
    let mut deepest = 0;
    for token in tokens {
        let level = stack.last_mut().expect("the bottom level stays");
        match token {
            Token::LParen | Token::LBracket => {
                let base = level.depth() + 1;
                stack.push(Level {
                    base,
                    chain: [0; CLASSES],
                });
            }
            Token::Word(word)
                if word.keyword == datafusion::sql::sqlparser::keywords::Keyword::CASE =>
            {
                let base = level.depth() + 1;
                stack.push(Level {
                    base,
                    chain: [0; CLASSES],
                });
            }
            Token::RParen | Token::RBracket => {
                if stack.len() > 1 {
                    stack.pop();
                }
            }
            Token::Word(word)
                if word.keyword == datafusion::sql::sqlparser::keywords::Keyword::END =>
            {
                if stack.len() > 1 {
                    stack.pop();
                }
            }
            Token::Comma | Token::SemiColon => level.chain = [0; CLASSES],
            Token::Word(word) if ends_chain(word) => level.chain = [0; CLASSES],
            token => {
                if let Some(class) = operator_class(token) {
                    level.chain[class] += 1;
                }
            }
        }
        deepest = deepest.max(stack.last().expect("the bottom level stays").depth());
    }
    deepest
}

const CLASSES: usize = 6;

/// The precedence class of a binary (or prefix `NOT`) operator.
fn operator_class(token: &Token) -> Option<usize> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    Some(match token {
        Token::Word(word) => match word.keyword {
            Keyword::OR => 0,
            Keyword::AND => 1,
            Keyword::NOT => 2,
            Keyword::LIKE | Keyword::ILIKE | Keyword::IS => 3,
            _ => return None,
        },
        Token::Eq
        | Token::DoubleEq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq => 3,
        Token::Plus | Token::Minus | Token::StringConcat => 4,
        Token::Mul
        | Token::Div
        | Token::Mod
        | Token::Ampersand
        | Token::Pipe
        | Token::Caret
        | Token::ShiftLeft
        | Token::ShiftRight
        | Token::DoubleColon
        | Token::Arrow
        | Token::LongArrow => 5,
        _ => return None,
    })
}

fn ends_chain(word: &Word) -> bool {
    use datafusion::sql::sqlparser::keywords::Keyword;
    matches!(
        word.keyword,
        Keyword::SELECT
            | Keyword::FROM
            | Keyword::WHERE
            | Keyword::GROUP
            | Keyword::HAVING
            | Keyword::ORDER
            | Keyword::LIMIT
            | Keyword::UNION
            | Keyword::ON
            | Keyword::JOIN
            | Keyword::VALUES
            | Keyword::SET
            | Keyword::THEN
            | Keyword::ELSE
            | Keyword::WHEN
    )
}

/// Runs `future`, turning a panic in it into an error that says what was
/// running.
pub async fn catch<T>(what: &str, future: impl Future<Output = Result<T>>) -> Result<T> {
    match std::panic::AssertUnwindSafe(future).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(Error::Statement(format!(
            "internal error while {what}: {} (a bug in Moltres or a library it uses; the \
             session goes on)",
            panic_message(payload.as_ref())
        ))),
    }
}

pub use moltres_connectors::panic_message;

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(sql: &str) -> Vec<Token> {
        Tokenizer::new(&GenericDialect {}, sql).tokenize().unwrap()
    }

    fn depth(sql: &str) -> usize {
        estimated_depth(&tokens(sql))
    }

    #[test]
    fn select_lists_are_counted_at_their_own_level() {
        let widest = |sql: &str| widest_select(&tokens(sql));
        assert_eq!(widest("SELECT 1"), 1);
        assert_eq!(
            widest("SELECT a, f(b, c), (SELECT x, y FROM u) FROM t WHERE d IN (1, 2, 3)"),
            3
        );
        assert_eq!(
            widest("SELECT a FROM t GROUP BY a, b, c, d ORDER BY a, b"),
            1
        );
        assert_eq!(widest("SELECT a, b UNION ALL SELECT c, d, e"), 3);
        let wide = format!(
            "SELECT {}",
            (0..MAX_SELECT_ITEMS + 1)
                .map(|i| format!("{i} AS c{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let error = check_depth(&wide).unwrap_err().to_string();
        assert!(error.contains("SELECT list of 20001 items"), "{error}");
    }

    fn relations(sql: &str) -> usize {
        estimated_relations(&tokens(sql))
    }

    fn chain(op: &str, n: usize) -> String {
        (0..n)
            .map(|i| format!("a = {i}"))
            .collect::<Vec<_>>()
            .join(&format!(" {op} "))
    }

    #[test]
    fn depth_counts_chains_and_parentheses() {
        assert_eq!(depth("SELECT 1"), 0);
        assert!(depth("SELECT a + b + c FROM t") >= 2);
        // Columns of a wide select do not add up.
        let wide: Vec<String> = (0..5000).map(|i| format!("a + {i}")).collect();
        assert!(depth(&format!("SELECT {} FROM t", wide.join(", "))) <= 2);
        // A long IN list is one level.
        let list: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
        assert!(depth(&format!("SELECT * FROM t WHERE a IN ({})", list.join(", "))) <= 3);
        let deep = format!("SELECT * FROM t WHERE {}", chain("OR", 10_000));
        assert!(depth(&deep) >= 10_000);
        let nested = format!("SELECT {}1{}", "(".repeat(3000), ")".repeat(3000));
        assert!(depth(&nested) >= 3000);
        let sum = format!("SELECT {} FROM t", vec!["a"; 8000].join(" + "));
        assert!(check_depth(&sum).is_err());
        assert!(check_depth(&format!("SELECT * FROM t WHERE {}", chain("OR", 900))).is_ok());
        assert!(check_depth(&format!("SELECT * FROM t WHERE {}", chain("OR", 1100))).is_err());
        // Nested CASTs made the parser backtrack for minutes at 48.
        let casts = format!("SELECT {}1{}", "CAST(".repeat(48), " AS BIGINT)".repeat(48));
        let error = check_depth(&casts).unwrap_err().to_string();
        assert!(error.contains("nested 48 deep; at most 40"), "{error}");
        assert!(check_depth(&format!("SELECT {}1{}", "(".repeat(40), ")".repeat(40))).is_ok());
        let cases = format!(
            "SELECT {}1{}",
            "CAST(CASE WHEN true THEN ".repeat(24),
            " END AS INT)".repeat(24)
        );
        assert!(check_depth(&cases).is_err());
        // Strings and comments are tokens of their own, not operators.
        assert_eq!(depth(&format!("SELECT '{}'", "+".repeat(5000))), 0);
    }

    #[test]
    fn conditionals_and_subqueries_are_counted_by_their_own_nesting() {
        let nested = |f: &str, n: usize| {
            format!(
                "SELECT {}1{} FROM t",
                format!("{f}(a, ").repeat(n),
                ")".repeat(n)
            )
        };
        let costly = |sql: &str| deepest_costly_nesting(&tokens(sql));
        assert_eq!(costly(&nested("coalesce", 5)), (5, 0));
        assert_eq!(costly(&nested("IFNULL", 3)), (3, 0));
        // Other functions and parentheses do not count.
        assert_eq!(costly(&nested("abs", 30)), (0, 0));
        assert_eq!(costly("SELECT coalesce(a, (b + 1), abs(c)) FROM t"), (1, 0));
        let error = check_depth(&nested("nvl", 18)).unwrap_err().to_string();
        assert!(error.contains("nested 18 deep; at most 12"), "{error}");
        assert!(check_depth(&nested("coalesce", 12)).is_ok());
        let subqueries = |n: usize| {
            format!(
                "SELECT {}1{}",
                "CAST((SELECT ".repeat(n),
                ") AS INT)".repeat(n)
            )
        };
        assert_eq!(costly(&subqueries(4)), (0, 4));
        assert_eq!(
            costly("SELECT (SELECT 1), (SELECT 2) FROM (SELECT 3) t WHERE a IN (SELECT 4)"),
            (0, 1)
        );
        let error = check_depth(&subqueries(15)).unwrap_err().to_string();
        assert!(error.contains("subqueries nested 15 deep"), "{error}");
        assert!(check_depth(&subqueries(12)).is_ok());
    }

    #[test]
    fn copied_operands_and_inlined_entries_are_counted() {
        let betweens = |n: usize| {
            format!(
                "SELECT {}x{} FROM (VALUES (1)) v(x)",
                "(".repeat(n),
                " BETWEEN 0 AND 2)::INT".repeat(n)
            )
        };
        let copies = |sql: &str| deepest_operand_copies(&tokens(sql));
        assert_eq!(copies(&betweens(3)), 3);
        assert_eq!(
            copies("SELECT a IN (1, 2), b BETWEEN 1 AND 2, c IN (3) FROM t"),
            1
        );
        assert_eq!(
            copies("SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c IN (1, 2))"),
            1
        );
        let error = check_depth(&betweens(7)).unwrap_err().to_string();
        assert!(error.contains("nested 7 deep"), "{error}");
        assert!(check_depth(&betweens(6)).is_ok());
        let inlined = |sql: &str| inlined_relations(&tokens(sql));
        assert_eq!(inlined("SELECT 1"), 0);
        assert_eq!(
            inlined("WITH a AS (SELECT 1), b AS (SELECT * FROM a, a) SELECT * FROM b, a"),
            3
        );
        let doubling = |n: usize| {
            let entries: Vec<String> = (1..=n)
                .map(|i| {
                    format!(
                        "t{i} AS (SELECT x.v FROM t{} x JOIN t{} y ON x.v = y.v)",
                        i - 1,
                        i - 1
                    )
                })
                .collect();
            format!(
                "WITH t0 AS (SELECT 1 AS v), {} SELECT count(*) FROM t{n}",
                entries.join(", ")
            )
        };
        assert_eq!(inlined(&doubling(5)), 32);
        let error = check_depth(&doubling(12)).unwrap_err().to_string();
        assert!(error.contains("about 4096 tables"), "{error}");
        assert!(check_depth(&doubling(8)).is_ok());
    }

    #[test]
    fn relations_count_blocks_joins_and_set_operations() {
        assert_eq!(relations("SELECT 1"), 1);
        assert_eq!(relations("SELECT a, b, c FROM t, u WHERE x IN (1, 2)"), 2);
        let unions = vec!["SELECT 1"; 2000].join(" UNION ALL ");
        assert!(check_depth(&unions).is_err());
        assert!(check_depth(&vec!["SELECT 1"; 200].join(" UNION ALL ")).is_ok());
        let joins: Vec<String> = (0..600).map(|i| format!("(VALUES (1)) t{i}(x)")).collect();
        let joins = format!("SELECT 1 FROM {}", joins.join(" CROSS JOIN "));
        assert!(check_depth(&joins).is_err());
        let commas: Vec<String> = (0..600).map(|i| format!("t{i}")).collect();
        assert!(check_depth(&format!("SELECT 1 FROM {}", commas.join(", "))).is_err());
        let ctes: Vec<String> = (1..600)
            .map(|i| format!("c{i} AS (SELECT * FROM c{})", i - 1))
            .collect();
        let ctes = format!(
            "WITH c0 AS (SELECT 1), {} SELECT * FROM c599",
            ctes.join(", ")
        );
        assert!(check_depth(&ctes).is_err());
        // A wide select list and a long IN list are one block.
        let wide: Vec<String> = (0..20_000).map(|i| format!("a{i}")).collect();
        assert!(check_depth(&format!("SELECT {} FROM t", wide.join(", "))).is_ok());
    }

    #[tokio::test]
    async fn panics_become_errors() {
        let error = catch("planning", async {
            if std::hint::black_box(true) {
                panic!("range start must not be greater than end");
            }
            Ok(())
        })
        .await
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("while planning: range start must not be greater than end"),
            "{error}"
        );
    }
}
