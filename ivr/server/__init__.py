"""The server: settings and AppKeys, the app factory, metrics, and serving."""
