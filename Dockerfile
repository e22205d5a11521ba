# The portal in one image: the webhook under gunicorn (the default command) and the CLI for the nightly
# build and publish (`docker run IMAGE portal build /data/export ...`). See infra/README.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # portal/core/templating.py finds the built-in templates next to the portal package (../templates), which an
    # installed copy in site-packages does not have: the source tree in /app comes first on the path.
    PYTHONPATH=/app

WORKDIR /app

# The fonts the invoice and statement PDFs embed (portal/build/fonts.py): Noto Sans for Latin, Greek and Cyrillic,
# Droid Sans Fallback for Chinese, Japanese and Korean. The slim image has no font at all.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-core fonts-droid-fallback \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first (a layer that changes only with pyproject.toml), then the code.
COPY pyproject.toml README.md ./
COPY portal ./portal
COPY webhook ./webhook
RUN pip install ".[postgres,server]" && rm -rf build ar_portal.egg-info
COPY templates ./templates
COPY infra ./infra
COPY alembic.ini ./

# Never root: the webhook needs nothing but its port, the CLI only the folders it is given.
RUN useradd --system --uid 10001 --home-dir /data --create-home portal
USER portal
WORKDIR /data

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["gunicorn", "--config", "/app/infra/gunicorn.conf.py", "webhook:create_app()"]
