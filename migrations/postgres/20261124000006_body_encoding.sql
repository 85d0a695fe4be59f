-- Bodies are stored LZ4-compressed by Hopper when that makes them smaller (`encoding = 'lz4'`).
-- PostgreSQL would otherwise compress each large body itself with pglz, which took 12% of the
-- server's CPU under webhook load; EXTERNAL keeps large values out of line without trying.
ALTER TABLE inbound_bodies ADD COLUMN encoding TEXT NOT NULL DEFAULT 'identity';
ALTER TABLE inbound_bodies ALTER COLUMN body SET STORAGE EXTERNAL;
