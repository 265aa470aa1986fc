"""What the bot does for people: permissions, approvals, actions, signals."""
