//! Object storage: `s3://` against a local S3-compatible server (moto, which
//! `.ci/run` starts), and `http://` against a small range-capable server
//! started by the test itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

use crate::common;

/// Where the S3-compatible test server listens.
fn s3_endpoint() -> String {
    std::env::var("MOLTRES_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
}

fn host_port(endpoint: &str) -> String {
    endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// One raw HTTP/1.1 request; returns the status code.
fn http_request(host: &str, request: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(host)?;
    stream.write_all(request.as_bytes())?;
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status)?;
    Ok(status
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

fn moltres_s3(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_moltres"))
        .current_dir(common::root())
        .env("AWS_ACCESS_KEY_ID", "moltres")
        .env("AWS_SECRET_ACCESS_KEY", "moltres")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ENDPOINT", s3_endpoint())
        .env_remove("AWS_ENDPOINT_URL")
        .args(args)
        .output()
        .expect("moltres runs")
}

#[test]
fn s3_write_read_glob_and_attach() {
    let endpoint = s3_endpoint();
    let host = host_port(&endpoint);
    if TcpStream::connect(&host).is_err() {
        panic!(
            "no S3-compatible server at {endpoint} (set MOLTRES_TEST_S3_ENDPOINT; .ci/run starts one with `moto_server -p 9000`)"
        );
    }
    let bucket = format!("moltres-{}", std::process::id());
    let status = http_request(
        &host,
        &format!("PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    )
    .unwrap();
    assert_eq!(status, 200, "creating bucket {bucket}");

    let out = moltres_s3(&[
        "-c",
        &format!(
            "COPY (SELECT * FROM 'testdata/cities.parquet') TO 's3://{bucket}/lake/cities.parquet'"
        ),
        "-c",
        &format!("COPY (SELECT * FROM 'testdata/trips.csv') TO 's3://{bucket}/lake/trips.csv'"),
        "-c",
        &format!("SELECT count(*) AS n FROM 's3://{bucket}/lake/cities.parquet'"),
        "-c",
        &format!("SELECT count(*) AS n FROM 's3://{bucket}/lake/*.csv'"),
        "-c",
        &format!("ATTACH 's3://{bucket}/lake/' AS lake"),
        "-c",
        "SELECT c.name, count(*) AS trips FROM lake.trips t JOIN lake.cities c ON t.city_id = c.id GROUP BY c.name ORDER BY trips DESC LIMIT 1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "count\n8\ncount\n2000\nn\n8\nn\n2000\nname,trips\nMadrid,273\n"
    );

    let out = moltres_s3(&[
        "-c",
        &format!("SELECT * FROM 's3://{bucket}/lake/missing.parquet'"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("s3://{bucket}/lake/missing.parquet")),
        "{stderr}"
    );
}

/// Serves files under `testdata/` with HEAD and ranged GET, until the test ends.
fn serve_testdata() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let root = common::root().join("testdata");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || {
                let _ = handle(stream, &root);
            });
        }
    });
    address
}

fn handle(mut stream: TcpStream, root: &std::path::Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("/").to_string();
        let mut range = None;
        let mut content_length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("range: bytes=") {
                let (a, b) = r.split_once('-').unwrap_or((r, ""));
                range = Some((a.parse::<usize>().unwrap_or(0), b.parse::<usize>().ok()));
            }
            if let Some(n) = lower.strip_prefix("content-length: ") {
                content_length = n.parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;
        let file = root.join(path.trim_start_matches('/'));
        let data = match (method.as_str(), std::fs::read(&file)) {
            ("GET" | "HEAD", Ok(data)) => data,
            _ => {
                stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
                continue;
            }
        };
        let (status, slice) = match range {
            Some((start, end)) => {
                let end = end.map(|e| e + 1).unwrap_or(data.len()).min(data.len());
                ("206 Partial Content", &data[start.min(end)..end])
            }
            None => ("200 OK", &data[..]),
        };
        let mut head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nLast-Modified: Sat, 28 Nov 2026 00:00:00 GMT\r\n",
            slice.len()
        );
        if let Some((start, _)) = range {
            head.push_str(&format!(
                "Content-Range: bytes {start}-{}/{}\r\n",
                start + slice.len().saturating_sub(1),
                data.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        if method == "GET" {
            stream.write_all(slice)?;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_files() {
    let address = serve_testdata();
    let db = common::session().await;
    let rows = common::query(
        &db,
        &format!(
            "SELECT c.country, count(*) AS trips FROM 'http://{address}/trips.csv' t \
             JOIN 'http://{address}/cities.parquet' c ON t.city_id = c.id \
             GROUP BY c.country ORDER BY c.country"
        ),
    )
    .await;
    let counts: Vec<_> = rows.iter().map(|r| r.join(" ")).collect();
    assert_eq!(counts, vec!["DE 489", "ES 518", "FR 496", "PT 497"]);
    let err = db
        .sql(&format!(
            "SELECT * FROM read_parquet('http://{address}/missing.parquet')"
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.parquet"), "{err}");
}
