//! The fake's cross-table task queries ([`Tasks`]).

use ensinalab_domain::{BriefingStatus, Cancel, ResourceKind, TaskId, UserId, VideoStatus};
use time::OffsetDateTime;

use super::*;
use ensinalab_ports::{
    ActivePage, ActivePosition, ActiveResource, ActiveRows, AnyStatus, CancelledAll, ExpiredJob,
    InFlightTask, Resource, ResourceRef, StoreError, Tasks,
};

impl Tasks for InMemoryStore {
    async fn active(&self, user: UserId, page: &ActivePage) -> Result<ActiveRows, StoreError> {
        self.with(|t| {
            let briefings = t
                .briefings
                .iter()
                .filter(|b| b.user_id == user && b.status.is_cancellable())
                .map(|b| ActiveResource {
                    id: b.id.get(),
                    title: b.title.clone(),
                    status: AnyStatus::Briefing(b.status),
                    progress: None,
                    generator_type: None,
                    task_id: b.task_id.clone(),
                    created_at: b.created_at,
                });
            let videos = t
                .videos
                .iter()
                .filter(|v| v.user_id == user && v.status.is_cancellable())
                .map(|v| ActiveResource {
                    id: v.id.get(),
                    title: v.title.clone(),
                    status: AnyStatus::Video(v.status),
                    progress: Some(v.progress),
                    generator_type: Some(v.generator_type.clone()),
                    task_id: v.task_id.clone(),
                    created_at: v.created_at,
                });
            let mut all: Vec<ActiveResource> = briefings.chain(videos).collect();
            let key = |r: &ActiveResource| {
                let p = ActivePosition::of(r);
                (p.created_at, p.kind == ResourceKind::Video, p.id)
            };
            all.sort_by_key(|r| std::cmp::Reverse(key(r)));
            let counts = |kind| all.iter().filter(|r| r.status.kind() == kind).count() as u64;
            let (briefings, videos) = (counts(ResourceKind::Briefing), counts(ResourceKind::Video));
            let after = page
                .after
                .map(|p| (p.created_at, p.kind == ResourceKind::Video, p.id));
            let rows = all
                .into_iter()
                .filter(|r| after.is_none_or(|after| key(r) < after))
                .take(page.limit as usize + 1)
                .collect();
            ActiveRows {
                rows,
                briefings,
                videos,
            }
        })
    }

    async fn resource_for_task(&self, task_id: &TaskId) -> Result<Option<ResourceRef>, StoreError> {
        self.with(|t| {
            let b = t
                .briefings
                .iter()
                .find(|b| b.task_id.as_ref() == Some(task_id))
                .map(|b| ResourceRef {
                    kind: ResourceKind::Briefing,
                    id: b.id.get(),
                    user_id: b.user_id,
                });
            b.or_else(|| {
                t.videos
                    .iter()
                    .find(|v| v.task_id.as_ref() == Some(task_id))
                    .map(|v| ResourceRef {
                        kind: ResourceKind::Video,
                        id: v.id.get(),
                        user_id: v.user_id,
                    })
            })
        })
    }

    async fn cancel_all(
        &self,
        user: UserId,
        briefings: &Cancel<BriefingStatus>,
        videos: &Cancel<VideoStatus>,
    ) -> Result<CancelledAll, StoreError> {
        self.with(|t| {
            let mut out = CancelledAll::default();
            let mut owed = Vec::new();
            for b in t
                .briefings
                .iter_mut()
                .filter(|b| b.user_id == user && briefings.allows(b.status))
            {
                b.write(briefings);
                out.briefings.push((b.id, b.task_id.clone()));
                owed.push((b.task_id.clone(), b.key()));
            }
            for v in t
                .videos
                .iter_mut()
                .filter(|v| v.user_id == user && videos.allows(v.status))
            {
                v.write(videos);
                out.videos.push((v.id, v.task_id.clone()));
                owed.push((v.task_id.clone(), v.key()));
            }
            for (task, resource) in owed {
                owe_revoke(t, task.as_ref(), resource);
            }
            out
        })
    }

    async fn cancel_expired(
        &self,
        briefings: &Cancel<BriefingStatus>,
        briefings_started_before: OffsetDateTime,
        videos: &Cancel<VideoStatus>,
        videos_started_before: OffsetDateTime,
    ) -> Result<Vec<ExpiredJob>, StoreError> {
        fn expire<R: Cancelable>(
            rows: &mut [R],
            cancel: &Cancel<R::Status>,
            before: OffsetDateTime,
        ) -> Vec<ExpiredJob> {
            rows.iter_mut()
                .filter_map(|r| {
                    let started_at = r.started_at().filter(|at| *at < before)?;
                    cancel.allows(r.status()).then(|| {
                        r.write(cancel);
                        let (kind, id) = r.key();
                        ExpiredJob {
                            resource: ResourceRef {
                                kind,
                                id,
                                user_id: r.owner(),
                            },
                            task_id: r.task_id().cloned(),
                            started_at,
                        }
                    })
                })
                .collect()
        }
        self.with(|t| {
            let mut out = expire(&mut t.briefings, briefings, briefings_started_before);
            out.extend(expire(&mut t.videos, videos, videos_started_before));
            for job in &out {
                owe_revoke(
                    t,
                    job.task_id.as_ref(),
                    (job.resource.kind, job.resource.id),
                );
            }
            out
        })
    }

    async fn in_flight(&self, limit: u32) -> Result<Vec<InFlightTask>, StoreError> {
        self.with(|t| {
            let briefings = t
                .briefings
                .iter()
                .filter(|b| b.status.is_in_flight())
                .filter_map(|b| {
                    Some(InFlightTask {
                        resource: ResourceRef {
                            kind: ResourceKind::Briefing,
                            id: b.id.get(),
                            user_id: b.user_id,
                        },
                        task_id: b.task_id.clone()?,
                        status: AnyStatus::Briefing(b.status),
                        progress: None,
                        started: b.started_at.is_some(),
                    })
                });
            let videos = t
                .videos
                .iter()
                .filter(|v| v.status.is_in_flight())
                .filter_map(|v| {
                    Some(InFlightTask {
                        resource: ResourceRef {
                            kind: ResourceKind::Video,
                            id: v.id.get(),
                            user_id: v.user_id,
                        },
                        task_id: v.task_id.clone()?,
                        status: AnyStatus::Video(v.status),
                        progress: Some(v.progress),
                        started: v.started_at.is_some(),
                    })
                });
            briefings.chain(videos).take(limit as usize).collect()
        })
    }
}
