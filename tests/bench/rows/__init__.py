"""The benchmark rows, one idea a module; every module here is loaded by `harness.rows()`."""
