//! The movr workload: a ride-sharing application like CockroachDB's movr, with UUID keys,
//! composite primary keys led by the city, secondary indexes, TIMESTAMP, DECIMAL and JSONB.
//!
//! `init` generates every row from the seed and its index alone (row `i` of a table is the
//! same whatever the batch), so loading needs no memory beyond one batch. `run` reads the
//! users' and vehicles' keys once, then does 95% reads (the vehicles of a city; the rides of a
//! user, through an index) and 5% writes (a new ride; a vehicle's status).
//!
//! UUIDs, timestamps, decimals and JSON travel as text parameters cast in the SQL
//! (`$1::UUID`), so the client needs no codec for them.

use super::load::{self, Column, Row};
use super::runner::{Op, Worker, Workload};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

pub(crate) const DATABASE: &str = "movr";
pub(crate) const TABLES: &[&str] = &[
    "user_promo_codes",
    "promo_codes",
    "rides",
    "vehicles",
    "users",
];
pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS users (id UUID NOT NULL, city STRING NOT NULL, name STRING, address STRING, credit_card STRING, PRIMARY KEY (city, id))",
    "CREATE TABLE IF NOT EXISTS vehicles (id UUID NOT NULL, city STRING NOT NULL, type STRING, owner_id UUID, creation_time TIMESTAMP, status STRING, current_location STRING, ext JSONB, PRIMARY KEY (city, id))",
    "CREATE INDEX IF NOT EXISTS vehicles_city_owner_id_idx ON vehicles (city, owner_id)",
    "CREATE TABLE IF NOT EXISTS rides (id UUID NOT NULL, city STRING NOT NULL, vehicle_city STRING, rider_id UUID, vehicle_id UUID, start_address STRING, end_address STRING, start_time TIMESTAMP, end_time TIMESTAMP, revenue DECIMAL(10,2), PRIMARY KEY (city, id))",
    "CREATE INDEX IF NOT EXISTS rides_city_rider_id_idx ON rides (city, rider_id)",
    "CREATE INDEX IF NOT EXISTS rides_vehicle_city_vehicle_id_idx ON rides (vehicle_city, vehicle_id)",
    "CREATE TABLE IF NOT EXISTS promo_codes (code STRING NOT NULL PRIMARY KEY, description STRING, creation_time TIMESTAMP, expiration_time TIMESTAMP, rules JSONB)",
    "CREATE TABLE IF NOT EXISTS user_promo_codes (city STRING NOT NULL, user_id UUID NOT NULL, code STRING NOT NULL, \"timestamp\" TIMESTAMP, usage_count INT8, PRIMARY KEY (city, user_id, code))",
];

const READ_VEHICLES: &str = "SELECT city, id FROM vehicles WHERE city = $1 LIMIT 25";
const READ_RIDES: &str =
    "SELECT id, start_time, revenue FROM rides WHERE city = $1 AND rider_id = $2::UUID";
const UPDATE_VEHICLE: &str = "UPDATE vehicles SET status = $1 WHERE city = $2 AND id = $3::UUID";

/// The most users and vehicles `run` reads to choose from.
const FLEET_ROWS_MAX: u64 = 100_000;

/// One user in this many gets a promo code at `init`.
const PROMO_USER_EVERY: u64 = 5;

const DEFAULT_CITIES: [&str; 8] = [
    "new york",
    "boston",
    "washington dc",
    "seattle",
    "san francisco",
    "los angeles",
    "chicago",
    "detroit",
];

fn default_cities() -> Vec<String> {
    DEFAULT_CITIES.iter().map(|c| c.to_string()).collect()
}

/// Flags of the movr workload.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct MovrFlags {
    /// Users to load.
    #[arg(long, default_value_t = 50)]
    pub num_users: u64,
    /// Vehicles to load.
    #[arg(long, default_value_t = 15)]
    pub num_vehicles: u64,
    /// Rides to load.
    #[arg(long, default_value_t = 500)]
    pub num_rides: u64,
    /// Promo codes to load.
    #[arg(long, default_value_t = 100)]
    pub num_promo_codes: u64,
    /// Cities, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = default_cities())]
    pub cities: Vec<String>,
}

impl MovrFlags {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.cities.is_empty() && self.cities.iter().all(|c| !c.trim().is_empty()),
            "--cities must name at least one city, none of them empty"
        );
        anyhow::ensure!(
            self.num_users > 0 && self.num_vehicles > 0,
            "--num-users and --num-vehicles must be at least 1: rides need a rider and a vehicle"
        );
        Ok(())
    }
}

/// A parameter value: text (cast in the SQL as needed) or an integer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Value {
    Text(String),
    Int(i64),
}

#[cfg(test)]
impl Value {
    fn text(&self) -> &str {
        match self {
            Value::Text(s) => s,
            Value::Int(_) => "",
        }
    }
}

fn into_row(values: Vec<Value>) -> Row {
    values
        .into_iter()
        .map(|v| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
            match v {
                Value::Text(s) => Box::new(s),
                Value::Int(i) => Box::new(i),
            }
        })
        .collect()
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// A random (version 4) UUID in its text form.
pub(crate) fn random_uuid(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A random `YYYY-MM-DD HH:MM:SS` in `year`, with the hour below 23 (so a ride can end an hour
/// later on the same day).
fn random_timestamp(rng: &mut impl Rng, year: u32) -> (String, [u32; 5]) {
    let parts = [
        rng.random_range(1..=12),
        rng.random_range(1..=28),
        rng.random_range(0..23),
        rng.random_range(0..60),
        rng.random_range(0..60),
    ];
    (timestamp(year, parts), parts)
}

fn timestamp(year: u32, [month, day, hour, minute, second]: [u32; 5]) -> String {
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
}

fn pick<'a>(rng: &mut impl Rng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
];
const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
];
const STREETS: &[&str] = &[
    "Main",
    "Oak",
    "Pine",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
];
const STREET_KINDS: &[&str] = &["Street", "Avenue", "Road", "Boulevard", "Lane"];
const VEHICLE_TYPES: &[&str] = &["skateboard", "bike", "scooter"];
const STATUSES: &[&str] = &["available", "in_use", "lost"];
const COLORS: &[&str] = &["red", "yellow", "blue", "green", "black"];
const BRANDS: &[&str] = &["Merida", "Fuji", "Cervelo", "Pinarello", "Schwinn"];
const WORDS: &[&str] = &[
    "free", "ride", "spring", "summer", "city", "weekend", "bonus", "friend", "welcome", "green",
];

fn random_address(rng: &mut impl Rng) -> String {
    format!(
        "{} {} {}",
        rng.random_range(1..10_000),
        pick(rng, STREETS),
        pick(rng, STREET_KINDS)
    )
}

/// Ride values (all text, in [`ride_columns`] order) for a ride of `vehicle_id` in `city`.
fn ride_values(
    rng: &mut impl Rng,
    id: String,
    city: &str,
    rider_id: &str,
    vehicle_id: &str,
) -> Vec<String> {
    let (start, [month, day, hour, minute, second]) = random_timestamp(rng, 2019);
    let end = timestamp(2019, [month, day, hour + 1, minute, second]);
    let cents: u32 = rng.random_range(0..=10_000);
    vec![
        id,
        city.to_string(),
        city.to_string(),
        rider_id.to_string(),
        vehicle_id.to_string(),
        random_address(rng),
        random_address(rng),
        start,
        end,
        format!("{}.{:02}", cents / 100, cents % 100),
    ]
}

fn ride_columns() -> Vec<Column> {
    vec![
        Column::new("id", Type::TEXT, "::UUID"),
        Column::new("city", Type::TEXT, ""),
        Column::new("vehicle_city", Type::TEXT, ""),
        Column::new("rider_id", Type::TEXT, "::UUID"),
        Column::new("vehicle_id", Type::TEXT, "::UUID"),
        Column::new("start_address", Type::TEXT, ""),
        Column::new("end_address", Type::TEXT, ""),
        Column::new("start_time", Type::TEXT, "::TIMESTAMP"),
        Column::new("end_time", Type::TEXT, "::TIMESTAMP"),
        Column::new("revenue", Type::TEXT, "::DECIMAL"),
    ]
}

/// Table tags that keep the rows of different tables on different random streams.
const USERS: u64 = 1;
const VEHICLES: u64 = 2;
const RIDES: u64 = 3;
const PROMO_CODES: u64 = 4;
const USER_PROMO_CODES: u64 = 5;

/// Generates `init`'s rows: row `index` of a table from `(seed, table, index)` alone.
#[derive(Debug)]
pub(crate) struct Generator<'a> {
    flags: &'a MovrFlags,
    seed: u64,
}

impl<'a> Generator<'a> {
    pub(crate) fn new(flags: &'a MovrFlags, seed: u64) -> Generator<'a> {
        Generator { flags, seed }
    }

    /// The random stream of one row (splitmix64 of seed, table and index).
    fn rng(&self, table: u64, index: u64) -> SmallRng {
        let mut z = self
            .seed
            .wrapping_add(table.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_add(index.wrapping_mul(0xbf58_476d_1ce4_e5b9));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        SmallRng::seed_from_u64(z ^ (z >> 31))
    }

    fn city(&self, index: u64) -> &'a str {
        &self.flags.cities[(index % self.flags.cities.len() as u64) as usize]
    }

    /// A user's id: the first draw of its row's stream.
    fn user_id(&self, user: u64) -> String {
        random_uuid(&mut self.rng(USERS, user))
    }

    fn vehicle_id(&self, vehicle: u64) -> String {
        random_uuid(&mut self.rng(VEHICLES, vehicle))
    }

    /// A random user living in the city of index `city_index` (users are spread over the
    /// cities in turn), or any user if that city has none.
    fn user_in_city(&self, rng: &mut impl Rng, city_index: u64) -> u64 {
        let cities = self.flags.cities.len() as u64;
        let users = self.flags.num_users;
        let city_index = city_index % cities;
        if city_index >= users {
            return rng.random_range(0..users);
        }
        let in_city = (users - 1 - city_index) / cities + 1;
        city_index + cities * rng.random_range(0..in_city)
    }

    pub(crate) fn user(&self, i: u64) -> Vec<Value> {
        let mut rng = self.rng(USERS, i);
        let id = random_uuid(&mut rng);
        let card: String = (0..16)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        vec![
            text(id),
            text(self.city(i)),
            text(format!(
                "{} {}",
                pick(&mut rng, FIRST_NAMES),
                pick(&mut rng, LAST_NAMES)
            )),
            text(random_address(&mut rng)),
            text(card),
        ]
    }

    pub(crate) fn vehicle(&self, i: u64) -> Vec<Value> {
        let mut rng = self.rng(VEHICLES, i);
        let id = random_uuid(&mut rng);
        let owner = self.user_in_city(&mut rng, i);
        let kind = pick(&mut rng, VEHICLE_TYPES);
        let ext = if kind == "bike" {
            format!(
                r#"{{"brand": "{}", "color": "{}"}}"#,
                pick(&mut rng, BRANDS),
                pick(&mut rng, COLORS)
            )
        } else {
            format!(r#"{{"color": "{}"}}"#, pick(&mut rng, COLORS))
        };
        vec![
            text(id),
            text(self.city(i)),
            text(kind),
            text(self.user_id(owner)),
            text(random_timestamp(&mut rng, 2019).0),
            text(pick(&mut rng, STATUSES)),
            text(random_address(&mut rng)),
            text(ext),
        ]
    }

    pub(crate) fn ride(&self, i: u64) -> Vec<Value> {
        let mut rng = self.rng(RIDES, i);
        let id = random_uuid(&mut rng);
        let vehicle = rng.random_range(0..self.flags.num_vehicles);
        let rider = self.user_in_city(&mut rng, vehicle);
        ride_values(
            &mut rng,
            id,
            self.city(vehicle),
            &self.user_id(rider),
            &self.vehicle_id(vehicle),
        )
        .into_iter()
        .map(Value::Text)
        .collect()
    }

    fn promo_code_name(&self, i: u64) -> String {
        let mut rng = self.rng(PROMO_CODES, i);
        format!(
            "{}_{}_{}_{i}",
            pick(&mut rng, WORDS),
            pick(&mut rng, WORDS),
            pick(&mut rng, WORDS)
        )
    }

    pub(crate) fn promo_code(&self, i: u64) -> Vec<Value> {
        let code = self.promo_code_name(i);
        // Past the name's draws: a separate stream for the other columns.
        let mut rng = self.rng(PROMO_CODES, i ^ (1 << 63));
        let (created, [month, day, hour, minute, second]) = random_timestamp(&mut rng, 2019);
        let description: Vec<&str> = (0..6).map(|_| pick(&mut rng, WORDS)).collect();
        vec![
            text(code),
            text(description.join(" ")),
            text(created),
            text(timestamp(2020, [month, day, hour, minute, second])),
            text(format!(
                r#"{{"type": "percent_discount", "value": "{}%"}}"#,
                rng.random_range(1..=50) * 2
            )),
        ]
    }

    /// The number of user promo codes: one for every [`PROMO_USER_EVERY`]th user.
    pub(crate) fn user_promo_code_count(&self) -> u64 {
        if self.flags.num_promo_codes == 0 {
            return 0;
        }
        self.flags.num_users.div_ceil(PROMO_USER_EVERY)
    }

    pub(crate) fn user_promo_code(&self, i: u64) -> Vec<Value> {
        let user = i * PROMO_USER_EVERY;
        let mut rng = self.rng(USER_PROMO_CODES, i);
        let code = self.promo_code_name(rng.random_range(0..self.flags.num_promo_codes));
        vec![
            text(self.city(user)),
            text(self.user_id(user)),
            text(code),
            text(random_timestamp(&mut rng, 2019).0),
            Value::Int(rng.random_range(0..10)),
        ]
    }
}

/// Loads every table, unless `users` already has rows.
pub(crate) async fn load(client: &Client, flags: &MovrFlags, seed: u64) -> anyhow::Result<()> {
    let existing = load::count_rows(client, "users").await?;
    if existing > 0 {
        println!("movr already has {existing} users: not loading (pass --drop to load it again)");
        return Ok(());
    }
    let g = Generator::new(flags, seed);
    let t = |name| Column::new(name, Type::TEXT, "");
    let uuid = |name| Column::new(name, Type::TEXT, "::UUID");
    let ts = |name| Column::new(name, Type::TEXT, "::TIMESTAMP");
    let json = |name| Column::new(name, Type::TEXT, "::JSONB");

    let users = [
        uuid("id"),
        t("city"),
        t("name"),
        t("address"),
        t("credit_card"),
    ];
    load::load_rows(client, "INSERT", "users", &users, flags.num_users, |i| {
        into_row(g.user(i))
    })
    .await?;
    let vehicles = [
        uuid("id"),
        t("city"),
        t("type"),
        uuid("owner_id"),
        ts("creation_time"),
        t("status"),
        t("current_location"),
        json("ext"),
    ];
    load::load_rows(
        client,
        "INSERT",
        "vehicles",
        &vehicles,
        flags.num_vehicles,
        |i| into_row(g.vehicle(i)),
    )
    .await?;
    load::load_rows(
        client,
        "INSERT",
        "rides",
        &ride_columns(),
        flags.num_rides,
        |i| into_row(g.ride(i)),
    )
    .await?;
    let promo_codes = [
        t("code"),
        t("description"),
        ts("creation_time"),
        ts("expiration_time"),
        json("rules"),
    ];
    load::load_rows(
        client,
        "INSERT",
        "promo_codes",
        &promo_codes,
        flags.num_promo_codes,
        |i| into_row(g.promo_code(i)),
    )
    .await?;
    let user_promo_codes = [
        t("city"),
        uuid("user_id"),
        t("code"),
        ts("\"timestamp\""),
        Column::new("usage_count", Type::INT8, ""),
    ];
    load::load_rows(
        client,
        "INSERT",
        "user_promo_codes",
        &user_promo_codes,
        g.user_promo_code_count(),
        |i| into_row(g.user_promo_code(i)),
    )
    .await
}

/// The users and vehicles `run` chooses from: (city, id) pairs.
#[derive(Debug)]
pub(crate) struct Fleet {
    users: Vec<(String, String)>,
    /// Indexes into `users` by city.
    users_by_city: HashMap<String, Vec<usize>>,
    vehicles: Vec<(String, String)>,
}

impl Fleet {
    pub(crate) fn new(users: Vec<(String, String)>, vehicles: Vec<(String, String)>) -> Fleet {
        let mut users_by_city: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (city, _)) in users.iter().enumerate() {
            users_by_city.entry(city.clone()).or_default().push(i);
        }
        Fleet {
            users,
            users_by_city,
            vehicles,
        }
    }

    fn random_user(&self, rng: &mut impl Rng) -> &(String, String) {
        &self.users[rng.random_range(0..self.users.len())]
    }

    /// A random user of `city`, or any user if the city has none.
    fn user_in(&self, rng: &mut impl Rng, city: &str) -> &(String, String) {
        match self.users_by_city.get(city) {
            Some(indexes) if !indexes.is_empty() => {
                &self.users[indexes[rng.random_range(0..indexes.len())]]
            }
            _ => self.random_user(rng),
        }
    }

    fn random_vehicle(&self, rng: &mut impl Rng) -> &(String, String) {
        &self.vehicles[rng.random_range(0..self.vehicles.len())]
    }
}

/// The movr workload as the runner sees it.
#[derive(Debug)]
pub(crate) struct MovrWorkload {
    fleet: Arc<Fleet>,
}

/// (city, id) pairs of `SELECT city, id FROM table`.
async fn city_ids(client: &Client, table: &str) -> anyhow::Result<Vec<(String, String)>> {
    let rows = load::all_rows(
        client,
        &format!("SELECT city, id FROM {table} LIMIT {FLEET_ROWS_MAX}"),
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match (row.first(), row.get(1)) {
            (Some(Some(city)), Some(Some(id))) => Some((city.clone(), id.clone())),
            _ => None,
        })
        .collect())
}

impl MovrWorkload {
    /// Reads the users and vehicles to choose from (whatever `init` loaded).
    pub(crate) async fn load(client: &Client) -> anyhow::Result<MovrWorkload> {
        let users = city_ids(client, "users").await?;
        let vehicles = city_ids(client, "vehicles").await?;
        anyhow::ensure!(
            !users.is_empty() && !vehicles.is_empty(),
            "movr has {} users and {} vehicles: run `roach workload init movr` first",
            users.len(),
            vehicles.len()
        );
        Ok(MovrWorkload {
            fleet: Arc::new(Fleet::new(users, vehicles)),
        })
    }
}

/// A movr operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MovrOp {
    ReadVehicles {
        city: String,
    },
    ReadRides {
        city: String,
        rider_id: String,
    },
    AddRide {
        values: Vec<String>,
    },
    UpdateVehicle {
        city: String,
        id: String,
        status: String,
    },
}

impl Op for MovrOp {
    fn name(&self) -> &'static str {
        match self {
            MovrOp::ReadVehicles { .. } => "read-vehicles",
            MovrOp::ReadRides { .. } => "read-rides",
            MovrOp::AddRide { .. } => "add-ride",
            MovrOp::UpdateVehicle { .. } => "update-vehicle",
        }
    }
}

/// Chooses an operation: 47.5% vehicles of a city, 47.5% rides of a user, 2.5% new rides,
/// 2.5% vehicle status updates.
fn choose_op(fleet: &Fleet, rng: &mut SmallRng) -> MovrOp {
    match rng.random_range(0..1000) {
        0..475 => MovrOp::ReadVehicles {
            city: fleet.random_user(rng).0.clone(),
        },
        475..950 => {
            let (city, id) = fleet.random_user(rng);
            MovrOp::ReadRides {
                city: city.clone(),
                rider_id: id.clone(),
            }
        }
        950..975 => {
            let (city, vehicle_id) = fleet.random_vehicle(rng).clone();
            let rider_id = fleet.user_in(rng, &city).1.clone();
            let id = random_uuid(rng);
            MovrOp::AddRide {
                values: ride_values(rng, id, &city, &rider_id, &vehicle_id),
            }
        }
        _ => {
            let (city, id) = fleet.random_vehicle(rng).clone();
            MovrOp::UpdateVehicle {
                city,
                id,
                status: pick(rng, STATUSES).to_string(),
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct MovrWorker {
    fleet: Arc<Fleet>,
    read_vehicles: Statement,
    read_rides: Statement,
    add_ride: Statement,
    update_vehicle: Statement,
}

impl Workload for MovrWorkload {
    type Worker = MovrWorker;

    fn name(&self) -> &'static str {
        DATABASE
    }

    fn op_names(&self) -> &'static [&'static str] {
        &["read-vehicles", "read-rides", "add-ride", "update-vehicle"]
    }

    async fn worker(&self, client: &Client) -> Result<MovrWorker, tokio_postgres::Error> {
        let columns = ride_columns();
        let types: Vec<Type> = columns.iter().map(|c| c.ty.clone()).collect();
        Ok(MovrWorker {
            fleet: self.fleet.clone(),
            read_vehicles: client.prepare_typed(READ_VEHICLES, &[Type::TEXT]).await?,
            read_rides: client
                .prepare_typed(READ_RIDES, &[Type::TEXT, Type::TEXT])
                .await?,
            add_ride: client
                .prepare_typed(&load::insert_sql("INSERT", "rides", &columns, 1), &types)
                .await?,
            update_vehicle: client
                .prepare_typed(UPDATE_VEHICLE, &[Type::TEXT, Type::TEXT, Type::TEXT])
                .await?,
        })
    }
}

impl Worker for MovrWorker {
    type Op = MovrOp;

    fn choose(&mut self, rng: &mut SmallRng) -> MovrOp {
        choose_op(&self.fleet, rng)
    }

    async fn execute(&self, client: &Client, op: &MovrOp) -> Result<(), tokio_postgres::Error> {
        match op {
            MovrOp::ReadVehicles { city } => {
                client.query(&self.read_vehicles, &[city]).await?;
            }
            MovrOp::ReadRides { city, rider_id } => {
                client.query(&self.read_rides, &[city, rider_id]).await?;
            }
            MovrOp::AddRide { values } => {
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
                    .iter()
                    .map(|t| t as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                client.execute(&self.add_ride, &params).await?;
            }
            MovrOp::UpdateVehicle { city, id, status } => {
                client
                    .execute(&self.update_vehicle, &[status, city, id])
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(users: u64, vehicles: u64, cities: &[&str]) -> MovrFlags {
        MovrFlags {
            num_users: users,
            num_vehicles: vehicles,
            num_rides: 20,
            num_promo_codes: 10,
            cities: cities.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn is_uuid(s: &str) -> bool {
        let groups: Vec<&str> = s.split('-').collect();
        groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && groups.iter().all(|g| {
                g.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            })
            && s.as_bytes()[14] == b'4'
            && matches!(s.as_bytes()[19], b'8' | b'9' | b'a' | b'b')
    }

    #[test]
    fn uuids_are_version_4_text() {
        // Goal: generated UUIDs have the canonical lowercase 8-4-4-4-12 form with the version
        // 4 and RFC 4122 variant bits, and do not repeat.
        let mut rng = SmallRng::seed_from_u64(9);
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| random_uuid(&mut rng)).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| is_uuid(id)), "{ids:?}");
    }

    #[test]
    fn rows_are_deterministic_and_consistent() {
        // Goal: a row depends only on (seed, table, index); a vehicle's owner and a ride's
        // rider live in the vehicle's city when it has users, and reference ids that exist;
        // user promo codes name existing users and codes with unique keys.
        let f = flags(20, 9, &["a", "b", "c"]);
        let g = Generator::new(&f, 42);
        assert_eq!(g.user(3), Generator::new(&f, 42).user(3));
        assert_ne!(g.user(3), Generator::new(&f, 43).user(3));
        let users: Vec<Vec<Value>> = (0..f.num_users).map(|i| g.user(i)).collect();
        let user_city: HashMap<String, String> = users
            .iter()
            .map(|u| (u[0].text().to_string(), u[1].text().to_string()))
            .collect();
        assert_eq!(user_city.len(), 20, "user ids are unique");
        let vehicles: Vec<Vec<Value>> = (0..f.num_vehicles).map(|i| g.vehicle(i)).collect();
        for v in &vehicles {
            assert!(is_uuid(v[0].text()));
            assert_eq!(
                user_city.get(v[3].text()).map(String::as_str),
                Some(v[1].text())
            );
            assert!(v[7].text().starts_with('{') && v[7].text().contains("\"color\""));
        }
        let vehicle_city: HashMap<&str, &str> = vehicles
            .iter()
            .map(|v| (v[0].text(), v[1].text()))
            .collect();
        for i in 0..f.num_rides {
            let r = g.ride(i);
            assert_eq!(r.len(), ride_columns().len());
            assert_eq!(vehicle_city.get(r[4].text()), Some(&r[1].text()));
            assert_eq!(r[1], r[2], "city and vehicle_city agree");
            assert_eq!(
                user_city.get(r[3].text()).map(String::as_str),
                Some(r[1].text())
            );
            assert!(r[7].text() < r[8].text(), "a ride ends after it starts");
            let revenue = r[9].text();
            assert!(
                revenue.split_once('.').is_some_and(|(_, c)| c.len() == 2),
                "{revenue}"
            );
        }
        let codes: std::collections::HashSet<String> = (0..f.num_promo_codes)
            .map(|i| g.promo_code(i)[0].text().to_string())
            .collect();
        assert_eq!(codes.len(), 10, "codes are unique");
        assert_eq!(g.user_promo_code_count(), 4);
        let mut keys = std::collections::HashSet::new();
        for i in 0..g.user_promo_code_count() {
            let u = g.user_promo_code(i);
            assert_eq!(
                user_city.get(u[1].text()).map(String::as_str),
                Some(u[0].text())
            );
            assert!(codes.contains(u[2].text()));
            assert!(keys.insert((u[0].clone(), u[1].clone(), u[2].clone())));
        }
    }

    #[test]
    fn fewer_users_than_cities() {
        // Goal: with cities that have no user, vehicles and rides still get an existing user.
        let f = flags(2, 8, &["a", "b", "c", "d", "e"]);
        let g = Generator::new(&f, 1);
        let ids: Vec<String> = (0..2).map(|i| g.user(i)[0].text().to_string()).collect();
        for i in 0..8 {
            assert!(ids.contains(&g.vehicle(i)[3].text().to_string()));
        }
        for i in 0..20 {
            assert!(ids.contains(&g.ride(i)[3].text().to_string()));
        }
    }

    #[test]
    fn op_mix_is_mostly_reads() {
        // Goal: about 95% reads and 5% writes, new rides use a rider of the vehicle's city.
        // Method: 20 000 seeded draws over a small fleet.
        let fleet = Fleet::new(
            vec![
                ("a".into(), "u1".into()),
                ("b".into(), "u2".into()),
                ("b".into(), "u3".into()),
            ],
            vec![("b".into(), "v1".into()), ("c".into(), "v2".into())],
        );
        let mut rng = SmallRng::seed_from_u64(5);
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for _ in 0..20_000 {
            let op = choose_op(&fleet, &mut rng);
            if let MovrOp::AddRide { values } = &op
                && values[1] == "b"
            {
                assert!(["u2", "u3"].contains(&values[3].as_str()));
            }
            *counts.entry(op.name()).or_default() += 1;
        }
        let writes = counts["add-ride"] + counts["update-vehicle"];
        assert!((800..1200).contains(&writes), "{counts:?}");
        assert!(
            counts["read-vehicles"] > 9000 && counts["read-rides"] > 9000,
            "{counts:?}"
        );
    }

    #[test]
    fn flags_validation() {
        // Goal: no city, an empty city name, or no users or vehicles is refused.
        assert!(flags(1, 1, &["a"]).validate().is_ok());
        assert!(flags(1, 1, &[]).validate().is_err());
        assert!(flags(1, 1, &["a", " "]).validate().is_err());
        assert!(flags(0, 1, &["a"]).validate().is_err());
        assert!(flags(1, 0, &["a"]).validate().is_err());
    }
}
