use super::*;
use std::collections::HashMap;

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn an_empty_environment_gives_the_zero_setup_defaults() {
    let c = config(&[]).unwrap();
    assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
    assert_eq!(
        c.broker,
        BrokerChoice::Local {
            options_secs: 3,
            video_secs: 30
        }
    );
    assert!(c.jwt.secret.is_dev());
    assert_eq!(c.hashids.min_length, 6);
    assert_eq!(c.task_time_limit_secs, 300);
    assert!(c.auto_migrate);
    assert_eq!(c.log_format, LogFormat::Pretty);
}

#[test]
fn a_redis_url_selects_celery() {
    let c = config(&[("REDIS_URL", "redis://127.0.0.1:6379/0")]).unwrap();
    assert_eq!(
        c.broker,
        BrokerChoice::Celery {
            redis_url: "redis://127.0.0.1:6379/0".into(),
            broker_url: None,
            queue: "celery".into(),
            revoke_confirm: Duration::from_millis(250),
            unqueue: true,
        }
    );
}

#[test]
fn a_celery_broker_url_selects_rabbitmq_as_the_broker_and_keeps_redis_for_results() {
    let c = config(&[
        ("REDIS_URL", "redis://127.0.0.1:6379/0"),
        ("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    ])
    .unwrap();
    let BrokerChoice::Celery {
        redis_url,
        broker_url,
        ..
    } = c.broker
    else {
        panic!("Celery expected: {:?}", c.broker);
    };
    assert_eq!(redis_url, "redis://127.0.0.1:6379/0");
    assert_eq!(
        broker_url.as_deref(),
        Some("amqp://guest:guest@127.0.0.1:5672//")
    );
}

#[test]
fn a_bad_celery_broker_url_or_one_without_a_result_backend_stops_startup_naming_it() {
    for url in [
        "redis://127.0.0.1:6379/0",
        "amqp//nohost",
        "amqps://rabbit:5671/",
    ] {
        let err = config(&[
            ("REDIS_URL", "redis://127.0.0.1:6379/0"),
            ("CELERY_BROKER_URL", url),
        ])
        .unwrap_err();
        assert_eq!(err.var, "CELERY_BROKER_URL", "{url}: {err}");
    }
    let err = config(&[("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")]).unwrap_err();
    assert_eq!(err.var, "CELERY_BROKER_URL");
    assert!(err.message.contains("REDIS_URL"), "{err}");
}

#[test]
fn a_bad_value_names_its_variable() {
    let table = [
        ("BIND_ADDR", "localhost"),
        ("HASHIDS_MIN_LENGTH", "-1"),
        ("TASK_TIME_LIMIT_SECS", "five"),
        ("AUTO_MIGRATE", "maybe"),
        ("LOG_FORMAT", "xml"),
        ("LOCAL_VIDEO_SECS", "1.5"),
        ("JWT_SECRET", "short"),
        ("RECONCILE_INTERVAL_SECS", "0"),
        ("RATE_LIMIT_PER_MIN", "0"),
        ("CANCEL_RATE_LIMIT_PER_MIN", "ten"),
        ("RATE_LIMIT_BACKEND", "memcached"),
        ("TRUSTED_PROXIES", "10.0.0.0/8, example.com"),
        ("MAX_ACTIVE_JOBS_PER_USER", "0"),
        ("SECURITY_EVENT_RETENTION_DAYS", "-1"),
        ("REQUEST_TIMEOUT_SECS", "0"),
        ("JWT_MAX_TTL_SECS", "0"),
        ("AUTO_CANCEL_FACTOR", "-1"),
        ("AUTO_CANCEL_FACTOR", "twice"),
        ("EXPECTED_VIDEO_SECS", "0"),
        ("AUTO_CANCEL_SWEEP_SECS", "0"),
        ("MAX_STREAMS_PER_USER", "0"),
        ("MAX_STREAMS", "0"),
        ("LIVE_STALL_SECS", "0"),
        ("LIVE_STALL_SECS", "5000000"),
        ("LIVE_HEARTBEAT_SECS", "0"),
        ("LIVE_RELAY", "sometimes"),
        ("REVOKE_CONFIRM_MS", "-1"),
        ("REVOKE_CONFIRM_MS", "60000"),
        ("CELERY_UNQUEUE", "sometimes"),
    ];
    for (var, value) in table {
        let err = config(&[(var, value)]).unwrap_err();
        assert_eq!(err.var, var, "{value}");
        assert!(err.to_string().starts_with(var), "{err}");
    }
}

#[test]
fn rate_limits_default_to_100_and_10_per_minute_in_memory() {
    let c = config(&[]).unwrap();
    assert_eq!(
        c.rate_limit,
        RateLimitConfig {
            per_min: 100,
            cancel_per_min: 10,
            backend: RateLimitBackend::Memory
        }
    );
}

#[test]
fn redis_rate_limits_need_a_redis_url_and_use_it() {
    let err = config(&[("RATE_LIMIT_BACKEND", "redis")]).unwrap_err();
    assert_eq!(err.var, "REDIS_URL");
    let c = config(&[
        ("RATE_LIMIT_BACKEND", "redis"),
        ("REDIS_URL", "redis://127.0.0.1:6379/0"),
        ("RATE_LIMIT_PER_MIN", "600"),
    ])
    .unwrap();
    assert_eq!(c.rate_limit.per_min, 600);
    assert_eq!(
        c.rate_limit.backend,
        RateLimitBackend::Redis {
            url: "redis://127.0.0.1:6379/0".into(),
            prefix: DEFAULT_RATE_LIMIT_PREFIX.into()
        }
    );
}

#[test]
fn dev_mode_binds_loopback_only() {
    for addr in ["127.0.0.1:8080", "[::1]:8080", "127.0.0.1:0"] {
        assert!(
            config(&[("BIND_ADDR", addr)]).unwrap().jwt.secret.is_dev(),
            "{addr}"
        );
    }
    for addr in ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:80"] {
        let err = config(&[("BIND_ADDR", addr)]).unwrap_err();
        assert_eq!(err.var, "JWT_SECRET", "{addr}");
        assert!(err.to_string().contains("dev mode"), "{err}");
    }
    let secret = "s".repeat(32);
    let c = config(&[("BIND_ADDR", "0.0.0.0:8080"), ("JWT_SECRET", &secret)]).unwrap();
    assert!(!c.jwt.secret.is_dev());
}

#[test]
fn hardening_settings_have_their_defaults() {
    let c = config(&[]).unwrap();
    assert_eq!(c.jwt.max_ttl_secs, 24 * 3600);
    assert_eq!(c.max_active_jobs_per_user, 100);
    assert_eq!(c.max_streams_per_user, 5);
    assert_eq!(c.live_heartbeat, Duration::from_secs(15));
    assert!(c.live_relay);
    assert_eq!(c.security_event_retention_days, 90);
    assert_eq!(c.trusted_proxies, TrustedProxies::default());
    assert_eq!(c.http.request_timeout, Duration::from_secs(30));
    let c = config(&[("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")]).unwrap();
    assert_eq!(c.trusted_proxies.0.len(), 2);
}

#[test]
fn the_automatic_timeout_is_twice_the_time_limit_per_kind_and_zero_turns_it_off() {
    let c = config(&[]).unwrap();
    let policy = c.auto_cancel.unwrap();
    assert_eq!(policy.options, Duration::from_secs(600));
    assert_eq!(policy.video, Duration::from_secs(600));
    assert_eq!(c.auto_cancel_sweep, Duration::from_secs(5));
    let c = config(&[
        ("AUTO_CANCEL_FACTOR", "1.5"),
        ("EXPECTED_OPTIONS_SECS", "60"),
        ("EXPECTED_VIDEO_SECS", "200"),
    ])
    .unwrap();
    let policy = c.auto_cancel.unwrap();
    assert_eq!(
        (policy.options, policy.video),
        (Duration::from_secs(90), Duration::from_secs(300))
    );
    assert_eq!(
        config(&[("AUTO_CANCEL_FACTOR", "0")]).unwrap().auto_cancel,
        None
    );
}

#[test]
fn the_alert_email_needs_both_its_server_and_its_recipients() {
    let c = config(&[]).unwrap();
    assert_eq!(c.alert_mail, None);
    assert_eq!(c.revoke_grace, Duration::from_secs(60));
    let c = config(&[
        ("SMTP_URL", "smtp://127.0.0.1:2525"),
        ("ALERT_EMAIL_TO", "ops@example.com, oncall@example.com"),
    ])
    .unwrap();
    let mail = c.alert_mail.unwrap();
    assert_eq!(mail.mail.to, ["ops@example.com", "oncall@example.com"]);
    assert_eq!(mail.mail.from, DEFAULT_ALERT_EMAIL_FROM);
    assert_eq!(mail.min_interval, Duration::from_secs(300));

    let table: [(&[(&str, &str)], &str); 6] = [
        (&[("SMTP_URL", "smtp://127.0.0.1:2525")], "ALERT_EMAIL_TO"),
        (
            &[
                ("SMTP_URL", "smtp://user:hunter2@127.0.0.1:2525"),
                ("ALERT_EMAIL_TO", "ops@example.com"),
            ],
            "SMTP_URL",
        ),
        (&[("ALERT_EMAIL_TO", "ops@example.com")], "SMTP_URL"),
        (
            &[
                ("SMTP_URL", "ftp://x"),
                ("ALERT_EMAIL_TO", "ops@example.com"),
            ],
            "SMTP_URL",
        ),
        (
            &[
                ("SMTP_URL", "smtp://h"),
                ("ALERT_EMAIL_TO", "ops at example"),
            ],
            "ALERT_EMAIL_TO",
        ),
        (
            &[
                ("SMTP_URL", "smtp://h"),
                ("ALERT_EMAIL_TO", "ops@example.com"),
                ("ALERT_EMAIL_FROM", "nobody"),
            ],
            "ALERT_EMAIL_FROM",
        ),
    ];
    for (vars, var) in table {
        assert_eq!(config(vars).unwrap_err().var, var, "{vars:?}");
    }
    let with_password = config(&[
        (
            "SMTP_URL",
            "smtp://user:hunter2@127.0.0.1:2525?tls=required",
        ),
        ("ALERT_EMAIL_TO", "ops@example.com"),
    ])
    .unwrap();
    assert!(!format!("{with_password:?}").contains("hunter2"));
    // In clear only when the URL says so; the refusal never repeats the password.
    let err = config(&[
        ("SMTP_URL", "smtp://user:hunter2@127.0.0.1:2525"),
        ("ALERT_EMAIL_TO", "ops@example.com"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("tls=none"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(
        config(&[
            ("SMTP_URL", "smtp://user:hunter2@127.0.0.1:2525?tls=none"),
            ("ALERT_EMAIL_TO", "ops@example.com"),
        ])
        .is_ok()
    );
}

#[test]
fn metrics_listen_on_loopback_by_default_never_on_the_public_port_and_empty_turns_them_off() {
    let c = config(&[]).unwrap();
    assert_eq!(c.metrics_addr, Some(DEFAULT_METRICS_ADDR.parse().unwrap()));
    assert_eq!(c.metrics_census, Duration::from_secs(15));
    assert_eq!(config(&[("METRICS_ADDR", "")]).unwrap().metrics_addr, None);
    let c = config(&[
        ("METRICS_ADDR", "0.0.0.0:9100"),
        ("METRICS_CENSUS_SECS", "2"),
    ])
    .unwrap();
    assert_eq!(c.metrics_addr, Some("0.0.0.0:9100".parse().unwrap()));
    assert_eq!(c.metrics_census, Duration::from_secs(2));
    for bad in ["127.0.0.1:8080", "localhost:9464", "9464"] {
        let err = config(&[("METRICS_ADDR", bad)]).unwrap_err();
        assert_eq!(err.var, "METRICS_ADDR", "{bad}");
    }
}

#[test]
fn the_orphan_sweep_runs_hourly_by_default_and_zero_turns_it_off() {
    assert_eq!(
        config(&[]).unwrap().orphan_sweep,
        Some(Duration::from_secs(3600))
    );
    let c = config(&[("ORPHAN_SWEEP_SECS", "30")]).unwrap();
    assert_eq!(c.orphan_sweep, Some(Duration::from_secs(30)));
    assert_eq!(
        config(&[("ORPHAN_SWEEP_SECS", "0")]).unwrap().orphan_sweep,
        None
    );
    assert_eq!(
        config(&[("ORPHAN_SWEEP_SECS", "-1")]).unwrap_err().var,
        "ORPHAN_SWEEP_SECS"
    );
}

#[test]
fn a_configured_secret_is_never_printed() {
    let c = config(&[("JWT_SECRET", &"s".repeat(40))]).unwrap();
    assert!(!format!("{c:?}").contains("ssss"));
}
