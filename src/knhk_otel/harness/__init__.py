"""What tests, benches and CI use to exercise the toolchain, above `runtime` and `validate`."""
