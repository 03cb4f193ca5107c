//! Errors a client can see: an [`ErrorCode`] in, its WebSocket close code, close reason and HTTP status out; [`Close`] for every way a socket ends; [`ApiError`] for HTTP bodies.
//!
//! This is the one place where an error becomes something on the wire: the
//! server's transports call these mappings and never pick a number
//! themselves. Internal details never reach a client: messages are written
//! for the user, the server log keeps the rest.

use serde::{Deserialize, Serialize};

/// Every error a client can see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    BadAudio,
    MessageTooLarge,
    OverCapacity,
    IdleTimeout,
    MaxDuration,
    AudioOverflow,
    SlowConsumer,
    ShuttingDown,
    NotReady,
    Internal,
    /// No token, or a wrong one (HTTP only: refused before any upgrade).
    Unauthorized,
    /// A browser origin that may not open sessions (HTTP only).
    Forbidden,
    /// No such route or resource (HTTP only).
    NotFound,
    /// The route exists, not with this method (HTTP only).
    MethodNotAllowed,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 15] = [
        Self::BadRequest,
        Self::BadAudio,
        Self::MessageTooLarge,
        Self::OverCapacity,
        Self::IdleTimeout,
        Self::MaxDuration,
        Self::AudioOverflow,
        Self::SlowConsumer,
        Self::ShuttingDown,
        Self::NotReady,
        Self::Internal,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::BadAudio => "bad_audio",
            Self::MessageTooLarge => "message_too_large",
            Self::OverCapacity => "over_capacity",
            Self::IdleTimeout => "idle_timeout",
            Self::MaxDuration => "max_duration",
            Self::AudioOverflow => "audio_overflow",
            Self::SlowConsumer => "slow_consumer",
            Self::ShuttingDown => "shutting_down",
            Self::NotReady => "not_ready",
            Self::Internal => "internal",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// The WebSocket close code (RFC 6455 section 7.4) a session that ends
    /// with this error closes with.
    pub fn close_code(self) -> u16 {
        match self {
            Self::BadAudio => 1007,
            Self::MessageTooLarge => 1009,
            Self::OverCapacity | Self::NotReady => 1013,
            Self::ShuttingDown => 1001,
            Self::Internal => 1011,
            Self::BadRequest
            | Self::IdleTimeout
            | Self::MaxDuration
            | Self::AudioOverflow
            | Self::SlowConsumer
            | Self::Unauthorized
            | Self::Forbidden
            | Self::NotFound
            | Self::MethodNotAllowed => 1008,
        }
    }

    /// The short close reason sent with the close frame (at most 123 bytes).
    pub fn close_reason(self) -> &'static str {
        match self {
            Self::BadRequest => "bad request",
            Self::BadAudio => "too many undecodable audio messages",
            Self::MessageTooLarge => "message too large",
            Self::OverCapacity => "over capacity",
            Self::IdleTimeout => "idle timeout",
            Self::MaxDuration => "maximum session duration reached",
            Self::AudioOverflow => "too much audio queued",
            Self::SlowConsumer => "client not reading",
            Self::ShuttingDown => "server shutting down",
            Self::NotReady => "model still loading",
            Self::Internal => "internal error",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not found",
            Self::MethodNotAllowed => "method not allowed",
        }
    }

    /// The HTTP status an HTTP request refused with this error gets.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest | Self::BadAudio => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::IdleTimeout => 408,
            Self::MessageTooLarge | Self::AudioOverflow => 413,
            Self::OverCapacity => 429,
            Self::Internal => 500,
            Self::NotReady | Self::ShuttingDown | Self::SlowConsumer | Self::MaxDuration => 503,
        }
    }

    /// The `type` of an OpenAI-style error body.
    fn api_type(self) -> &'static str {
        match self.http_status() {
            401 | 403 => "authentication_error",
            429 => "rate_limit_error",
            500.. => "server_error",
            _ => "invalid_request_error",
        }
    }
}

/// Every way the server closes a WebSocket, with its close code and reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// The client sent `end` and got everything.
    EndOfStream,
    /// The answer to the client's close frame.
    ClientClosed,
    /// A text message that is not UTF-8 (RFC 6455: 1007).
    InvalidUtf8,
    /// A WebSocket protocol violation.
    ProtocolError,
    /// The session ends with this error.
    Error(ErrorCode),
}

impl Close {
    pub fn code(self) -> u16 {
        match self {
            Self::EndOfStream | Self::ClientClosed => 1000,
            Self::InvalidUtf8 => 1007,
            Self::ProtocolError => 1002,
            Self::Error(code) => code.close_code(),
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::EndOfStream => "end of stream",
            Self::ClientClosed => "closed by client",
            Self::InvalidUtf8 => "invalid UTF-8",
            Self::ProtocolError => "protocol error",
            Self::Error(code) => code.close_reason(),
        }
    }
}

/// An HTTP error: the status comes from the code, the body is the shape
/// OpenAI's API and SDKs use: `{"error":{"message":..,"type":..,"code":..}}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds a refused client should wait (also sent as `Retry-After`).
    pub retry_after_s: Option<u32>,
}

/// The JSON body of an [`ApiError`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error: ApiErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorDetail {
    pub message: String,
    pub r#type: String,
    pub code: ErrorCode,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_after_s: Option<u32>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn status(&self) -> u16 {
        self.code.http_status()
    }

    pub fn body(&self) -> ApiErrorBody {
        ApiErrorBody {
            error: ApiErrorDetail {
                message: self.message.clone(),
                r#type: self.code.api_type().to_string(),
                code: self.code,
                retry_after_s: self.retry_after_s,
            },
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.body()).expect("error bodies always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_as_their_names() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!(code.close_reason().len() <= 123);
            assert!((1000..5000).contains(&code.close_code()));
            assert!((400..600).contains(&code.http_status()));
        }
    }

    #[test]
    fn closes_have_their_codes() {
        assert_eq!(Close::EndOfStream.code(), 1000);
        assert_eq!(Close::InvalidUtf8.code(), 1007);
        assert_eq!(Close::ProtocolError.code(), 1002);
        assert_eq!(Close::Error(ErrorCode::OverCapacity).code(), 1013);
        assert_eq!(
            Close::Error(ErrorCode::ShuttingDown).reason(),
            "server shutting down"
        );
    }

    #[test]
    fn api_errors_have_the_openai_shape() {
        let mut e = ApiError::new(ErrorCode::OverCapacity, "full");
        e.retry_after_s = Some(5);
        assert_eq!(e.status(), 429);
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["code"], "over_capacity");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["message"], "full");
        assert_eq!(v["error"]["retry_after_s"], 5);
        let back: ApiErrorBody = serde_json::from_value(v).unwrap();
        assert_eq!(back, e.body());
    }
}
