//! The AMI of the consul server and the nodes: the ECS-optimized Amazon Linux 2023 image,
//! looked up in SSM, unless `--ami` names one.

use anyhow::{anyhow, Result};

use crate::aws::{error_code, AwsResultExt};
use crate::context::Ctx;

pub const ECS_AMI_PARAMETER: &str =
    "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id";

pub async fn resolve(ctx: &Ctx, ami: Option<&str>) -> Result<String> {
    if let Some(ami) = ami {
        return Ok(ami.to_owned());
    }
    let result = ctx
        .aws
        .ssm
        .get_parameter()
        .name(ECS_AMI_PARAMETER)
        .send()
        .await;
    if let Err(e) = &result {
        if error_code(e) == Some("ParameterNotFound") {
            return Err(anyhow!(
                "region {} has no ECS-optimized Amazon Linux 2023 AMI (SSM parameter {} not \
                 found); pass --ami AMI_ID",
                ctx.aws.region,
                ECS_AMI_PARAMETER
            ));
        }
    }
    let out = result.aws(format!("reading SSM parameter {ECS_AMI_PARAMETER}"))?;
    out.parameter()
        .and_then(|p| p.value())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("SSM parameter {ECS_AMI_PARAMETER} has no value; pass --ami"))
}
