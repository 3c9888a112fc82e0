//! The ApiServerVerifier: a `tower_test` mock behind a real `kube::Client`. A test lists the calls
//! it expects, in order; each one is asserted (method, path, query, body) and answered as the API
//! server would. A call that never comes fails the test after a timeout, and so does any call
//! after the last expected one.

use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::Value;

use super::fixtures::SECRET_DSN;

/// The mock's handle.
pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// How long an expected call may take to come.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A client whose requests the returned handle answers.
pub fn mock_client() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// How the verifier answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status and JSON body.
    Json(u16, Value),
    /// The request's own body, status 200 (what a create or apply returns, near enough).
    Echo,
    /// The request body merged with this JSON (e.g. a status the API server adds).
    EchoWith(Value),
    /// A 404 `Status`.
    NotFound,
    /// This JSON with the request body merged into it (a stored object after a patch).
    MergedInto(Value),
}

type BodyCheck = Box<dyn FnOnce(&Value) + Send>;

/// One expected request.
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// Substrings the query must contain.
    pub query: Vec<String>,
    /// `path` is a prefix (the last segment is a generated name).
    pub prefix: bool,
    /// A server-side apply, which creates the object when it does not exist.
    pub apply: bool,
    check: Option<BodyCheck>,
    reply: Reply,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

impl Call {
    fn new(method: Method, path: impl Into<String>) -> Self {
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            prefix: false,
            apply: false,
            check: None,
            reply: Reply::Echo,
        }
    }

    /// GET.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// PATCH.
    pub fn patch(path: impl Into<String>) -> Self {
        Self::new(Method::PATCH, path)
    }

    /// Server-side apply under the operator's field manager.
    pub fn apply(path: impl Into<String>) -> Self {
        let mut call = Self::patch(path)
            .query("fieldManager=cdcstar-operator")
            .query("force=true");
        call.apply = true;
        call
    }

    /// POST.
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    /// PUT.
    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::PUT, path)
    }

    /// DELETE.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// Matches any object under `path` (a collection path), e.g. an Event with a generated name.
    pub fn any_name(mut self) -> Self {
        self.prefix = true;
        self
    }

    /// Requires `part` in the query string.
    pub fn query(mut self, part: &str) -> Self {
        self.query.push(part.to_owned());
        self
    }

    /// Asserts on the JSON body.
    pub fn check(mut self, check: impl FnOnce(&Value) + Send + 'static) -> Self {
        self.check = Some(Box::new(check));
        self
    }

    /// Answers with `reply`.
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Answers with a JSON body and status 200.
    pub fn ok(self, body: Value) -> Self {
        self.reply(Reply::Json(200, body))
    }

    /// The RBAC triples an API server authorises the call as. A server-side apply is a patch, and a
    /// create too when the object does not exist yet (the API server checks `create` then); a
    /// subresource (`/status`) is never created by an apply, so it stays a patch.
    pub fn api_calls(&self) -> Vec<ApiCall> {
        let path = if self.prefix {
            format!("{}/name", self.path)
        } else {
            self.path.clone()
        };
        let call = ApiCall::of(&self.method, &path, &self.query.join("&"));
        if self.apply && !call.resource.contains('/') {
            let create = ApiCall {
                verb: "create".to_owned(),
                ..call.clone()
            };
            vec![call, create]
        } else {
            vec![call]
        }
    }
}

/// `(verb, group, resource)` of a request, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiCall {
    /// get, list, watch, create, update, patch, delete.
    pub verb: String,
    /// API group, `core` for the legacy group.
    pub group: String,
    /// Resource, with `/subresource` when there is one.
    pub resource: String,
}

impl ApiCall {
    /// Parses a request path.
    pub fn of(method: &Method, path: &str, query: &str) -> Self {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, rest) = match segments.as_slice() {
            ["api", _version, rest @ ..] => ("core".to_owned(), rest),
            ["apis", group, _version, rest @ ..] => ((*group).to_owned(), rest),
            _ => panic!("unexpected path {path}"),
        };
        let rest = match rest {
            ["namespaces", _namespace, rest @ ..] => rest,
            rest => rest,
        };
        let (resource, named) = match rest {
            [resource] => ((*resource).to_owned(), false),
            [resource, _name] => ((*resource).to_owned(), true),
            [resource, _name, subresource] => (format!("{resource}/{subresource}"), true),
            _ => panic!("unexpected path {path}"),
        };
        let verb = match *method {
            Method::GET if named => "get",
            Method::GET if query.contains("watch=true") => "watch",
            Method::GET => "list",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => panic!("unexpected method {method}"),
        };
        ApiCall {
            verb: verb.to_owned(),
            group,
            resource,
        }
    }
}

impl std::fmt::Display for ApiCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.verb, self.group, self.resource)
    }
}

/// `expected` is contained in `actual`: every key of an expected object matches, arrays match
/// element by element, scalars are equal.
pub fn assert_json_include(actual: &Value, expected: &Value, at: &str) {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            for (key, value) in expected {
                let path = format!("{at}.{key}");
                match actual.get(key) {
                    Some(found) => assert_json_include(found, value, &path),
                    None => panic!("{path} missing; expected {value}"),
                }
            }
        }
        (Value::Array(actual), Value::Array(expected)) => {
            assert_eq!(
                actual.len(),
                expected.len(),
                "{at}: {} items, expected {}: {}",
                actual.len(),
                expected.len(),
                Value::Array(actual.clone())
            );
            for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
                assert_json_include(a, e, &format!("{at}[{i}]"));
            }
        }
        (actual, expected) => assert_eq!(actual, expected, "at {at}"),
    }
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                merge(into.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (into, from) => *into = from.clone(),
    }
}

fn respond(send: tower_test::mock::SendResponse<Response<Body>>, status: u16, body: &Value) {
    let bytes = serde_json::to_vec(body).expect("reply serialises");
    send.send_response(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(bytes))
            .expect("reply builds"),
    );
}

/// The 404 the API server sends.
pub fn not_found_status(path: &str) -> Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{path} not found"), "reason": "NotFound", "code": 404,
    })
}

/// Answers `calls` in order, then fails on any further request.
pub async fn verify(mut handle: Handle, calls: Vec<Call>) {
    for call in calls {
        let label = format!("{call:?}");
        let (request, send) = tokio::time::timeout(CALL_TIMEOUT, handle.next_request())
            .await
            .unwrap_or_else(|_| panic!("expected call {label} never came"))
            .unwrap_or_else(|| panic!("client gone before {label}"));
        assert_eq!(
            request.method(),
            call.method,
            "method of {label}: {}",
            request.uri()
        );
        if call.prefix {
            let path = request.uri().path();
            assert!(
                path.starts_with(&format!("{}/", call.path)),
                "path of {label}: {path}"
            );
        } else {
            assert_eq!(request.uri().path(), call.path, "path of {label}");
        }
        let query = request.uri().query().unwrap_or_default().to_owned();
        for part in &call.query {
            assert!(
                query.contains(part.as_str()),
                "query of {label} lacks {part}: {query}"
            );
        }
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("request body reads");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(SECRET_DSN) && !text.contains("Sup3r-S3cret"),
            "{label} carries a secret value: {text}"
        );
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{label}: body is not JSON: {e}"))
        };
        if let Some(check) = call.check {
            check(&body);
        }
        match call.reply {
            Reply::Json(status, reply) => respond(send, status, &reply),
            Reply::Echo => respond(send, 200, &body),
            Reply::EchoWith(extra) => {
                let mut reply = body;
                merge(&mut reply, &extra);
                respond(send, 200, &reply);
            }
            Reply::NotFound => respond(send, 404, &not_found_status(&call.path)),
            Reply::MergedInto(mut stored) => {
                merge(&mut stored, &body);
                respond(send, 200, &stored);
            }
        }
    }
    if let Ok(Some((request, _))) =
        tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await
    {
        panic!(
            "unexpected request after the scenario: {} {}",
            request.method(),
            request.uri()
        );
    }
}

/// Runs `work` against a verifier expecting `calls`; the verifier's failure is reported first.
pub async fn scenario<T>(handle: Handle, calls: Vec<Call>, work: impl Future<Output = T>) -> T {
    let verifier = tokio::spawn(verify(handle, calls));
    let output = tokio::time::timeout(Duration::from_secs(20), work).await;
    if let Err(error) = verifier.await {
        std::panic::resume_unwind(error.into_panic());
    }
    output.expect("the work under test finished")
}
