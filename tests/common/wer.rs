//! Word error rate: the library's scorer (`steno::wer`), shared with the load
//! generator so both score the same way.

// Not every test binary scores text.
#[allow(unused_imports)]
pub use steno::wer::*;
