//! Azure OpenAI: the OpenAI wire format on `{resource}.openai.azure.com` (also
//! `.cognitiveservices.azure.com`, `.services.ai.azure.com`), with the deployment in the path
//! (`/openai/deployments/{deployment}/chat/completions?api-version=…`) or the v1 API
//! (`/openai/v1/chat/completions`). The request model is the body `model` when sent, else the
//! deployment name; the response `model` is the underlying model. The first streamed chunk is
//! a content-filter annotation with `"id": ""`, `"model": ""`, `choices: []`: the OpenAI handler
//! never lets empty values overwrite id/model, and it carries no output.

use super::common::{percent_decode, RequestCtx};
use super::detect::Detected;
use super::openai::{Kind, OpenAi};

pub fn detect(req: &RequestCtx<'_>) -> Option<Detected> {
    let azure_host = req.host_ends_with(".openai.azure.com")
        || req.host_ends_with(".cognitiveservices.azure.com")
        || req.host_ends_with(".services.ai.azure.com");
    let deployment = req
        .path
        .strip_prefix("/openai/deployments/")
        .and_then(|rest| rest.split('/').next())
        .filter(|d| !d.is_empty())
        .map(percent_decode);
    if !azure_host && deployment.is_none() {
        return None;
    }
    let kind = Kind::from_path(req.path)?;
    Some(Detected {
        provider: "azure.ai.openai".into(),
        operation: kind.operation(),
        api_type: Some(kind.api_type()),
        api: Box::new(OpenAi::new(kind, deployment)),
    })
}
