"""Platform: plans, status, keys and credits, the dashboard and the pages."""
