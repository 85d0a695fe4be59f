//! The inbound sources this build knows. Adding a source is one crate under `integrations/`
//! and one line here.

use hopper_integration_api::Plugin;

pub fn plugins() -> Vec<Plugin> {
    vec![
        hopper_github::plugin(),
        hopper_gitlab::plugin(),
        hopper_slack::plugin(),
        hopper_email::plugin(),
        hopper_http::plugin(),
    ]
}
