"""Regenerates the small demo data set in testdata/ (deterministic).

trips.csv     2,000 taxi trips (trip_id, city_id, started_at, distance_km, fare, payment)
cities.csv    8 cities; cities.parquet is written from it by `moltres` (see README)
weather.json  daily weather per city, NDJSON
bad.csv       a CSV with malformed rows, for error tests
fleet.db      SQLite: 16 drivers and the driver of each trip
Run: python3 testdata/generate.py
"""
import gzip
import json
import os
import random

here = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(42)
cities = [
    (1, "Lisbon", "PT"), (2, "Porto", "PT"), (3, "Madrid", "ES"), (4, "Sevilla", "ES"),
    (5, "Paris", "FR"), (6, "Lyon", "FR"), (7, "Berlin", "DE"), (8, "München", "DE"),
]
with open(os.path.join(here, "cities.csv"), "w") as f:
    f.write("id,name,country\n")
    for c in cities:
        f.write(f"{c[0]},{c[1]},{c[2]}\n")

rows = []
for i in range(1, 2001):
    city = rng.choice(cities)[0]
    day = rng.randint(1, 28)
    hour = rng.randint(0, 23)
    minute = rng.randint(0, 59)
    distance = round(rng.uniform(0.5, 25.0), 2)
    fare = round(2.5 + distance * rng.uniform(0.9, 1.6), 2)
    payment = rng.choice(["card", "card", "cash", "app"])
    rows.append(f"{i},{city},2026-02-{day:02d} {hour:02d}:{minute:02d}:00,{distance},{fare},{payment}\n")
header = "trip_id,city_id,started_at,distance_km,fare,payment\n"
with open(os.path.join(here, "trips.csv"), "w") as f:
    f.write(header)
    f.writelines(rows)
with gzip.open(os.path.join(here, "trips.csv.gz"), "wt") as f:
    f.write(header)
    f.writelines(rows)

with open(os.path.join(here, "weather.json"), "w") as f:
    for c in cities:
        for day in range(1, 29):
            rain = round(max(0.0, rng.gauss(1.0, 3.0)), 1)
            f.write(json.dumps({"city_id": c[0], "date": f"2026-02-{day:02d}",
                                "temp_c": round(rng.uniform(-3, 19), 1), "rain_mm": rain}) + "\n")

with open(os.path.join(here, "bad.csv"), "w") as f:
    f.write("id,name,amount\n1,alpha,10.5\n2,beta\n3,gamma,30.25\nfour,delta,40\n5,epsilon,50\n")

# fleet.db: a SQLite database of drivers and which driver drove each trip.
import sqlite3
fleet_rng = random.Random(7)
path = os.path.join(here, "fleet.db")
if os.path.exists(path):
    os.remove(path)
db = sqlite3.connect(path)
db.executescript("""
CREATE TABLE drivers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, home_city_id INTEGER,
                      rating REAL, hired DATE);
CREATE TABLE trip_drivers (trip_id INTEGER PRIMARY KEY, driver_id INTEGER NOT NULL
                           REFERENCES drivers (id));
""")
names = ["Ana", "Bruno", "Carla", "Diego", "Elena", "Fritz", "Gaëlle", "Hugo", "Inês", "Jonas",
         "Karin", "Luís", "Marta", "Nils", "Olga", "Pablo"]
for i, name in enumerate(names, start=1):
    db.execute("INSERT INTO drivers VALUES (?, ?, ?, ?, ?)",
               (i, name, (i - 1) % 8 + 1, round(fleet_rng.uniform(3.5, 5.0), 2),
                f"20{fleet_rng.randint(15, 25)}-{fleet_rng.randint(1, 12):02d}-{fleet_rng.randint(1, 28):02d}"))
for trip in range(1, 2001):
    db.execute("INSERT INTO trip_drivers VALUES (?, ?)", (trip, fleet_rng.randint(1, len(names))))
db.commit()
db.execute("VACUUM")
db.close()
