"""`strom init`: the checks of an operator's answers and the `strom.toml` they become."""
