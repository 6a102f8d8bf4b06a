//! Readiness probes: TCP connects, HTTP status checks (written by hand: one GET
//! without TLS, bounded in time and size), and the address and URL parsing they need.

use super::*;

/// Split `HOST:PORT` (`[v6]:PORT` for IPv6 literals) into host and a port > 0.
pub fn parse_address(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    let host = match host.strip_prefix('[') {
        Some(rest) => {
            let inner = rest.strip_suffix(']')?;
            inner.parse::<std::net::Ipv6Addr>().ok()?;
            inner
        }
        None if host.contains(':') => return None,
        None => host,
    };
    let bad = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '[' | ']');
    if host.is_empty() || host.chars().any(bad) {
        return None;
    }
    Some((host.to_owned(), port))
}

/// The parts of an `http://` URL a probe needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port (80 when omitted).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Parse an `http://HOST[:PORT][/PATH][?QUERY]` URL (scheme case-insensitive, fragment
/// dropped). `https`, user info and anything else are refused.
pub fn parse_http_url(url: &str) -> Option<HttpUrl> {
    let url = url.trim();
    let scheme_len = "http://".len();
    if url.len() < scheme_len || !url[..scheme_len].eq_ignore_ascii_case("http://") {
        return None;
    }
    let rest = &url[scheme_len..];
    let rest = rest.split('#').next().unwrap_or_default();
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() || authority.contains('@') || path.contains(char::is_whitespace) {
        return None;
    }
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let (host, port) = if has_port {
        parse_address(authority)?
    } else {
        parse_address(&format!("{authority}:80"))?
    };
    let path = if path.is_empty() {
        "/".to_owned()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Some(HttpUrl { host, port, path })
}

/// Socket addresses of `host:port`: IP literals and `localhost` directly, anything else
/// through the system resolver.
fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    Ok((host, port).to_socket_addrs()?.collect())
}

fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"));
    for addr in resolve(host, port)? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether `HOST:PORT` accepts a TCP connection within `timeout`.
pub fn tcp_probe(address: &str, timeout: Duration) -> bool {
    match parse_address(address) {
        Some((host, port)) => connect(&host, port, timeout).is_ok(),
        None => false,
    }
}

/// `GET url` with a hand-written HTTP/1.0 request; returns the status code of the
/// answer. The whole exchange (connect, send, status line) must finish within
/// `timeout`.
pub fn http_probe(url: &str, timeout: Duration) -> io::Result<u16> {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "HTTP probe timed out"))
    };
    let parsed = parse_http_url(url).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("not an http:// URL: {url}"))
    })?;
    let mut stream = connect(&parsed.host, parsed.port, remaining()?)?;
    let host_header = match (parsed.host.contains(':'), parsed.port) {
        (true, 80) => format!("[{}]", parsed.host),
        (true, port) => format!("[{}]:{port}", parsed.host),
        (false, 80) => parsed.host.clone(),
        (false, port) => format!("{}:{port}", parsed.host),
    };
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {host_header}\r\nUser-Agent: pyro-readiness\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        parsed.path
    );
    stream.set_write_timeout(Some(remaining()?))?;
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 8192 {
        stream.set_read_timeout(Some(remaining()?))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "HTTP probe timed out"))
            }
            Err(e) => return Err(e),
        }
    }
    parse_status_line(&head).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "the answer is not an HTTP status line")
    })
}

/// The status code of `HTTP/1.x NNN ...` at the start of `head`.
fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut words = line.split_ascii_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// Whether an HTTP status means ready (2xx or 3xx).
pub fn is_ready_status(code: u16) -> bool {
    (200..400).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn addresses_need_host_and_port() {
        assert_eq!(parse_address("127.0.0.1:8080"), Some(("127.0.0.1".into(), 8080)));
        assert_eq!(parse_address("localhost:1"), Some(("localhost".into(), 1)));
        assert_eq!(parse_address("[::1]:443"), Some(("::1".into(), 443)));
        for bad in [
            "8080",
            ":8080",
            "host:",
            "host:0",
            "host:65536",
            "host:http",
            "::1:80",
            "[nothex]:80",
            "a b:80",
            "http://x:80",
        ] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_urls_are_parsed_by_hand() {
        let u = parse_http_url("http://127.0.0.1:8080/health?x=1#frag").expect("url");
        assert_eq!(u, HttpUrl { host: "127.0.0.1".into(), port: 8080, path: "/health?x=1".into() });
        let u = parse_http_url("HTTP://localhost").expect("url");
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = parse_http_url("http://[::1]/x").expect("url");
        assert_eq!((u.host.as_str(), u.port), ("::1", 80));
        let u = parse_http_url("http://h?q").expect("url");
        assert_eq!(u.path, "/?q");
        for bad in ["https://x/", "ftp://x", "http://", "http://u@h/", "http://h:0/", "x"] {
            assert_eq!(parse_http_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.0 200 OK\r\n"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.1 302\r\nLocation: /\r\n"), Some(302));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 20\r\n"), None);
        assert!(is_ready_status(204) && is_ready_status(301) && !is_ready_status(404));
    }

    /// A one-shot HTTP server on 127.0.0.1 answering `answer` after reading the request
    /// head; returns its URL and the request it saw.
    fn serve_once(answer: &'static [u8]) -> (String, thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://127.0.0.1:{}/ready?probe=1",
            listener.local_addr().expect("addr").port()
        );
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut seen = Vec::new();
            let mut buf = [0u8; 256];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            stream.write_all(answer).expect("answer");
            String::from_utf8(seen).expect("utf8")
        });
        (url, handle)
    }

    #[test]
    fn http_probe_reads_the_status_of_a_real_server() {
        let (url, server) = serve_once(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(http_probe(&url, HTTP_PROBE_TIMEOUT).expect("probe"), 200);
        let request = server.join().expect("server");
        assert!(request.starts_with("GET /ready?probe=1 HTTP/1.0\r\n"), "{request}");
        assert!(request.contains("\r\nHost: 127.0.0.1:"), "{request}");

        let (url, server) = serve_once(b"HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n");
        assert!(http_probe(&url, HTTP_PROBE_TIMEOUT).is_ok_and(is_ready_status));
        server.join().expect("server");

        let (url, server) = serve_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert_eq!(http_probe(&url, HTTP_PROBE_TIMEOUT).expect("probe"), 503);
        server.join().expect("server");

        let (url, server) = serve_once(b"hello\n");
        assert_eq!(
            http_probe(&url, HTTP_PROBE_TIMEOUT).expect_err("garbage").kind(),
            io::ErrorKind::InvalidData
        );
        server.join().expect("server");
    }

    #[test]
    fn http_probe_times_out_on_a_silent_server_and_fails_on_a_closed_port() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // Accepts (the kernel does) but never answers.
        let started = Instant::now();
        let err = http_probe(&format!("http://127.0.0.1:{port}/"), Duration::from_millis(300))
            .expect_err("silent");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        drop(listener);
        assert!(http_probe(&format!("http://127.0.0.1:{port}/"), HTTP_PROBE_TIMEOUT).is_err());
        assert!(!tcp_probe(&format!("127.0.0.1:{port}"), TCP_PROBE_TIMEOUT));
        let open = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = format!("127.0.0.1:{}", open.local_addr().expect("addr").port());
        assert!(tcp_probe(&addr, TCP_PROBE_TIMEOUT));
        assert!(!tcp_probe("not-an-address", TCP_PROBE_TIMEOUT));
    }
}
