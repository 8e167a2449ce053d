"""The export pipeline: windows of days, export jobs through their states, the API adapter,
downloads, ZIP reading, one pass that shares each document between streams, and progress."""
