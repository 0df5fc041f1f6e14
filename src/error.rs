//! The project's error type. Every failure a user can cause is an `Error`, and the Python
//! bindings map each kind to the matching Python exception (`ValueError`, `TypeError`,
//! `NotImplementedError`, `MemoryError`), so nothing panics across the FFI boundary.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A value or shape the caller passed is wrong (Python `ValueError`).
    Value(String),
    /// An argument has the wrong type (Python `TypeError`).
    Type(String),
    /// A documented Keras option that rustkeras does not support yet (Python `NotImplementedError`).
    NotImplemented(String),
    /// A block of memory larger than the system can give (Python `MemoryError`).
    Memory(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Value(m) | Error::Type(m) | Error::NotImplemented(m) | Error::Memory(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for Error {}

/// `Err(Error::Value(format!(...)))` in one line.
#[macro_export]
macro_rules! value_error {
    ($($arg:tt)*) => { Err($crate::error::Error::Value(format!($($arg)*))) };
}
