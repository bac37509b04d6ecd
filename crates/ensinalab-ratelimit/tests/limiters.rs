//! Both adapters pass the same behaviour tests; the Redis one against the real server.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use ensinalab_ports::{RateLimiter, RatePolicy};
use ensinalab_ratelimit::{InProcessLimiter, RedisLimiter};

const GENERAL: RatePolicy = RatePolicy {
    name: "general",
    quota: 3,
    window: Duration::from_secs(60),
};
const CANCEL: RatePolicy = RatePolicy {
    name: "cancel",
    quota: 1,
    window: Duration::from_secs(60),
};

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

async fn redis_limiter() -> RedisLimiter {
    let prefix = format!("ensinalab-test:rl:{}:", uuid::Uuid::new_v4());
    RedisLimiter::connect(&redis_url(), &prefix)
        .await
        .expect("Redis on TEST_REDIS_URL (scripts/test.sh starts it)")
}

async fn a_quota_allows_a_burst_then_refuses_without_consuming(l: &impl RateLimiter) {
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let d = l.check(&GENERAL, "user:1").await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.retry_after, None);
        remaining.push(d.remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);

    let refused = l.check(&GENERAL, "user:1").await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    let retry = refused.retry_after.unwrap();
    assert!(
        retry > Duration::from_secs(18) && retry <= Duration::from_secs(20),
        "{retry:?}"
    );
    assert!(refused.reset_after >= retry);

    let again = l.check(&GENERAL, "user:1").await.unwrap();
    assert!(!again.allowed);
    assert!(
        again.retry_after.unwrap() <= retry,
        "a refusal must not push the wait further"
    );
}

async fn keys_and_policies_are_independent(l: &impl RateLimiter) {
    assert!(l.check(&CANCEL, "user:1").await.unwrap().allowed);
    assert!(!l.check(&CANCEL, "user:1").await.unwrap().allowed);
    assert!(l.check(&CANCEL, "user:2").await.unwrap().allowed);
    assert!(l.check(&GENERAL, "user:1").await.unwrap().allowed);
}

#[tokio::test]
async fn in_process_a_quota_allows_a_burst_then_refuses_without_consuming() {
    a_quota_allows_a_burst_then_refuses_without_consuming(&InProcessLimiter::default()).await;
}

#[tokio::test]
async fn in_process_keys_and_policies_are_independent() {
    keys_and_policies_are_independent(&InProcessLimiter::default()).await;
}

#[tokio::test]
async fn redis_a_quota_allows_a_burst_then_refuses_without_consuming() {
    a_quota_allows_a_burst_then_refuses_without_consuming(&redis_limiter().await).await;
}

#[tokio::test]
async fn redis_keys_and_policies_are_independent() {
    keys_and_policies_are_independent(&redis_limiter().await).await;
}

#[tokio::test]
async fn redis_instances_with_the_same_prefix_share_limits() {
    let a = redis_limiter().await;
    let prefix = format!("ensinalab-test:rl:{}:", uuid::Uuid::new_v4());
    let first = RedisLimiter::connect(&redis_url(), &prefix).await.unwrap();
    let second = RedisLimiter::connect(&redis_url(), &prefix).await.unwrap();
    assert!(first.check(&CANCEL, "user:9").await.unwrap().allowed);
    assert!(!second.check(&CANCEL, "user:9").await.unwrap().allowed);
    assert!(
        a.check(&CANCEL, "user:9").await.unwrap().allowed,
        "other prefix, other limits"
    );
}

#[tokio::test]
async fn redis_keys_expire_once_their_quota_is_full_again() {
    let prefix = format!("ensinalab-test:rl:{}:", uuid::Uuid::new_v4());
    let l = RedisLimiter::connect(&redis_url(), &prefix).await.unwrap();
    let fast = RatePolicy {
        name: "fast",
        quota: 2,
        window: Duration::from_millis(200),
    };
    l.check(&fast, "ip:1").await.unwrap();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{prefix}fast:ip:1");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 200, "{ttl}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists);
}

#[tokio::test]
async fn in_process_memory_stays_bounded_with_many_distinct_keys() {
    let l = InProcessLimiter::default();
    let fast = RatePolicy {
        name: "fast",
        quota: 1,
        window: Duration::from_millis(20),
    };
    for i in 0..100_000 {
        assert!(l.check(&fast, &format!("ip:{i}")).await.unwrap().allowed);
    }
    assert!(l.keys() > 0);
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Eviction runs by itself every 10,000 checks, whatever the keys.
    for _ in 0..10_000 {
        l.check(&fast, "ip:hot").await.unwrap();
    }

    assert!(l.keys() <= 1, "idle keys were not evicted: {}", l.keys());
}

#[tokio::test]
async fn in_process_keys_of_a_policy_no_longer_checked_are_evicted_too() {
    let l = InProcessLimiter::default();
    let flood = RatePolicy {
        name: "flood",
        quota: 1,
        window: Duration::from_millis(20),
    };
    let hot = RatePolicy {
        name: "hot",
        ..flood.clone()
    };
    for i in 0..100_000 {
        l.check(&flood, &format!("ip:{i}")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // From now on only another policy is checked.
    for _ in 0..10_000 {
        l.check(&hot, "user:1").await.unwrap();
    }
    assert!(l.keys() <= 1, "the flood's keys were kept: {}", l.keys());
}

#[tokio::test]
async fn in_process_idle_keys_can_be_evicted_on_demand() {
    let l = InProcessLimiter::default();
    let fast = RatePolicy {
        name: "fast",
        quota: 2,
        window: Duration::from_millis(20),
    };
    for i in 0..1_000 {
        l.check(&fast, &format!("user:{i}")).await.unwrap();
    }
    assert_eq!(l.keys(), 1_000);
    tokio::time::sleep(Duration::from_millis(50)).await;
    l.evict_idle();
    assert_eq!(l.keys(), 0);
}

#[tokio::test]
async fn redis_unreachable_is_an_error_and_a_lazy_limiter_connects_on_first_use() {
    // Nothing listens on port 1: the check fails, it does not hang or panic.
    let down = RedisLimiter::lazy("redis://127.0.0.1:1/0", "x:").unwrap();
    assert!(down.check(&CANCEL, "user:1").await.is_err());
    assert!(down.check(&CANCEL, "user:1").await.is_err(), "backing off");
    assert!(RedisLimiter::lazy("not a url", "x:").is_err());

    let prefix = format!("ensinalab-test:rl:{}:", uuid::Uuid::new_v4());
    let up = RedisLimiter::lazy(&redis_url(), &prefix).unwrap();
    assert!(up.check(&CANCEL, "user:1").await.unwrap().allowed);
    assert!(!up.check(&CANCEL, "user:1").await.unwrap().allowed);
}
