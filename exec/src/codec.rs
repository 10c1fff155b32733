//! Plan fragments on the wire: `datafusion-proto` plus an extension codec for Tributary's own operators.
