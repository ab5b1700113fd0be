"""① HTTP in: the amoCRM webhook receiver and the n8n-compatible push endpoint."""
