"""A small FastAPI application that makes deployment concepts visible."""
