"""HTTP controllers: translate requests into service calls and results into responses."""
