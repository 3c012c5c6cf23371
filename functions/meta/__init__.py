"""Health, the OpenAPI spec and Swagger UI, and the fallback route (template Handler: meta.app.lambda_handler)."""
