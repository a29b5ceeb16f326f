//! The broadcast report: what was missing, the human lines and the JSON
//! line.

use super::super::report::thousands;
use super::BroadcastLoad;

impl BroadcastLoad {
    /// Deliveries missing after the drain, and deliveries expected: every
    /// connection but the sender itself should have received each message
    /// once.
    fn missing(&self) -> (u64, u64) {
        let (mut missing, mut expected) = (0u64, 0u64);
        for (s, &count) in self.sent.iter().enumerate() {
            let sender = self.order.get(s).copied();
            for (id, inbox) in &self.inboxes {
                if Some(*id) != sender {
                    let distinct = inbox.received[s] - inbox.repeated[s];
                    missing += count.saturating_sub(distinct);
                    expected += count;
                }
            }
        }
        (missing, expected)
    }

    /// Prints the report; `Err` when the run saw errors, or deliveries
    /// missing or out of order.
    pub(super) fn report(&mut self) -> Result<(), String> {
        let (missing, expected) = self.missing();
        let secs = self.duration.as_secs_f64();
        let rate = self.deliveries as f64 / secs;
        let (p50, p99, p999) = self.latencies.p50_p99_p999();
        let (l50, l99, l999) = self.last.latencies.p50_p99_p999();
        let sent: u64 = self.sent.iter().sum();
        let server = match &self.topic {
            Some(topic) => format!(", pubsub topic {topic:?}"),
            None => String::new(),
        };
        println!(
            "broadcast: {} connections, {} senders, {} B{server}, {secs:.1} s: sent {}, {} deliveries/s; \
             fan-out latency p50 {p50:.0} us, p99 {p99:.0} us, p99.9 {p999:.0} us; to the last \
             subscriber p50 {l50:.0} us, p99 {l99:.0} us, p99.9 {l999:.0} us; missing {missing}, \
             out of order {}, errors {}",
            self.order.len(),
            self.senders,
            self.wire.size(),
            thousands(sent),
            thousands(rate as u64),
            self.out_of_order,
            self.common.errors
        );
        println!(
            "broadcast sequence: {} of {} expected deliveries missing; gaps {} (messages skipped), \
             duplicates {} (repeated or late); {} of {} messages reached every receiver",
            thousands(missing),
            thousands(expected),
            thousands(self.gaps),
            thousands(self.duplicates),
            thousands(self.last.complete),
            thousands(sent)
        );
        let cross_json = self.report_cross(secs);
        let topic_json = match &self.topic {
            Some(topic) => format!(",\"topic\":{}", serde_json::Value::from(topic.as_str())),
            None => String::new(),
        };
        println!(
            "{{\"mode\":\"broadcast\",\"connections\":{},\"senders\":{},\"size\":{},\"sent\":{sent},\
             \"deliveries\":{},\"deliveries_per_s\":{rate:.0},\"p50_us\":{p50:.1},\"p99_us\":{p99:.1},\
             \"p999_us\":{p999:.1},\"missing\":{missing},\"out_of_order\":{},\"gaps\":{},\
             \"duplicates\":{},\"errors\":{}{cross_json},\"last_p50_us\":{l50:.1},\
             \"last_p99_us\":{l99:.1},\"last_p999_us\":{l999:.1},\"last_messages\":{}{topic_json}}}",
            self.order.len(),
            self.senders,
            self.wire.size(),
            self.deliveries,
            self.out_of_order,
            self.gaps,
            self.duplicates,
            self.common.errors,
            self.last.complete
        );
        self.common.check()?;
        if missing > 0 || self.out_of_order > 0 {
            return Err(format!(
                "{missing} missing, {} gaps, {} duplicates ({} out-of-order deliveries)",
                self.gaps, self.duplicates, self.out_of_order
            ));
        }
        Ok(())
    }

    /// With `--receiver-url`: prints the receivers' spread and the
    /// cross-instance deliveries; returns their keys for the JSON line.
    fn report_cross(&mut self, secs: f64) -> String {
        if self.urls.len() < 2 {
            return String::new();
        }
        let (c50, c90, c99, cmax) = (
            self.cross_latencies.percentile_us(50.0),
            self.cross_latencies.percentile_us(90.0),
            self.cross_latencies.percentile_us(99.0),
            self.cross_latencies.percentile_us(100.0),
        );
        let cross_rate = self.cross_deliveries as f64 / secs;
        let mut per_url = vec![0usize; self.urls.len()];
        for inbox in self.inboxes.values() {
            per_url[inbox.url] += 1;
        }
        let receivers: Vec<String> = self.urls[1..]
            .iter()
            .zip(&per_url[1..])
            .map(|(url, n)| format!("{n} on {url}"))
            .collect();
        println!(
            "broadcast receivers: {} senders' instance {}; {}",
            per_url[0],
            self.urls[0],
            receivers.join(", ")
        );
        println!(
            "broadcast cross-instance: {} deliveries, {} deliveries/s; cross-instance latency \
             p50 {c50:.0} us, p90 {c90:.0} us, p99 {c99:.0} us, max {cmax:.0} us",
            thousands(self.cross_deliveries),
            thousands(cross_rate as u64)
        );
        format!(
            ",\"receiver_urls\":{},\"cross_deliveries\":{},\"cross_deliveries_per_s\":{cross_rate:.0},\
             \"cross_p50_us\":{c50:.1},\"cross_p90_us\":{c90:.1},\"cross_p99_us\":{c99:.1},\
             \"cross_max_us\":{cmax:.1}",
            self.urls.len() - 1,
            self.cross_deliveries
        )
    }
}
