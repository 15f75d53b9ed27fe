"""Locally trusted TLS for development: certificates (`certs`) and trust stores (`trust`)."""
