//! A node with several output ports sends to each by name; an unknown port is an error
//! the node sees, and the engine counts the failed message.

mod common;

use std::time::Duration;

use common::{Collector, edge, node, start_on_first_core};
use nodes::{
    EffectHandler, Message, NodeContext, NodeError, NodeFactory, NodeKind, NodeTask, PData,
    PipelineSpec, Processor,
};

/// Sends even-sized batches to `even`, odd ones to `odd`, and every tenth to `nowhere`.
struct Router;

impl Processor for Router {
    async fn process(&mut self, msg: Message, effect: &EffectHandler) -> Result<(), NodeError> {
        let Message::PData(pdata) = msg else {
            return Ok(());
        };
        let port = match pdata.items {
            n if n % 10 == 0 => "nowhere",
            n if n % 2 == 0 => "even",
            _ => "odd",
        };
        effect.send_to(port, pdata).await?;
        Ok(())
    }
}

#[linkme::distributed_slice(nodes::NODE_FACTORIES)]
static ROUTER: NodeFactory = NodeFactory {
    type_name: "processor:test_router",
    kind: NodeKind::Processor,
    description: "test: routes by batch size parity",
    validate: |_| Ok(()),
    create: |_, _: &NodeContext| Ok(NodeTask::processor(Router)),
};

/// Produces batches of 1..=20 items, once each.
struct Counting;

impl nodes::Receiver for Counting {
    async fn run(
        self: Box<Self>,
        _control: nodes::ControlChannel,
        effect: EffectHandler,
    ) -> Result<(), NodeError> {
        for items in 1..=20 {
            effect.send_message(PData::synthetic(items, 0)).await?;
        }
        Ok(())
    }
}

#[linkme::distributed_slice(nodes::NODE_FACTORIES)]
static COUNTING: NodeFactory = NodeFactory {
    type_name: "receiver:test_counting",
    kind: NodeKind::Receiver,
    description: "test: batches of 1 to 20 items",
    validate: |_| Ok(()),
    create: |_, _: &NodeContext| Ok(NodeTask::receiver(Counting)),
};

#[test]
fn each_port_feeds_its_own_node() {
    let none = serde_json::Value::Null;
    let spec = PipelineSpec {
        group: "test".into(),
        name: "ports".into(),
        nodes: vec![
            node("src", "receiver:test_counting", none.clone()),
            node("router", "processor:test_router", none.clone()),
            node("even", "exporter:noop", none.clone()),
            node("odd", "exporter:noop", none),
        ],
        edges: vec![
            edge(0, nodes::DEFAULT_PORT, 1),
            edge(1, "even", 2),
            edge(1, "odd", 3),
        ],
        channel_capacity: 2,
    };
    let started = start_on_first_core(spec, Duration::from_millis(50));
    started.instance.join().unwrap();
    let mut metrics = Collector::default();
    metrics.drain(&started.receiver);
    let get = |node: &str, field: &str| metrics.get("engine.node", node, field);
    // Even sizes not divisible by ten: 2,4,6,8,12,14,16,18; odd: 1,3,...,19.
    assert_eq!(
        get("even", "consumed_items"),
        2 + 4 + 6 + 8 + 12 + 14 + 16 + 18
    );
    assert_eq!(
        get("odd", "consumed_items"),
        (1..=19).step_by(2).sum::<u64>()
    );
    assert_eq!(
        get("router", "failed_messages"),
        2,
        "10 and 20 went to an unknown port"
    );
    assert_eq!(get("router", "consumed_messages"), 20);
}
