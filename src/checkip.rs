//! The caller's public IP, to open the demo's ports to it alone when no `--allow-cidr` is
//! given (the guide opens them to the world).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{anyhow, Result};

use crate::stack::Cidr;

pub const DEFAULT_URL: &str = "https://checkip.amazonaws.com";
const TIMEOUT: Duration = Duration::from_secs(5);

pub async fn public_ip() -> Result<Cidr> {
    let url = std::env::var("L5D_ECS_CHECKIP_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let ask_for_cidr = |why: String| {
        anyhow!(
            "could not find your public IP from {url} ({why}); pass --allow-cidr CIDR to say \
             who may reach the demo's ports"
        )
    };
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| ask_for_cidr(e.to_string()))?;
    let body = client
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| ask_for_cidr(e.to_string()))?
        .text()
        .await
        .map_err(|e| ask_for_cidr(e.to_string()))?;
    let ip: IpAddr = body
        .trim()
        .parse()
        .map_err(|_| ask_for_cidr(format!("it answered {:?}, not an IP address", body.trim())))?;
    Ok(Cidr::host(ip))
}
