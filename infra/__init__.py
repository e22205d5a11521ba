"""Deployment entry points (AWS Lambda, gunicorn); see infra/README.md."""
