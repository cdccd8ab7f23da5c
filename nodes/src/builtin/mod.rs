//! General nodes, so that the engine does real work on its own.

mod batch;
mod debug;
mod noop;
mod traffic_generator;

pub use batch::BatchConfig;
pub use debug::DebugConfig;
pub use traffic_generator::TrafficConfig;

/// Declares a factory in [`crate::NODE_FACTORIES`] whose config type is `$config`.
macro_rules! node_factory {
    ($static:ident, $type_name:literal, $kind:ident, $description:literal, $config:ty, $create:expr) => {
        #[linkme::distributed_slice(crate::factory::NODE_FACTORIES)]
        static $static: crate::factory::NodeFactory = crate::factory::NodeFactory {
            type_name: $type_name,
            kind: crate::factory::NodeKind::$kind,
            description: $description,
            validate: |value| crate::factory::parse_config::<$config>(value).map(|_| ()),
            create: |value, ctx| {
                let config = crate::factory::parse_config::<$config>(value)?;
                #[allow(
                    clippy::redundant_closure_call,
                    reason = "the macro's argument is a closure"
                )]
                ($create)(config, ctx)
            },
        };
    };
}
pub(crate) use node_factory;
