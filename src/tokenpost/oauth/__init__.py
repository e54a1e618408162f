"""OAuth 2.0 client cores, one module per RFC. No I/O: requests out, responses in, `now` given."""
