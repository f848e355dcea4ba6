"""The architecture fuzzer: a block grammar of causal models, built and classified through the CLI."""
