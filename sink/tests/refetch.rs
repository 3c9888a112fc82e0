//! Reading messages back by position from the real broker, as the dead-letter path does for events
//! whose rows ClickHouse refused: in any order, and `None` for a position the topic does not hold.

mod common;

use cdcstar_runtime::kafka::{KafkaConnection, ensure_topics};
use cdcstar_sink::consume::batch::Position;
use cdcstar_sink::dead_letters::refetch::{StoredMessage, read_messages};
use common::{kafka_brokers, produce, unique};

#[tokio::test]
async fn messages_are_read_back_by_position_and_a_missing_one_is_none() {
    let brokers = kafka_brokers();
    let topic = unique("refetch");
    let connection = KafkaConnection::new(&[&brokers]);
    ensure_topics(&connection, std::slice::from_ref(&topic), 1)
        .await
        .expect("topic");
    let messages: Vec<(String, String, Vec<u8>)> = (0..3)
        .map(|i| {
            (
                topic.clone(),
                format!("k{i}"),
                format!("body {i}").into_bytes(),
            )
        })
        .collect();
    produce(&brokers, &messages).await;
    let at = |offset| Position {
        topic: topic.clone(),
        partition: 0,
        offset,
    };
    let positions = vec![at(2), at(0), at(42)];
    let read = tokio::task::spawn_blocking(move || read_messages(&connection, &positions))
        .await
        .unwrap()
        .expect("read back");
    let message = |i: usize| StoredMessage {
        key: Some(format!("k{i}").into_bytes()),
        payload: format!("body {i}").into_bytes(),
    };
    assert_eq!(read, [Some(message(2)), Some(message(0)), None]);
}
