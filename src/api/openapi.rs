use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{
    AppState, deliveries, error, events, executors, health, instances, memory, routing, tasks,
    tokens,
};
use crate::domain;

#[derive(OpenApi)]
#[openapi(
    info(title = "Hopper", description = "Webhook gateway and hierarchical task router"),
    paths(
        health::healthz, health::readyz, health::metrics,
        instances::list_instances, instances::create_instance, instances::tree,
        instances::get_instance, instances::archive_instance, instances::stats,
        instances::get_child, instances::add_task, instances::list_tasks, instances::next,
        instances::notify,
        tasks::get_task, tasks::claim, tasks::heartbeat, tasks::complete, tasks::fail,
        tasks::release, tasks::cancel,
        routing::explain, routing::reroute, routing::plan,
        events::list_events, events::get_event, events::replay_event,
        memory::search,
        deliveries::list_deliveries, deliveries::get_delivery, deliveries::retry_delivery,
        deliveries::recover_executor,
        executors::register, executors::list, executors::show, executors::update,
        executors::remove, executors::rotate_secret, executors::disable, executors::enable,
        executors::events,
        tokens::create, tokens::list, tokens::revoke,
    ),
    components(schemas(
        error::ErrorBody, error::ErrorDetail, domain::Task, domain::TaskDraft, domain::TaskEvent,
        domain::Feedback, domain::ChildFeedback, domain::Priority, domain::TaskStatus,
        domain::SourceRef, domain::Instance, domain::InstanceStats, domain::InstanceTree,
        domain::Scope, domain::InstanceStatus, domain::InboundEventView, domain::IngestReceipt,
        domain::Delivery, domain::DeliveryDetail, domain::DeliveryAttempt, domain::DeliveryStatus,
        deliveries::RecoverRequest, deliveries::RecoverReceipt,
        domain::Executor, domain::ExecutorKind, domain::TokenRole, crate::engine::Registration,
        crate::engine::Registered, crate::engine::ExecutorUpdate, crate::engine::Rotated,
        crate::engine::TokenRequest, crate::engine::MintedToken, crate::store::ApiToken,
        crate::store::ExecutorEvent, crate::engine::RoutingReport, crate::engine::DecisionRecord,
        crate::engine::RerouteRequest, crate::engine::Plan, crate::engine::PlanPhase,
        crate::engine::PlanTask, crate::routing::Step, crate::routing::StepOutcome,
        crate::routing::Alternative,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}
