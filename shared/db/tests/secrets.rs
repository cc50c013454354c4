//! Secrets Manager (moto) tests: see below.
