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

/// Feeds received TLS records to rustls; false once the peer closed the socket.
async fn receive(conn: &mut ServerConnection, tcp: &mut TcpStream, buf: &mut [u8]) -> io::Result<bool> {
    let n = tcp.read(buf).await?;
    if n == 0 {
        return Ok(false);
    }
    let mut rd = &buf[..n];
    while !rd.is_empty() {
        conn.read_tls(&mut rd)?;
        conn.process_new_packets().map_err(tls_err)?;
    }
    Ok(true)
}

/// Completes the handshake; returns the pipe hyper should serve, whether h2 was negotiated, and the
/// pump future that must be driven for the life of the connection.
pub async fn accept(
    mut tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<(DuplexStream, bool, impl std::future::Future<Output = io::Result<()>>)> {
    let mut conn = ServerConnection::new(config).map_err(tls_err)?;
    let mut buf = vec![0u8; BUF];
    while conn.is_handshaking() {
        flush(&mut conn, &mut tcp).await?;
        if !conn.is_handshaking() {
            break;
        }
        if !receive(&mut conn, &mut tcp, &mut buf).await? {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed during the TLS handshake"));
        }
    }
    flush(&mut conn, &mut tcp).await?;
    let h2 = conn.alpn_protocol() == Some(b"h2");
    let (hyper_side, pump_side) = tokio::io::duplex(BUF * 4);
    Ok((hyper_side, h2, pump(tcp, conn, pump_side, buf)))
}

async fn pump(
    mut tcp: TcpStream,
    mut conn: ServerConnection,
    mut app: DuplexStream,
    mut net: Vec<u8>,
) -> io::Result<()> {
    let mut plain = vec![0u8; BUF];
    let mut out = vec![0u8; BUF];
    loop {
        // Plaintext already decrypted (e.g. data that arrived with the last handshake flight).
        loop {
            match conn.reader().read(&mut plain) {
                Ok(0) => {
                    let _ = app.shutdown().await;
                    return Ok(());
                }
                Ok(n) => app.write_all(&plain[..n]).await?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        flush(&mut conn, &mut tcp).await?;
        tokio::select! {
            alive = receive(&mut conn, &mut tcp, &mut net) => {
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
