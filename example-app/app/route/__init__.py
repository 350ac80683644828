"""HTTP routers: each one parses the request, calls a service and returns a response model, nothing more."""
