//! Tests of the sans-I/O Redis link: a fake clock (an `Instant` and
//! offsets), Redis' replies written by hand in RESP2, envelopes made with
//! [`Envelope::encode`].

use super::*;
use crate::redis::backoff::{FIRST_RETRY, MAX_RETRY};
use crate::redis::resp::Value;
use std::collections::HashSet;

/// Our instance id.
const ME: u64 = 0x0123_4567_89ab_cdef;
/// Another instance.
const OTHER: u64 = 0xfeed_face_cafe_beef;
/// A third instance.
const THIRD: u64 = 7;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(url: &str) -> LinkConfig {
    LinkConfig::new(url.parse().expect("a valid URL"))
}

/// Decodes a stream of commands, each an array of bulk strings.
fn commands(mut bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let limits = Limits::default();
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (value, used) = resp::decode(bytes, &limits)
            .expect("valid RESP")
            .expect("whole commands only");
        let args = value
            .into_array()
            .expect("a command is an array")
            .into_iter()
            .map(|arg| match arg {
                Value::Bulk(Some(bytes)) => bytes,
                other => panic!("a command argument is a bulk string, not {other:?}"),
            })
            .collect();
        out.push(args);
        bytes = &bytes[used..];
    }
    out
}

/// A command as [`commands`] gives it.
fn command(args: &[&str]) -> Vec<Vec<u8>> {
    args.iter().map(|arg| arg.as_bytes().to_vec()).collect()
}

/// Writes everything `role` has to write; the commands it was.
fn written(link: &mut Link, role: Role) -> Vec<Vec<Vec<u8>>> {
    let bytes = link.pending_output(role).to_vec();
    link.consume_output(role, bytes.len());
    assert!(link.pending_output(role).is_empty());
    commands(&bytes)
}

/// Whether a command is one of a connection's opening commands.
fn is_opening(command: &[Vec<u8>]) -> bool {
    matches!(command[0].as_slice(), b"AUTH" | b"SELECT" | b"CLIENT")
}

/// Writes `role`'s output and answers `+OK` to each opening command in it,
/// one reply per read; the commands written.
fn open(link: &mut Link, role: Role) -> Vec<Vec<Vec<u8>>> {
    let commands = written(link, role);
    for _ in commands.iter().filter(|c| is_opening(c)) {
        link.handle_input(role, b"+OK\r\n")
            .expect("+OK is accepted");
    }
    commands
}

/// Both connections are due at `now`: starts them, publisher first.
fn connect_both(link: &mut Link, now: Instant) {
    assert_eq!(
        link.poll_action(now),
        Some(Action::Connect(Role::Publisher))
    );
    assert_eq!(
        link.poll_action(now),
        Some(Action::Connect(Role::Subscriber))
    );
    assert_eq!(link.poll_action(now), None);
}

/// A link with both connections open at `t0`, outputs written, events
/// taken.
fn ready_link(config: LinkConfig, t0: Instant) -> Link {
    let mut link = Link::new(config, ME, t0);
    connect_both(&mut link, t0);
    open(&mut link, Role::Publisher);
    open(&mut link, Role::Subscriber);
    assert!(link.is_up());
    assert_eq!(events(&mut link), [LinkEvent::Up]);
    link
}

/// A ready link subscribed to `keys` (subscriptions written).
fn subscribed_link(keys: &[&str], t0: Instant) -> Link {
    let mut link = ready_link(config("redis://localhost"), t0);
    for key in keys {
        link.subscribe(key);
    }
    written(&mut link, Role::Subscriber);
    link
}

fn events(link: &mut Link) -> Vec<LinkEvent> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

/// A pub/sub message push, as Redis sends it.
fn message(channel: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "*3\r\n$7\r\nmessage\r\n${}\r\n{}\r\n${}\r\n",
        channel.len(),
        channel,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

/// A (un)subscription confirmation push: `kind` is `subscribe` or
/// `unsubscribe`, `count` the connection's subscriptions after it.
fn confirmation(kind: &str, channel: &str, count: i64) -> Vec<u8> {
    format!(
        "*3\r\n${}\r\n{kind}\r\n${}\r\n{channel}\r\n:{count}\r\n",
        kind.len(),
        channel.len()
    )
    .into_bytes()
}

/// The envelope of a text message.
fn envelope_of(instance: u64, seq: u64, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Envelope {
        instance,
        seq,
        kind: Kind::Text,
        topic,
        payload,
    }
    .encode(&mut out)
    .expect("encodable");
    out
}

/// A message push on `key` under the default prefix from `instance`.
fn message_from(instance: u64, seq: u64, key: &str, payload: &[u8]) -> Vec<u8> {
    message(
        &format!("edgews:{key}"),
        &envelope_of(instance, seq, key, payload),
    )
}

fn delivered(key: &str, instance: u64, payload: &[u8], missing: u64) -> LinkEvent {
    LinkEvent::Message(Bridged {
        key: key.into(),
        kind: Kind::Text,
        payload: payload.to_vec(),
        instance,
        missing,
    })
}

/// The envelope of the publication at `index` among `commands`, checked to
/// be a PUBLISH on `channel`.
fn published_envelope<'a>(
    commands: &'a [Vec<Vec<u8>>],
    index: usize,
    channel: &str,
) -> Envelope<'a> {
    let args = &commands[index];
    assert_eq!(args.len(), 3, "PUBLISH channel message");
    assert_eq!(args[0], b"PUBLISH");
    assert_eq!(args[1], channel.as_bytes());
    Envelope::decode(&args[2]).expect("our envelope")
}

fn client_name(role: &str) -> String {
    format!("edgews-{ME:016x}-{role}")
}

// --- opening -------------------------------------------------------------

#[test]
fn at_start_both_connections_are_due_publisher_first() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://localhost"), ME, t0);
    assert!(!link.is_up());
    assert_eq!(link.instance(), ME);
    assert_eq!(link.poll_timeout(), Some(t0));
    assert!(!link.is_connecting_or_open(Role::Publisher));
    connect_both(&mut link, t0);
    assert!(link.is_connecting_or_open(Role::Publisher));
    assert!(link.is_connecting_or_open(Role::Subscriber));
    assert_eq!(link.poll_timeout(), Some(t0 + OPEN_TIMEOUT));
    assert_eq!(link.stats(), &LinkStats::default());
    assert!(events(&mut link).is_empty());
}

#[test]
fn without_credentials_the_opening_is_only_client_setname() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://localhost"), ME, t0);
    connect_both(&mut link, t0);
    assert_eq!(
        written(&mut link, Role::Publisher),
        [command(&["CLIENT", "SETNAME", &client_name("publisher")])]
    );
    assert_eq!(
        written(&mut link, Role::Subscriber),
        [command(&["CLIENT", "SETNAME", &client_name("subscriber")])],
        "no keys: no SUBSCRIBE"
    );
}

#[test]
fn the_opening_commands_are_exactly_these_bytes() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://:s3cret@localhost"), 1, t0);
    connect_both(&mut link, t0);
    assert_eq!(
        link.pending_output(Role::Publisher),
        b"*2\r\n$4\r\nAUTH\r\n$6\r\ns3cret\r\n\
          *3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$33\r\nedgews-0000000000000001-publisher\r\n"
    );
}

#[test]
fn a_password_is_sent_with_auth_before_client_setname() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://:s3cret@localhost"), ME, t0);
    connect_both(&mut link, t0);
    for (role, name) in [
        (Role::Publisher, "publisher"),
        (Role::Subscriber, "subscriber"),
    ] {
        assert_eq!(
            written(&mut link, role),
            [
                command(&["AUTH", "s3cret"]),
                command(&["CLIENT", "SETNAME", &client_name(name)]),
            ]
        );
    }
}

#[test]
fn a_user_a_password_and_a_database_open_with_auth_user_pass_then_select() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://app:p%40ss@localhost/2"), ME, t0);
    connect_both(&mut link, t0);
    assert_eq!(
        written(&mut link, Role::Publisher),
        [
            command(&["AUTH", "app", "p@ss"]),
            command(&["SELECT", "2"]),
            command(&["CLIENT", "SETNAME", &client_name("publisher")]),
        ]
    );
}

#[test]
fn database_zero_is_not_selected() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://localhost/0"), ME, t0);
    connect_both(&mut link, t0);
    let commands = written(&mut link, Role::Publisher);
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0][0], b"CLIENT");
}

#[test]
fn the_subscriber_opening_subscribes_permanent_and_subscribed_keys_under_the_prefix() {
    let t0 = Instant::now();
    let mut config = config("redis://:pw@localhost/3");
    config.prefix = "app:".into();
    config.permanent_keys = vec!["*all*".into()];
    let mut link = Link::new(config, ME, t0);
    link.subscribe("news");
    link.subscribe("chat");
    assert!(
        link.pending_output(Role::Subscriber).is_empty(),
        "down: nothing queued"
    );
    connect_both(&mut link, t0);
    let commands = written(&mut link, Role::Subscriber);
    assert_eq!(commands.len(), 4);
    assert_eq!(commands[0], command(&["AUTH", "pw"]));
    assert_eq!(commands[1], command(&["SELECT", "3"]));
    assert_eq!(
        commands[2],
        command(&["CLIENT", "SETNAME", &client_name("subscriber")])
    );
    assert_eq!(commands[3][0], b"SUBSCRIBE");
    let channels: HashSet<&[u8]> = commands[3][1..].iter().map(Vec::as_slice).collect();
    let expected: HashSet<&[u8]> = [&b"app:*all*"[..], b"app:news", b"app:chat"].into();
    assert_eq!(channels, expected);
    assert_eq!(commands[3].len(), 4, "each channel once");
    assert!(
        written(&mut link, Role::Publisher)
            .iter()
            .all(|c| is_opening(c)),
        "the publisher subscribes nothing"
    );
}

#[test]
fn the_subscriber_subscribes_at_most_256_channels_per_subscribe() {
    for (keys, batches) in [
        (1, &[1][..]),
        (256, &[256]),
        (257, &[256, 1]),
        (600, &[256, 256, 88]),
    ] {
        let t0 = Instant::now();
        let mut link = Link::new(config("redis://localhost"), ME, t0);
        let expected: HashSet<Vec<u8>> = (0..keys)
            .map(|i| {
                link.subscribe(&format!("k{i}"));
                format!("edgews:k{i}").into_bytes()
            })
            .collect();
        connect_both(&mut link, t0);
        let commands = written(&mut link, Role::Subscriber);
        assert_eq!(commands[0][0], b"CLIENT");
        let subscribes = &commands[1..];
        let sizes: Vec<usize> = subscribes.iter().map(|c| c.len() - 1).collect();
        assert_eq!(sizes, batches, "{keys} keys");
        let mut channels = HashSet::new();
        for subscribe in subscribes {
            assert_eq!(subscribe[0], b"SUBSCRIBE");
            for channel in &subscribe[1..] {
                assert!(channels.insert(channel.clone()), "subscribed twice");
            }
        }
        assert_eq!(channels, expected);
    }
}

// --- up and down ---------------------------------------------------------

#[test]
fn ok_replies_to_the_opening_make_both_ready_and_the_link_up() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://u:pw@localhost/1"), ME, t0);
    connect_both(&mut link, t0);
    written(&mut link, Role::Publisher);
    link.handle_input(Role::Publisher, b"+OK\r\n+OK\r\n")
        .unwrap();
    assert!(!link.is_up(), "an opening reply is missing");
    link.handle_input(Role::Publisher, b"+OK\r\n").unwrap();
    assert!(!link.is_up(), "the subscriber is not ready");
    assert!(events(&mut link).is_empty());
    assert_eq!(link.poll_timeout(), Some(t0 + OPEN_TIMEOUT));
    open(&mut link, Role::Subscriber);
    assert!(link.is_up());
    assert_eq!(events(&mut link), [LinkEvent::Up]);
    assert_eq!(link.poll_timeout(), None, "nothing to wait for");
    assert_eq!(link.poll_action(t0 + Duration::from_secs(3600)), None);
}

#[test]
fn a_disconnect_of_either_connection_takes_the_link_down_once() {
    let t0 = Instant::now();
    for role in Role::BOTH {
        let mut link = ready_link(config("redis://localhost"), t0);
        link.handle_disconnect(role, t0, Failure::io("reset"));
        assert!(!link.is_up());
        assert!(!link.is_connecting_or_open(role));
        assert_eq!(events(&mut link), [LinkEvent::Down]);
        let other = Role::BOTH[1 - role.index()];
        link.handle_disconnect(other, t0, Failure::io("reset"));
        assert!(events(&mut link).is_empty(), "already down");
    }
}

#[test]
fn the_link_comes_up_again_when_the_lost_connection_is_back() {
    let t0 = Instant::now();
    let mut link = ready_link(config("redis://localhost"), t0);
    link.handle_disconnect(Role::Subscriber, t0, Failure::io("reset"));
    assert_eq!(events(&mut link), [LinkEvent::Down]);
    let retry = t0 + FIRST_RETRY;
    assert_eq!(
        link.poll_action(retry),
        Some(Action::Connect(Role::Subscriber))
    );
    open(&mut link, Role::Subscriber);
    assert!(link.is_up());
    assert_eq!(events(&mut link), [LinkEvent::Up]);
}

#[test]
fn reconnects_are_counted_from_the_second_attempt_of_each_connection() {
    let t0 = Instant::now();
    let mut link = ready_link(config("redis://localhost"), t0);
    assert_eq!(link.stats().reconnects, 0);
    link.handle_disconnect(Role::Publisher, t0, Failure::io("reset"));
    assert_eq!(link.stats().reconnects, 0, "counted when tried");
    let t1 = t0 + FIRST_RETRY;
    assert_eq!(link.poll_action(t1), Some(Action::Connect(Role::Publisher)));
    assert_eq!(link.stats().reconnects, 1);
    link.handle_disconnect(Role::Subscriber, t1, Failure::io("reset"));
    let t2 = t1 + FIRST_RETRY;
    assert_eq!(
        link.poll_action(t2),
        Some(Action::Connect(Role::Subscriber))
    );
    assert_eq!(link.stats().reconnects, 2);
}

#[test]
fn a_lost_connection_is_retried_after_its_back_off() {
    let t0 = Instant::now();
    let mut link = ready_link(config("redis://localhost"), t0);
    let t1 = t0 + Duration::from_secs(1);
    link.handle_disconnect(Role::Publisher, t1, Failure::io("reset"));
    let retry = link.poll_timeout().expect("a retry is due");
    assert!(
        retry >= t1 + FIRST_RETRY / 2 && retry <= t1 + FIRST_RETRY,
        "the first retry waits half to all of {FIRST_RETRY:?}: {:?}",
        retry - t1
    );
    assert_eq!(link.poll_action(t1), None);
    assert_eq!(link.poll_action(retry - Duration::from_nanos(1)), None);
    assert_eq!(
        link.poll_action(retry),
        Some(Action::Connect(Role::Publisher))
    );
    assert_eq!(link.poll_timeout(), Some(retry + OPEN_TIMEOUT));
}

/// The delay of the retry after `role` fails now, with the other side
/// ready.
fn retry_delay(link: &mut Link, role: Role, now: Instant) -> Duration {
    link.handle_disconnect(role, now, Failure::io("refused"));
    let retry = link.poll_timeout().expect("a retry is due");
    assert_eq!(link.poll_action(retry), Some(Action::Connect(role)));
    retry - now
}

#[test]
fn the_back_off_doubles_while_attempts_fail_and_starts_over_after_a_success() {
    let t0 = Instant::now();
    let mut link = ready_link(config("redis://localhost"), t0);
    let first = retry_delay(&mut link, Role::Publisher, t0);
    assert!(first >= ms(50) && first <= ms(100), "{first:?}");
    let now = t0 + first;
    let second = retry_delay(&mut link, Role::Publisher, now);
    assert!(second >= ms(100) && second <= ms(200), "{second:?}");
    let now = now + second;
    let third = retry_delay(&mut link, Role::Publisher, now);
    assert!(third >= ms(200) && third <= ms(400), "{third:?}");
    let now = now + third;
    open(&mut link, Role::Publisher);
    assert!(link.is_up());
    let after_success = retry_delay(&mut link, Role::Publisher, now);
    assert!(
        after_success >= ms(50) && after_success <= ms(100),
        "{after_success:?}"
    );
}

#[test]
fn a_partial_reply_before_a_disconnect_does_not_spoil_the_next_connection() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://localhost"), ME, t0);
    connect_both(&mut link, t0);
    open(&mut link, Role::Subscriber);
    link.handle_input(Role::Publisher, b"+O").unwrap();
    link.publish("news", Kind::Text, b"lost");
    link.handle_disconnect(Role::Publisher, t0, Failure::io("reset"));
    assert!(link.pending_output(Role::Publisher).is_empty());
    assert_eq!(
        link.poll_action(t0 + FIRST_RETRY),
        Some(Action::Connect(Role::Publisher))
    );
    assert_eq!(
        written(&mut link, Role::Publisher),
        [command(&["CLIENT", "SETNAME", &client_name("publisher")])],
        "the old output is gone"
    );
    link.handle_input(Role::Publisher, b"+OK\r\n").unwrap();
    assert!(link.is_up());
}

#[test]
fn input_on_a_connection_that_is_down_is_ignored() {
    let t0 = Instant::now();
    let mut link = ready_link(config("redis://localhost"), t0);
    link.handle_disconnect(Role::Publisher, t0, Failure::io("reset"));
    assert_eq!(
        link.handle_input(Role::Publisher, b":1\r\n?bad\r\n"),
        Ok(())
    );
    link.handle_disconnect(Role::Subscriber, t0, Failure::io("reset"));
    assert_eq!(
        link.handle_input(Role::Subscriber, &message_from(OTHER, 1, "news", b"x")),
        Ok(())
    );
    assert_eq!(link.stats(), &LinkStats::default());
    assert_eq!(events(&mut link), [LinkEvent::Down]);
}

// --- credentials -----------------------------------------------------------

#[test]
fn a_wrong_password_is_an_auth_failure_retried_after_the_longest_delay() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://:wrong@localhost"), ME, t0);
    connect_both(&mut link, t0);
    written(&mut link, Role::Publisher);
    let failure = link
        .handle_input(
            Role::Publisher,
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n\
              -NOAUTH Authentication required.\r\n",
        )
        .expect_err("refused credentials");
    assert!(failure.auth);
    assert!(failure.reason.starts_with("WRONGPASS"), "{failure:?}");
    let t1 = t0 + Duration::from_secs(1);
    link.handle_disconnect(Role::Publisher, t1, failure);
    assert_eq!(MAX_RETRY, Duration::from_secs(5));
    assert_eq!(link.poll_timeout(), Some(t1 + MAX_RETRY), "not 100 ms");
    assert_eq!(link.poll_action(t1 + FIRST_RETRY), None);
    assert_eq!(link.poll_action(t1 + MAX_RETRY - ms(1)), None);
    assert_eq!(
        link.poll_action(t1 + MAX_RETRY),
        Some(Action::Connect(Role::Publisher))
    );
}

#[test]
fn any_error_on_auth_is_an_auth_failure() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://:pw@localhost"), ME, t0);
    connect_both(&mut link, t0);
    let failure = link
        .handle_input(
            Role::Subscriber,
            b"-ERR AUTH <password> called without any password configured\r\n",
        )
        .expect_err("refused");
    assert!(failure.auth);
}

#[test]
fn noauth_on_client_setname_without_a_password_is_an_auth_failure() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://localhost"), ME, t0);
    connect_both(&mut link, t0);
    for role in Role::BOTH {
        let failure = link
            .handle_input(role, b"-NOAUTH Authentication required.\r\n")
            .expect_err("credentials wanted");
        assert!(failure.auth, "{role:?}");
        link.handle_disconnect(role, t0, failure);
        assert!(!link.is_connecting_or_open(role));
    }
    assert_eq!(link.poll_timeout(), Some(t0 + MAX_RETRY));
}

#[test]
fn a_refused_client_setname_is_harmless() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://localhost"), ME, t0);
    connect_both(&mut link, t0);
    for role in Role::BOTH {
        assert_eq!(
            link.handle_input(role, b"-ERR unknown command 'CLIENT'\r\n"),
            Ok(())
        );
    }
    assert!(link.is_up());
    assert_eq!(events(&mut link), [LinkEvent::Up]);
}

#[test]
fn a_refused_select_is_a_failure_but_not_an_auth_one() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://:pw@localhost/99"), ME, t0);
    connect_both(&mut link, t0);
    let failure = link
        .handle_input(
            Role::Publisher,
            b"+OK\r\n-ERR DB index is out of range\r\n+OK\r\n",
        )
        .expect_err("a bad database");
    assert!(!failure.auth);
    assert!(failure.reason.contains("out of range"), "{failure:?}");
    assert!(!link.is_up());
    link.handle_disconnect(Role::Publisher, t0, failure);
    let retry = link.poll_timeout().unwrap();
    assert!(retry <= t0 + FIRST_RETRY, "an ordinary back-off");
}

// --- the opening timeout ---------------------------------------------------

#[test]
fn an_opening_connection_without_answers_is_aborted_after_open_timeout() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://:pw@localhost"), ME, t0);
    connect_both(&mut link, t0);
    assert_eq!(OPEN_TIMEOUT, Duration::from_secs(10));
    // an answer to the first opening command only does not make it open
    link.handle_input(Role::Subscriber, b"+OK\r\n").unwrap();
    assert_eq!(link.poll_action(t0 + OPEN_TIMEOUT - ms(1)), None);
    let deadline = t0 + OPEN_TIMEOUT;
    let Some(Action::Abort(Role::Publisher, failure)) = link.poll_action(deadline) else {
        panic!("the publisher is aborted first");
    };
    assert!(!failure.auth);
    link.handle_disconnect(Role::Publisher, deadline, failure);
    let Some(Action::Abort(Role::Subscriber, failure)) = link.poll_action(deadline) else {
        panic!("then the subscriber");
    };
    link.handle_disconnect(Role::Subscriber, deadline, failure);
    assert_eq!(link.poll_action(deadline), None);
    assert_eq!(link.stats().reconnects, 0);
}

#[test]
fn an_open_connection_is_never_aborted() {
    let t0 = Instant::now();
    let mut link = ready_link(config("redis://localhost"), t0);
    assert_eq!(link.poll_action(t0 + OPEN_TIMEOUT * 100), None);
    assert!(link.is_up());
}

// --- publishing ------------------------------------------------------------

#[test]
fn a_publication_over_max_message_is_oversize_and_takes_no_number() {
    let t0 = Instant::now();
    let mut config = config("redis://localhost");
    config.max_message = 10;
    let mut link = ready_link(config, t0);
    assert_eq!(
        link.publish("news", Kind::Text, &[b'x'; 11]),
        Published::Oversize
    );
    assert!(link.pending_output(Role::Publisher).is_empty());
    assert_eq!(
        link.stats(),
        &LinkStats {
            oversize: 1,
            ..LinkStats::default()
        }
    );
    assert_eq!(
        link.publish("news", Kind::Text, &[b'x'; 10]),
        Published::Queued
    );
    let commands = written(&mut link, Role::Publisher);
    assert_eq!(published_envelope(&commands, 0, "edgews:news").seq, 1);
}

#[test]
fn a_key_too_long_for_the_envelope_is_kept_local_with_nothing_queued() {
    let t0 = Instant::now();
    let mut link = ready_link(config("redis://localhost"), t0);
    let key = "k".repeat(65_536);
    assert_eq!(link.publish(&key, Kind::Text, b"x"), Published::Oversize);
    assert!(link.pending_output(Role::Publisher).is_empty());
    assert_eq!(link.stats().oversize, 1);
    assert!(link.is_flushed());
}

#[test]
fn a_publication_while_the_publisher_is_down_is_lost_but_takes_its_number() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://localhost"), ME, t0);
    assert_eq!(link.publish("news", Kind::Text, b"a"), Published::Lost);
    assert_eq!(
        link.stats(),
        &LinkStats {
            lost_out: 1,
            ..LinkStats::default()
        }
    );
    connect_both(&mut link, t0);
    open(&mut link, Role::Publisher);
    assert_eq!(link.publish("news", Kind::Text, b"b"), Published::Queued);
    let commands = written(&mut link, Role::Publisher);
    assert_eq!(
        published_envelope(&commands, 0, "edgews:news").seq,
        2,
        "subscribers elsewhere see the gap"
    );
}

#[test]
fn a_publication_while_opening_is_queued_after_the_opening_commands() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://:pw@localhost"), ME, t0);
    connect_both(&mut link, t0);
    assert_eq!(link.publish("news", Kind::Text, b"hi"), Published::Queued);
    assert!(!link.is_flushed());
    let commands = written(&mut link, Role::Publisher);
    assert_eq!(commands.len(), 3);
    assert_eq!(commands[0][0], b"AUTH");
    assert_eq!(commands[1][0], b"CLIENT");
    assert_eq!(
        published_envelope(&commands, 2, "edgews:news").payload,
        b"hi"
    );
    // Redis answers in order: the opening replies, then the publication's
    link.handle_input(Role::Publisher, b"+OK\r\n+OK\r\n:0\r\n")
        .unwrap();
    assert_eq!(link.stats().published, 1);
    assert!(link.is_flushed());
}

#[test]
fn a_queued_publication_is_a_publish_command_with_our_envelope() {
    let t0 = Instant::now();
    let mut config = config("redis://localhost");
    config.prefix = "app:".into();
    let mut link = ready_link(config, t0);
    let payload = br#"{"type":"join","user":"ann"}"#;
    assert_eq!(link.publish("room", Kind::Chat, payload), Published::Queued);
    assert_eq!(
        link.publish("room", Kind::Binary, b"\xff"),
        Published::Queued
    );
    assert_eq!(link.publish("other", Kind::Text, b"t"), Published::Queued);
    let commands = written(&mut link, Role::Publisher);
    assert_eq!(commands.len(), 3);
    assert_eq!(
        published_envelope(&commands, 0, "app:room"),
        Envelope {
            instance: ME,
            seq: 1,
            kind: Kind::Chat,
            topic: "room",
            payload,
        }
    );
    assert_eq!(
        published_envelope(&commands, 1, "app:room"),
        Envelope {
            instance: ME,
            seq: 2,
            kind: Kind::Binary,
            topic: "room",
            payload: b"\xff",
        }
    );
    assert_eq!(
        published_envelope(&commands, 2, "app:other"),
        Envelope {
            instance: ME,
            seq: 1,
            kind: Kind::Text,
            topic: "other",
            payload: b"t",
        },
        "numbered per key"
    );
}

#[test]
fn a_queue_holds_what_fits_its_bound_and_writing_frees_room() {
    let t0 = Instant::now();
    let mut config = config("redis://localhost");
    // a PUBLISH of a 100-byte payload on "k" is 162 bytes: two fit
    config.queue_bytes = 400;
    let mut link = ready_link(config, t0);
    let payload = [b'x'; 100];
    assert_eq!(link.publish("k", Kind::Text, &payload), Published::Queued);
    assert_eq!(link.pending_output(Role::Publisher).len(), 162);
    assert_eq!(link.publish("k", Kind::Text, &payload), Published::Queued);
    assert_eq!(link.publish("k", Kind::Text, &payload), Published::Lost);
    assert_eq!(link.stats().lost_out, 1);
    link.consume_output(Role::Publisher, 200);
    assert_eq!(
        link.publish("k", Kind::Text, &payload),
        Published::Queued,
        "half written: room for one more"
    );
    let rest = link.pending_output(Role::Publisher).len();
    link.consume_output(Role::Publisher, rest);
    assert!(link.pending_output(Role::Publisher).is_empty());
    assert_eq!(link.stats().lost_out, 1);
}

#[test]
fn a_second_publication_while_the_first_is_unsent_finds_a_small_queue_full() {
    let t0 = Instant::now();
    let mut config = config("redis://localhost");
    config.queue_bytes = 200;
    let mut link = ready_link(config, t0);
    let payload = [b'x'; 100];
    assert_eq!(link.publish("k", Kind::Text, &payload), Published::Queued);
    assert_eq!(link.publish("k", Kind::Text, &payload), Published::Lost);
    link.consume_output(Role::Publisher, 100);
    assert_eq!(
        link.publish("k", Kind::Text, &payload),
        Published::Lost,
        "partly written is not empty"
    );
    let before = link.pending_output(Role::Publisher).to_vec();
    link.consume_output(Role::Publisher, before.len());
    assert_eq!(link.publish("k", Kind::Text, &payload), Published::Queued);
    let commands = written(&mut link, Role::Publisher);
    assert_eq!(
        published_envelope(&commands, 0, "edgews:k").seq,
        4,
        "lost publications took their numbers"
    );
    assert_eq!(link.stats().lost_out, 2);
}

#[test]
fn an_empty_queue_takes_one_message_larger_than_its_bound() {
    let t0 = Instant::now();
    let mut config = config("redis://localhost");
    config.max_message = 1000;
    config.queue_bytes = 50;
    let mut link = ready_link(config, t0);
    assert_eq!(
        link.publish("k", Kind::Binary, &[0; 500]),
        Published::Queued
    );
    assert!(link.pending_output(Role::Publisher).len() > 500);
    assert_eq!(link.publish("k", Kind::Binary, b"x"), Published::Lost);
}

#[test]
fn output_written_in_pieces_goes_out_whole_and_in_order() {
    let t0 = Instant::now();
    let mut link = ready_link(config("redis://localhost"), t0);
    let payload = [b'x'; 10_000];
    for _ in 0..20 {
        assert_eq!(link.publish("k", Kind::Text, &payload), Published::Queued);
    }
    let mut wire = Vec::new();
    let mut turns = 0;
    while !link.pending_output(Role::Publisher).is_empty() {
        let pending = link.pending_output(Role::Publisher);
        let n = pending.len().min(7_000);
        wire.extend_from_slice(&pending[..n]);
        link.consume_output(Role::Publisher, n);
        turns += 1;
        if turns == 20 {
            // past the point where written bytes are dropped from the buffer
            assert_eq!(link.publish("k", Kind::Text, &payload), Published::Queued);
        }
    }
    link.consume_output(Role::Publisher, 100);
    assert!(link.pending_output(Role::Publisher).is_empty());
    let commands = commands(&wire);
    let seqs: Vec<u64> = (0..commands.len())
        .map(|i| published_envelope(&commands, i, "edgews:k").seq)
        .collect();
    assert_eq!(seqs, (1..=21).collect::<Vec<_>>());
}

/// The bound is documented as "an empty queue takes any one message", and
/// `validate` accepts `queue_bytes == max_message` on the strength of it:
/// while the publisher connects, its unwritten opening commands are no
/// publication, so a publication of `max_message` bytes made then is
/// queued.
#[test]
fn a_largest_publication_while_connecting_fits_a_queue_of_max_message_bytes() {
    let t0 = Instant::now();
    let mut config = config("redis://:pw@localhost");
    config.max_message = 1000;
    config.queue_bytes = 1000;
    assert_eq!(config.validate(), Ok(()));
    let mut link = Link::new(config, ME, t0);
    connect_both(&mut link, t0);
    assert_eq!(
        link.publish("k", Kind::Binary, &[0; 1000]),
        Published::Queued
    );
}

#[test]
fn integer_replies_count_published_and_error_replies_count_lost() {
    let t0 = Instant::now();
    let mut link = ready_link(config("redis://localhost"), t0);
    for _ in 0..3 {
        assert_eq!(link.publish("news", Kind::Text, b"x"), Published::Queued);
    }
    written(&mut link, Role::Publisher);
    link.handle_input(Role::Publisher, b":1\r\n:0\r\n").unwrap();
    assert!(!link.is_flushed());
    link.handle_input(Role::Publisher, b"-ERR something\r\n")
        .unwrap();
    assert!(link.is_flushed());
    assert_eq!(
        link.stats(),
        &LinkStats {
            published: 2,
            lost_out: 1,
            ..LinkStats::default()
        }
    );
    link.handle_disconnect(Role::Publisher, t0, Failure::io("reset"));
    assert_eq!(link.stats().lost_out, 1, "nothing was unanswered");
}

#[test]
fn a_disconnect_counts_queued_and_unanswered_publications_as_lost() {
    let t0 = Instant::now();
    let mut link = ready_link(config("redis://localhost"), t0);
    for _ in 0..3 {
        link.publish("news", Kind::Text, b"sent");
    }
    written(&mut link, Role::Publisher);
    link.handle_input(Role::Publisher, b":1\r\n").unwrap();
    link.publish("news", Kind::Text, b"queued");
    assert!(!link.is_flushed());
    link.handle_disconnect(Role::Publisher, t0, Failure::io("reset"));
    assert!(link.is_flushed(), "down: nothing to wait for");
    assert_eq!(
        link.stats(),
        &LinkStats {
            published: 1,
            lost_out: 3,
            ..LinkStats::default()
        }
    );
    // the next connection starts with nothing in flight
    assert_eq!(
        link.poll_action(t0 + FIRST_RETRY),
        Some(Action::Connect(Role::Publisher))
    );
    open(&mut link, Role::Publisher);
    link.publish("news", Kind::Text, b"again");
    let commands = written(&mut link, Role::Publisher);
    assert_eq!(published_envelope(&commands, 0, "edgews:news").seq, 5);
    link.handle_input(Role::Publisher, b":1\r\n").unwrap();
    assert!(link.is_flushed());
    assert_eq!(link.stats().published, 2);
    assert_eq!(link.stats().lost_out, 3);
}

#[test]
fn an_unexpected_reply_to_publish_is_a_failure() {
    let t0 = Instant::now();
    let mut link = ready_link(config("redis://localhost"), t0);
    link.publish("news", Kind::Text, b"x");
    let failure = link
        .handle_input(Role::Publisher, b"+OK\r\n")
        .expect_err("PUBLISH answers an integer");
    assert!(!failure.auth);
}

// --- subscriptions -----------------------------------------------------------

#[test]
fn the_first_subscribe_subscribes_the_channel_and_the_last_unsubscribe_unsubscribes_it() {
    let t0 = Instant::now();
    let mut link = ready_link(config("redis://localhost"), t0);
    link.subscribe("news");
    assert_eq!(
        written(&mut link, Role::Subscriber),
        [command(&["SUBSCRIBE", "edgews:news"])]
    );
    link.subscribe("news");
    assert!(link.pending_output(Role::Subscriber).is_empty());
    assert_eq!(link.keys().collect::<Vec<_>>(), ["news"]);
    link.unsubscribe("news");
    assert!(link.pending_output(Role::Subscriber).is_empty());
    assert_eq!(link.keys().count(), 1, "one subscriber left");
    link.unsubscribe("news");
    assert_eq!(
        written(&mut link, Role::Subscriber),
        [command(&["UNSUBSCRIBE", "edgews:news"])]
    );
    assert_eq!(link.keys().count(), 0);
    assert!(
        link.pending_output(Role::Publisher).is_empty(),
        "subscriptions are the subscriber's"
    );
}

#[test]
fn unsubscribing_a_key_not_subscribed_does_nothing() {
    let t0 = Instant::now();
    let mut link = ready_link(config("redis://localhost"), t0);
    link.unsubscribe("never");
    assert!(link.pending_output(Role::Subscriber).is_empty());
    assert_eq!(link.keys().count(), 0);
}

#[test]
fn a_subscribe_while_the_subscriber_is_opening_is_queued_after_its_opening() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://localhost"), ME, t0);
    link.subscribe("old");
    connect_both(&mut link, t0);
    link.subscribe("new");
    link.unsubscribe("old");
    assert_eq!(
        written(&mut link, Role::Subscriber),
        [
            command(&["CLIENT", "SETNAME", &client_name("subscriber")]),
            command(&["SUBSCRIBE", "edgews:old"]),
            command(&["SUBSCRIBE", "edgews:new"]),
            command(&["UNSUBSCRIBE", "edgews:old"]),
        ]
    );
}

#[test]
fn nothing_is_queued_while_the_subscriber_is_down_but_the_next_connection_subscribes_everything() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["kept", "dropped"], t0);
    link.handle_disconnect(Role::Subscriber, t0, Failure::io("reset"));
    link.subscribe("added");
    link.unsubscribe("dropped");
    assert!(link.pending_output(Role::Subscriber).is_empty());
    assert_eq!(
        link.poll_action(t0 + FIRST_RETRY),
        Some(Action::Connect(Role::Subscriber))
    );
    let commands = written(&mut link, Role::Subscriber);
    assert_eq!(commands.len(), 2);
    assert_eq!(commands[1][0], b"SUBSCRIBE");
    let channels: HashSet<&[u8]> = commands[1][1..].iter().map(Vec::as_slice).collect();
    assert_eq!(channels, [&b"edgews:kept"[..], b"edgews:added"].into());
}

#[test]
fn permanent_keys_are_kept_through_balanced_subscribes_and_unsubscribes() {
    let t0 = Instant::now();
    let mut config = config("redis://localhost");
    config.permanent_keys = vec!["all".into()];
    let mut link = ready_link(config, t0);
    assert_eq!(link.keys().collect::<Vec<_>>(), ["all"]);
    link.subscribe("all");
    link.unsubscribe("all");
    assert!(link.pending_output(Role::Subscriber).is_empty());
    assert_eq!(link.keys().collect::<Vec<_>>(), ["all"]);
    link.handle_input(Role::Subscriber, &message_from(OTHER, 1, "all", b"hey"))
        .unwrap();
    assert_eq!(events(&mut link), [delivered("all", OTHER, b"hey", 0)]);
}

#[test]
fn a_subscribe_confirmation_for_a_subscribed_key_is_reported() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    link.subscribe("gone");
    link.unsubscribe("gone");
    let mut input = confirmation("subscribe", "edgews:news", 1);
    input.extend(confirmation("subscribe", "edgews:gone", 2));
    input.extend(confirmation("unsubscribe", "edgews:gone", 1));
    input.extend(confirmation("subscribe", "elsewhere:news", 2));
    link.handle_input(Role::Subscriber, &input).unwrap();
    assert_eq!(
        events(&mut link),
        [LinkEvent::Subscribed("news".into())],
        "only for keys subscribed now"
    );
    assert_eq!(link.stats(), &LinkStats::default());
}

#[test]
fn a_push_before_the_subscriber_opening_replies_is_a_failure() {
    let t0 = Instant::now();
    let mut link = Link::new(config("redis://localhost"), ME, t0);
    link.subscribe("news");
    connect_both(&mut link, t0);
    let failure = link
        .handle_input(
            Role::Subscriber,
            &confirmation("subscribe", "edgews:news", 1),
        )
        .expect_err("the opening reply comes first");
    assert!(!failure.auth);
}

#[test]
fn a_refused_subscription_is_a_failure() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    let failure = link
        .handle_input(Role::Subscriber, b"-ERR max number of clients reached\r\n")
        .expect_err("refused");
    assert!(!failure.auth);
}

#[test]
fn a_subscription_the_acl_forbids_is_retried_at_the_slow_pace_not_in_a_storm() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    let failure = link
        .handle_input(
            Role::Subscriber,
            b"-NOPERM this user has no permissions to access the 'edgews:news' channel\r\n",
        )
        .expect_err("refused");
    assert!(failure.auth, "only an operator can fix an ACL");
    link.handle_disconnect(Role::Subscriber, t0, failure);
    assert_eq!(link.poll_timeout(), Some(t0 + MAX_RETRY));
}

// --- receiving -------------------------------------------------------------

#[test]
fn messages_from_another_instance_in_order_are_delivered() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    let mut input = message_from(OTHER, 5, "news", b"first seen");
    input.extend(message_from(OTHER, 6, "news", b"next"));
    let mut binary = Vec::new();
    Envelope {
        instance: OTHER,
        seq: 7,
        kind: Kind::Binary,
        topic: "news",
        payload: b"\x00\xff",
    }
    .encode(&mut binary)
    .unwrap();
    input.extend(message("edgews:news", &binary));
    link.handle_input(Role::Subscriber, &input).unwrap();
    assert_eq!(
        events(&mut link),
        [
            delivered("news", OTHER, b"first seen", 0),
            delivered("news", OTHER, b"next", 0),
            LinkEvent::Message(Bridged {
                key: "news".into(),
                kind: Kind::Binary,
                payload: b"\x00\xff".to_vec(),
                instance: OTHER,
                missing: 0,
            }),
        ]
    );
    assert_eq!(
        link.stats(),
        &LinkStats {
            received: 3,
            ..LinkStats::default()
        }
    );
}

#[test]
fn senders_and_keys_are_numbered_apart() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["a", "b"], t0);
    let mut input = Vec::new();
    for (instance, seq, key) in [
        (OTHER, 1, "a"),
        (THIRD, 1, "a"),
        (OTHER, 1, "b"),
        (OTHER, 2, "a"),
        (THIRD, 2, "a"),
        (OTHER, 2, "b"),
    ] {
        input.extend(message_from(instance, seq, key, b"m"));
    }
    link.handle_input(Role::Subscriber, &input).unwrap();
    let events = events(&mut link);
    assert_eq!(events.len(), 6);
    assert!(events
        .iter()
        .all(|e| matches!(e, LinkEvent::Message(Bridged { missing: 0, .. }))));
    assert_eq!(link.stats().lost_in, 0);
}

#[test]
fn a_gap_is_reported_with_the_next_message_and_counted() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    let mut input = message_from(OTHER, 1, "news", b"one");
    input.extend(message_from(OTHER, 4, "news", b"four"));
    input.extend(message_from(OTHER, 5, "news", b"five"));
    link.handle_input(Role::Subscriber, &input).unwrap();
    assert_eq!(
        events(&mut link),
        [
            delivered("news", OTHER, b"one", 0),
            delivered("news", OTHER, b"four", 2),
            delivered("news", OTHER, b"five", 0),
        ]
    );
    assert_eq!(
        link.stats(),
        &LinkStats {
            received: 3,
            lost_in: 2,
            ..LinkStats::default()
        }
    );
}

#[test]
fn a_duplicate_is_dropped_and_counted() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    let mut input = message_from(OTHER, 1, "news", b"one");
    input.extend(message_from(OTHER, 2, "news", b"two"));
    input.extend(message_from(OTHER, 3, "news", b"three"));
    input.extend(message_from(OTHER, 3, "news", b"three again"));
    input.extend(message_from(OTHER, 2, "news", b"older"));
    input.extend(message_from(OTHER, 4, "news", b"four"));
    link.handle_input(Role::Subscriber, &input).unwrap();
    assert_eq!(
        events(&mut link),
        [
            delivered("news", OTHER, b"one", 0),
            delivered("news", OTHER, b"two", 0),
            delivered("news", OTHER, b"three", 0),
            delivered("news", OTHER, b"four", 0),
        ],
        "a duplicate changes nothing"
    );
    assert_eq!(
        link.stats(),
        &LinkStats {
            received: 4,
            duplicates: 2,
            ..LinkStats::default()
        }
    );
}

/// Number 1 again is the sender's numbering starting over (its table of
/// keys passed `MAX_NUMBERED_KEYS`), not a duplicate: delivered. Even right
/// after number 1, which cannot be told from a repeat of it.
#[test]
fn number_one_after_others_is_a_restart_and_is_delivered() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    let mut input = message_from(OTHER, 1, "news", b"one");
    input.extend(message_from(OTHER, 1, "news", b"one again"));
    input.extend(message_from(OTHER, 5, "news", b"five"));
    input.extend(message_from(OTHER, 1, "news", b"restart"));
    input.extend(message_from(OTHER, 2, "news", b"two"));
    link.handle_input(Role::Subscriber, &input).unwrap();
    assert_eq!(
        events(&mut link),
        [
            delivered("news", OTHER, b"one", 0),
            delivered("news", OTHER, b"one again", 0),
            delivered("news", OTHER, b"five", 3),
            delivered("news", OTHER, b"restart", 0),
            delivered("news", OTHER, b"two", 0),
        ]
    );
    assert_eq!(link.stats().duplicates, 0);
    assert_eq!(link.stats().lost_in, 3);
}

#[test]
fn our_own_messages_coming_back_are_skipped() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    let mut input = message_from(ME, 1, "news", b"mine");
    input.extend(message_from(ME, 1, "news", b"mine again"));
    link.handle_input(Role::Subscriber, &input).unwrap();
    assert!(events(&mut link).is_empty());
    assert_eq!(
        link.stats(),
        &LinkStats {
            own: 2,
            ..LinkStats::default()
        }
    );
}

#[test]
fn an_envelope_for_another_topic_than_its_channel_is_invalid() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news", "sport"], t0);
    let input = message("edgews:news", &envelope_of(OTHER, 1, "sport", b"x"));
    link.handle_input(Role::Subscriber, &input).unwrap();
    assert!(events(&mut link).is_empty());
    assert_eq!(
        link.stats(),
        &LinkStats {
            invalid: 1,
            ..LinkStats::default()
        }
    );
    // the sequence state of either key was not touched
    link.handle_input(Role::Subscriber, &message_from(OTHER, 5, "sport", b"y"))
        .unwrap();
    assert_eq!(events(&mut link), [delivered("sport", OTHER, b"y", 0)]);
}

#[test]
fn garbage_on_our_channel_is_invalid() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    let mut bad_utf8 = envelope_of(OTHER, 1, "news", b"ok");
    bad_utf8.extend_from_slice(b"\xff");
    let mut input = message("edgews:news", b"hello from redis-cli");
    input.extend(message("edgews:news", b""));
    input.extend(message("edgews:news", &bad_utf8));
    link.handle_input(Role::Subscriber, &input).unwrap();
    assert!(events(&mut link).is_empty());
    assert_eq!(
        link.stats(),
        &LinkStats {
            invalid: 3,
            ..LinkStats::default()
        }
    );
}

#[test]
fn a_message_on_a_channel_no_longer_subscribed_is_ignored_and_not_counted() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    link.unsubscribe("news");
    let mut input = message_from(OTHER, 1, "news", b"late");
    input.extend(message("edgews:news", b"garbage, late"));
    input.extend(confirmation("unsubscribe", "edgews:news", 0));
    link.handle_input(Role::Subscriber, &input).unwrap();
    assert!(events(&mut link).is_empty());
    assert_eq!(link.stats(), &LinkStats::default());
}

#[test]
fn a_message_on_a_channel_without_our_prefix_is_ignored() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    let payload = envelope_of(OTHER, 1, "news", b"x");
    let mut input = message("other:news", &payload);
    input.extend(message("news", &payload));
    input.extend(message("edgews", &payload));
    link.handle_input(Role::Subscriber, &input).unwrap();
    assert!(events(&mut link).is_empty());
    assert_eq!(link.stats(), &LinkStats::default());
}

#[test]
fn a_malformed_reply_is_a_failure_but_not_an_auth_one() {
    let t0 = Instant::now();
    for role in Role::BOTH {
        let mut link = ready_link(config("redis://localhost"), t0);
        let failure = link
            .handle_input(role, b"?what\r\n")
            .expect_err("not RESP2");
        assert!(!failure.auth, "{role:?}");
    }
}

#[test]
fn a_bulk_string_over_the_input_limit_is_refused_at_its_header() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    let header = format!(
        "*3\r\n$7\r\nmessage\r\n$11\r\nedgews:news\r\n${}\r\n",
        MAX_INPUT_BULK + 1
    );
    let failure = link
        .handle_input(Role::Subscriber, header.as_bytes())
        .expect_err("too long");
    assert!(!failure.auth);
}

/// The events and counters after feeding `pieces` to a fresh link
/// subscribed to "news" with two publications unanswered.
fn outcome<'a>(pieces: impl IntoIterator<Item = (Role, &'a [u8])>) -> (Vec<LinkEvent>, LinkStats) {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    link.publish("news", Kind::Text, b"out");
    link.publish("news", Kind::Text, b"out");
    written(&mut link, Role::Publisher);
    for (role, piece) in pieces {
        link.handle_input(role, piece).expect("valid input");
    }
    (events(&mut link), link.stats().clone())
}

#[test]
fn input_split_at_any_byte_gives_the_same_events_as_whole_input() {
    let mut input = confirmation("subscribe", "edgews:news", 1);
    input.extend(message_from(OTHER, 1, "news", b"one"));
    input.extend(message_from(OTHER, 3, "news", b"three"));
    input.extend(message_from(OTHER, 3, "news", b"three"));
    input.extend(message_from(ME, 1, "news", b"mine"));
    input.extend(message("edgews:news", b"garbage"));
    input.extend(message_from(THIRD, 1, "news", "κόσμε".as_bytes()));
    let sub = |piece| (Role::Subscriber, piece);
    let whole = outcome([sub(input.as_slice())]);
    assert_eq!(
        whole.0,
        [
            LinkEvent::Subscribed("news".into()),
            delivered("news", OTHER, b"one", 0),
            delivered("news", OTHER, b"three", 1),
            delivered("news", THIRD, "κόσμε".as_bytes(), 0),
        ]
    );
    assert_eq!(
        whole.1,
        LinkStats {
            received: 3,
            lost_in: 1,
            duplicates: 1,
            own: 1,
            invalid: 1,
            ..LinkStats::default()
        }
    );
    for cut in 0..=input.len() {
        let (head, tail) = input.split_at(cut);
        assert_eq!(outcome([sub(head), sub(tail)]), whole, "cut at {cut}");
    }
    assert_eq!(
        outcome(input.chunks(1).map(sub)),
        whole,
        "one byte at a time"
    );
}

#[test]
fn publisher_replies_split_at_any_byte_count_the_same() {
    let replies = b":1\r\n-ERR not now\r\n";
    let pieces = replies.chunks(1).map(|piece| (Role::Publisher, piece));
    let (events, stats) = outcome(pieces);
    assert!(events.is_empty());
    assert_eq!(
        stats,
        LinkStats {
            published: 1,
            lost_out: 1,
            ..LinkStats::default()
        }
    );
}

#[test]
fn sequence_state_survives_a_subscriber_reconnection() {
    let t0 = Instant::now();
    let mut link = subscribed_link(&["news"], t0);
    link.handle_input(Role::Subscriber, &message_from(OTHER, 1, "news", b"one"))
        .unwrap();
    assert_eq!(events(&mut link), [delivered("news", OTHER, b"one", 0)]);
    link.handle_disconnect(Role::Subscriber, t0, Failure::io("reset"));
    assert_eq!(events(&mut link), [LinkEvent::Down]);
    assert_eq!(
        link.poll_action(t0 + FIRST_RETRY),
        Some(Action::Connect(Role::Subscriber))
    );
    let commands = open(&mut link, Role::Subscriber);
    assert_eq!(commands[1], command(&["SUBSCRIBE", "edgews:news"]));
    let mut input = confirmation("subscribe", "edgews:news", 1);
    input.extend(message_from(OTHER, 3, "news", b"three"));
    link.handle_input(Role::Subscriber, &input).unwrap();
    assert_eq!(
        events(&mut link),
        [
            LinkEvent::Up,
            LinkEvent::Subscribed("news".into()),
            delivered("news", OTHER, b"three", 1),
        ]
    );
    assert_eq!(link.stats().lost_in, 1);
    assert_eq!(link.stats().reconnects, 1);
}

// --- configuration -----------------------------------------------------------

#[test]
fn the_default_configuration_is_valid_and_the_bounds_are_checked() {
    let base = config("redis://localhost");
    assert_eq!(base.prefix, "edgews:");
    assert_eq!(base.validate(), Ok(()));
    let with = |max_message: usize, queue_bytes: usize| {
        let mut config = base.clone();
        config.max_message = max_message;
        config.queue_bytes = queue_bytes;
        config.validate()
    };
    assert!(with(0, 1 << 20).is_err());
    assert!(with((16 << 20) + 1, 32 << 20).is_err());
    assert_eq!(with(16 << 20, 16 << 20), Ok(()));
    assert!(with(1 << 20, (1 << 20) - 1).is_err());
    assert_eq!(with(1, 1), Ok(()));
}
