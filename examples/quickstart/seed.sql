-- The app's data before any deploy: schema version 0001.
CREATE TABLE schema_migrations (version TEXT PRIMARY KEY);
INSERT INTO schema_migrations VALUES ('0001_init');

CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    total_cents INTEGER NOT NULL
);

INSERT INTO customers (name) VALUES ('Ada Lovelace'), ('Grace Hopper'), ('Edsger Dijkstra'), ('Barbara Liskov');
INSERT INTO orders (customer_id, total_cents) VALUES
    (1, 1250), (1, 8900), (2, 450), (2, 12000), (3, 999), (4, 300), (4, 7800);
