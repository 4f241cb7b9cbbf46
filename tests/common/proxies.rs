//! Real proxies for the proxy tests: tinyproxy (HTTP `CONNECT`, with and without
//! Basic auth) and microsocks (SOCKS5, with and without a password), from Debian's
//! packages, each started on a free loopback port and killed by PID when dropped;
//! a TLS front that makes tinyproxy an `https://` proxy; and echo servers, `ws://`
//! and `wss://` with a private CA, for the tunnels to lead to.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy process, killed when dropped.
pub struct Daemon {
    child: Child,
    /// Its loopback port.
    pub port: u16,
    _dir: Option<TempDir>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory for a daemon's configuration, removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `program` is installed; a missing one fails the test under CI (which
/// installs it) and skips it elsewhere, with a message saying so.
pub fn installed(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is not installed: .ci/run installs it from Debian"
        );
        eprintln!("skipped: {program} is not installed (apt-get install {program})");
    }
    found
}

/// A loopback port nothing listens on (at the moment of asking).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `port` accepts connections, or panics after 10 s.
fn wait_listening(port: u16, what: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// tinyproxy on a free port: `credentials` for Basic auth, `connect_ports` to
/// allow `CONNECT` to those ports only (tinyproxy answers 403 to others).
pub fn tinyproxy(credentials: Option<(&str, &str)>, connect_ports: &[u16]) -> Daemon {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("fastws-tinyproxy-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = format!("Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 64\nLogLevel Critical\n");
    if let Some((user, password)) = credentials {
        config.push_str(&format!("BasicAuth {user} {password}\n"));
    }
    for allowed in connect_ports {
        config.push_str(&format!("ConnectPort {allowed}\n"));
    }
    let path = dir.join("tinyproxy.conf");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let child = Command::new("tinyproxy")
        .arg("-d")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .expect("tinyproxy starts");
    let daemon = Daemon {
        child,
        port,
        _dir: Some(TempDir(dir)),
    };
    wait_listening(port, "tinyproxy");
    daemon
}

/// microsocks on a free port, with `credentials` required if given.
pub fn microsocks(credentials: Option<(&str, &str)>) -> Daemon {
    let port = free_port();
    let mut command = Command::new("microsocks");
    command.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((user, password)) = credentials {
        command.args(["-u", user, "-P", password]);
    }
    let child = command.stdout(Stdio::null()).spawn().expect("microsocks starts");
    let daemon = Daemon {
        child,
        port,
        _dir: None,
    };
    wait_listening(port, "microsocks");
    daemon
}

/// A private CA, two certificates it issued, and the TLS configurations of both
/// ends. The server's certificate names `localhost` only and the proxy's
/// `127.0.0.1` only, so a TLS name mixed up between the two fails.
pub struct Pki {
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    /// A client configuration trusting the CA only.
    pub client: Arc<rustls::ClientConfig>,
    /// A server configuration with the certificate for `localhost`.
    pub server: Arc<rustls::ServerConfig>,
    /// A server configuration with the certificate for `127.0.0.1`.
    pub proxy: Arc<rustls::ServerConfig>,
}

pub fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fastws test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let issue = |name: &str| {
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
            .unwrap();
        Arc::new(config)
    };
    let (server, proxy) = (issue("localhost"), issue("127.0.0.1"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Pki {
        ca_pem: ca.pem(),
        client: Arc::new(client),
        server,
        proxy,
    }
}

/// A `ws://` echo server on a free port, for any number of connections.
pub async fn ws_echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(echo(tcp));
        }
    });
    port
}

/// A `wss://` echo server with the PKI's certificate.
pub async fn wss_echo(pki: &Pki) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    echo(tls).await;
                }
            });
        }
    });
    port
}

async fn echo<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(stream: S) {
    let Ok(mut ws) = fastws::accept(stream).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if message.is_data() && ws.send(message).await.is_err() {
            break;
        }
    }
}

/// A TLS front for a plain proxy on `backend`: an `https://` proxy on the port it
/// returns, with the PKI's certificate for `127.0.0.1`.
pub async fn tls_front(pki: &Pki, backend: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.proxy.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let (Ok(mut tls), Ok(mut proxy)) = (
                    acceptor.accept(tcp).await,
                    TcpStream::connect(("127.0.0.1", backend)).await,
                ) else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut proxy).await;
            });
        }
    });
    port
}

/// A proxy that accepts connections and never answers.
pub async fn silent_proxy() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    port
}

/// Sends a text message and expects it back.
pub async fn round_trip<S>(ws: &mut fastws::WebSocket<S>, text: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(fastws::Message::text(text.to_owned())).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("echo within 10 s")
        .expect("a message")
        .expect("no error");
    assert_eq!(echo.as_text(), Some(text));
}
