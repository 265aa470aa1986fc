"""Chat channels: each file translates one platform's wire format to bot.messages and back."""
