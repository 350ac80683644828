"""Business logic: plain functions with no knowledge of HTTP, easy to test on their own."""
