//! `cdcstar-mock-broker` as the benchmarks use it: started as a process, bootstrap address read from
//! its standard output, topics provisioned by `ensure_topics` (the mock has no CreateTopics: the
//! fallback lets it auto-create them, at once rather than after an admin timeout), one message
//! produced and consumed through it, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cdcstar_runtime::kafka::{KafkaConnection, ensure_topics};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> (Broker, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdcstar-mock-broker"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cdcstar-mock-broker");
    let stdout = child.stdout.take().expect("piped stdout");
    let broker = Broker(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the bootstrap line");
    let bootstrap = line
        .trim()
        .strip_prefix("bootstrap ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (broker, bootstrap)
}

#[tokio::test]
async fn topics_are_provisioned_and_carry_messages() {
    let (mut broker, bootstrap) = start(&["--topic", "precreated:2"]);
    let connection = KafkaConnection::new(&[&bootstrap]);
    let topics = vec!["precreated".to_owned(), "auto.created".to_owned()];

    let began = Instant::now();
    ensure_topics(&connection, &topics, 3)
        .await
        .expect("topics on the mock broker");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "ensure_topics waited {:?}: CreateTopics should fail at once on the mock",
        began.elapsed()
    );

    let producer: FutureProducer = connection.client_config().create().unwrap();
    producer
        .send(
            FutureRecord::to("auto.created").key("k").payload("hello"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(error, _)| error)
        .expect("produce");

    let consumer: BaseConsumer = connection
        .client_config()
        .set("group.id", "mock-broker-test")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some("precreated"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 2, "--topic NAME:2");
    let metadata = consumer
        .fetch_metadata(Some("auto.created"), Duration::from_secs(10))
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        assignment
            .add_partition_offset("auto.created", partition.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let payload = loop {
        assert!(Instant::now() < deadline, "nothing consumed in 10 s");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            break message.unwrap().payload().unwrap().to_vec();
        }
    };
    assert_eq!(payload, b"hello");

    // NB: the clients go first: dropped after their broker is gone, they wait ~45 s for it.
    drop(consumer);
    drop(producer);
    // SIGTERM: a clean exit.
    let status = Command::new("kill")
        .args(["-TERM", &broker.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = broker.0.wait().unwrap();
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
}

#[test]
fn a_fixed_port_forwards_to_the_broker() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (_broker, bootstrap) = start(&["--port", &port.to_string()]);
    assert_eq!(bootstrap, format!("127.0.0.1:{port}"));
    let consumer: BaseConsumer = KafkaConnection::new(&[&bootstrap])
        .client_config()
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata through the fixed port");
    assert!(!metadata.brokers().is_empty());
}
