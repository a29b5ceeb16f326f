//! Text a handler sends is UTF-8, always. The engine validates every text
//! message it receives, and a `Message` carries that: its fields are
//! private, so sending it back (`send_message`, an echo) is not checked a
//! second time. These tests pin down that nothing else skips the check: a
//! part of the message cut inside a character, the same bytes altered in a
//! copy, the message from an earlier callback, a `Message::new` of bad
//! text, are all refused with `InvalidUtf8`, in the copying path (small
//! payloads) and in the zero-copy path (from 1 KiB), for `send` and for
//! `broadcast`.

mod support;

use edgews::protocol::frame::OpCode;
use edgews::protocol::{Message, MessageKind, UsageError};
use edgews::reactor::{ConnId, Context, Handler, SendError};
use edgews::ServerConfig;
use std::time::Duration;
use support::{client_frame, RawClient, TestServer};

/// Echoes each text message, then tries to send bytes that are not valid
/// UTF-8 in each way a shortcut could wrongly let through, and reports
/// what each attempt returned in one last text message.
#[derive(Default)]
struct Prober {
    /// The previous message's bytes, kept owned.
    previous: Option<Vec<u8>>,
}

fn outcome(result: Result<impl Sized, SendError>) -> &'static str {
    match result {
        Ok(_) => "sent",
        Err(SendError::Usage(UsageError::InvalidUtf8)) => "invalid",
        Err(_) => "other error",
    }
}

impl Handler for Prober {
    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message<'_>) {
        let data: &[u8] = message.as_bytes();
        // the message itself: validated on receipt, goes out unchecked
        let whole = outcome(ctx.send_message(id, &message));
        // a Message cannot be made of bad text
        let cut_message = Message::new(MessageKind::Text, &data[..data.len() - 1]);
        let forged = outcome(cut_message.map_err(SendError::from));
        // cut inside the last two-byte character (the message ends in 'é')
        let cut = outcome(ctx.send(id, MessageKind::Text, &data[..data.len() - 1]));
        // starts inside the first character (the message starts with 'é')
        let tail = outcome(ctx.send(id, MessageKind::Text, &data[1..]));
        // the same length and content, but altered, in a copy
        let mut copy = data.to_vec();
        copy[0] = 0xFF;
        let altered = outcome(ctx.send(id, MessageKind::Text, &copy));
        let broadcast = outcome(ctx.broadcast(MessageKind::Text, &data[..data.len() - 1], None));
        // bytes from an earlier callback, now invalid, at another address
        let earlier = match self.previous.take() {
            Some(mut old) => {
                old.truncate(old.len() - 1);
                outcome(ctx.send(id, MessageKind::Text, &old))
            }
            None => "none",
        };
        self.previous = Some(data.to_vec());
        let report = format!(
            "whole {whole}, forged {forged}, cut {cut}, tail {tail}, altered {altered}, \
             broadcast {broadcast}, earlier {earlier}"
        );
        ctx.send_text(id, &report).unwrap();
    }
}

fn text_of(len: usize) -> Vec<u8> {
    // 'é' (2 bytes) at both ends, ASCII between
    let mut text = "é".to_string().into_bytes();
    text.resize(len - 2, b'a');
    text.extend_from_slice("é".as_bytes());
    assert!(std::str::from_utf8(&text).is_ok());
    text
}

fn probe(sizes: &[usize]) {
    let server = TestServer::start(ServerConfig::default(), Prober::default);
    let mut client = RawClient::open(server.addr, "/");
    client
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for (i, &size) in sizes.iter().enumerate() {
        let text = text_of(size);
        client.send(&client_frame(true, OpCode::Text, &text));
        let echo = client.read_frame().expect("the echo");
        assert_eq!(
            (echo.opcode, echo.payload),
            (OpCode::Text, text),
            "size {size}"
        );
        let report = client.read_frame().expect("the report");
        let earlier = if i == 0 { "none" } else { "invalid" };
        assert_eq!(
            String::from_utf8(report.payload).unwrap(),
            format!(
                "whole sent, forged invalid, cut invalid, tail invalid, altered invalid, \
                 broadcast invalid, earlier {earlier}"
            ),
            "size {size}"
        );
    }
}

#[test]
fn only_the_received_text_itself_skips_the_second_check_when_copied() {
    probe(&[4, 20, 125, 1000]);
}

#[test]
fn only_the_received_text_itself_skips_the_second_check_when_sent_from_the_read_buffer() {
    // from 1 KiB an echo goes out from the read buffer (splice.rs)
    probe(&[1024, 4096, 60_000]);
}
