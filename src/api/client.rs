//! The client the CLI uses to talk to a running agent.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ErrorBody;

/// How long a request may take, unless a command says otherwise.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one agent's local API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    addr: SocketAddr,
    http: reqwest::Client,
    token: Option<String>,
}

impl ApiClient {
    /// A client for the agent at `addr`; `token` is needed for changes only.
    pub fn new(addr: SocketAddr, token: Option<String>) -> Result<Self> {
        crate::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()?;
        Ok(Self { addr, http, token })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        let why = if e.is_connect() {
            "connection refused".to_owned()
        } else if e.is_timeout() {
            "timed out".to_owned()
        } else {
            e.to_string()
        };
        anyhow!(
            "cannot reach the agent at {} ({why}). Is `rover-agent agent` running? \
             Pick another agent with --api ADDR or ROVER_API.",
            self.addr
        )
    }

    async fn answer<T: DeserializeOwned>(&self, response: reqwest::Response) -> Result<T> {
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|e| anyhow!("the agent at {} sent an unreadable answer: {e}", self.addr));
        }
        let message = match response.json::<ErrorBody>().await {
            Ok(body) => body.error,
            Err(_) => status.to_string(),
        };
        Err(anyhow!("the agent refused: {message}"))
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.answer(response).await
    }

    /// `GET path` for a response that streams until the agent or the caller ends it: no time
    /// limit past connecting.
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response> {
        let http = reqwest::Client::builder()
            .connect_timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()?;
        let response = http
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let message = match response.json::<ErrorBody>().await {
            Ok(body) => body.error,
            Err(_) => status.to_string(),
        };
        Err(anyhow!("the agent refused: {message}"))
    }

    /// `POST path` with a JSON body and the token.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.post_within(path, body, REQUEST_TIMEOUT).await
    }

    /// `POST path` like [`ApiClient::post`], for a change that may take up to `timeout`.
    pub async fn post_within<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T> {
        let token = self.token.as_deref().ok_or_else(|| {
            anyhow!("no token: this change needs the agent's token file (--data-dir DIR or ROVER_TOKEN_FILE)")
        })?;
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.answer(response).await
    }
}
