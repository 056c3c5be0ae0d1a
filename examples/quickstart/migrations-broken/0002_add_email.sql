-- A good migration: a new column, backfilled.
ALTER TABLE customers ADD COLUMN email TEXT;
UPDATE customers SET email = lower(replace(name, ' ', '.')) || '@example.com';
INSERT INTO schema_migrations VALUES ('0002_add_email');
