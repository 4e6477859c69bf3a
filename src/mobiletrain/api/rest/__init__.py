"""REST transport: FastAPI app over the core services (see ``app.create_app``)."""
