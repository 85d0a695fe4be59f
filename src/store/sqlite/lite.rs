//! Statements on the SQLite writer from the group committer's thread.
//!
//! The committer borrows the raw handle of sqlx's writer connection (sqlx's `lock_handle`,
//! made for direct SQLite calls) and runs a whole batch on it through rusqlite, linked against
//! the same libsqlite3. With sqlx every statement would be a round trip to the connection's
//! own thread; here a statement is a function call. The SQL is the same `$N` text the
//! PostgreSQL paths use, and [`Stmt::bind`] numbers arguments the way sqlx's `bind` does.

use rusqlite::types::ToSql;
use rusqlite::{CachedStatement, Connection, Row};

use crate::store::rows::{Binder, Value};

/// `$N` for the parameter counts Hopper's statements use (no formatting per bind).
const NAMES: [&str; 41] = [
    "$0", "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14",
    "$15", "$16", "$17", "$18", "$19", "$20", "$21", "$22", "$23", "$24", "$25", "$26", "$27",
    "$28", "$29", "$30", "$31", "$32", "$33", "$34", "$35", "$36", "$37", "$38", "$39", "$40",
];

/// A prepared (and cached) statement being bound, in the style of `sqlx::query(..).bind(..)`.
pub(in crate::store) struct Stmt<'c> {
    stmt: CachedStatement<'c>,
    bound: usize,
    /// SQLite's index for each `$N` (0: the statement does not use it), when every parameter
    /// is a `$N` within `NAMES`; otherwise each bind looks its name up.
    slots: Option<[u8; NAMES.len()]>,
    error: Option<rusqlite::Error>,
}

/// Prepares `sql` (from the connection's statement cache) for binding.
pub(in crate::store) fn query<'c>(c: &'c Connection, sql: &str) -> rusqlite::Result<Stmt<'c>> {
    let stmt = c.prepare_cached(sql)?;
    Ok(Stmt {
        slots: slots(&stmt),
        stmt,
        bound: 0,
        error: None,
    })
}

/// Reads the statement's parameter names once, so that binding is an array lookup instead of
/// a search by name per argument (which was a twentieth of the group committer's time).
fn slots(stmt: &rusqlite::Statement<'_>) -> Option<[u8; NAMES.len()]> {
    let mut slots = [0u8; NAMES.len()];
    for i in 1..=stmt.parameter_count() {
        let n: usize = stmt.parameter_name(i)?.strip_prefix('$')?.parse().ok()?;
        *slots.get_mut(n)? = u8::try_from(i).ok()?;
    }
    Some(slots)
}

impl Stmt<'_> {
    /// Binds the next argument to `$n` (by name: SQLite numbers `$N` parameters in order of
    /// first appearance, which is not always N). A failure surfaces when the statement runs,
    /// so chains read like sqlx's.
    pub fn bind<T: ToSql>(mut self, value: T) -> Self {
        self.bound += 1;
        if self.error.is_some() {
            return self;
        }
        let index = match self.slots.as_ref().and_then(|s| s.get(self.bound)) {
            Some(0) => Ok(None),
            Some(&i) => Ok(Some(usize::from(i))),
            None => self.index_by_name(),
        };
        let result = match index {
            Ok(Some(i)) => self.stmt.raw_bind_parameter(i, value),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.error = Some(e);
        }
        self
    }

    fn index_by_name(&self) -> rusqlite::Result<Option<usize>> {
        match NAMES.get(self.bound) {
            Some(n) => self.stmt.parameter_index(n),
            None => self.stmt.parameter_index(&format!("${}", self.bound)),
        }
    }

    /// Runs a statement that returns no rows; the number of rows changed.
    pub fn execute(mut self) -> rusqlite::Result<usize> {
        match self.error.take() {
            Some(e) => Err(e),
            None => self.stmt.raw_execute(),
        }
    }

    /// Every row (of a `SELECT` or `RETURNING`), mapped.
    pub fn fetch_all<T>(
        mut self,
        mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut rows = self.stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(map(row)?);
        }
        Ok(out)
    }

    /// The first row (of a `SELECT` or `RETURNING`), mapped.
    pub fn fetch_optional<T>(
        mut self,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Option<T>> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut rows = self.stmt.raw_query();
        match rows.next()? {
            Some(row) => map(row).map(Some),
            None => Ok(None),
        }
    }
}

impl<'q> Binder<'q> for Stmt<'_> {
    fn value<V: Value<'q>>(self, value: V) -> Self {
        self.bind(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_by_number_whatever_the_order_of_appearance() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (k TEXT, v INTEGER); INSERT INTO t VALUES ('a', 1)")
            .unwrap();
        // `$2` appears first: positional binding would swap the values.
        let n = query(&c, "UPDATE t SET v = $2 WHERE k = $1")
            .unwrap()
            .bind("a")
            .bind(7)
            .execute()
            .unwrap();
        assert_eq!(n, 1);
        let v = query(&c, "SELECT v FROM t WHERE k = $1")
            .unwrap()
            .bind("a")
            .fetch_optional(|r| r.get::<_, i64>(0))
            .unwrap();
        assert_eq!(v, Some(7));
        // A number the statement does not use is skipped: one binding macro serves
        // statements that use different parts of it.
        let n = query(&c, "UPDATE t SET v = $3 WHERE k = $1")
            .unwrap()
            .bind("a")
            .bind("unused")
            .bind(9)
            .execute()
            .unwrap();
        assert_eq!(n, 1);
        // Past the precomputed numbers, by name.
        let many: Vec<String> = (1..=45).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT {}", many.join(" + "));
        let sum = (1..=45)
            .fold(query(&c, &sql).unwrap(), |q, i| q.bind(i))
            .fetch_optional(|r| r.get::<_, i64>(0))
            .unwrap();
        assert_eq!(sum, Some((1..=45).sum()));
    }

    #[test]
    fn bad_sql_and_bad_use_are_errors_not_panics() {
        let c = Connection::open_in_memory().unwrap();
        assert!(query(&c, "SELEC nonsense").is_err());
        // `execute` on a statement that returns rows.
        assert!(query(&c, "SELECT $1").unwrap().bind(1).execute().is_err());
    }
}
