-- The Moltres demo: SQL over CSV, Parquet and JSON files and a SQLite
-- database, with no server. Run it with:  cargo run -q -p moltres-sql -- --format table -f testdata/demo.sql

-- Every file in testdata/ becomes a table of the source `files`.
ATTACH 'testdata/' AS files (READ_ONLY);
-- A SQLite database: drivers, and which driver drove each trip.
ATTACH 'sqlite:testdata/fleet.db?mode=ro' AS fleet;
SHOW SOURCES;

-- Revenue per city from 2,000 taxi trips (CSV), city names (Parquet) and
-- daily weather (NDJSON): does rain change what people pay?
SELECT c.name AS city,
       c.country,
       count(*) AS trips,
       round(sum(t.fare), 2) AS revenue,
       round(sum(t.fare) / sum(t.distance_km), 2) AS fare_per_km,
       round(avg(CASE WHEN w.rain_mm > 1 THEN t.fare END), 2) AS avg_fare_rainy,
       round(avg(CASE WHEN w.rain_mm <= 1 THEN t.fare END), 2) AS avg_fare_dry
FROM files.trips t
JOIN files.cities c ON t.city_id = c.id
JOIN files.weather w ON w.city_id = t.city_id
                    AND w.date = CAST(CAST(t.started_at AS DATE) AS VARCHAR)
GROUP BY c.name, c.country
ORDER BY revenue DESC;

-- Best drivers by revenue: the join of the two SQLite tables runs inside
-- SQLite as one query (see EXPLAIN), then joins the CSV trips and the
-- Parquet cities.
SELECT d.name AS driver,
       c.name AS home_city,
       count(*) AS trips,
       round(sum(t.fare), 2) AS revenue,
       d.rating
FROM fleet.drivers d
JOIN fleet.trip_drivers td ON td.driver_id = d.id
JOIN files.trips t ON t.trip_id = td.trip_id
JOIN files.cities c ON c.id = d.home_city_id
GROUP BY d.name, c.name, d.rating
ORDER BY revenue DESC
LIMIT 5;

-- Export a result to Parquet and read it back.
COPY (SELECT payment, count(*) AS trips, round(avg(fare), 2) AS avg_fare
      FROM 'testdata/trips.csv.gz' GROUP BY payment)
  TO 'target/demo/payments.parquet';
SELECT * FROM 'target/demo/payments.parquet' ORDER BY trips DESC;
