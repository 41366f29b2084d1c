//! The `/v1` routes (docs/contract.md §5), one module per resource. Handlers only translate:
//! the request into an [`hookfleet_admin::Admin`] call, its result or error into an answer.

pub mod catalog;
pub mod dead_letters;
pub mod endpoints;
pub mod events;
pub mod tenants;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// Every `/v1` route, with its OpenAPI description.
pub fn v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events::publish, events::list))
        .routes(routes!(events::get))
        .routes(routes!(events::attempts))
        .routes(routes!(events::resend))
        .routes(routes!(catalog::list))
        .routes(routes!(catalog::put))
        .routes(routes!(catalog::test_filter))
        .routes(routes!(endpoints::create, endpoints::list))
        .routes(routes!(
            endpoints::get,
            endpoints::update,
            endpoints::remove
        ))
        .routes(routes!(endpoints::test))
        .routes(routes!(endpoints::rotate_secret))
        .routes(routes!(endpoints::attempts))
        .routes(routes!(endpoints::recover))
        .routes(routes!(endpoints::stats))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::replay))
        .routes(routes!(tenants::mint_token))
        .routes(routes!(tenants::revoke_tokens))
}
