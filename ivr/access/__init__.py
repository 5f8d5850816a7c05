"""Who may do what: passwords and tokens, ``permits()``, and the audit chain."""
