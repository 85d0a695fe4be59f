//! The machinery that turns one list of a table's columns into everything that names them:
//! statement text, binds for both drivers, and the mapping of rows to and from domain types.

use std::fmt;

use sqlx::Postgres;

/// A column list as SQL text (`a, b, c`, or `k.a, k.b, k.c` with a prefix), written where it
/// is formatted, so a `const` list needs no allocation or lazy initialisation.
#[derive(Clone, Copy)]
pub(in crate::store) struct Columns {
    pub names: &'static [&'static str],
    pub prefix: &'static str,
}

impl fmt::Display for Columns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(self.prefix)?;
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// A value both drivers can bind: sqlx's PostgreSQL encoding and rusqlite's (the SQLite group
/// commit's statements, `sqlite::query`).
pub(in crate::store) trait Value<'q>:
    sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + rusqlite::ToSql + 'q
{
}

impl<'q, T> Value<'q> for T where
    T: sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + rusqlite::ToSql + 'q
{
}

/// A statement being bound, a sqlx PostgreSQL query or a SQLite committer statement, so that
/// one generated function binds a row for either.
pub(in crate::store) trait Binder<'q>: Sized {
    fn value<V: Value<'q>>(self, value: V) -> Self;
}

impl<'q, O> Binder<'q>
    for sqlx::query::QueryAs<'q, Postgres, O, <Postgres as sqlx::Database>::Arguments<'q>>
{
    fn value<V: Value<'q>>(self, value: V) -> Self {
        self.bind(value)
    }
}

/// `Default::default()` for a column a new row does not write, else the given value.
macro_rules! or_default {
    () => {
        Default::default()
    };
    ($value:expr) => {
        $value
    };
}
pub(super) use or_default;

/// Declares the `tasks` table from its column list (see `rows/tasks.rs`). Per column, in order:
///
/// - `name: RowType` (the column as sqlx and rusqlite read it; the field of `Task` is `name`);
/// - for columns a new task writes, `insert pg_type = |row| value, new |row| field`: the value
///   bound from a `NewTaskRow` (one expression for sqlx, rusqlite and PostgreSQL arrays, whose
///   element type is `pg_type`), and the `Task` field it stores; other columns start at their
///   type's default;
/// - `read |value| field`: the `Task` field from the stored value (`?` for corrupt data).
///
/// It generates `TaskRow` (with `FromRow` and `from_lite`), `TryFrom<TaskRow> for Task`,
/// `NewTaskRow::to_task`, the column lists `TASK_COLUMNS` and `TASK_INSERT` (with each
/// inserted column's PostgreSQL type), `bind_new_task` and `bind_task_arrays`.
macro_rules! task_table {
    ($(
        $name:ident: $ty:ty,
        $(insert $pg:ident = |$ir:ident| $ins:expr, new |$nr:ident| $new:expr,)?
        read |$rv:ident| $read:expr;
    )*) => {
        /// Every column of `tasks`, as read (`SELECT` and `RETURNING` lists).
        pub(in crate::store) const TASK_COLUMNS: $crate::store::rows::columns::Columns =
            $crate::store::rows::columns::Columns {
                names: &[$(stringify!($name)),*],
                prefix: "",
            };

        /// The columns a new task writes, in bind order, with their PostgreSQL types.
        pub(in crate::store) const TASK_INSERT: &[(&str, &str)] =
            &[$($((stringify!($name), stringify!($pg)),)?)*];

        /// A `tasks` row in the order and types of [`TASK_COLUMNS`].
        #[derive(sqlx::FromRow)]
        pub(in crate::store) struct TaskRow {
            $($name: $ty,)*
        }

        /// The position of each column in [`TASK_COLUMNS`].
        #[allow(non_camel_case_types, dead_code)]
        enum TaskColumn {
            $($name,)*
        }

        impl TaskRow {
            /// From a row of exactly `TASK_COLUMNS`, in order (every `RETURNING` the SQLite
            /// writer reads, see `sqlite::query`). By position: rusqlite finds a column by name
            /// with a scan of the row's names, which made reading a row quadratic in its width
            /// on the group committer's thread.
            pub(in crate::store) fn from_lite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                let width = r.as_ref().column_count();
                if width != TASK_COLUMNS.names.len() {
                    return Err(rusqlite::Error::InvalidColumnIndex(width));
                }
                Ok(Self {
                    $($name: r.get(TaskColumn::$name as usize)?,)*
                })
            }
        }

        impl TryFrom<TaskRow> for Task {
            type Error = StoreError;
            fn try_from(r: TaskRow) -> StoreResult<Task> {
                Ok(Task {
                    $($name: {
                        let $rv = r.$name;
                        $read
                    },)*
                })
            }
        }

        impl NewTaskRow {
            /// The task exactly as inserting this row stores it (for writes that do not read
            /// back).
            pub fn to_task(&self) -> Task {
                Task {
                    $($name: $crate::store::rows::columns::or_default!($({
                        let $nr = self;
                        $new
                    })?),)*
                }
            }
        }

        /// Binds a new task's columns, `$1` to `$N` in [`TASK_INSERT`]'s order.
        pub(in crate::store) fn bind_new_task<'q, B>(q: B, row: &'q NewTaskRow) -> B
        where
            B: $crate::store::rows::columns::Binder<'q>,
        {
            q$($(.value({
                let $ir = row;
                $ins
            }))?)*
        }

        /// Binds new tasks and their `created` events as the arrays [`unnest_tasks`] names: a
        /// column per [`TASK_INSERT`] entry, then the event's kind, actor and detail.
        pub(in crate::store) fn bind_task_arrays<'q>(
            q: BatchQuery<'q>,
            rows: &[(&'q NewTaskRow, &'q EventRecord)],
        ) -> BatchQuery<'q> {
            q$($(.bind(
                rows.iter()
                    .map(|&(row, _)| {
                        let $ir = row;
                        $ins
                    })
                    .collect::<Vec<_>>(),
            ))?)*
            .bind(rows.iter().map(|r| r.1.kind).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.1.actor.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.1.detail_text()).collect::<Vec<_>>())
        }
    };
}
pub(super) use task_table;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_list_is_written_with_its_prefix() {
        let c = Columns {
            names: &["a", "b"],
            prefix: "k.",
        };
        assert_eq!(c.to_string(), "k.a, k.b");
        assert_eq!(Columns { prefix: "", ..c }.to_string(), "a, b");
    }
}
