//! Scrapes a service's metrics endpoint over a real socket, as Prometheus
//! would (HTTP/1.1 `GET /metrics`), and parses the text into series.

use std::{collections::BTreeMap, net::SocketAddr};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// One scrape: every series (name and sorted labels) and its value.
#[derive(Debug)]
pub struct Scrape {
    /// The response body, for messages.
    pub text: String,
    series: BTreeMap<(String, Vec<(String, String)>), f64>,
}

impl Scrape {
    /// The value of `name` with exactly these labels (in any order), if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        self.series.get(&(name.to_owned(), labels)).copied()
    }

    /// Like [`Self::get`], 0 when absent (a counter never incremented).
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Every series named `name`, with their labels.
    pub fn all(&self, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        self.series
            .iter()
            .filter(|((series, _), _)| series == name)
            .map(|((_, labels), value)| (labels.clone(), *value))
            .collect()
    }
}

/// `GET /metrics` from `addr`; panics unless the answer is 200 with text.
pub async fn scrape(addr: SocketAddr) -> Scrape {
    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "GET /metrics from {addr}: {text}");
    Scrape {
        series: parse(&text),
        text,
    }
}

/// The status code and body of `GET path` from `addr`.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {addr}: {error}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("a UTF-8 response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("an HTTP response: {response}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    (status, body.to_owned())
}

/// Parses the Prometheus text format (as the exporter writes it: no
/// escaped quotes or commas in label values, which are all fixed names).
fn parse(text: &str) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    let mut series = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("a sample line: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("a number in: {line}")),
        };
        let (name, labels) = match key.split_once('{') {
            Some((name, rest)) => {
                let mut labels: Vec<(String, String)> = rest
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (k, v) = pair
                            .split_once('=')
                            .unwrap_or_else(|| panic!("a label in: {line}"));
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                labels.sort();
                (name.to_owned(), labels)
            }
            None => (key.to_owned(), Vec::new()),
        };
        series.insert((name, labels), value);
    }
    series
}
