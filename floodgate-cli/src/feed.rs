//! The feed server shared by `serve --feed`, `demo` and the tests: not
//! written yet (being built).
