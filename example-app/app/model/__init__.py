"""Pydantic models of the request and response bodies; FastAPI validates with them and documents them."""
