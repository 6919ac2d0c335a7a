"""Stand-ins for the platforms' servers (Telegram's Bot API, LINE's Messaging API), run on
loopback for the real SDKs to call. Each records every request and can be told to fail."""
