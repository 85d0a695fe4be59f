-- Bodies are stored LZ4-compressed when that makes them smaller (`encoding = 'lz4'`): a
-- typical 11 KB JSON webhook shrinks about 4x, which on SQLite means one page instead of three
-- overflow pages written to the WAL and the database.
ALTER TABLE inbound_bodies ADD COLUMN encoding TEXT NOT NULL DEFAULT 'identity';
