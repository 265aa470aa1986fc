"""salesbot's face: channels, conversation routing, delivery, HTTP server, CLI and settings."""
