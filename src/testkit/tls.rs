//! TLS for the test server without tokio-rustls (not one of the project's direct dependencies): a task
//! owns the TCP socket and the rustls connection and pumps plaintext through an in-memory duplex pipe
//! that hyper serves. One extra copy per byte; irrelevant at test scale, and all code here is plain
//! async/await instead of hand-written poll functions.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::ServerConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;

const BUF: usize = 64 * 1024;

fn tls_err(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

async fn flush(conn: &mut ServerConnection, tcp: &mut TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        let mut out = Vec::new();
        conn.write_tls(&mut out)?;
        tcp.write_all(&out).await?;
    }
    Ok(())
}

/// Feeds received TLS records to rustls, moving decrypted bytes to `plain` as it goes (rustls refuses
/// to buffer more than a little plaintext); false once the peer closed the socket.
async fn receive(
    conn: &mut ServerConnection,
    tcp: &mut TcpStream,
    buf: &mut [u8],
    plain: &mut Vec<u8>,
) -> io::Result<bool> {
    let n = tcp.read(buf).await?;
    if n == 0 {
        return Ok(false);
    }
    let mut rd = &buf[..n];
    while !rd.is_empty() {
        conn.read_tls(&mut rd)?;
        conn.process_new_packets().map_err(tls_err)?;
        drain(conn, plain)?;
    }
    Ok(true)
}

/// Moves decrypted bytes out of rustls; false when the peer sent close_notify.
fn drain(conn: &mut ServerConnection, plain: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match conn.reader().read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => plain.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) => return Err(e),
        }
    }
}

/// A completed handshake: the pipe hyper serves, the negotiated protocol, the verified client
/// certificate (if one was sent), and the pump future to drive for the life of the connection.
pub struct Accepted<P> {
    pub io: DuplexStream,
    pub h2: bool,
    pub client_cert: Option<Vec<u8>>,
    pub pump: P,
}

pub async fn accept(
    mut tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<Accepted<impl std::future::Future<Output = io::Result<()>>>> {
    let mut conn = ServerConnection::new(config).map_err(tls_err)?;
    let mut buf = vec![0u8; BUF];
    let mut early = Vec::new();
    while conn.is_handshaking() {
        flush(&mut conn, &mut tcp).await?;
        if !conn.is_handshaking() {
            break;
        }
        if !receive(&mut conn, &mut tcp, &mut buf, &mut early).await? {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed during the TLS handshake"));
        }
    }
    flush(&mut conn, &mut tcp).await?;
    let h2 = conn.alpn_protocol() == Some(b"h2");
    let client_cert = conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
    let (hyper_side, pump_side) = tokio::io::duplex(BUF * 4);
    Ok(Accepted { io: hyper_side, h2, client_cert, pump: pump(tcp, conn, pump_side, buf, early) })
}

async fn pump(
    mut tcp: TcpStream,
    mut conn: ServerConnection,
    mut app: DuplexStream,
    mut net: Vec<u8>,
    mut plain: Vec<u8>,
) -> io::Result<()> {
    let mut out = vec![0u8; BUF];
    loop {
        let open = drain(&mut conn, &mut plain)?;
        if !plain.is_empty() {
            app.write_all(&plain).await?;
            plain.clear();
        }
        if !open {
            let _ = app.shutdown().await;
            return Ok(());
        }
        flush(&mut conn, &mut tcp).await?;
        tokio::select! {
            alive = receive(&mut conn, &mut tcp, &mut net, &mut plain) => {
                if !alive? {
                    return Ok(());
                }
            }
            n = app.read(&mut out) => {
                let n = n?;
                if n == 0 {
                    conn.send_close_notify();
                    flush(&mut conn, &mut tcp).await?;
                    return Ok(());
                }
                conn.writer().write_all(&out[..n])?;
            }
        }
    }
}
