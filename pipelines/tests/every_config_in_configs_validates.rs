//! Every file in `configs/` loads and validates.

#[test]
fn every_shipped_config_loads_and_plans() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("configs/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            if let Err(errors) = pipelines::load_plan(&path, None) {
                panic!("{} does not validate:\n{errors}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "found only {checked} configs");
}
