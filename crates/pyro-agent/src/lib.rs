//! agent lib placeholder
