pub fn plugin() -> hopper_integration_api::Plugin {
    hopper_integration_api::Plugin {
        name: "email",
        build: |_| Ok(Vec::new()),
    }
}
