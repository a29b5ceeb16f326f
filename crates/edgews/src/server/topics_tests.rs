//! The registry's bookkeeping and caps, without a reactor.

use super::*;

fn conn(n: u32) -> ConnId {
    ConnId::new(n as usize, 1)
}

fn limits(topics: usize, per_connection: usize, per_topic: usize) -> TopicLimits {
    TopicLimits {
        max_topics: topics,
        max_subscriptions_per_connection: per_connection,
        max_subscribers_per_topic: per_topic,
    }
}

/// The two maps agree with each other and with the counter.
fn assert_consistent(t: &Topics) {
    let by_topic: usize = t.subscribers.values().map(HashSet::len).sum();
    let by_conn: usize = t.by_connection.values().map(HashSet::len).sum();
    assert_eq!(by_topic, t.subscription_count());
    assert_eq!(by_conn, t.subscription_count());
    assert!(t.subscribers.values().all(|s| !s.is_empty()));
    assert!(t.by_connection.values().all(|s| !s.is_empty()));
    for (id, own) in &t.by_connection {
        for topic in own {
            assert!(t.subscribers[&**topic].contains(id));
        }
    }
}

#[test]
fn subscribing_twice_is_reported_and_counted_once() {
    let mut t = Topics::new();
    assert_eq!(t.subscribe(conn(1), "a"), Ok(true));
    assert_eq!(t.subscribe(conn(1), "a"), Ok(false));
    assert_eq!((t.topic_count(), t.subscription_count()), (1, 1));
    assert!(t.is_subscribed(conn(1), "a"));
    assert!(!t.is_subscribed(conn(2), "a"));
    assert_consistent(&t);
}

#[test]
fn a_topic_name_is_stored_once_for_both_maps() {
    let mut t = Topics::new();
    t.subscribe(conn(1), "shared").unwrap();
    t.subscribe(conn(2), "shared").unwrap();
    let (key, _) = t.subscribers.get_key_value("shared").unwrap();
    // the map's key and the two connections' entries
    assert_eq!(Rc::strong_count(key), 3);
}

#[test]
fn unsubscribing_forgets_empty_topics() {
    let mut t = Topics::new();
    t.subscribe(conn(1), "a").unwrap();
    t.subscribe(conn(2), "a").unwrap();
    assert!(t.unsubscribe(conn(1), "a"));
    assert!(!t.unsubscribe(conn(1), "a"));
    assert_eq!(t.subscribers("a").collect::<Vec<_>>(), [conn(2)]);
    assert!(t.unsubscribe(conn(2), "a"));
    assert_eq!((t.topic_count(), t.subscription_count()), (0, 0));
    assert!(t.by_connection.is_empty());
    assert_consistent(&t);
}

#[test]
fn removing_a_connection_leaves_the_others_consistent() {
    let mut t = Topics::new();
    for topic in ["a", "b", "c"] {
        t.subscribe(conn(1), topic).unwrap();
    }
    t.subscribe(conn(2), "b").unwrap();
    t.remove_connection(conn(1));
    assert_eq!((t.topic_count(), t.subscription_count()), (1, 1));
    assert_eq!(t.topics_of(conn(1)).count(), 0);
    assert_eq!(t.topics_of(conn(2)).collect::<Vec<_>>(), ["b"]);
    assert_consistent(&t);
    t.remove_connection(conn(2));
    t.remove_connection(conn(3)); // never subscribed: nothing happens
    assert_eq!((t.topic_count(), t.subscription_count()), (0, 0));
    assert_consistent(&t);
}

#[test]
fn the_per_connection_cap_refuses_with_its_limit() {
    let mut t = Topics::with_limits(limits(100, 2, 100));
    t.subscribe(conn(1), "a").unwrap();
    t.subscribe(conn(1), "b").unwrap();
    let refused = t.subscribe(conn(1), "c");
    assert_eq!(refused, Err(SubscribeError::TooManySubscriptions(2)));
    assert!(refused.unwrap_err().to_string().contains("at most 2"));
    // already subscribed is still fine, and another connection is not capped
    assert_eq!(t.subscribe(conn(1), "a"), Ok(false));
    assert_eq!(t.subscribe(conn(2), "c"), Ok(true));
    // unsubscribing makes room again
    assert!(t.unsubscribe(conn(1), "a"));
    assert_eq!(t.subscribe(conn(1), "c"), Ok(true));
    assert_eq!(t.refused_count(), 1);
    assert_consistent(&t);
}

#[test]
fn the_topic_cap_refuses_new_topics_but_not_existing_ones() {
    let mut t = Topics::with_limits(limits(2, 10, 100));
    t.subscribe(conn(1), "a").unwrap();
    t.subscribe(conn(1), "b").unwrap();
    let refused = t.subscribe(conn(2), "c");
    assert_eq!(refused, Err(SubscribeError::TooManyTopics(2)));
    assert!(refused.unwrap_err().to_string().contains("at most 2"));
    assert_eq!(t.check_new_subscriber("c"), refused.map(|_| ()));
    assert_eq!(t.subscribe(conn(2), "a"), Ok(true));
    assert_eq!(t.check_new_subscriber("b"), Ok(()));
    assert_eq!(t.topic_count(), 2);
    assert_consistent(&t);
}

#[test]
fn a_full_topic_refuses_one_more_subscriber() {
    let mut t = Topics::with_limits(limits(10, 10, 2));
    t.subscribe(conn(1), "room").unwrap();
    t.subscribe(conn(2), "room").unwrap();
    let refused = t.subscribe(conn(3), "room");
    assert_eq!(refused, Err(SubscribeError::TopicFull(2)));
    assert!(refused
        .unwrap_err()
        .to_string()
        .contains("at most 2 subscribers"));
    assert_eq!(t.check_new_subscriber("room"), refused.map(|_| ()));
    assert_eq!(t.subscriber_count("room"), 2);
    assert!(!t.is_subscribed(conn(3), "room"));
    t.remove_connection(conn(1));
    assert_eq!(t.subscribe(conn(3), "room"), Ok(true));
    assert_consistent(&t);
}

#[test]
fn a_hundred_thousand_distinct_topics_come_and_go_on_one_connection() {
    let n = 100_000;
    let mut t = Topics::with_limits(limits(n, n, 1));
    let names: Vec<String> = (0..n).map(|i| format!("topic-{i:06}")).collect();
    for name in &names {
        assert_eq!(t.subscribe(conn(1), name), Ok(true));
    }
    assert_eq!((t.topic_count(), t.subscription_count()), (n, n));
    // in the order subscribed: the quadratic walk the old list made
    for name in &names {
        assert!(t.unsubscribe(conn(1), name));
    }
    assert_eq!((t.topic_count(), t.subscription_count()), (0, 0));
    assert!(t.by_connection.is_empty() && t.subscribers.is_empty());
}

#[test]
fn metrics_count_refusals_without_request_data() {
    let mut t = Topics::with_limits(limits(1, 1, 1));
    t.subscribe(conn(1), "a").unwrap();
    let _ = t.subscribe(conn(1), "secret-topic-name");
    let _ = t.subscribe(conn(2), "a");
    let text = t.to_prometheus();
    assert!(text.contains("edgews_topics 1\n"), "{text}");
    assert!(text.contains("edgews_subscriptions 1\n"), "{text}");
    assert!(
        text.contains("edgews_subscriptions_refused_total 2\n"),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
}
