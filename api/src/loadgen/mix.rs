//! The request mix: which request comes next (GET by id, list with `limit=50`, or POST of an
//! order with 3 items, in the configured proportions), picked from paths and bodies rendered once
//! from the seeded ids.

use bytes::Bytes;
use http::{Method, Uri};
use serde_json::{Value, json};

use super::LoadError;

/// The kinds of request in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// GET of one customer, product or order (with its items) by id.
    Get,
    /// List of customers, products or orders (with their items), `limit=50`.
    List,
    /// POST of an order with 3 items.
    Post,
}

impl Kind {
    /// Every kind, in report order (also their index).
    pub const ALL: [Kind; 3] = [Kind::Get, Kind::List, Kind::Post];

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Get => "GET by id",
            Kind::List => "list limit 50",
            Kind::Post => "POST order + 3 items",
        }
    }
}

/// Page size of the list requests.
pub const LIST_LIMIT: usize = 50;

/// Distinct POST bodies rendered up front; each request picks one at random.
const ORDER_BODIES: usize = 1024;

/// Seeded ids the run picks from.
#[derive(Debug, Clone, Default)]
pub struct Seeded {
    /// Customer ids.
    pub customers: Vec<i64>,
    /// Product ids.
    pub products: Vec<i64>,
    /// Order ids.
    pub orders: Vec<i64>,
}

/// A small xorshift generator: good enough to pick requests, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence depends on `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The JSON of a new order for a random seeded customer, with 3 random seeded products.
pub fn order_body(rng: &mut Rng, seeded: &Seeded) -> Value {
    let items: Vec<Value> = (0..3)
        .map(|_| {
            json!({
                "productId": rng.pick(&seeded.products),
                "quantity": 1 + rng.below(5),
                "price": 9.99,
            })
        })
        .collect();
    json!({
        "customerId": rng.pick(&seeded.customers),
        "status": "pending",
        "total": 29.97,
        "items": items,
    })
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Planned {
    pub kind: Kind,
    /// GET or POST.
    pub method: Method,
    /// Origin-form path and query.
    pub uri: Uri,
    /// The JSON body of a POST.
    pub body: Option<Bytes>,
}

/// Every request of the mix, rendered once; [`Mix::next`] picks among them.
#[derive(Debug, Clone)]
pub struct Mix {
    get_percent: usize,
    list_percent: usize,
    /// GET by id paths, one list per resource (customers, products, orders).
    gets: [Vec<Uri>; 3],
    /// List paths, one list per resource, one per offset.
    lists: [Vec<Uri>; 3],
    orders_uri: Uri,
    order_bodies: Vec<Bytes>,
}

const RESOURCES: [&str; 3] = ["customers", "products", "orders"];

fn uri(path: String) -> Result<Uri, LoadError> {
    Uri::try_from(path.as_str()).map_err(|err| LoadError::Path(format!("{path}: {err}")))
}

impl Mix {
    /// Renders the requests of a mix over the seeded rows.
    pub fn new(get_percent: u32, list_percent: u32, seeded: &Seeded) -> Result<Self, LoadError> {
        if get_percent + list_percent > 100 {
            return Err(LoadError::Mix(get_percent + list_percent));
        }
        let ids = [&seeded.customers, &seeded.products, &seeded.orders];
        let mut gets: [Vec<Uri>; 3] = Default::default();
        let mut lists: [Vec<Uri>; 3] = Default::default();
        for ((resource, ids), (gets, lists)) in RESOURCES
            .iter()
            .zip(ids)
            .zip(gets.iter_mut().zip(lists.iter_mut()))
        {
            for id in ids {
                gets.push(uri(format!("/api/{resource}/{id}"))?);
            }
            // NB: every page starts within the seeded rows, so it holds LIST_LIMIT of them at
            // most and the same rows whatever the POSTs have added since.
            for offset in 0..ids.len().saturating_sub(LIST_LIMIT).max(1) {
                lists.push(uri(format!(
                    "/api/{resource}?limit={LIST_LIMIT}&offset={offset}"
                ))?);
            }
        }
        let mut rng = Rng::new(u64::from(get_percent) << 8 | u64::from(list_percent));
        let order_bodies = (0..ORDER_BODIES)
            .map(|_| Bytes::from(order_body(&mut rng, seeded).to_string()))
            .collect();
        Ok(Self {
            get_percent: get_percent as usize,
            list_percent: list_percent as usize,
            gets,
            lists,
            orders_uri: uri("/api/orders".to_owned())?,
            order_bodies,
        })
    }

    /// The next request: its kind by the mix's proportions, its resource evenly.
    pub fn next(&self, rng: &mut Rng) -> Planned {
        let roll = rng.below(100);
        let resource = rng.below(RESOURCES.len());
        if roll < self.get_percent {
            self.get(Kind::Get, rng.pick(&self.gets[resource]))
        } else if roll < self.get_percent + self.list_percent {
            self.get(Kind::List, rng.pick(&self.lists[resource]))
        } else {
            Planned {
                kind: Kind::Post,
                method: Method::POST,
                uri: self.orders_uri.clone(),
                body: Some(rng.pick(&self.order_bodies).clone()),
            }
        }
    }

    fn get(&self, kind: Kind, uri: &Uri) -> Planned {
        Planned {
            kind,
            method: Method::GET,
            uri: uri.clone(),
            body: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded() -> Seeded {
        Seeded {
            customers: (1..=60).collect(),
            products: (101..=160).collect(),
            orders: (201..=260).collect(),
        }
    }

    #[test]
    fn proportions_follow_the_percentages() {
        let mix = Mix::new(70, 20, &seeded()).unwrap();
        let mut rng = Rng::new(1);
        let mut counts = [0_usize; 3];
        for _ in 0..10_000 {
            counts[mix.next(&mut rng).kind as usize] += 1;
        }
        assert!((6_700..7_300).contains(&counts[0]), "{counts:?}");
        assert!((1_800..2_200).contains(&counts[1]), "{counts:?}");
        assert!((800..1_200).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn requests_name_seeded_rows_only() {
        let seeded = seeded();
        let mix = Mix::new(40, 40, &seeded).unwrap();
        let mut rng = Rng::new(3);
        for _ in 0..2_000 {
            let planned = mix.next(&mut rng);
            let path = planned.uri.path().to_owned();
            match planned.kind {
                Kind::Get => {
                    let id: i64 = path.rsplit('/').next().unwrap().parse().unwrap();
                    assert!(
                        seeded.customers.contains(&id)
                            || seeded.products.contains(&id)
                            || seeded.orders.contains(&id),
                        "{path}"
                    );
                }
                Kind::List => {
                    let query = planned.uri.query().unwrap();
                    let offset: usize = query.rsplit('=').next().unwrap().parse().unwrap();
                    assert!(query.starts_with("limit=50&") && offset <= 10, "{query}");
                }
                Kind::Post => {
                    let body: Value = serde_json::from_slice(&planned.body.unwrap()).unwrap();
                    assert_eq!(path, "/api/orders");
                    assert!(
                        seeded
                            .customers
                            .contains(&body["customerId"].as_i64().unwrap())
                    );
                    assert_eq!(body["items"].as_array().unwrap().len(), 3);
                }
            }
        }
    }

    #[test]
    fn a_mix_over_100_percent_is_refused() {
        assert!(matches!(
            Mix::new(90, 20, &seeded()),
            Err(LoadError::Mix(110))
        ));
    }
}
