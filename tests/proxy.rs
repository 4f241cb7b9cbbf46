//! `connect` through real proxies on loopback ports: tinyproxy (HTTP `CONNECT`,
//! with and without Basic auth, and as an `https://` proxy behind a TLS front) and
//! microsocks (SOCKS5, with and without a password), each leading to `ws://` and
//! `wss://` servers with a private CA; their refusals; a proxy that never answers;
//! and the environment's rules, in child processes with their own environments.
#![cfg(feature = "rustls")]

#[path = "common/proxies.rs"]
mod proxies;

use std::process::Command;
use std::time::Duration;

use fastws::{ClientRequest, Error, HandshakeError, MaybeTlsStream, ProxyError};
use proxies::{
    Daemon, installed, microsocks, pki, round_trip, silent_proxy, tinyproxy, tls_front, ws_echo, wss_echo,
};

/// The proxy error of a failed connect, or a panic saying what happened instead.
fn proxy_error<T: std::fmt::Debug>(result: Result<T, Error>) -> ProxyError {
    match result {
        Err(Error::Handshake(HandshakeError::Proxy(err))) => err,
        other => panic!("expected a proxy error, got {other:?}"),
    }
}

#[tokio::test]
async fn ws_and_wss_through_an_http_proxy() {
    if !installed("tinyproxy") {
        return;
    }
    let pki = pki();
    let (ws_port, wss_port) = (ws_echo().await, wss_echo(&pki).await);
    let proxy = tinyproxy(None, &[]);
    let through = format!("http://127.0.0.1:{}", proxy.port);

    let request = ClientRequest::new(format!("ws://127.0.0.1:{ws_port}/")).proxy(&through);
    let (mut ws, _) = fastws::connect(request).await.unwrap();
    assert!(matches!(ws.get_ref(), MaybeTlsStream::Plain(_)));
    assert_eq!(ws.get_ref().tcp().peer_addr().unwrap().port(), proxy.port);
    round_trip(&mut ws, "ws through tinyproxy").await;

    let request = ClientRequest::new(format!("wss://localhost:{wss_port}/"))
        .proxy(&through)
        .tls_config(pki.client.clone());
    let (mut ws, _) = fastws::connect(request).await.unwrap();
    assert!(matches!(ws.get_ref(), MaybeTlsStream::Rustls(_)));
    assert_eq!(ws.get_ref().tcp().peer_addr().unwrap().port(), proxy.port);
    round_trip(&mut ws, "wss through tinyproxy").await;
}

#[tokio::test]
async fn basic_proxy_auth_is_sent_and_its_refusals_are_errors() {
    if !installed("tinyproxy") {
        return;
    }
    let pki = pki();
    let wss_port = wss_echo(&pki).await;
    let proxy = tinyproxy(Some(("alice", "s3cret")), &[]);
    let request = |proxy_url: String| {
        ClientRequest::new(format!("wss://localhost:{wss_port}/"))
            .proxy(&proxy_url)
            .tls_config(pki.client.clone())
    };

    let (mut ws, _) = fastws::connect(request(format!("http://alice:s3cret@127.0.0.1:{}", proxy.port)))
        .await
        .unwrap();
    round_trip(&mut ws, "authenticated").await;

    // tinyproxy asks for credentials with 407 and turns wrong ones away with 401.
    for (url, status) in [
        (format!("http://127.0.0.1:{}", proxy.port), 407),
        (format!("http://alice:wrong@127.0.0.1:{}", proxy.port), 401),
    ] {
        let err = proxy_error(fastws::connect(request(url.clone())).await);
        assert_eq!(err, ProxyError::Refused { status }, "{url}");
    }
}

#[tokio::test]
async fn a_forbidden_destination_and_an_unreachable_one_are_proxy_refusals() {
    if !installed("tinyproxy") {
        return;
    }
    let ws_port = ws_echo().await;
    let proxy = tinyproxy(None, &[443]);
    let through = format!("http://127.0.0.1:{}", proxy.port);
    let request = ClientRequest::new(format!("ws://127.0.0.1:{ws_port}/")).proxy(&through);
    let err = fastws::connect(request).await.unwrap_err();
    // The proxy's status is the proxy's, not the server's.
    assert_eq!(err.handshake().and_then(HandshakeError::status), None);
    assert_eq!(
        proxy_error(Err::<(), _>(err)),
        ProxyError::Refused { status: 403 }
    );

    let open = tinyproxy(None, &[]);
    let dead = proxies::free_port();
    let request = ClientRequest::new(format!("ws://127.0.0.1:{dead}/"))
        .proxy(&format!("http://127.0.0.1:{}", open.port));
    let err = proxy_error(fastws::connect(request).await);
    assert!(
        matches!(err, ProxyError::Refused { status: 500..=504 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn ws_and_wss_through_an_https_proxy() {
    if !installed("tinyproxy") {
        return;
    }
    let pki = pki();
    let (ws_port, wss_port) = (ws_echo().await, wss_echo(&pki).await);
    let plain = tinyproxy(Some(("bob", "pw")), &[]);
    let front = tls_front(&pki, plain.port).await;
    // The proxy's certificate names 127.0.0.1 only, the server's localhost only.
    let through = format!("https://bob:pw@127.0.0.1:{front}");

    let request = ClientRequest::new(format!("ws://127.0.0.1:{ws_port}/"))
        .proxy(&through)
        .tls_config(pki.client.clone());
    let (mut ws, _) = fastws::connect(request).await.unwrap();
    assert!(matches!(ws.get_ref(), MaybeTlsStream::HttpsProxy(_)));
    round_trip(&mut ws, "ws inside tls to the proxy").await;

    let request = ClientRequest::new(format!("wss://localhost:{wss_port}/"))
        .proxy(&through)
        .tls_config(pki.client.clone());
    let (mut ws, _) = fastws::connect(request).await.unwrap();
    assert!(matches!(ws.get_ref(), MaybeTlsStream::RustlsInHttpsProxy(_)));
    round_trip(&mut ws, "tls inside tls").await;

    // The proxy's certificate is checked like a server's.
    let untrusted = ClientRequest::new(format!("ws://127.0.0.1:{ws_port}/")).proxy(&through);
    assert!(matches!(fastws::connect(untrusted).await, Err(Error::Tls(_))));
}

#[tokio::test]
async fn ws_and_wss_through_socks5_with_names_resolved_there_or_here() {
    if !installed("microsocks") {
        return;
    }
    let pki = pki();
    let (ws_port, wss_port) = (ws_echo().await, wss_echo(&pki).await);
    let proxy = microsocks(None);
    for scheme in ["socks5h", "socks5"] {
        let through = format!("{scheme}://127.0.0.1:{}", proxy.port);
        let request = ClientRequest::new(format!("ws://localhost:{ws_port}/")).proxy(&through);
        let (mut ws, _) = fastws::connect(request).await.unwrap();
        assert_eq!(ws.get_ref().tcp().peer_addr().unwrap().port(), proxy.port);
        round_trip(&mut ws, &format!("ws through {scheme}")).await;

        let request = ClientRequest::new(format!("wss://localhost:{wss_port}/"))
            .proxy(&through)
            .tls_config(pki.client.clone());
        let (mut ws, _) = fastws::connect(request).await.unwrap();
        assert_eq!(ws.get_ref().tcp().peer_addr().unwrap().port(), proxy.port);
        round_trip(&mut ws, &format!("wss through {scheme}")).await;
    }
}

#[tokio::test]
async fn socks5_passwords_and_refusals() {
    if !installed("microsocks") {
        return;
    }
    let ws_port = ws_echo().await;
    let proxy = microsocks(Some(("carol", "pa55")));
    let request =
        |through: String, port: u16| ClientRequest::new(format!("ws://127.0.0.1:{port}/")).proxy(&through);

    let (mut ws, _) = fastws::connect(request(
        format!("socks5h://carol:pa55@127.0.0.1:{}", proxy.port),
        ws_port,
    ))
    .await
    .unwrap();
    round_trip(&mut ws, "socks5 with a password").await;

    let wrong = request(format!("socks5h://carol:nope@127.0.0.1:{}", proxy.port), ws_port);
    assert_eq!(
        proxy_error(fastws::connect(wrong).await),
        ProxyError::SocksAuthFailed
    );
    let none = request(format!("socks5h://127.0.0.1:{}", proxy.port), ws_port);
    assert_eq!(
        proxy_error(fastws::connect(none).await),
        ProxyError::SocksNoAcceptableMethod
    );

    let open = microsocks(None);
    let refused = request(format!("socks5://127.0.0.1:{}", open.port), proxies::free_port());
    assert_eq!(
        proxy_error(fastws::connect(refused).await),
        ProxyError::SocksRefused { reply: 5 }
    );
}

#[tokio::test]
async fn a_proxy_that_never_answers_ends_in_the_handshake_timeout() {
    let silent = silent_proxy().await;
    for scheme in ["http", "socks5h"] {
        let request = ClientRequest::new("wss://example.com/")
            .proxy(&format!("{scheme}://127.0.0.1:{silent}"))
            .timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(5), fastws::connect(request))
            .await
            .expect("connect gives up by itself");
        assert!(
            matches!(result, Err(Error::Handshake(HandshakeError::Timeout))),
            "{scheme}: {result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

#[tokio::test]
async fn an_unreachable_proxy_is_a_connect_error_naming_it() {
    let dead = proxies::free_port();
    let request = ClientRequest::new("ws://example.com/").proxy(&format!("http://127.0.0.1:{dead}"));
    match fastws::connect(request).await {
        Err(Error::Connect(err)) => assert!(
            err.to_string().contains(&format!("proxy 127.0.0.1:{dead}")),
            "{err}"
        ),
        other => panic!("{other:?}"),
    }
    let request = ClientRequest::new("ws://example.com/").proxy("gopher://127.0.0.1:70");
    assert!(matches!(
        fastws::connect(request).await,
        Err(Error::InvalidUrl(_))
    ));
}

// The environment's rules, end to end. Each case runs this test binary again as
// a child with its own environment (so no test changes this process's), and the
// child runs `env_case`, which connects as the variables say and reports how.

/// What a child connection did: `ok` and the port its TCP went to, or the error.
fn run_env_case(url: &str, vars: &[(&str, String)], extra: &[(&str, String)]) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([
        "--exact",
        "env_case",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for name in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        command.env_remove(name);
    }
    command.env("FASTWS_ENV_CASE_URL", url);
    for (name, value) in vars.iter().chain(extra) {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|line| line.split_once("env-case: ").map(|(_, outcome)| outcome))
        .unwrap_or_else(|| panic!("child printed no outcome: {stdout}"))
        .to_owned()
}

#[test]
#[ignore = "run by the env tests as a child process"]
fn env_case() {
    let Ok(url) = std::env::var("FASTWS_ENV_CASE_URL") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime.block_on(async {
        let mut request = ClientRequest::new(url).timeout(Duration::from_secs(10));
        if let Ok(explicit) = std::env::var("FASTWS_ENV_CASE_PROXY") {
            request = match explicit.as_str() {
                "none" => request.no_proxy(),
                proxy => request.proxy(proxy),
            };
        }
        match fastws::connect(request).await {
            Ok((mut ws, _)) => {
                round_trip(&mut ws, "env").await;
                format!("ok via {}", ws.get_ref().tcp().peer_addr().unwrap().port())
            }
            Err(Error::Connect(err)) => format!("connect error: {err}"),
            Err(err) => format!("error: {err}"),
        }
    });
    println!("env-case: {outcome}");
}

#[tokio::test]
async fn the_environment_picks_the_proxy_as_curl_does() {
    if !installed("tinyproxy") || !installed("microsocks") {
        return;
    }
    let ws_port = ws_echo().await;
    let http = tinyproxy(None, &[]);
    let socks = microsocks(None);
    let dead = proxies::free_port();
    let ws_url = format!("ws://127.0.0.1:{ws_port}/");
    let case = |vars: Vec<(&'static str, String)>| {
        let ws_url = ws_url.clone();
        async move {
            tokio::task::spawn_blocking(move || run_env_case(&ws_url, &vars, &[]))
                .await
                .unwrap()
        }
    };
    let via = |daemon: &Daemon| format!("ok via {}", daemon.port);
    let direct = format!("ok via {ws_port}");

    // No variables: direct.
    assert_eq!(case(vec![]).await, direct);
    // HTTP_PROXY for ws://; loopback is not exempt.
    assert_eq!(
        case(vec![("HTTP_PROXY", format!("http://127.0.0.1:{}", http.port))]).await,
        via(&http)
    );
    // Lower case wins over upper case.
    let lower = vec![
        ("http_proxy", format!("http://127.0.0.1:{}", http.port)),
        ("HTTP_PROXY", format!("http://127.0.0.1:{dead}")),
    ];
    assert_eq!(case(lower).await, via(&http));
    // HTTPS_PROXY is for wss:// only; ALL_PROXY is the fallback.
    let fallback = vec![
        ("HTTPS_PROXY", format!("http://127.0.0.1:{dead}")),
        ("ALL_PROXY", format!("socks5h://127.0.0.1:{}", socks.port)),
    ];
    assert_eq!(case(fallback).await, via(&socks));
    // NO_PROXY hits: a CIDR block, an address, a name list with the host in it.
    for no_proxy in ["127.0.0.0/8", "example.com, 127.0.0.1", "*"] {
        let vars = vec![
            ("HTTP_PROXY", format!("http://127.0.0.1:{dead}")),
            ("NO_PROXY", no_proxy.to_owned()),
        ];
        assert_eq!(case(vars).await, direct, "NO_PROXY={no_proxy}");
    }
    // NO_PROXY misses: the proxy is used (here a dead one, so the error names it).
    for no_proxy in ["10.0.0.0/8", "localhost", "127.0.0.10"] {
        let vars = vec![
            ("HTTP_PROXY", format!("http://127.0.0.1:{dead}")),
            ("NO_PROXY", no_proxy.to_owned()),
        ];
        let outcome = case(vars).await;
        assert!(
            outcome.contains(&format!("proxy 127.0.0.1:{dead}")),
            "NO_PROXY={no_proxy}: {outcome}"
        );
    }
    // An explicit proxy, or none, wins over the environment.
    let env = vec![("HTTP_PROXY", format!("http://127.0.0.1:{dead}"))];
    let explicit = [(
        "FASTWS_ENV_CASE_PROXY",
        format!("socks5h://127.0.0.1:{}", socks.port),
    )];
    let url = ws_url.clone();
    let outcome = tokio::task::spawn_blocking(move || run_env_case(&url, &env, &explicit))
        .await
        .unwrap();
    assert_eq!(outcome, via(&socks));
    let env = vec![("HTTP_PROXY", format!("http://127.0.0.1:{dead}"))];
    let url = ws_url.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        run_env_case(&url, &env, &[("FASTWS_ENV_CASE_PROXY", "none".to_owned())])
    })
    .await
    .unwrap();
    assert_eq!(outcome, direct);
}

/// With `native-roots`, the operating system's store is trusted: here the store
/// `SSL_CERT_FILE` names, holding the private CA, reached through HTTPS_PROXY.
#[cfg(feature = "native-roots")]
#[tokio::test]
async fn native_roots_trust_the_system_store_through_an_env_proxy() {
    if !installed("tinyproxy") {
        return;
    }
    let pki = pki();
    let wss_port = wss_echo(&pki).await;
    let http = tinyproxy(None, &[]);
    let ca_file = std::env::temp_dir().join(format!("fastws-ca-{}-{wss_port}.pem", std::process::id()));
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let url = format!("wss://localhost:{wss_port}/");
    let trusted = vec![
        ("HTTPS_PROXY", format!("http://127.0.0.1:{}", http.port)),
        ("SSL_CERT_FILE", ca_file.display().to_string()),
    ];
    let (u, v) = (url.clone(), trusted);
    let outcome = tokio::task::spawn_blocking(move || run_env_case(&u, &v, &[]))
        .await
        .unwrap();
    assert_eq!(outcome, format!("ok via {}", http.port));
    // Without the CA in the store, the same connection is a TLS error.
    let untrusted = vec![
        ("HTTPS_PROXY", format!("http://127.0.0.1:{}", http.port)),
        ("SSL_CERT_FILE", "/nonexistent/ca.pem".to_owned()),
        ("SSL_CERT_DIR", "/nonexistent".to_owned()),
    ];
    let outcome = tokio::task::spawn_blocking(move || run_env_case(&url, &untrusted, &[]))
        .await
        .unwrap();
    assert!(outcome.contains("tls"), "{outcome}");
    let _ = std::fs::remove_file(ca_file);
}
