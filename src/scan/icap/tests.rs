use super::response::parse_encapsulated;
use super::*;

const INFECTED_HEAD: &[u8] = b"ICAP/1.0 200 OK\r\nServer: C-ICAP/0.5.10\r\nConnection: keep-alive\r\nISTag: \"CI0001-x\"\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Test-Local.UNOFFICIAL;\r\nX-Violations-Found: 1\r\n\t-\r\n\tEicar-Test-Local.UNOFFICIAL\r\n\t0\r\n\t0\r\nEncapsulated: res-hdr=0, res-body=108\r\n\r\n";

fn url() -> IcapUrl {
    IcapUrl::parse("icap://127.0.0.1:1344/avscan").unwrap()
}

#[test]
fn urls() {
    let plain = IcapUrl::parse("icap://icap.example.org/dlp").unwrap();
    assert_eq!(plain.authority, "icap.example.org:1344");
    assert_eq!(url().authority, "127.0.0.1:1344");
    assert_eq!(
        IcapUrl::parse("icap://[::1]/x").unwrap().authority,
        "[::1]:1344"
    );
    assert_eq!(
        IcapUrl::parse("icap://[::1]:99/x").unwrap().authority,
        "[::1]:99"
    );
    assert_eq!(IcapUrl::parse("icap://h:1345").unwrap().authority, "h:1345");
    for bad in [
        "http://h/x",
        "icap://",
        "icap:///x",
        "icap://h:0/x",
        "icap://h:x/x",
        "icap://u@h/x",
        "icap://:1344/x",
    ] {
        assert!(IcapUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn c_icaps_infected_head() {
    let (head, length) = parse_head(INFECTED_HEAD).unwrap().unwrap();
    assert_eq!(length, INFECTED_HEAD.len());
    assert_eq!(head.code, 200);
    assert_eq!(
        head.threat().as_deref(),
        Some("Eicar-Test-Local.UNOFFICIAL")
    );
    assert_eq!(
        head.sections,
        vec![("res-hdr".to_string(), 0), ("res-body".to_string(), 108)]
    );
    // Without X-Infection-Found, the folded X-Violations-Found names it.
    let text = String::from_utf8_lossy(INFECTED_HEAD).replace("X-Infection-Found", "X-Other");
    let (head, _) = parse_head(text.as_bytes()).unwrap().unwrap();
    assert_eq!(
        head.threat().as_deref(),
        Some("Eicar-Test-Local.UNOFFICIAL")
    );
    let (head, _) = parse_head(
        b"ICAP/1.0 200 OK\r\nX-Virus-ID: EICAR Test String\r\nEncapsulated: null-body=0\r\n\r\n",
    )
    .unwrap()
    .unwrap();
    assert_eq!(head.threat().as_deref(), Some("EICAR Test String"));
}

#[test]
fn a_head_arrives_in_pieces() {
    for cut in 0..INFECTED_HEAD.len() {
        assert!(
            parse_head(&INFECTED_HEAD[..cut]).unwrap().is_none(),
            "cut at {cut}"
        );
    }
    let (head, _) = parse_head(b"ICAP/1.0 204 Unmodified\r\nISTag: \"x\"\r\n\r\nleftover")
        .unwrap()
        .unwrap();
    assert_eq!((head.code, head.threat()), (204, None));
}

#[test]
fn bad_heads_are_errors_not_panics() {
    for bad in [
        &b"HTTP/1.1 200 OK\r\n\r\n"[..],
        b"ICAP/2.0 200 OK\r\n\r\n",
        b"ICAP/1.0 2x0 OK\r\n\r\n",
        b"ICAP/1.0 200 OK\r\nBad Header\r\n\r\n",
        b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=10, res-body=5\r\n\r\n",
        b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=x\r\n\r\n",
        b"ICAP/1.0 200 OK\r\nEncapsulated: foo=1\r\n\r\n",
        b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=99999999999999999999999\r\n\r\n",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
    ] {
        assert!(
            parse_head(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let mut many = b"ICAP/1.0 200 OK\r\n".to_vec();
    for i in 0..(MAX_HEADERS + 1) {
        many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(parse_head(&many).is_err());
    let endless = [b"ICAP/1.0 200 OK\r\nX: ".as_slice(), &vec![b'a'; MAX_HEAD]].concat();
    assert!(parse_head(&endless).is_err());
}

#[test]
fn chunked_bodies() {
    assert_eq!(
        dechunk(b"5\r\nhello\r\n0\r\n\r\n", 100).unwrap().unwrap(),
        b"hello"
    );
    assert_eq!(
        dechunk(b"3;x=y\r\nabc\r\n2\r\nde\r\n0; ieof\r\n\r\n", 100)
            .unwrap()
            .unwrap(),
        b"abcde"
    );
    let whole = b"5\r\nhello\r\n0\r\n\r\n";
    for cut in 0..whole.len() - 4 {
        assert!(
            dechunk(&whole[..cut], 100).unwrap().is_none(),
            "cut at {cut}"
        );
    }
    for bad in [
        &b"zz\r\nhello\r\n"[..],
        b"5\r\nhelloXX0\r\n\r\n",
        b"ffffffffffffffffff\r\n",
        b"-1\r\n",
    ] {
        assert!(
            dechunk(bad, 100).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Fed a byte at a time, the same body.
    let whole = b"3\r\nabc\r\n2;ext\r\nde\r\n0\r\n\r\n";
    let mut dechunker = Dechunker::new(100);
    let mut buffer = Vec::new();
    let mut fed = 0;
    for byte in whole {
        buffer.push(*byte);
        fed += 1;
        if dechunker.feed(&mut buffer).unwrap() {
            break;
        }
    }
    // Done at the last chunk's size line (the trailer is not waited for).
    assert_eq!(fed, whole.len() - 2);
    assert_eq!(dechunker.into_body(), b"abcde");
    // Over the limit, before the bytes arrive.
    assert!(dechunk(b"ffffffff\r\n", 100).is_err());
    assert!(dechunk(b"65\r\n", 100).is_err());
}

#[test]
fn requests() {
    let subject = Subject {
        host: "mx.test",
        id: "ID1",
    };
    let reqmod =
        String::from_utf8(encode_request(&url(), Method::Reqmod, subject, b"hello")).unwrap();
    let (head, http) = reqmod.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("REQMOD icap://127.0.0.1:1344/avscan ICAP/1.0\r\n"));
    assert!(head.contains("\r\nAllow: 204"));
    let offset: usize = head.rsplit_once("req-body=").unwrap().1.parse().unwrap();
    assert!(
        http[offset..].starts_with("5\r\nhello\r\n0\r\n\r\n"),
        "{http}"
    );
    assert!(http.starts_with("POST /message/ID1 HTTP/1.1\r\n"));
    let respmod = String::from_utf8(encode_request(
        &url(),
        Method::Respmod,
        Subject {
            host: "mx\r\nX: y",
            id: "I D",
        },
        b"",
    ))
    .unwrap();
    assert!(
        respmod.contains("Host: mx__X:_y\r\n") && respmod.contains("/message/I_D "),
        "{respmod}"
    );
    let (head, http) = respmod.split_once("\r\n\r\n").unwrap();
    let offsets = head.rsplit_once("Encapsulated: ").unwrap().1;
    let sections = parse_encapsulated(offsets).unwrap();
    assert_eq!(&http[sections[1].1..sections[1].1 + 15], "HTTP/1.1 200 OK");
    assert!(http[sections[2].1..].starts_with("0\r\n\r\n"));
}

async fn answer(response: &'static [u8], message: &'static [u8]) -> Result<Finding, IcapError> {
    let (client, mut server) = tokio::io::duplex(1 << 20);
    let service = tokio::spawn(async move {
        let mut request = vec![0u8; 64 * 1024];
        let _ = server.read(&mut request).await;
        server.write_all(response).await.unwrap();
    });
    let request = encode_request(
        &url(),
        Method::Respmod,
        Subject { host: "h", id: "i" },
        message,
    );
    let result = exchange(client, &request, message).await;
    service.await.unwrap();
    result
}

#[tokio::test]
async fn what_answers_mean() {
    assert_eq!(
        answer(b"ICAP/1.0 204 Unmodified\r\n\r\n", b"m")
            .await
            .unwrap(),
        Finding::Clean
    );
    let page = b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=26\r\n\r\nHTTP/1.0 403 Forbidden\r\n\r\n4\r\nnope\r\n0\r\n\r\n";
    assert_eq!(
        answer(page, b"m").await.unwrap(),
        Finding::Blocked("the service answered HTTP 403 Forbidden".into())
    );
    let echo = b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n3\r\nmsg\r\n0\r\n\r\n";
    assert_eq!(answer(echo, b"msg").await.unwrap(), Finding::Clean);
    assert_eq!(
        answer(echo, b"other").await.unwrap(),
        Finding::Blocked("the service changed the message".into())
    );
    let infected = [INFECTED_HEAD, b"HTTP/1.0 403 Forbidden\r\n..."]
        .concat()
        .leak();
    assert_eq!(
        answer(infected, b"m").await.unwrap(),
        Finding::Infected("Eicar-Test-Local.UNOFFICIAL".into())
    );
    assert!(matches!(
        answer(b"ICAP/1.0 500 Server Error\r\n\r\n", b"m").await,
        Err(IcapError::Status { code: 500, .. })
    ));
    assert!(matches!(
        answer(b"ICAP/1.0 404 Service Not Found\r\n\r\n", b"m").await,
        Err(IcapError::Status { code: 404, .. })
    ));
    assert!(matches!(
        answer(
            b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200",
            b"m"
        )
        .await,
        Err(IcapError::Closed)
    ));
    assert!(matches!(
        answer(b"ICAP/1.0 200 OK\r\n\r\n", b"m").await,
        Err(IcapError::Head(_))
    ));
    assert!(matches!(
        answer(b"ICAP/1.0 20", b"m").await,
        Err(IcapError::Closed)
    ));
    assert!(matches!(answer(b"", b"m").await, Err(IcapError::Closed)));
}

/// A service that always sends the message back (no 204): a large body, in many chunks,
/// read in one pass.
#[tokio::test]
async fn a_large_echo_is_clean() {
    let message: Vec<u8> = (0..4_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut response =
        b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"
            .to_vec();
    for chunk in message.chunks(4096) {
        response.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        response.extend_from_slice(chunk);
        response.extend_from_slice(b"\r\n");
    }
    response.extend_from_slice(b"0\r\n\r\n");
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let service = tokio::spawn(async move {
        let mut sink = vec![0u8; 64 * 1024];
        // Read the request while answering, as a streaming service does.
        let (mut read, mut write) = tokio::io::split(&mut server);
        let reader = async { while read.read(&mut sink).await.unwrap_or(0) > 0 {} };
        let writer = async {
            write.write_all(&response).await.unwrap();
            write.shutdown().await.unwrap();
        };
        tokio::join!(reader, writer);
    });
    let request = encode_request(
        &url(),
        Method::Respmod,
        Subject { host: "h", id: "i" },
        &message,
    );
    let started = std::time::Instant::now();
    let result = exchange(client, &request, &message).await.unwrap();
    assert_eq!(result, Finding::Clean);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    service.abort();
}

#[tokio::test]
async fn a_silent_service_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = IcapUrl::parse(&format!("icap://{}/x", listener.local_addr().unwrap())).unwrap();
    let hold = tokio::spawn(async move {
        let (_socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let result = scan(
        &url,
        Method::Reqmod,
        Subject { host: "h", id: "i" },
        b"m",
        Duration::from_millis(300),
    )
    .await;
    assert!(matches!(result, Err(IcapError::Timeout(_))), "{result:?}");
    hold.abort();
}
