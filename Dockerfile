# The subscriber daemon: one image, one console script; the compose services pick the subcommand
# (serve, consume, worker, check, ...). Build from the repository root:
#   docker build -t subscriber:local .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY subscriber ./subscriber
RUN pip install . \
    && install -d -m 0755 /etc/subscriber \
    && cp subscriber/data/topology.example.yaml /etc/subscriber/topology.yaml \
    && cp subscriber/data/policy.example.yaml /etc/subscriber/policy.yaml \
    && rm -rf /src

# An unprivileged system user owns the data directory: named volumes mounted there inherit it,
# and every default path (spool, state, local clusters) lands under it via XDG_CACHE_HOME.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/subscriber --create-home \
        --shell /usr/sbin/nologin subscriber
ENV XDG_CACHE_HOME=/var/lib/subscriber
USER subscriber
WORKDIR /var/lib/subscriber

# The callback receiver (h2c prior knowledge and HTTP/1.1 on one port).
EXPOSE 8800

ENTRYPOINT ["subscriber"]
CMD ["--help"]
