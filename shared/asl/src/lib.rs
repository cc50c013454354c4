//! Local ASL engine (in progress).
