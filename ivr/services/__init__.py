"""The use cases that both the API and the CLI call: each validates, writes and audits once."""
