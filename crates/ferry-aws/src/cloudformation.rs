//! CloudFormation stack outputs, for `${output:Name}` in ferry.toml.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudformation::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::classify;
use ferry_core::provider::{PResult, ProviderError, StackOutputs};

pub struct Stacks {
    client: Client,
}

impl Stacks {
    pub fn new(client: Client) -> Self {
        Stacks { client }
    }
}

#[async_trait]
impl StackOutputs for Stacks {
    async fn outputs(&self, stack: &str) -> PResult<BTreeMap<String, String>> {
        let out = match self.client.describe_stacks().stack_name(stack).send().await {
            Ok(out) => out,
            // A missing stack is CloudFormation's generic ValidationError code.
            Err(e) if e.code() == Some("ValidationError") => {
                return Err(ProviderError::Rejected(format!(
                    "CloudFormation stack {stack:?} does not exist in this account and region (check `stack` and the region)"
                )));
            }
            Err(e) => return Err(classify("DescribeStacks", e)),
        };
        let stack =
            out.stacks().first().ok_or_else(|| ProviderError::Rejected(format!("stack {stack:?} not found")))?;
        Ok(stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value().unwrap_or_default().to_string())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
    use aws_sdk_cloudformation::types::{Output, Stack, StackStatus};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    #[tokio::test]
    async fn outputs_are_read_and_a_missing_stack_is_named() {
        let ok = mock!(Client::describe_stacks).match_requests(|r| r.stack_name() == Some("prod")).then_output(|| {
            DescribeStacksOutput::builder()
                .stacks(
                    Stack::builder()
                        .stack_name("prod")
                        .stack_status(StackStatus::CreateComplete)
                        .creation_time(aws_smithy_types::DateTime::from_secs(0))
                        .outputs(Output::builder().output_key("ClusterName").output_value("app-ecs").build())
                        .build(),
                )
                .build()
        });
        let missing = mock!(Client::describe_stacks).match_requests(|r| r.stack_name() == Some("nope")).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id nope does not exist</Message></Error></ErrorResponse>",
                ),
            )
        });
        let client = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, [&ok, &missing]);
        let stacks = Stacks::new(client);
        assert_eq!(stacks.outputs("prod").await.unwrap().get("ClusterName").map(String::as_str), Some("app-ecs"));
        let err = stacks.outputs("nope").await.unwrap_err();
        assert!(matches!(&err, ProviderError::Rejected(m) if m.contains("\"nope\" does not exist")), "{err:?}");
    }
}
