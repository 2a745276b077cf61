//! The worker's errors: what ends a connection, and what a request is answered with.

/// Why the worker lost (or could not use) its broker connection.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The broker refused or dropped an AMQP operation.
    #[error("broker error during {op}: {source}")]
    Broker {
        op: &'static str,
        #[source]
        source: lapin::Error,
    },
    /// The broker cancelled our consumer (e.g. the queue was deleted).
    #[error("the broker cancelled the consumer")]
    ConsumerCancelled,
}

impl WorkerError {
    /// A stable short code for logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Broker { .. } => "broker",
            Self::ConsumerCancelled => "consumer_cancelled",
        }
    }

    /// Wraps a lapin error with the operation that failed.
    pub fn broker(op: &'static str) -> impl FnOnce(lapin::Error) -> Self {
        move |source| Self::Broker { op, source }
    }
}

/// Why a request is answered with an error reply (header `x-ferry-error` = [`code`](Self::code)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not `{"patientId": <positive integer>}`.
    #[error("expected a JSON body like {{\"patientId\": 3}}: {0}")]
    BadRequest(String),
    /// No patient has this id.
    #[error("no patient with id {0}")]
    UnknownPatient(u64),
    /// The caller (`x-ferry-user`) is not in this patient's care team.
    #[error("patient {patient} is not in {user}'s care")]
    NotYourPatient {
        /// The patient asked for.
        patient: u64,
        /// Who asked.
        user: String,
    },
}

impl RequestError {
    /// The machine-readable code sent as `x-ferry-error`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::UnknownPatient(_) => "unknown_patient",
            Self::NotYourPatient { .. } => "not_your_patient",
        }
    }

    /// The JSON body of the error reply (the caller's `error.details`).
    pub fn details(&self) -> serde_json::Value {
        match self {
            Self::BadRequest(reason) => serde_json::json!({
                "error": self.code(),
                "reason": reason,
            }),
            Self::UnknownPatient(id) => serde_json::json!({
                "error": self.code(),
                "patientId": id,
                "knownIds": format!("1..={}", crate::patients::PATIENT_COUNT),
            }),
            Self::NotYourPatient { patient, user } => serde_json::json!({
                "error": self.code(),
                "patientId": patient,
                "user": user,
            }),
        }
    }
}
