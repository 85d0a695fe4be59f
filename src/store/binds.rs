//! Placeholders for statements with many binds.
//!
//! Statements are written once with PostgreSQL's numbered `$N`. SQLite accepts those too, but
//! as *named* parameters: sqlx asks `sqlite3_bind_parameter_name` for every one, and SQLite
//! answers by walking its list of names, so binding n of them costs O(n²). The multi-row
//! statements of delivery (up to 2,200 binds) spent 13% of the delivery benchmark's CPU there
//! (`perf`, `benches/outbound` SQLite burst). Plain `?` are anonymous and bind in O(1), in
//! the order they appear: [`for_conn`] rewrites a statement whose `$N` appear once each, in
//! order, for SQLite.

use std::borrow::Cow;

use sqlx::{PgConnection, PgPool, SqliteConnection, SqlitePool};

/// A connection or pool that knows its placeholder dialect.
pub(in crate::store) trait Dialect {
    /// Whether `$N` must become `?`.
    const ANONYMOUS: bool;
}

impl Dialect for SqliteConnection {
    const ANONYMOUS: bool = true;
}
impl Dialect for SqlitePool {
    const ANONYMOUS: bool = true;
}
impl Dialect for PgConnection {
    const ANONYMOUS: bool = false;
}
impl Dialect for PgPool {
    const ANONYMOUS: bool = false;
}

/// `sql` as `on` runs it best: unchanged on PostgreSQL; on SQLite every `$N` replaced by `?`.
/// The caller binds in `N` order, and `sql`'s placeholders appear once each in that order
/// (`$1`, `$2`, ... left to right), which is what makes the rewrite keep their meaning.
pub(in crate::store) fn for_conn<'q, C: Dialect + ?Sized>(_on: &C, sql: &'q str) -> Cow<'q, str> {
    if C::ANONYMOUS {
        Cow::Owned(anonymous(sql))
    } else {
        Cow::Borrowed(sql)
    }
}

fn anonymous(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    let mut quoted = false;
    let mut expected = 1usize;
    while let Some((_, ch)) = chars.next() {
        if ch == '\'' {
            quoted = !quoted;
        }
        let digit_follows = chars.peek().is_some_and(|(_, c)| c.is_ascii_digit());
        if ch != '$' || quoted || !digit_follows {
            out.push(ch);
            continue;
        }
        let mut n = 0usize;
        while let Some((_, d)) = chars.peek().copied().filter(|(_, c)| c.is_ascii_digit()) {
            n = n * 10 + (d as usize - '0' as usize);
            chars.next();
        }
        debug_assert_eq!(n, expected, "placeholders out of order in {sql}");
        expected += 1;
        out.push('?');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::anonymous;

    #[test]
    fn numbered_placeholders_become_anonymous_outside_literals() {
        assert_eq!(
            anonymous("SELECT '$1', x ->> '$.a' FROM t WHERE a = $1 AND b IN ($2, $3) LIMIT $4"),
            "SELECT '$1', x ->> '$.a' FROM t WHERE a = ? AND b IN (?, ?) LIMIT ?"
        );
    }
}
