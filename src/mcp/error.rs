//! The one place an error becomes an MCP answer. A tool that fails answers a tool error
//! (`isError: true`) carrying the REST API's `code`, `message` and HTTP `status` (the mapping
//! is `api::error`'s, so a 409 `lease_lost` reads the same on both); the session goes on. A
//! resource read has no error result, so it answers a JSON-RPC error with the same fields.

use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::json;

use crate::api::error::{ApiError, excerpt};
use crate::error::HopperError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl From<ApiError> for ToolError {
    fn from(e: ApiError) -> Self {
        Self {
            status: e.status.as_u16(),
            code: e.code.to_owned(),
            message: excerpt(e.message),
        }
    }
}

impl From<HopperError> for ToolError {
    fn from(e: HopperError) -> Self {
        match e {
            // A remote server's refusal (`hopper mcp --server`), passed on as it was sent.
            HopperError::Remote {
                status,
                code,
                message,
            } => Self {
                status,
                code,
                message: excerpt(message),
            },
            // `hopper mcp --server` cannot reach its server: the assistant's user needs to
            // know that, not "internal error" (nothing of a server's is in the message).
            HopperError::Transport(_) => Self {
                status: 502,
                code: "unreachable".into(),
                message: excerpt(e.to_string()),
            },
            other => ApiError::from(other).into(),
        }
    }
}

impl ToolError {
    /// Arguments that do not read as the tool's input: the REST API's 422 for a body whose
    /// fields are wrong.
    pub fn invalid(message: impl std::fmt::Display) -> Self {
        Self {
            status: 422,
            code: "invalid".into(),
            message: excerpt(message.to_string()),
        }
    }

    fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code, "message": self.message, "status": self.status } })
    }

    /// The tool error result: the text for the model, the same fields structured.
    pub fn into_result(self) -> CallToolResult {
        let mut result = CallToolResult::error(vec![ContentBlock::text(format!(
            "{} ({}): {}",
            self.code, self.status, self.message
        ))]);
        result.structured_content = Some(self.body());
        result
    }

    /// A JSON-RPC error, for requests that have no error result (resource reads).
    pub fn into_protocol(self) -> ErrorData {
        let text = format!("{}: {}", self.code, self.message);
        let data = Some(self.body());
        match self.status {
            404 => ErrorData::resource_not_found(text, data),
            400..=499 => ErrorData::invalid_params(text, data),
            _ => ErrorData::internal_error(text, data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_rest_apis() {
        let e: ToolError = HopperError::LeaseLost("gone".into()).into();
        assert_eq!((e.status, e.code.as_str()), (409, "lease_lost"));
        let r = e.into_result();
        assert_eq!(r.is_error, Some(true));
        let body = r.structured_content.unwrap_or_default();
        assert_eq!(body["error"]["code"], "lease_lost");
        let hidden: ToolError =
            HopperError::Store(crate::store::StoreError::Corrupt("db detail".into())).into();
        assert_eq!(hidden.status, 500);
        assert!(!hidden.message.contains("db detail"));
        let remote: ToolError = HopperError::Remote {
            status: 403,
            code: "forbidden".into(),
            message: "no".into(),
        }
        .into();
        assert_eq!((remote.status, remote.code.as_str()), (403, "forbidden"));
        let down: ToolError = HopperError::Transport("connection refused".into()).into();
        assert_eq!((down.status, down.code.as_str()), (502, "unreachable"));
        assert!(down.message.contains("connection refused"));
    }
}
