//! The election rules as a table, and the Lease requests against a mocked API server.

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use super::*;

type ApiServerHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/wharf-system/leases/wharf-operator";

fn elector() -> (LeaderElector, ApiServerHandle) {
    let (service, server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let elector = LeaderElector::new(
        Api::namespaced(client, "wharf-system"),
        LeaseSettings::new("wharf-operator", "operator-a"),
    );
    (elector, server)
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("timestamp")
}

fn lease(holder: &str, renewed: i64, resource_version: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "wharf-operator", "namespace": "wharf-system", "resourceVersion": resource_version},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "renewTime": MicroTime(at(renewed)),
            "leaseTransitions": 2
        }
    })
}

async fn answer(
    server: &mut ApiServerHandle,
    method: Method,
    uri: &str,
    status: StatusCode,
    response: Value,
) -> Value {
    let (request, respond) = server
        .next_request()
        .await
        .unwrap_or_else(|| panic!("expected {method} {uri}"));
    assert_eq!(request.method(), method);
    assert_eq!(request.uri().to_string(), uri);
    let bytes = request.into_body().collect_bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    let reply = if response.is_null() {
        body.clone()
    } else {
        response
    };
    respond.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&reply).expect("json")))
            .expect("response"),
    );
    body
}

fn api_status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
           "code": code, "message": reason})
}

#[test]
fn election_steps() {
    let d = Duration::from_secs(15);
    let s = SignedDuration::from_secs;
    assert_eq!(step(false, None, "a", s(0), d), Step::Create);
    assert_eq!(step(true, Some("a"), "a", s(100), d), Step::Renew);
    assert_eq!(step(true, None, "a", s(0), d), Step::TakeOver);
    assert_eq!(step(true, Some(""), "a", s(0), d), Step::TakeOver);
    assert_eq!(
        step(true, Some("b"), "a", s(14), d),
        Step::Follow {
            holder: "b".to_owned()
        }
    );
    assert_eq!(step(true, Some("b"), "a", s(15), d), Step::TakeOver);
}

#[tokio::test]
async fn a_missing_lease_is_created_and_held() {
    let (mut elector, mut server) = elector();
    let api = tokio::spawn(async move {
        answer(
            &mut server,
            Method::GET,
            LEASE,
            StatusCode::NOT_FOUND,
            api_status(404, "NotFound"),
        )
        .await;
        let created = answer(
            &mut server,
            Method::POST,
            "/apis/coordination.k8s.io/v1/namespaces/wharf-system/leases?",
            StatusCode::CREATED,
            Value::Null,
        )
        .await;
        assert_eq!(created["spec"]["holderIdentity"], "operator-a");
        assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
        assert_eq!(created["spec"]["leaseTransitions"], 0);
        server
    });
    assert_eq!(
        elector.try_acquire_or_renew(at(0)).await.expect("attempt"),
        Attempt::Leading
    );
    api.await.expect("API script");
}

#[tokio::test]
async fn a_live_lease_of_another_replica_is_followed_then_taken_over_once_it_goes_stale() {
    let (mut elector, mut server) = elector();
    let api = tokio::spawn(async move {
        // First read: held by b, renewed "just now" by b's clock (we never compare clocks).
        answer(
            &mut server,
            Method::GET,
            LEASE,
            StatusCode::OK,
            lease("operator-b", 0, "10"),
        )
        .await;
        // 16 s later by our clock the record has not changed: b is gone.
        answer(
            &mut server,
            Method::GET,
            LEASE,
            StatusCode::OK,
            lease("operator-b", 0, "10"),
        )
        .await;
        let put = answer(
            &mut server,
            Method::PUT,
            &format!("{LEASE}?"),
            StatusCode::OK,
            Value::Null,
        )
        .await;
        assert_eq!(
            put["metadata"]["resourceVersion"], "10",
            "the write is conditional on what was read"
        );
        assert_eq!(put["spec"]["holderIdentity"], "operator-a");
        assert_eq!(put["spec"]["leaseTransitions"], 3);
        server
    });
    assert_eq!(
        elector
            .try_acquire_or_renew(at(100))
            .await
            .expect("attempt"),
        Attempt::Following {
            holder: "operator-b".to_owned()
        }
    );
    assert_eq!(
        elector
            .try_acquire_or_renew(at(116))
            .await
            .expect("attempt"),
        Attempt::Leading
    );
    api.await.expect("API script");
}

#[tokio::test]
async fn a_lost_race_for_the_lease_means_following() {
    let (mut elector, mut server) = elector();
    let api = tokio::spawn(async move {
        answer(
            &mut server,
            Method::GET,
            LEASE,
            StatusCode::OK,
            lease("", 0, "7"),
        )
        .await;
        answer(
            &mut server,
            Method::PUT,
            &format!("{LEASE}?"),
            StatusCode::CONFLICT,
            api_status(409, "Conflict"),
        )
        .await;
        server
    });
    assert!(matches!(
        elector.try_acquire_or_renew(at(0)).await.expect("attempt"),
        Attempt::Following { .. }
    ));
    api.await.expect("API script");
}

#[tokio::test]
async fn the_holder_renews_its_own_lease() {
    let (mut elector, mut server) = elector();
    let api = tokio::spawn(async move {
        answer(
            &mut server,
            Method::GET,
            LEASE,
            StatusCode::OK,
            lease("operator-a", 0, "21"),
        )
        .await;
        let put = answer(
            &mut server,
            Method::PUT,
            &format!("{LEASE}?"),
            StatusCode::OK,
            Value::Null,
        )
        .await;
        assert_eq!(put["metadata"]["resourceVersion"], "21");
        assert_eq!(put["spec"]["renewTime"], json!(MicroTime(at(5))));
        assert_eq!(
            put["spec"]["leaseTransitions"], 2,
            "a renewal is not a transition"
        );
        server
    });
    assert_eq!(
        elector.try_acquire_or_renew(at(5)).await.expect("attempt"),
        Attempt::Leading
    );
    api.await.expect("API script");
}
