# teleconsult: one container, embedded SQLite store by default (set TELECONSULT_REDIS_URL for Redis).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TELECONSULT_HOST=0.0.0.0 \
    TELECONSULT_PORT=8080 \
    TELECONSULT_DATA_DIR=/var/lib/teleconsult/data \
    TELECONSULT_RECORDINGS_DIR=/var/lib/teleconsult/recordings

RUN groupadd --system teleconsult \
 && useradd --system --gid teleconsult --home-dir /var/lib/teleconsult --shell /usr/sbin/nologin teleconsult \
 && mkdir -p /var/lib/teleconsult/data /var/lib/teleconsult/recordings /var/lib/teleconsult/backups /app \
 && chown -R teleconsult:teleconsult /var/lib/teleconsult \
 && chmod 0700 /var/lib/teleconsult/data /var/lib/teleconsult/recordings /var/lib/teleconsult/backups

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY server ./server
COPY web ./web
# Editable install: the package runs from /app, so web/ is found beside server/.
RUN pip install -c constraints.txt -e .

USER teleconsult
VOLUME ["/var/lib/teleconsult/data", "/var/lib/teleconsult/recordings", "/var/lib/teleconsult/backups"]
EXPOSE 8080/tcp
# Media (WebRTC over UDP) uses ephemeral ports: run with --network host, or restrict the ICE
# addresses (TELECONSULT_ICE_HOST_ADDRESSES) and announce the public one (TELECONSULT_ICE_ANNOUNCE_ADDRESS).
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["teleconsult"]
CMD ["serve"]
