-- A bad migration that fails halfway, after it has already changed things:
-- SQLite applies each statement as it goes, like a migration tool without
-- transactional DDL.
ALTER TABLE customers ADD COLUMN first_name TEXT;
UPDATE customers SET first_name = substr(name, 1, instr(name, ' ') - 1);
DELETE FROM orders WHERE total_cents < 1000;  -- "clean up small orders"
UPDATE customers SET last_name = substr(name, instr(name, ' ') + 1);  -- no such column: fails here
INSERT INTO schema_migrations VALUES ('0003_split_name');
