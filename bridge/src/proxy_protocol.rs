//! The PROXY protocol (v1 text, v2 binary), read from a `--trusted-proxy` when the bridge runs
//! with `--proxy-protocol`: the header in front of the connection names the client's address,
//! which the per-address limits then count. Read byte-exactly (nothing of the TLS or HTTP
//! that follows is consumed), at most 232 bytes, within `--header-read-timeout`.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 header (with its CRLF).
const V1_MAX: usize = 107;
/// Longest v2 address block this bridge reads (IPv6 plus some TLVs; a UNIX pair is 216).
const V2_MAX_BODY: usize = 216;

/// Why a trusted proxy's connection is dropped.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// Reading failed or the peer went away.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    /// Not a PROXY header, or one this bridge cannot read.
    #[error("not a valid PROXY protocol header")]
    Invalid,
}

/// Reads the PROXY header from `io`; the client's address, or `proxy` itself for a header
/// without one (v1 `UNKNOWN`, v2 `LOCAL`: the proxy's own health checks).
pub async fn read<IO>(io: &mut IO, proxy: SocketAddr) -> Result<SocketAddr, ProxyHeaderError>
where
    IO: AsyncRead + Unpin,
{
    let mut head = [0u8; 16];
    io.read_exact(&mut head[..6]).await?;
    if &head[..6] == b"PROXY " {
        let mut line = head[..6].to_vec();
        while !line.ends_with(b"\r\n") {
            if line.len() >= V1_MAX {
                return Err(ProxyHeaderError::Invalid);
            }
            line.push(io.read_u8().await?);
        }
        let header = std::str::from_utf8(&line).map_err(|_| ProxyHeaderError::Invalid)?;
        let parsed = ppp::v1::Header::try_from(header).map_err(|_| ProxyHeaderError::Invalid)?;
        return Ok(match parsed.addresses {
            ppp::v1::Addresses::Tcp4(a) => {
                SocketAddr::new(IpAddr::V4(a.source_address), a.source_port)
            }
            ppp::v1::Addresses::Tcp6(a) => {
                SocketAddr::new(IpAddr::V6(a.source_address), a.source_port)
            }
            ppp::v1::Addresses::Unknown => proxy,
        });
    }
    io.read_exact(&mut head[6..]).await?;
    if head[..12] != V2_SIGNATURE {
        return Err(ProxyHeaderError::Invalid);
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > V2_MAX_BODY {
        return Err(ProxyHeaderError::Invalid);
    }
    let mut header = head.to_vec();
    header.resize(16 + len, 0);
    io.read_exact(&mut header[16..]).await?;
    let parsed =
        ppp::v2::Header::try_from(header.as_slice()).map_err(|_| ProxyHeaderError::Invalid)?;
    Ok(match parsed.addresses {
        ppp::v2::Addresses::IPv4(a) => SocketAddr::new(IpAddr::V4(a.source_address), a.source_port),
        ppp::v2::Addresses::IPv6(a) => SocketAddr::new(IpAddr::V6(a.source_address), a.source_port),
        ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => proxy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy() -> SocketAddr {
        "10.0.0.5:40000"
            .parse()
            .unwrap_or(SocketAddr::from(([10, 0, 0, 5], 1)))
    }

    #[tokio::test]
    async fn v1_names_the_client_and_leaves_the_rest() {
        let mut input: &[u8] = b"PROXY TCP4 203.0.113.9 10.0.0.1 51000 443\r\nGET / HTTP/1.1\r\n";
        let addr = read(&mut input, proxy()).await.unwrap();
        assert_eq!(addr, "203.0.113.9:51000".parse::<SocketAddr>().unwrap());
        assert_eq!(
            input, b"GET / HTTP/1.1\r\n",
            "nothing past the header is consumed"
        );
    }

    #[tokio::test]
    async fn v2_names_the_client_and_local_is_the_proxy() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend([
            0x21, 0x11, 0, 12, 198, 51, 100, 7, 10, 0, 0, 1, 0xc3, 0x50, 1, 187,
        ]);
        h.extend(b"rest");
        let mut input = h.as_slice();
        let addr = read(&mut input, proxy()).await.unwrap();
        assert_eq!(addr, "198.51.100.7:50000".parse::<SocketAddr>().unwrap());
        assert_eq!(input, b"rest");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend([0x20, 0x00, 0, 0]);
        assert_eq!(read(&mut local.as_slice(), proxy()).await.unwrap(), proxy());
    }

    #[tokio::test]
    async fn garbage_and_endless_lines_are_refused() {
        let mut plain: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(
            read(&mut plain, proxy()).await,
            Err(ProxyHeaderError::Invalid)
        ));
        let long = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
        assert!(matches!(
            read(&mut long.as_slice(), proxy()).await,
            Err(ProxyHeaderError::Invalid)
        ));
    }
}
