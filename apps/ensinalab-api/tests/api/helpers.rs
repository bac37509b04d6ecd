//! The api suite's knobs and fixtures over the shared test app: the settings its tests turn,
//! rows in given states written through the store port, and `both!` (one scenario on SQLite
//! and on PostgreSQL).

use std::time::Duration;

use ensinalab_api::config::{Config, JwtSecret, RateLimitBackend, RateLimitConfig, TrustedProxies};
use ensinalab_app::new_task_id;
use ensinalab_domain::{
    BriefingDraft, BriefingId, GeneratedOption, OptionId, TaskId, UserId, VideoId, VideoStatus,
};
use ensinalab_jobs::dispatcher::DispatcherSettings;
use ensinalab_local::LocalConfig;
use ensinalab_ports::{
    Briefing, BriefingUpdate, Briefings, NewVideo, TaskBroker, Video, VideoUpdate, Videos,
};
use ensinalab_store::SqlStore;
use reqwest::StatusCode;
use tokio::sync::mpsc::Receiver;

pub use crate::common::app::{Backend, SECRET, TestApp};
use crate::common::app::{Feeds, TestDb, config};
use crate::common::sse::Sse;
pub use crate::common::ws::Ws;

/// Knobs a test may turn.
#[derive(Debug, Clone)]
pub struct Settings {
    pub local: LocalConfig,
    pub task_time_limit_secs: u64,
    pub json_limit_bytes: usize,
    /// Rate limits: per minute, and where their state lives.
    pub rate_limit: RateLimitConfig,
    /// `JWT_ISSUER` and `JWT_AUDIENCE` (the app's own tokens carry them).
    pub jwt_issuer_audience: Option<(String, String)>,
    /// `REQUEST_TIMEOUT_SECS`.
    pub request_timeout: Duration,
    /// `MAX_ACTIVE_JOBS_PER_USER`.
    pub max_active_jobs_per_user: u32,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: TrustedProxies,
    /// The automatic timeout (off unless a test turns it on) and its sweep's period.
    pub auto_cancel: Option<ensinalab_domain::AutoCancel>,
    pub auto_cancel_sweep: Duration,
    /// `LIVE_HEARTBEAT_SECS`.
    pub live_heartbeat: Duration,
    /// `MAX_STREAMS_PER_USER`, `MAX_STREAMS` and `LIVE_STALL_SECS`.
    pub max_streams_per_user: u32,
    pub max_streams: u32,
    pub live_stall: Duration,
    /// `JWT_LEEWAY_SECS`.
    pub jwt_leeway_secs: u64,
}

/// Rate limits high enough never to get in the way of a test that is not about them.
pub fn generous_limits() -> RateLimitConfig {
    RateLimitConfig {
        per_min: 100_000,
        cancel_per_min: 100_000,
        backend: RateLimitBackend::Memory,
    }
}

/// Redis for the shared rate limiter, with a key prefix of the test's own.
pub fn redis_limits() -> RateLimitBackend {
    RateLimitBackend::Redis {
        url: std::env::var("TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned()),
        prefix: format!("ensinalab-test:api-rl:{}:", uuid::Uuid::new_v4()),
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            // Options arrive fast; a video runs long enough to be cancelled mid-way.
            local: LocalConfig {
                options_duration: Duration::from_millis(300),
                video_duration: Duration::from_secs(60),
            },
            task_time_limit_secs: 300,
            json_limit_bytes: 64 * 1024,
            rate_limit: generous_limits(),
            jwt_issuer_audience: None,
            request_timeout: Duration::from_secs(30),
            max_active_jobs_per_user: 100,
            trusted_proxies: TrustedProxies::default(),
            auto_cancel: None,
            auto_cancel_sweep: Duration::from_secs(5),
            live_heartbeat: Duration::from_secs(15),
            max_streams_per_user: 5,
            max_streams: 10_000,
            live_stall: Duration::from_secs(30),
            jwt_leeway_secs: 5,
        }
    }
}

/// The configuration of a test server (no environment read).
pub fn test_config(settings: &Settings) -> Config {
    let mut config = config(&[("METRICS_CENSUS_SECS", "1")]);
    config.task_time_limit_secs = settings.task_time_limit_secs;
    config.json_limit_bytes = settings.json_limit_bytes;
    config.rate_limit = settings.rate_limit.clone();
    config.http.request_timeout = settings.request_timeout;
    config.max_active_jobs_per_user = settings.max_active_jobs_per_user;
    config.trusted_proxies = settings.trusted_proxies.clone();
    config.auto_cancel = settings.auto_cancel;
    config.auto_cancel_sweep = settings.auto_cancel_sweep;
    config.live_heartbeat = settings.live_heartbeat;
    config.max_streams_per_user = settings.max_streams_per_user;
    config.max_streams = settings.max_streams;
    config.live_stall = settings.live_stall;
    config.jwt.leeway_secs = settings.jwt_leeway_secs;
    if let Some((issuer, audience)) = &settings.jwt_issuer_audience {
        config.jwt.issuer = Some(issuer.clone());
        config.jwt.audience = Some(audience.clone());
    }
    assert!(matches!(config.jwt.secret, JwtSecret::Configured(_)));
    config
}

impl TestApp {
    /// The app on the in-process broker, on a fresh database.
    pub async fn spawn_with(backend: Backend, settings: Settings) -> Self {
        Self::local(
            TestDb::new(backend).await,
            &test_config(&settings),
            settings.local,
        )
    }

    /// The app over any broker (e.g. a Celery broker whose Redis is down), on a fresh database.
    pub async fn spawn_over<B: TaskBroker + 'static>(
        backend: Backend,
        settings: &Settings,
        broker: B,
        changes: Option<Receiver<TaskId>>,
    ) -> Self {
        let feeds = Feeds {
            changes,
            online: None,
        };
        Self::over(
            TestDb::new(backend).await,
            &test_config(settings),
            broker,
            feeds,
            DispatcherSettings::default(),
        )
    }

    /// The app on the local broker over a store the test prepared.
    pub fn spawn_on(store: SqlStore, settings: Settings) -> Self {
        Self::local(TestDb::of(store), &test_config(&settings), settings.local)
    }
    /// A briefing of `user` in `processing` whose task never reports (written through the
    /// store port, as a worker that hangs would leave it).
    pub async fn stuck_briefing(&self, user: i64, title: &str) -> (Briefing, TaskId) {
        let draft = BriefingDraft::new(title, "...", 10).expect("valid draft");
        let task = new_task_id();
        let b = self
            .store
            .create_briefing(UserId(user), &draft, &task, u32::MAX)
            .await
            .expect("briefing stored")
            .expect("a free job slot");
        (b, task)
    }

    /// A briefing of `user` in `options_ready` with two options.
    pub async fn ready_briefing(&self, user: i64) -> (BriefingId, Vec<OptionId>) {
        let (b, _) = self.stuck_briefing(user, "Gestão de Sala de Aula").await;
        let options = ["simple", "avatar"].map(|g| GeneratedOption {
            title: format!("Opção {g}"),
            description: "d".into(),
            generator_type: g.into(),
        });
        let moved = self
            .store
            .apply_briefing_update(b.id, &BriefingUpdate::OptionsReady(options.to_vec()))
            .await
            .expect("options stored");
        assert!(moved.is_some());
        let (_, opts) = self
            .store
            .briefing(b.id)
            .await
            .expect("read")
            .expect("exists");
        (b.id, opts.into_iter().map(|o| o.id).collect())
    }

    /// Selects the first option of a fresh ready briefing of `user` through the API: the new
    /// video's hash (its task runs in the app's broker).
    pub async fn select_video(&self, user: i64, token: &str) -> String {
        let (_, options) = self.ready_briefing(user).await;
        let (status, video) = self
            .post(
                &format!("/options/{}/select", self.hash(options[0].get())),
                token,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{video}");
        video["video_id"].as_str().expect("hash").to_owned()
    }

    /// A video of `user` in `status`, whose task never reports.
    pub async fn video_in(&self, user: i64, status: VideoStatus) -> (Video, TaskId) {
        let (briefing, options) = self.ready_briefing(user).await;
        let task = new_task_id();
        let video = self
            .store
            .create_video(
                &NewVideo {
                    user_id: UserId(user),
                    briefing_id: briefing,
                    option_id: options[0],
                    title: "Como usar Google Classroom".into(),
                    generator_type: "simple".into(),
                    task_id: task.clone(),
                },
                u32::MAX,
            )
            .await
            .expect("video stored")
            .expect("a free job slot");
        let update = match status {
            VideoStatus::Queued => None,
            VideoStatus::Processing => Some(VideoUpdate::Running { progress: 0.7 }),
            VideoStatus::PendingApproval | VideoStatus::Completed => {
                Some(VideoUpdate::Finished(status))
            }
            VideoStatus::Failed => Some(VideoUpdate::Failed("boom".into())),
            VideoStatus::Cancelled => Some(VideoUpdate::Revoked),
        };
        if let Some(update) = update {
            assert!(
                self.store
                    .apply_video_update(video.id, &update)
                    .await
                    .expect("update")
                    .is_some()
            );
        }
        let video = self
            .store
            .video(video.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(video.status, status);
        (video, task)
    }

    /// Opens a stream as soon as the server has a place for it, trying every 100 ms for up to
    /// `within`; `None` if it never had one.
    pub async fn stream_once_free(&self, token: &str, within: Duration) -> Option<Sse> {
        let until = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < until {
            if let Ok(s) = self.stream(token, None).await {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// The video as stored; `user` must own it.
    pub async fn video_row(&self, user: i64, id: VideoId) -> Video {
        let video = self.store.video(id).await.expect("read").expect("exists");
        assert_eq!(video.user_id, UserId(user));
        video
    }
}

/// Runs one scenario on SQLite and on PostgreSQL: `both!(name);` makes `name::on_sqlite` and
/// `name::on_postgres` from `async fn name(app: &TestApp)`.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        $crate::both!(@ $name, $crate::helpers::Settings::default());
    };
    ($name:ident, $settings:ident) => {
        $crate::both!(@ $name, super::$settings());
    };
    (@ $name:ident, $settings:expr) => {
        mod $name {
            use $crate::helpers::{Backend, TestApp};

            #[tokio::test]
            async fn on_sqlite() {
                let app = TestApp::spawn_with(Backend::Sqlite, $settings).await;
                super::$name(&app).await;
                app.cleanup().await;
            }

            #[tokio::test]
            async fn on_postgres() {
                let app = TestApp::spawn_with(Backend::Postgres, $settings).await;
                super::$name(&app).await;
                app.cleanup().await;
            }
        }
    };
}
