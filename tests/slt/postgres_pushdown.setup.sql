CREATE TABLE items (id int PRIMARY KEY, qty bigint, name text, price double precision, active boolean);
INSERT INTO items SELECT g, g % 7, 'item ' || g, g * 1.5, g % 2 = 0 FROM generate_series(1, 100) g;
CREATE TABLE "Mixed Case" ("Key" int, "select" text);
INSERT INTO "Mixed Case" VALUES (1, 'one'), (2, 'two');
CREATE TABLE orders (id int PRIMARY KEY, item_id int, qty int, code text COLLATE "C");
INSERT INTO orders SELECT g, g % 10 + 1, g % 3, 'c' || (g % 4) FROM generate_series(1, 40) g;
