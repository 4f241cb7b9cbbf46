//! What a program ported from tokio-tungstenite relies on: its `Message` helpers and
//! their meanings, `fastws::Result` and the re-exports, `FusedStream`, the negotiated
//! subprotocol and extensions, disconnects told apart from failures, our own misuse
//! reported as ours, the way back from a streaming `io::Error`, and a ping sent in
//! the middle of a streamed message.

mod common;

use std::io;

use common::{connect, recv, send, start, within};
use fastws::{Bytes, CloseCode, Config, Error, Frame, Message, MessageKind, OpCode};
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn message_helpers_mean_what_tokio_tungstenite_means() {
    let text = Message::text("héllo");
    assert_eq!(text.to_text().unwrap(), "héllo");
    assert_eq!(text.len(), "héllo".len());
    assert!(!text.is_empty());
    assert_eq!(text.to_string(), "héllo");
    assert_eq!(text.clone().into_text().unwrap(), "héllo");
    assert_eq!(text.into_data(), Bytes::from("héllo"));

    // Binary that happens to be UTF-8 reads as text; binary that is not does not.
    let utf8_binary = Message::binary(Bytes::from_static(b"abc"));
    assert_eq!(utf8_binary.to_text().unwrap(), "abc");
    assert_eq!(utf8_binary.to_string(), "abc");
    let binary = Message::binary(vec![0xff, 0x00, 0x01]);
    assert!(binary.to_text().is_err());
    assert!(binary.clone().into_text().is_err());
    // `?` makes it the crate's error.
    let as_text = |message: &Message| -> fastws::Result<String> { Ok(message.to_text()?.to_owned()) };
    assert!(matches!(as_text(&binary), Err(Error::InvalidUtf8)));
    assert_eq!(as_text(&utf8_binary).unwrap(), "abc");
    assert_eq!(binary.to_string(), "Binary Data<length=3>");
    assert_eq!(binary.into_data(), Bytes::from_static(&[0xff, 0x00, 0x01]));

    let ping = Message::ping(Bytes::from_static(b"p"));
    let pong = Message::pong(Bytes::new());
    assert!(ping.is_ping() && !ping.is_pong() && !ping.is_data());
    assert!(pong.is_pong() && !pong.is_ping() && pong.is_empty());

    // A close message's data is its reason; an empty close has none.
    let close = Message::close(CloseCode::Normal, "bye");
    assert_eq!(close.len(), 3);
    assert_eq!(close.to_text().unwrap(), "bye");
    assert_eq!(close.into_data(), Bytes::from("bye"));
    assert!(Message::Close(None).is_empty());
}

#[test]
fn close_codes_are_named_as_the_registry_names_them() {
    assert_eq!(CloseCode::from(3000), CloseCode::Registered(3000));
    assert_eq!(CloseCode::from(3999), CloseCode::Registered(3999));
    assert_eq!(CloseCode::from(4000), CloseCode::Private(4000));
    assert_eq!(CloseCode::from(4999), CloseCode::Private(4999));
    assert!(CloseCode::Private(4000).is_allowed_on_wire());
    assert!(CloseCode::Registered(3001).is_allowed_on_wire());
    assert!(!CloseCode::from(5000).is_allowed_on_wire());
}

#[test]
fn the_result_alias_and_the_re_exports_name_the_types_a_port_needs() {
    fn handler(status: fastws::http::StatusCode) -> fastws::Result<Bytes> {
        if status == fastws::http::StatusCode::OK {
            Ok(Bytes::from_static(b"ok"))
        } else {
            Err(Error::ConnectionClosed)
        }
    }
    assert_eq!(handler(fastws::http::StatusCode::OK).unwrap(), "ok");
    assert!(handler(fastws::http::StatusCode::NOT_FOUND).is_err());
    let _: fastws::http::Response<()> = fastws::http::Response::new(());
}

#[tokio::test]
async fn the_stream_is_fused_for_select_and_terminates_after_the_close() {
    let (addr, server) = start(Config::default(), common::echo).await;
    let (mut ws, _) = fastws::connect(format!("ws://{addr}/")).await.unwrap();
    ws.send(Message::text("one")).await.unwrap();
    // `select!` needs FusedStream for `ws.next()` (E0277 without it).
    let mut tick = Box::pin(tokio::time::sleep(common::TIMEOUT).fuse());
    let echoed = futures::select! {
        message = ws.next() => message,
        _ = tick => panic!("no echo within the timeout"),
    };
    assert_eq!(echoed.unwrap().unwrap(), Message::text("one"));
    assert!(!futures::stream::FusedStream::is_terminated(&ws));

    within("the close handshake", ws.close()).await.unwrap();
    while let Some(message) = within("the end of the stream", ws.next()).await {
        assert!(message.is_ok(), "{message:?}");
    }
    assert!(futures::stream::FusedStream::is_terminated(&ws));
    common::finish(server).await.unwrap();
}

#[tokio::test]
async fn split_stream_is_fused_too() {
    let (addr, server) = start(Config::default(), common::echo).await;
    let (ws, _) = fastws::connect(format!("ws://{addr}/")).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    assert!(!futures::stream::FusedStream::is_terminated(&stream));
    within("the close handshake", sink.close()).await.unwrap();
    while within("the end of the stream", stream.next()).await.is_some() {}
    assert!(futures::stream::FusedStream::is_terminated(&stream));
    common::finish(server).await.unwrap();
}

#[tokio::test]
async fn both_ends_report_the_negotiated_subprotocol_and_extensions() {
    let (addr, server) = common::start_raw(|tcp| async move {
        let ws = fastws::accept_with(tcp, |request, mut response| {
            let chosen = fastws::handshake::offered_protocols(request.headers())
                .find(|p| *p == "chat.v1")
                .map(|p| fastws::http::HeaderValue::from_str(p).unwrap());
            if let Some(chosen) = chosen {
                response
                    .headers_mut()
                    .insert(fastws::http::header::SEC_WEBSOCKET_PROTOCOL, chosen);
            }
            Ok(response)
        })
        .await
        .unwrap();
        (
            ws.protocol().map(str::to_owned),
            ws.extensions().map(str::to_owned),
            ws.is_compressed(),
        )
    })
    .await;
    let (ws, _) = fastws::ClientRequest::new(format!("ws://{addr}/"))
        .protocol("chat.v2")
        .protocol("chat.v1")
        .connect()
        .await
        .unwrap();
    assert_eq!(ws.protocol(), Some("chat.v1"));
    let extensions = ws.extensions().expect("deflate is negotiated by default");
    assert!(extensions.starts_with("permessage-deflate"), "{extensions}");
    assert!(ws.is_compressed());
    let (protocol, server_extensions, compressed) = common::finish(server).await;
    assert_eq!(protocol.as_deref(), Some("chat.v1"));
    assert_eq!(server_extensions.as_deref(), Some(extensions));
    assert!(compressed);
}

#[tokio::test]
async fn without_a_subprotocol_or_deflate_nothing_is_reported() {
    let (addr, server) = start(
        Config::default().deflate(fastws::DeflateConfig::disabled()),
        |ws| async move {
            Ok((
                ws.protocol().is_none(),
                ws.extensions().is_none(),
                ws.is_compressed(),
            ))
        },
    )
    .await;
    let (ws, _) = fastws::connect(format!("ws://{addr}/")).await.unwrap();
    assert_eq!(ws.protocol(), None);
    assert_eq!(ws.extensions(), None);
    assert!(!ws.is_compressed());
    assert_eq!(common::finish(server).await.unwrap(), (true, true, false));
}

#[tokio::test]
async fn a_peer_that_vanishes_is_a_disconnect_not_a_failure() {
    let (addr, server) = start(Config::default(), |mut ws| async move {
        let first = ws.next().await;
        let end = ws.next().await;
        Ok((first, end))
    })
    .await;
    let mut client = connect(addr).await;
    send(&mut client, Frame::text("hi")).await;
    drop(client);
    let (first, end) = common::finish(server).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), Message::text("hi"));
    let err = end
        .expect("an error, then the end")
        .expect_err("no close frame came");
    assert!(err.is_disconnect(), "{err:?}");
    assert!(!err.is_protocol());
    assert!(!Error::InvalidUtf8.is_disconnect());
}

#[tokio::test]
async fn an_unsendable_close_code_is_our_error_and_leaves_the_connection_usable() {
    let (addr, server) = start(Config::default(), |mut ws| async move {
        let refused = ws.send(Message::close(CloseCode::from(1005), "")).await;
        let too_long = ws.send(Message::close(CloseCode::Normal, "x".repeat(124))).await;
        ws.send(Message::text("still open")).await?;
        ws.send(Message::close(CloseCode::Private(4000), "app")).await?;
        Ok((refused, too_long))
    })
    .await;
    let mut client = connect(addr).await;
    let text = recv(&mut client).await;
    assert_eq!(
        (text.opcode(), text.payload().as_ref()),
        (OpCode::Text, &b"still open"[..])
    );
    let close = recv(&mut client).await;
    assert_eq!(common::close_code(&close), Some(4000));
    assert_eq!(common::close_reason(&close), "app");
    send(&mut client, Frame::close(CloseCode::Private(4000), "app")).await;
    let (refused, too_long) = common::finish(server).await.unwrap();
    let refused = refused.expect_err("1005 may not be sent");
    assert!(
        matches!(refused, Error::UnsendableCloseCode(CloseCode::NoStatus)),
        "{refused:?}"
    );
    assert!(refused.is_misuse() && !refused.is_protocol() && refused.close_code().is_none());
    let too_long = too_long.expect_err("a 126-byte close payload may not be sent");
    assert!(
        matches!(too_long, Error::ControlPayloadTooLong { len: 126 }),
        "{too_long:?}"
    );
}

#[tokio::test]
async fn a_streaming_readers_io_error_gives_back_the_fastws_error() {
    let (addr, server) = start(Config::default(), |mut ws| async move {
        let mut reader = ws.next_message_reader().await.expect("a message")?;
        let mut text = Vec::new();
        let err = reader.read_to_end(&mut text).await.expect_err("invalid UTF-8");
        Ok(Error::from(err))
    })
    .await;
    let mut client = connect(addr).await;
    send(&mut client, Frame::new(OpCode::Text, &b"ok "[..]).with_fin(false)).await;
    send(&mut client, Frame::new(OpCode::Continuation, &b"\xff"[..])).await;
    let err = common::finish(server).await.unwrap();
    assert!(matches!(err, Error::InvalidUtf8), "{err:?}");
    assert_eq!(err.close_code(), Some(CloseCode::Invalid));
    // An io::Error that carries no fastws error stays an I/O error.
    assert!(matches!(Error::from(io::Error::other("plain")), Error::Io(_)));
}

#[tokio::test]
async fn a_ping_goes_out_between_the_fragments_of_a_streamed_message() {
    let (addr, server) = start(Config::default(), |mut ws| async move {
        let mut writer = ws.message_writer(MessageKind::Text);
        writer.write_all(b"first half, ").await?;
        writer.flush().await?;
        writer.ping(Bytes::from_static(b"still here")).await?;
        writer.write_all(b"second half").await?;
        writer.shutdown().await?;
        let too_long = writer.ping(vec![0; 126]).await;
        Ok(too_long)
    })
    .await;
    let mut client = connect(addr).await;
    let first = recv(&mut client).await;
    assert_eq!((first.opcode(), first.is_fin()), (OpCode::Text, false));
    assert_eq!(first.payload().as_ref(), b"first half, ");
    let ping = recv(&mut client).await;
    assert_eq!(
        (ping.opcode(), ping.payload().as_ref()),
        (OpCode::Ping, &b"still here"[..])
    );
    let last = recv(&mut client).await;
    assert_eq!((last.opcode(), last.is_fin()), (OpCode::Continuation, true));
    assert_eq!(last.payload().as_ref(), b"second half");
    let too_long = common::finish(server).await.unwrap();
    assert!(
        matches!(too_long, Err(Error::ControlPayloadTooLong { len: 126 })),
        "{too_long:?}"
    );
}
