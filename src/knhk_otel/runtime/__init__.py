"""Runtime support for instrumented code: OTel providers from config, strict mode, tick budgets."""
