//! The OWASP WebSocket list played on a raw TCP socket against the real bridge: protocol
//! violations close with their RFC 6455 code (1002, 1007, 1009) as nats-server does, a deflate
//! offer is not taken, and a client that stops reading is closed while others keep working.

use std::time::Duration;

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upgrades a raw TCP connection to `/ws` with `extra` headers; returns it and the response head.
async fn upgrade(addr: std::net::SocketAddr, extra: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: ferry.v1\r\n{extra}\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (tcp, head)
}

/// A client frame: FIN, `opcode`, `rsv` bits, masked (with a zero mask) unless `unmasked`.
fn frame(opcode: u8, rsv: u8, payload: &[u8], unmasked: bool) -> Vec<u8> {
    let mut f = vec![0x80 | (rsv << 4) | opcode];
    let mask_bit = if unmasked { 0 } else { 0x80 };
    match payload.len() {
        n if n < 126 => f.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            f.push(mask_bit | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(mask_bit | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if !unmasked {
        f.extend_from_slice(&[0, 0, 0, 0]); // a zero mask leaves the payload as it is
    }
    f.extend_from_slice(payload);
    f
}

/// Reads server frames until a close; returns its code (`None`: closed without one).
async fn close_code(tcp: &mut TcpStream) -> Option<u16> {
    let read = async {
        loop {
            let mut h = [0u8; 2];
            tcp.read_exact(&mut h).await.ok()?;
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    tcp.read_exact(&mut b).await.ok()?;
                    u64::from(u16::from_be_bytes(b))
                }
                127 => {
                    let mut b = [0u8; 8];
                    tcp.read_exact(&mut b).await.ok()?;
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            let mut payload = vec![0u8; usize::try_from(len).ok()?];
            tcp.read_exact(&mut payload).await.ok()?;
            if h[0] & 0x0f == 0x8 {
                return payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            }
        }
    };
    tokio::time::timeout(STEP, read)
        .await
        .expect("a close within the step timeout")
}

#[tokio::test]
async fn protocol_violations_close_with_their_rfc_6455_code() {
    let b = TestBridge::start(|_| {}).await;
    let cases: [(&str, Vec<u8>, u16); 5] = [
        ("unmasked client frame", frame(0x2, 0, b"x", true), 1002),
        (
            "reserved bits without an extension",
            frame(0x2, 0b100, b"x", false),
            1002,
        ),
        (
            "a ping of 126 bytes (control frames carry at most 125)",
            frame(0x9, 0, &[0; 126], false),
            1002,
        ),
        (
            "a text message that is not UTF-8",
            frame(0x1, 0, &[0xff, 0xfe, 0xfd], false),
            1007,
        ),
        (
            "a length prefix of 2^62 bytes",
            {
                let mut f = vec![0x82, 0x80 | 127];
                f.extend_from_slice(&(1u64 << 62).to_be_bytes());
                f.extend_from_slice(&[0, 0, 0, 0]);
                f
            },
            1009,
        ),
    ];
    for (what, bytes, want) in cases {
        let (mut tcp, _) = upgrade(b.addr, "").await;
        tcp.write_all(&bytes).await.unwrap();
        assert_eq!(close_code(&mut tcp).await, Some(want), "{what}");
    }
    // The bridge still serves.
    let _c = Client::connect(&b.url()).await;
}

#[tokio::test]
async fn a_deflate_offer_is_not_taken() {
    let b = TestBridge::start(|_| {}).await;
    let (_tcp, head) = upgrade(
        b.addr,
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    )
    .await;
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions"),
        "no compression is negotiated: {head}"
    );
}

/// This process's resident memory, KiB (the bridge runs in it).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_and_others_keep_working() {
    let queue = unique("hostile.sink");
    let (_w, _task) = echo_worker(&queue).await;
    let b = TestBridge::start(|c| {
        c.max_outbound_bytes = 256 * 1024;
        c.ping_interval = Duration::from_secs(1);
    })
    .await;
    let before = rss_kib();
    // The attacker asks for 64 replies of 512 KiB (32 MiB) and never reads a byte.
    let mut attacker = Client::connect(&b.url()).await;
    let body = vec![b'x'; 512 * 1024];
    for i in 0..64 {
        attacker
            .request(&format!("a{i}"), &queue, &body, Some(60_000))
            .await;
    }
    // Meanwhile another client is served as usual.
    let mut good = Client::connect(&b.url()).await;
    for i in 0..20 {
        good.request(&i.to_string(), &queue, b"1", Some(5_000))
            .await;
        assert_eq!(good.recv().await.reply().0, i.to_string());
    }
    // The stalled socket is closed after its write stalls (at least 10 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while b.stats.snapshot().sessions > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled socket was not closed"
        );
        // Reading meanwhile, so the good client answers the bridge's pings.
        assert!(good.nothing_within(Duration::from_millis(200)).await);
    }
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 96 * 1024,
        "bridge memory stayed bounded: grew {grown} KiB for 32 MiB of replies"
    );
    good.request("after", &queue, b"1", Some(5_000)).await;
    assert_eq!(good.recv().await.reply().0, "after");
    drop(attacker);
}
