# mergebot in a container: `docker build -t mergebot . && docker run -p 8080:8080 -v mergebot-data:/data mergebot`
# The embedded Redis (AOF on) keeps its data under /data; set MERGEBOT_REDIS_URL to use your own.
FROM python:3.11-slim

# git: mergebot keeps a mirror per repo and merges in worktrees with the real git.
# bubblewrap: check commands run sandboxed where the container runtime allows user namespaces.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git bubblewrap \
    && rm -rf /var/lib/apt/lists/*

# mergebot runs the server; mergebot-check runs check commands when the container runs as root
# (`--user root -e MERGEBOT_CHECK_USER=mergebot-check`).
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin mergebot \
    && useradd --no-create-home --uid 10002 --shell /usr/sbin/nologin mergebot-check \
    && mkdir /data && chown mergebot:mergebot /data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY mergebot ./mergebot
COPY templates ./templates
RUN pip install --no-cache-dir . && rm -rf /src

WORKDIR /home/mergebot
USER mergebot
ENV MERGEBOT_HOST=0.0.0.0 \
    MERGEBOT_PORT=8080 \
    MERGEBOT_DATA_DIR=/data \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8080

# The slim image has no curl: probe /healthz with Python's standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/healthz' % os.environ.get('MERGEBOT_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

# `docker stop` sends SIGTERM: mergebot stops serving, stops its embedded Redis (flushing the AOF)
# and exits 0.
CMD ["mergebot", "serve"]
